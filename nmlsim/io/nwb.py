"""Run results as an NWB file (Neurodata Without Borders, read by pynwb and the field's data
tools): spikes as a Units table — one unit per cell, with its population and index — and each
recorded trace column as a TimeSeries in SI units.  Needs ``pynwb`` (``pip install nmlsim[nwb]``).
"""
from __future__ import annotations

import os
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import FormatError, UnsupportedFeature


def write_nwb(result, path, *, session_description: str = "nmlsim simulation",
              identifier: Optional[str] = None) -> Path:
    """Write ``result`` (a :class:`nmlsim.results.RunResult`) to ``path`` atomically."""
    try:
        from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    except ImportError:
        raise UnsupportedFeature("writing NWB needs pynwb (pip install pynwb)") from None
    path = Path(path)
    nwb = NWBFile(session_description=session_description, identifier=identifier or str(uuid.uuid4()),
                  session_start_time=datetime.now(timezone.utc),
                  source_script="nmlsim", source_script_file_name="nmlsim")
    for name in result.outputs():
        out = result.output(name)
        t = np.asarray(out.time, dtype=float)
        regular = len(t) > 1 and np.allclose(np.diff(t), t[1] - t[0], rtol=1e-9, atol=1e-15)
        for j, c in enumerate(out.columns):
            kw = dict(starting_time=float(t[0]), rate=1.0 / float(t[1] - t[0])) if regular else dict(timestamps=t)
            nwb.add_acquisition(TimeSeries(name=_unique(nwb, f"{name}.{c.id}"), data=np.asarray(out.data[:, j]),
                                           unit=c.unit or "n/a", description=c.quantity, comments=f"output {name}",
                                           **kw))
    if result.spikes:
        nwb.add_unit_column(name="population", description="NeuroML population of the cell")
        nwb.add_unit_column(name="cell", description="index of the cell in its population")
        for pop, (idx, times) in sorted(result.spikes.items()):
            idx, times = np.asarray(idx, dtype=np.int64), np.asarray(times, dtype=float)
            order = np.lexsort((times, idx))
            idx, times = idx[order], times[order]
            n = max(result.sizes.get(pop, 0), int(idx.max()) + 1 if len(idx) else 0)
            bounds = np.searchsorted(idx, np.arange(n + 1))
            for c in range(n):  # every cell, silent ones with no spikes
                nwb.add_unit(spike_times=times[bounds[c]:bounds[c + 1]], population=pop, cell=c)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.nwb", dir=str(path.parent))
    os.close(fd)
    try:
        with NWBHDF5IO(tmp, "w") as io:
            io.write(nwb)
        os.replace(tmp, path)
    except OSError as e:
        raise FormatError(f"cannot write the NWB file: {e.strerror}", file=path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _unique(nwb, name: str) -> str:
    name = name.replace("/", "_")
    base, k = name, 1
    while name in nwb.acquisition:
        k += 1
        name = f"{base}_{k}"
    return name
