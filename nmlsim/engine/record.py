"""Recorders: sample variables and events into preallocated buffers.

They hand plain arrays to a ``sink`` callable (the API layer passes the file writers of
:mod:`nmlsim.io.results`), so the engine never touches a file format.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from ..lems.flatten import Group
from .simulator import Recorder


class TraceRecorder(Recorder):
    """Columns of (group, key, instance); one row per step including t = 0."""

    def __init__(self, name: str, columns: List[Tuple[Group, str, int]],
                 sink: Callable[[str, np.ndarray, bool], None], every: int = 1):
        self.name = name
        self.columns = columns
        self.sink = sink
        self.every = max(1, int(every))

    def initialize(self, sim, nsteps):
        rows = nsteps // self.every + 1
        self.data = np.empty((rows, len(self.columns) + 1))
        self.rows = 0
        prog = sim.program
        self._getters = []
        for g, key, idx in self.columns:
            lit = prog.literals.get((g.gid, key))
            if lit is not None:
                self._getters.append((None, float(lit), idx))
            else:
                self._getters.append((prog.py(g.gid, key), None, idx))

    def sample(self, sim, k, t):
        if k % self.every:
            return
        row = self.data[self.rows]
        row[0] = t
        V = sim.V
        for j, (nm, lit, idx) in enumerate(self._getters, start=1):
            if nm is None:
                row[j] = lit
            else:
                a = V[nm]
                row[j] = a if type(a) is float else (a[idx] if a.ndim and a.shape[0] > idx else a.flat[0])
        self.rows += 1

    def finalize(self, sim, complete):
        self.sink(self.name, self.data[: self.rows], complete)


class EventRecorder(Recorder):
    """Events of selected instances: a list of (selection id, time)."""

    def __init__(self, name: str, selections: List[Tuple[str, Group, str, int]],
                 sink: Callable[[str, list, bool], None]):
        self.name = name
        self.selections = selections
        self.sink = sink

    def initialize(self, sim, nsteps):
        self.events = []
        for sid, g, port, idx in self.selections:
            def cb(mask, t, sid=sid, idx=idx):
                if mask[idx]:
                    self.events.append((sid, t))
            sim.event_listeners[(g.gid, port)].append(cb)

    def finalize(self, sim, complete):
        self.sink(self.name, self.events, complete)
