"""Runs across MPI processes: ``mpirun -n K nmlsim run MODEL``.

Each rank reads the model, keeps its share of the cells (graph/partition.py), builds and
steps only those, and exchanges spikes with the others once a step (engine/exchange.py).
Outputs are gathered on rank 0, which writes the same files a single process writes (the
same bytes, whatever K: random numbers are keyed by cell, compile/streams.py, and every
synapse receives its events in one order). A rank that fails ends the run on every rank with
its message. MPI comes from ``mpi4py`` over the MPI library it finds (``pip install mpi4py
mpich`` installs both); nmlsim without ``mpirun`` never imports it.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Dict, Optional

import numpy as np

from .errors import NmlsimError, UnsupportedFeature

#: environment variables MPI launchers set in the processes they start
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS",
                  "HYDRA_CONTROL_FD", "MPIEXEC_HOSTNAME")


def launched_by_mpi() -> bool:
    return any(v in os.environ for v in _LAUNCHER_VARS)


def world():
    """MPI's world communicator when this process was started by an MPI launcher, else None."""
    if os.environ.get("NMLSIM_NO_MPI") or not launched_by_mpi():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise UnsupportedFeature("started by an MPI launcher, but mpi4py is not installed "
                                 "(pip install mpi4py; with no MPI library on the machine: pip install mpich)") from None
    return MPI.COMM_WORLD


@contextmanager
def one_failure_ends_all(comm):
    """An error on one rank ends every rank, with that rank's one-line message."""
    try:
        yield
    except (NmlsimError, OSError, MemoryError) as e:
        if comm is None or comm.size == 1 or getattr(e, "quiet", None) is not None:
            raise  # (an error every rank meets alike, reading the model: rank 0 reports it)
        sys.stderr.write(f"nmlsim: error (rank {comm.rank} of {comm.size}): {e}\n")
        sys.stderr.flush()
        comm.Abort(1)


class Distributed:
    """One rank's view of a distributed run: its share of the network and the collectives
    that put the outputs back together on rank 0."""

    def __init__(self, comm, network, split_coupled: bool = False):
        from .graph.partition import assign, couplings, imbalance, share
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        self.whole = network
        if network.owner is not None and network.read_for != (self.rank, self.size):
            raise UnsupportedFeature(f"the model was read for rank {network.read_for[0]} of {network.read_for[1]}; "
                                     f"this is rank {self.rank} of {self.size}")
        if network.owner is not None:
            missing = [pid for pid in network.populations if pid not in network.owner]
            if missing:
                raise UnsupportedFeature(f"the network was read in slices (its HDF5 connections) but population "
                                         f"'{missing[0]}' is defined elsewhere: run it in one process")
            for p in couplings(network):
                a = network.owner[p.pre][np.asarray(p.pre_idx, dtype=np.int64)]
                b = network.owner[p.post][np.asarray(p.post_idx, dtype=np.int64)]
                if np.any(a != b):
                    raise UnsupportedFeature(f"'{p.id}' couples cells the sliced read put on two ranks: run it "
                                             "in one process")
        owner = network.owner if network.owner is not None else assign(network, self.size,
                                                                            split_coupled=split_coupled)
        self.owner = owner
        self.share = share(network, owner, self.rank)
        self.notes = []
        worst = imbalance(network, owner, self.size)
        if worst > 1.5 and (network.electrical or network.continuous):
            self.notes.append(f"the ranks are unbalanced (the busiest holds {worst:.1f}x the mean of the cells): cells "
                              "joined by gap junctions or graded synapses are kept on one rank")

    # -------------------------------------------------------------- agreeing
    def seed(self, seed: Optional[int]) -> int:
        """The run's seed on every rank (rank 0 draws one when none is given)."""
        if seed is None and self.rank == 0:
            seed = int(np.random.SeedSequence().entropy % (1 << 31))
        return self.comm.bcast(seed, root=0)

    def any(self, flag: bool) -> bool:
        return self.comm.allreduce(int(bool(flag))) > 0

    def exchange(self, built):
        """The spike exchange of this rank's simulator."""
        from .compile.build import _out_port
        from .engine.exchange import SpikeExchange
        from .graph.partition import exchange_id, presynaptic_populations
        senders = []
        for pid in presynaptic_populations(self.whole):
            ports = {p.source_port for p in self.whole.projections if p.pre == pid}
            local = None
            g = built.pop_groups.get(pid)
            if g is not None:
                if len(ports) > 1:
                    raise UnsupportedFeature(f"projections from '{pid}' use several of its event ports; "
                                             "not distributed across MPI ranks yet (run it in one process)")
                port = next(iter(ports)) or _out_port(g)
                stride, soma = built.soma_stride(pid)
                pop = self.share.populations[pid]
                local = (g, port, built.pop_offset[pid], pop.size - pop.halo, stride, soma, pop.full_index)
            senders.append((pid, built.sources[exchange_id(pid)], local))
        return SpikeExchange(self.comm, senders, self._halos(built))

    def _halos(self, built) -> list:
        """What :meth:`SpikeExchange.couple` moves: per population with halo cells anywhere, the
        instances of this rank's cells others copy, every rank's list of them, this rank's halo
        cells and their instances."""
        from .graph.partition import halo_cells
        every = [halo_cells(self.whole, self.owner, r) for r in range(self.size)]
        out = []
        for pid in self.whole.populations:
            if not any(pid in h for h in every):
                continue
            by_rank = []
            for q in range(self.size):  # the cells rank q sends: its own that other ranks copy
                need = [h[pid] for r, h in enumerate(every) if r != q and pid in h]
                need = np.unique(np.concatenate(need)) if need else np.zeros(0, dtype=np.int64)
                by_rank.append(need[self.owner[pid][need] == q])
            pop = self.share.populations.get(pid)
            if pop is None:  # (none of this population here, nor copies: only the collective)
                out.append((None, np.zeros(0, dtype=np.int64), by_rank, np.zeros(0, dtype=np.int64),
                            np.zeros(0, dtype=np.int64)))
                continue
            g, off = built.pop_groups[pid], built.pop_offset[pid]
            real = pop.full_index[:pop.size - pop.halo]
            send = off + np.searchsorted(real, by_rank[self.rank])
            halo = pop.full_index[pop.size - pop.halo:]
            out.append((g, send, by_rank, halo, off + pop.size - pop.halo + np.arange(pop.halo)))
        return out

    # -------------------------------------------------------------- outputs
    def traces(self, data: np.ndarray, positions, ncols: int, complete: bool):
        """Rank 0: the whole table (time, then ``ncols`` columns) from every rank's columns at
        ``positions``; the others: None."""
        parts = self.comm.gather((list(positions), data[:, 1:], bool(complete)), root=0)
        if self.rank != 0:
            return None, complete
        rows = min(p[1].shape[0] for p in parts)
        out = np.full((rows, ncols + 1), np.nan)
        out[:, 0] = data[:rows, 0]
        filled = np.zeros(ncols, dtype=bool)
        for pos, cols, _ in parts:
            for j, p in enumerate(pos):
                if not filled[p]:  # (a column every rank has, a network variable: rank 0's)
                    out[:, p + 1] = cols[:rows, j]
                    filled[p] = True
        return out, all(c for _, _, c in parts)

    def events(self, events, order: Dict[str, int], complete: bool):
        """Rank 0: every rank's (selection id, time) events, by time, then as the file lists
        its selections."""
        parts = self.comm.gather((events, bool(complete)), root=0)
        if self.rank != 0:
            return None, complete
        merged = [e for evs, _ in parts for e in evs]
        merged.sort(key=lambda e: (e[1], order.get(e[0], 0)))
        return merged, all(c for _, c in parts)

    def spikes(self, spikes: dict, complete: bool):
        """Rank 0: every population's (cell of the whole population, time), by time then cell."""
        mine = {}
        for pid, (idx, t) in spikes.items():
            full = self.share.populations[pid].full_index if pid in self.share.populations else None
            mine[pid] = (np.asarray(idx) if full is None else full[np.asarray(idx, dtype=np.int64)], np.asarray(t))
        parts = self.comm.gather((mine, bool(complete)), root=0)
        if self.rank != 0:
            return None, complete
        out = {}
        for pid in self.whole.populations:
            got = [p[pid] for p, _ in parts if pid in p]
            if not got:
                continue
            idx = np.concatenate([g[0] for g in got]).astype(np.int64)
            t = np.concatenate([g[1] for g in got]).astype(float)
            order = np.lexsort((idx, t))
            out[pid] = (idx[order], t[order])
        return out, all(c for _, c in parts)

    def columns(self, cols):
        """Rank 0: per column, the first rank's that knows its unit."""
        parts = self.comm.gather(cols, root=0)
        if self.rank != 0:
            return cols
        return [next((p[j] for p in parts if p[j].dimension), parts[0][j]) for j in range(len(cols))]
