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
            key = sim.shown_key(g, key)
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

    def reads(self):
        return {(g.gid, key) for g, key, _ in self.columns}

    def trace_columns(self, sim):
        """(array name or None, literal, index) per column, for the compiled loop."""
        return self._getters

    def sample_block(self, sim, k0, block, pos):
        """Rows of steps k0, k0+1, ... at once; ``pos``: per column ("col", block column) or
        ("lit", value)."""
        ks = np.arange(k0, k0 + len(block))
        sel = ks % self.every == 0
        n = int(sel.sum())
        if not n:
            return
        out = self.data[self.rows: self.rows + n]
        out[:, 0] = ks[sel] * sim.dt
        rows = block[sel]
        for j, (kind, v) in enumerate(pos, start=1):
            out[:, j] = rows[:, v] if kind == "col" else v
        self.rows += n

    def finalize(self, sim, complete):
        self.sink(self.name, self.data[: self.rows], complete)


class EventRecorder(Recorder):
    """Events of selected instances: a list of (selection id, time).

    Selections are grouped per (group, port), so one listener per group looks up all
    selected instances that fired in one vectorised step, whatever their number.
    """

    def __init__(self, name: str, selections: List[Tuple[str, Group, str, int]],
                 sink: Callable[[str, list, bool], None]):
        self.name = name
        self.selections = selections
        self.sink = sink

    def initialize(self, sim, nsteps):
        self.events = []
        by_group = {}
        for sid, g, port, idx in self.selections:
            by_group.setdefault((g.gid, g.n, port), []).append((idx, sid))
        for (gid, n, port), items in by_group.items():
            ids = np.full(n, -1, dtype=np.int64)
            labels = []
            for idx, sid in items:
                ids[idx] = len(labels)
                labels.append(sid)

            shift = sim.jnml_event_shift

            def cb(mask, t, ids=ids, labels=labels, shift=shift):
                t = t - shift
                hit = ids[np.nonzero(mask)[0]]
                for j in hit[hit >= 0]:
                    self.events.append((labels[j], t))

            def block(idx, t, ids=ids, labels=labels, shift=shift):
                t = t - shift
                hit = ids[idx]
                for j, tt in zip(hit[hit >= 0], t[hit >= 0]):
                    self.events.append((labels[j], float(tt)))
            cb.block = block
            sim.event_listeners[(gid, port)].append(cb)

    def reads(self):
        return set()  # events only

    def finalize(self, sim, complete):
        self.events.sort(key=lambda e: e[1])
        self.sink(self.name, self.events, complete)


class SpikeRecorder(Recorder):
    """Every event of every cell of some populations: per population, arrays of (index, time).

    ``groups``: (name, group, port, offset, size[, stride, soma]) — cell i of a population
    is instance offset + i * stride + soma of its group (populations of one cell type share
    a group; stride is the compartments per cell of multi-compartment cells, else 1).
    """

    def __init__(self, groups, sink: Optional[Callable[[dict, bool], None]] = None, state_time: bool = False):
        self.groups = groups
        self.sink = sink
        #: report the time of the state that crossed threshold (NEST, NEURON, SONATA files)
        #: instead of jLEMS's event time, which is one step later
        self.state_time = state_time

    def initialize(self, sim, nsteps):
        self.idx = {name: [] for name, *_ in self.groups}
        self.times = {name: [] for name, *_ in self.groups}
        by_group = {}
        # events carry the time the conditions were tested with: jLEMS's t_k+1 + dt (also
        # the time jnml writes), or t_k+1 + dt/2 with --method neuron, whose files (like
        # NEURON's) carry t_k+1, the time of the state that crossed
        shift = sim.event_lead if self.state_time else sim.jnml_event_shift
        for name, g, port, offset, size, *more in self.groups:
            stride, soma = more if more else (1, 0)
            by_group.setdefault((g.gid, port), []).append((name, offset, size, stride, soma))

        def cells(i, offset, size, stride, soma):
            sel = (i >= offset) & (i < offset + size * stride)
            if stride > 1:
                sel &= (i - offset) % stride == soma
            return sel, (i[sel] - offset) // stride
        for key, pops in by_group.items():
            def cb(mask, t, pops=pops):
                i = np.nonzero(mask)[0]
                if not len(i):
                    return
                for name, *where in pops:
                    sel, cell = cells(i, *where)
                    if len(cell):
                        self.idx[name].append(cell)
                        self.times[name].append(np.full(len(cell), t - shift))

            def block(i, t, pops=pops):
                for name, *where in pops:
                    sel, cell = cells(i, *where)
                    if len(cell):
                        self.idx[name].append(cell)
                        self.times[name].append(t[sel] - shift)
            cb.block = block
            sim.event_listeners[key].append(cb)

    def reads(self):
        return set()  # events only

    def finalize(self, sim, complete):
        if self.sink is not None:
            self.sink(self.result(), complete)

    def result(self):
        out = {}
        for name, *_ in self.groups:
            if self.idx[name]:
                out[name] = (np.concatenate(self.idx[name]), np.concatenate(self.times[name]))
            else:
                out[name] = (np.zeros(0, dtype=np.int64), np.zeros(0))
        return out
