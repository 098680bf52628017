"""Spikes across MPI ranks: what every rank's cells fired, on every rank, in one order.

A rank holds a share of the network (graph/partition.py): its cells, the connections onto
them and, for every presynaptic population, a spike-source stand-in of the whole population
whose routes reach the rank's own cells. After each event phase the ranks all-gather the
cells that fired (population, cell of the whole population, the sender's delay lag) and every
rank routes them through its stand-ins — population by population in network order, cells
in ascending order, exactly as one process routes a population's spikes — so each synapse
receives its events in the same order whatever the number of ranks, and the results are
the same bytes.

Spikes cross once per *window*: the smallest delay, in steps, of any connection a stand-in
carries (all ranks agree on it). A spike cannot arrive before its delay, so the spikes of a
window are routed at its end, each as of its own step (the ring slot it would have been put
in then): the same events in the same order. Connections with a delay of zero steps make the
window one step: a spike reaches its targets in its own step's event phase, as in one process.

Cells that gap junctions or graded synapses join to another rank's cells are copied there
(halo cells, graph/partition.py); after every event phase their v goes to the copies
(:meth:`SpikeExchange.couple`).

The communicator is passed in (an ``mpi4py`` communicator or anything with ``allgather``,
``allreduce``, ``rank`` and ``size``): the engine itself imports no MPI.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np


class SpikeExchange:
    """Built by the API for one rank's simulator (``Simulator(exchange=...)``).

    ``senders``: per presynaptic population of the whole network, in network order,
    ``(population id, stand-in source group, local (group, port, offset, size, stride,
    soma, full_index) or None)``.
    """

    def __init__(self, comm, senders, halos=()):
        self.comm = comm
        self.senders = senders
        #: halo cells: per population with copies on some rank, (its group here or None, the
        #: instances of this rank's cells that others copy, per rank the whole-population cells
        #: it sends, this rank's halo cells, their instances) — see :meth:`couple`
        self.halos = list(halos)
        #: per entry of ``halos``: where each halo cell's v is in the all-gathered values (the
        #: ranks' sends one after another); fixed by the partition, so found once
        self._picks = []
        for g, _, by_rank, halo, _ in self.halos:
            cells = np.concatenate(by_rank) if by_rank else np.zeros(0, dtype=np.int64)
            order = np.argsort(cells, kind="stable")
            self._picks.append(order[np.searchsorted(cells[order], halo)] if g is not None and len(halo) else None)
        self.pending: List[tuple] = []
        self.sim = None
        self.stop_requested = False

    def couple(self) -> None:
        """Every rank's cells that gap junctions join to other ranks' cells: their v into the
        copies (halo cells) the other ranks hold, after each event phase and before the first
        step — so a junction reads at the start of a step the v its peer has then."""
        if not self.halos:
            return
        V, prog = self.sim.V, self.sim.program
        mine = [np.zeros(0) if g is None else V[prog.py(g.gid, "v")][inst] for g, inst, _, _, _ in self.halos]
        got = self.comm.allgather(mine)
        for k, ((g, _, _, _, halo_inst), pick) in enumerate(zip(self.halos, self._picks)):
            if pick is not None:
                V[prog.py(g.gid, "v")][halo_inst] = np.concatenate([vals[k] for vals in got])[pick]

    def request_stop(self, signum=None, frame=None) -> None:
        """A signal handler: stop every rank at the next exchange (outputs marked partial)."""
        self.stop_requested = True

    def attach(self, sim) -> None:
        """Listen to this rank's senders; called by the simulator once its routes exist."""
        self.sim = sim
        for k, (pid, src, local) in enumerate(self.senders):
            if local is None:
                continue
            g, port, offset, size, stride, soma, full = local

            def cb(mask, lag, k=k, offset=offset, size=size, stride=stride, soma=soma, full=full):
                i = np.nonzero(mask)[0]
                sel = (i >= offset) & (i < offset + size * stride)
                if stride > 1:
                    sel &= (i - offset) % stride == soma
                if sel.any():
                    self.pending.append((k, int(lag), full[(i[sel] - offset) // stride]))
            sim.exports[(g.gid, port)].append(cb)
        # the stand-ins' routes, per population (built by the simulator's _setup_events)
        self.routes = [sim.routes.get((src.gid, src.port), []) for _, src, _ in self.senders]
        # per stand-in, the senders with a target on this rank: the others' spikes are dropped
        # before any routing (with k targets per cell spread over K ranks a rank sees a share
        # 1 - (1 - 1/K)^k of the network's spikes)
        self.reach = []
        for (_, src, _), recs in zip(self.senders, self.routes):
            hit = np.zeros(src.n, dtype=bool)
            for rec in recs:
                hit |= np.diff(rec["indptr"]) > 0
            self.reach.append(hit)
        # a route whose receivers may send events in turn (a synapse relaying a spike) needs
        # another round of exchange in the same step; merged synapses and plain ones cannot
        self.cascades = self.comm.allreduce(int(any(self._can_cascade(rec) for recs in self.routes
                                                    for rec in recs))) > 0
        # the minimum delay, in steps, of every connection between ranks: spikes need to cross
        # only once per that many steps (jLEMS's clock may deliver a step early: one less)
        least = min((int(rec["steps"].min()) for recs in self.routes for rec in recs if len(rec["steps"])),
                    default=1 << 30)
        if sim.accumulated_time:
            least -= 1
        self.window = max(1, min(min(self.comm.allgather(least)), 1 << 20))
        if self.cascades:
            self.window = 1
        self.reset()

    def reset(self) -> None:
        """Before a run: nothing pending."""
        self.pending, self.stash, self.calls = [], [], 0

    def _can_cascade(self, rec) -> bool:
        """Whether the receivers of a route send events of their own when one arrives."""
        if rec["merged"] is not None:
            return False
        r = rec["route"]
        return bool(self.sim.root_ports(r.dst.gid, "", r.dst_port) - {(r.dst.gid, r.dst_port)})

    def step(self, k: int, t: float) -> bool:
        """The spikes sent since the last call (the event phase of step ``k``, clock ``t``):
        exchanged now, or held until the end of the window (every rank calls this alike, so
        the collectives meet). True if any spikes were routed."""
        mine, self.pending = self.pending, []
        self.stash.append((k, t, _pack(mine)))
        self.calls += 1
        if self.window > 1 and self.calls % self.window:
            return False  # (their delays keep them from arriving before the window ends)
        stash, self.stash = self.stash, []
        delivered = False
        while True:
            got = self.comm.allgather((self.stop_requested, [p for _, _, p in stash]))
            if any(stop for stop, _ in got):
                raise KeyboardInterrupt  # (on every rank at this step: their outputs end alike)
            sim, now = self.sim, self.sim.step_index
            routed = False
            for j, (kj, tj, _) in enumerate(stash):  # call by call, as one process routes them
                items = [it for _, calls in got for it in _unpack(calls[j])]
                if items:
                    sim.step_index = kj
                    self._route(items, tj)
                    routed = True
            sim.step_index = now
            delivered |= routed
            if not (routed and self.cascades):
                return delivered
            # (receivers that relay: their spikes of this same step cross now)
            stash, self.pending = [(k, t, _pack(self.pending))], []

    def _route(self, items, t: float) -> None:
        sim = self.sim
        by = {}
        for k, lag, ids in items:
            by.setdefault((k, lag), []).append(ids)
        queue: list = []
        for (k, lag) in sorted(by):
            # the senders in ascending order, as a mask of the whole population would give them
            # (indices, not the mask: a rank need not touch an array of every cell each step)
            senders = np.unique(np.concatenate(by[(k, lag)]))
            senders = senders[self.reach[k][senders]]
            if not len(senders):
                continue
            for rec in self.routes[k]:
                sim._route(rec, senders, queue, t, lag)
        if queue:
            sim._process_events(queue, t)


def _pack(items) -> Optional[tuple]:
    if not items:
        return None
    heads = np.array([(k, lag, len(ids)) for k, lag, ids in items], dtype=np.int64)
    return heads, np.concatenate([ids for _, _, ids in items]).astype(np.int64)


def _unpack(packed):
    if packed is None:
        return []
    heads, ids = packed
    out, pos = [], 0
    for k, lag, n in heads:
        out.append((int(k), int(lag), ids[pos:pos + n]))
        pos += n
    return out
