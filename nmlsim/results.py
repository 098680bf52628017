"""What a run gives back to Python: traces with time, quantity paths and units, spikes per
population, and their conversions (pandas, a figure, NWB).

:class:`RunResult` is what :func:`nmlsim.run` and :meth:`nmlsim.api.LoadedSimulation.run`
return.  ``traces`` keeps the raw arrays jnml's .dat files hold (time, then the columns, in SI
units); :meth:`RunResult.output` wraps one of them with its column names and units.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np


@dataclass
class Column:
    """One recorded column: its id in the OutputFile, the LEMS quantity path, its SI unit and
    LEMS dimension (None where its type does not declare one)."""
    id: str
    quantity: str
    unit: str
    dimension: Optional[str] = None


@dataclass
class Output:
    """One OutputFile's data: ``time`` (s) and ``data`` (rows × columns, SI units)."""
    name: str
    time: np.ndarray
    data: np.ndarray
    columns: List[Column]

    def __getitem__(self, key) -> np.ndarray:
        """The values of a column, by its id or its quantity path."""
        for j, c in enumerate(self.columns):
            if key in (c.id, c.quantity):
                return self.data[:, j]
        raise KeyError(f"no column '{key}' in output '{self.name}' "
                       f"(columns: {', '.join(c.id for c in self.columns)})")

    def to_pandas(self):
        """A DataFrame indexed by time (s), one column per quantity (named by column id)."""
        import pandas as pd
        df = pd.DataFrame(self.data, index=pd.Index(self.time, name="time (s)"),
                          columns=[c.id for c in self.columns])
        df.attrs["units"] = {c.id: c.unit for c in self.columns}
        df.attrs["quantities"] = {c.id: c.quantity for c in self.columns}
        return df


@dataclass
class RunResult:
    """The outcome of a run.

    - ``traces``: OutputFile id -> array (time, columns...), as jnml writes it;
    - ``events``: EventOutputFile id -> [(selection id, time s)];
    - ``spikes``: population -> (cell indices, times s), every spike of every cell (when the
      run recorded them: Python runs do by default);
    - ``columns``: OutputFile id -> [:class:`Column`];
    - ``parameters``: the values set on the model for this run (path -> text);
    - ``files``: what was written; ``complete``: False if the run was interrupted.
    """
    traces: Dict[str, np.ndarray] = field(default_factory=dict)
    events: Dict[str, list] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)
    complete: bool = True
    simulator: Optional[object] = None
    spikes: Dict[str, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    columns: Dict[str, List[Column]] = field(default_factory=dict)
    parameters: Dict[str, str] = field(default_factory=dict)
    #: cells per population of the network run (silent cells included)
    sizes: Dict[str, int] = field(default_factory=dict)
    #: what the user should know about the run (the command line prints them as notes)
    notes: List[str] = field(default_factory=list)

    # ------------------------------------------------------------------ access
    def outputs(self) -> List[str]:
        """The OutputFile ids with data."""
        return [k for k in self.traces if k in self.columns]

    def output(self, name: Optional[str] = None) -> Output:
        """One OutputFile's data with names and units (the only one when ``name`` is None)."""
        names = self.outputs()
        if name is None:
            if len(names) != 1:
                raise KeyError(f"this run has {len(names)} outputs ({', '.join(names) or 'none'}): name one")
            name = names[0]
        if name not in self.columns:
            raise KeyError(f"no output '{name}' (outputs: {', '.join(names) or 'none'})")
        a = np.asarray(self.traces[name])
        return Output(name, a[:, 0], a[:, 1:], list(self.columns[name]))

    def trace(self, quantity: str) -> Tuple[np.ndarray, np.ndarray]:
        """(time s, values SI) of a recorded quantity, by LEMS path or column id."""
        for name in self.outputs():
            out = self.output(name)
            for c in out.columns:
                if quantity in (c.quantity, c.id):
                    return out.time, out[quantity]
        raise KeyError(f"'{quantity}' was not recorded (record it with an OutputColumn, or pass "
                       f"record=['{quantity}'] to run)")

    def spike_counts(self) -> Dict[str, int]:
        return {p: int(len(t)) for p, (_, t) in self.spikes.items()}

    # ------------------------------------------------------------- conversions
    def to_pandas(self):
        """``(traces, spikes)`` DataFrames: traces in long form (output, column, quantity, unit,
        time, value), spikes as (population, cell, time)."""
        import pandas as pd
        frames = []
        for name in self.outputs():
            out = self.output(name)
            for j, c in enumerate(out.columns):
                frames.append(pd.DataFrame({"output": name, "column": c.id, "quantity": c.quantity, "unit": c.unit,
                                            "time": out.time, "value": out.data[:, j]}))
        traces = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["output", "column", "quantity", "unit", "time", "value"])
        rows = [pd.DataFrame({"population": p, "cell": np.asarray(i, dtype=np.int64), "time": np.asarray(t, float)})
                for p, (i, t) in self.spikes.items() if len(t)]
        spikes = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["population", "cell", "time"])
        return traces, spikes

    def plot(self, path=None):
        """A figure of the traces (one panel per output, in mV / nA ... by dimension) and a raster
        of the spikes; written to ``path`` if given. Returns the matplotlib Figure."""
        from .plot import results_figure
        fig = results_figure(self)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    def to_nwb(self, path, *, session_description: str = "nmlsim simulation", identifier: Optional[str] = None):
        """Write the spikes (a Units table: one unit per cell, with its population) and the
        traces (one TimeSeries per column, SI units) to an NWB file (needs pynwb)."""
        from .io.nwb import write_nwb
        return write_nwb(self, path, session_description=session_description, identifier=identifier)
