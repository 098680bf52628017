"""Result files: jnml-style ``.dat`` traces and event files, written atomically.

Every file is written under a temporary name in the same folder and renamed when
complete.  A run that stops early (Ctrl-C, SIGTERM, a blow-up) still writes what it
recorded, and marks each such file with a sidecar ``<file>.partial`` that says so.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Tuple

import numpy as np

from ..errors import FormatError


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    except OSError as e:
        raise FormatError(f"cannot write output: {e.strerror}", file=path) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FormatError(f"cannot write output: {e.strerror}", file=path) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _mark(path: Path, complete: bool, rows: int) -> None:
    marker = Path(str(path) + ".partial")
    if complete:
        if marker.exists():
            marker.unlink()
    else:
        _atomic_write(marker, lambda fh: fh.write(
            f"{path.name} is PARTIAL: the run stopped early; it holds {rows} rows/events.\n"))


def write_dat(path, data: np.ndarray, complete: bool = True) -> None:
    """Whitespace-separated columns (time first), one row per sample, SI units."""
    def w(fh):
        if len(data):
            np.savetxt(fh, data, fmt="%.10g", delimiter="\t")
    _atomic_write(Path(path), w)
    _mark(Path(path), complete, len(data))


def write_events(path, events: Iterable[Tuple[str, float]], fmt: str = "ID_TIME", complete: bool = True) -> None:
    events = list(events)

    def w(fh):
        for sid, t in events:
            fh.write(f"{sid}\t{t:.10g}\n" if fmt == "ID_TIME" else f"{t:.10g}\t{sid}\n")
    _atomic_write(Path(path), w)
    _mark(Path(path), complete, len(events))


def read_dat(path) -> np.ndarray:
    try:
        return np.atleast_2d(np.loadtxt(path))
    except (OSError, ValueError) as e:
        raise FormatError(f"cannot read trace file: {e}", file=path) from None


def write_sonata_spikes(path, spikes, complete: bool = True) -> None:
    """SONATA spike file: ``/spikes/<population>/{timestamps (ms), node_ids}``, sorted by time.

    ``spikes``: {population: (node ids, times in seconds)}.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["magic"] = np.uint32(0x0A7A)
            f.attrs["version"] = np.array([0, 1], dtype=np.uint32)
            grp = f.create_group("spikes")
            for pop, (ids, times) in spikes.items():
                ids = np.asarray(ids, dtype=np.uint64)
                times = np.asarray(times, dtype=float) * 1e3
                order = np.lexsort((ids, times))
                g = grp.create_group(pop)
                # an HDF5 enum, as the SONATA spec and libsonata want (bmtk writes a string)
                g.attrs.create("sorting", 2, dtype=h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2},
                                                                     basetype="u1"))
                ts = g.create_dataset("timestamps", data=times[order])
                ts.attrs["units"] = "ms"
                g.create_dataset("node_ids", data=ids[order])
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise FormatError(f"cannot write spikes: {e}", file=path) from None
    _mark(path, complete, sum(len(v[0]) for v in spikes.values()))
