"""A network cut into shares, one per MPI rank: each rank builds only its own cells.

:func:`assign` gives every cell a rank: each population is cut into contiguous runs of
about equal cost (compartments, incoming connections, inputs), so that every rank holds a
part of every large population (its groups, vectorised over fewer cells, cost alike on every
rank). Cells joined by gap junctions or continuous (graded) connections form units — those
couplings read the other cell's state every step — each placed where its first cell falls; a
unit bigger than a rank's share is cut where the couplings read only the peer's v
(``split_coupled``, exp_euler's explicit step), the other side's cells then copied on the
rank as *halo* cells (:func:`halo_cells`, ``Population.halo``) whose v the engine sets every
step.

:func:`share` is the network one rank builds: its cells (``Population.full_index`` says which
of the whole population each is), the connections onto them (their presynaptic side
unchanged), the inputs on them, and every coupling with an end among them. Spikes cross ranks
through stand-ins: a projection whose presynaptic cells are a population of the network
reads, on every rank, a spike-source population of the whole population's size
(:func:`exchange_id`), which the engine fills with the spikes of every rank
(:mod:`nmlsim.engine.exchange`); spike-source populations (SONATA virtual nodes) replay
their own times on every rank.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelError, UnsupportedFeature
from .network import Network, SpikeSourcePopulation

#: the name of the stand-in of population ``p``'s spikes on every rank: f"{p}{EXCHANGE}"
EXCHANGE = "@ranks"


def exchange_id(pid: str) -> str:
    return pid + EXCHANGE


class NotHere(ModelError):
    """A cell (or something on it) another rank holds."""


def _compartments(net: Network, pid: str) -> int:
    from .multicompartment import is_multicompartment, lower_cell
    comp = net.populations[pid].component
    if not is_multicompartment(net.model, comp):
        return 1
    return lower_cell(net.model, comp).ncomp


def _offsets(sizes: Dict[str, int]) -> Dict[str, int]:
    """First global cell number of every population (populations in order)."""
    out, n = {}, 0
    for pid, size in sizes.items():
        out[pid] = n
        n += int(size)
    return out


def assign(net: Network, nranks: int, indegree: Optional[Dict[str, np.ndarray]] = None,
           split_coupled: bool = False) -> Dict[str, np.ndarray]:
    """The rank of every cell: ``{population: int array of its size}``. ``indegree``: the
    connections onto each cell when the network's projections are not read yet (a reader
    keeping one rank's edges decides the ranks first; its inputs then count for nothing)."""
    sizes = {pid: p.size for pid, p in net.populations.items()}
    first = _offsets(sizes)
    total = sum(sizes.values())
    cost = np.zeros(total)
    for pid, pop in net.populations.items():
        cost[first[pid]:first[pid] + pop.size] = _compartments(net, pid)
    # a connection costs a synapse update and its deliveries; an input, its own update
    if indegree is not None:
        for pid, d in indegree.items():
            cost[first[pid]:first[pid] + len(d)] += 0.1 * np.asarray(d, dtype=float)
    else:
        for proj in net.projections:
            if proj.post in first:
                np.add.at(cost, first[proj.post] + np.asarray(proj.post_idx, dtype=np.int64), 0.1)
        for inp in net.inputs:
            np.add.at(cost, first[inp.population] + np.asarray(inp.target_idx, dtype=np.int64), 0.1)
    pairs = [(first[p.pre] + np.asarray(p.pre_idx, dtype=np.int64), first[p.post] + np.asarray(p.post_idx, dtype=np.int64))
             for p in couplings(net)]
    # couplings that read only the peer's v (gap junctions, NeuroML's graded synapses) between
    # single-compartment cells may cross ranks (halo cells: share) when their unit is too big to
    # keep whole; others (user types reading other peer values) and dendritic ones never do
    splittable = [split_coupled and _reads_peer_v_only(net, p)
                  and _compartments(net, p.pre) == 1 and _compartments(net, p.post) == 1
                  for p in couplings(net)]
    return assign_costs(sizes, cost, pairs, nranks, splittable)


def _units(total: int, pairs) -> np.ndarray:
    """Union-find over the coupled pairs: each cell's unit, named by the unit's first cell."""
    if not pairs:
        return np.arange(total)
    parent = np.arange(total)

    def find(a):
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root
    for pa, pb in pairs:
        for a, b in zip(pa, pb):
            ra, rb = find(int(a)), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(total)], dtype=np.int64)


def assign_costs(sizes: Dict[str, int], cost: np.ndarray, pairs, nranks: int, splittable=None) -> Dict[str, np.ndarray]:
    """:func:`assign` on plain data: population sizes (in order), the cost of every cell (the
    populations' cells one after another) and the coupled cell pairs (global numbers), per
    pair set whether a unit bigger than a rank's fair share may be cut along it."""
    nranks = int(nranks)
    if nranks < 1:
        raise ModelError("the number of ranks must be at least 1")
    first = _offsets(sizes)
    total = sum(int(s) for s in sizes.values())
    # cells coupled every step (gap junctions, graded synapses) form units
    roots = _units(total, pairs)
    unit_cost = np.bincount(roots, weights=cost, minlength=total)
    if splittable is not None and any(splittable) and nranks > 1:
        big = unit_cost[roots] > cost.sum() / nranks
        if big.any():  # units bigger than a rank's share: cut along the splittable couplings
            kept = _units(total, [pq for pq, ok in zip(pairs, splittable) if not ok])
            roots = np.where(big, kept, roots)
            unit_cost = np.bincount(roots, weights=cost, minlength=total)
    rank = np.full(total, -1, dtype=np.int64)
    for k, (pid, size) in enumerate(sizes.items()):
        lo, hi = first[pid], first[pid] + int(size)
        mine = np.arange(lo, hi)
        lead = mine[roots[mine] == mine]  # units whose first cell is here
        if not len(lead):
            continue
        c = unit_cost[lead]
        mid = np.cumsum(c) - c / 2
        # (each population's runs start one rank further on: populations of a few cells spread
        # over the ranks instead of all landing on the middle one)
        rank[lead] = (np.minimum((mid / c.sum() * nranks).astype(np.int64), nranks - 1) + k) % nranks
    rank = rank[roots]
    return {pid: rank[first[pid]:first[pid] + int(size)] for pid, size in sizes.items()}


#: the core coupling types whose only read of the other side is ``peer/v``
PEER_V_TYPES = ("gapJunction", "silentSynapse", "linearGradedSynapse", "gradedSynapse")


def _reads_peer_v_only(net: Network, p) -> bool:
    comps = [p.synapse] if hasattr(p, "synapse") else [p.pre_component, p.post_component]
    return all(any(net.model.is_a(net.model.type_of(c), t) for t in PEER_V_TYPES) for c in comps)


def couplings(net: Network) -> list:
    """Every coupling projection (gap junctions, then graded synapses)."""
    return list(net.electrical) + list(net.continuous)


def single_compartment(net: Network) -> bool:
    """True if no population of ``net`` has multi-compartment cells."""
    return all(_compartments(net, pid) == 1 for pid in net.populations)


def imbalance(net: Network, owner: Dict[str, np.ndarray], nranks: int) -> float:
    """The largest rank's share of the cells' compartments over the mean share (1: even)."""
    load = np.zeros(nranks)
    for pid, ranks in owner.items():
        if pid in net.populations:
            load += np.bincount(ranks, minlength=nranks) * _compartments(net, pid)
    return float(load.max() / load.mean()) if load.sum() else 1.0


def _within(x, keep) -> Optional[np.ndarray]:
    """The identities of kept items ``keep`` of ``x`` (positions, or those a reader gave them);
    ``keep`` a slice of all: ``x``'s own (None: the positions)."""
    if isinstance(keep, slice):
        return x.full_index
    return keep if x.full_index is None else np.asarray(x.full_index)[keep]


def _take(a, keep):
    return None if a is None else np.asarray(a)[keep]


def _per_item(a, n: int, keep):
    """A per-connection array, or a scalar/short array broadcast to ``n``, restricted to ``keep``."""
    a = np.asarray(a)
    return np.broadcast_to(a, (n,))[keep] if a.ndim == 0 or a.shape[0] != n else a[keep]


def presynaptic_populations(net: Network) -> List[str]:
    """The populations whose spikes some projection carries, in network order."""
    pres = {p.pre for p in net.projections}
    return [pid for pid in net.populations if pid in pres]


def share(net: Network, owner: Dict[str, np.ndarray], rank: int) -> Network:
    """The part of ``net`` rank ``rank`` builds (see the module docstring)."""
    where: Dict[str, np.ndarray] = {}  # whole-population index -> this share's (-1: elsewhere)
    coupled: Dict[str, np.ndarray] = {}  # the same with the halo cells (gap junctions reach them)
    halos = halo_cells(net, owner, rank)
    pops = {}
    for pid, pop in net.populations.items():
        sel = np.nonzero(owner[pid] == rank)[0]
        pos = np.full(pop.size, -1, dtype=np.int64)
        pos[sel] = np.arange(len(sel))
        where[pid] = pos
        h = halos.get(pid, np.zeros(0, dtype=np.int64))
        coupled[pid] = pos.copy()
        coupled[pid][h] = len(sel) + np.arange(len(h))
        if not len(sel) and not len(h):
            continue
        cells = np.concatenate([sel, h])
        origin = None if pop.origin is None else (pop.origin[0], np.asarray(pop.origin[1])[cells])
        pops[pid] = replace(pop, size=len(cells), positions=_take(pop.positions, cells),
                            instance_ids=_take(pop.instance_ids, cells), origin=origin, full_index=cells,
                            halo=len(h))
    out = replace(net, populations=pops, projections=[], electrical=[], continuous=[], inputs=[],
                  sources=dict(net.sources), whole=net)
    for pid in presynaptic_populations(net):
        out.sources[exchange_id(pid)] = SpikeSourcePopulation(exchange_id(pid), net.populations[pid].size)

    def here(pid, idx):
        return where[pid][np.asarray(idx, dtype=np.int64)]
    for proj in net.projections:
        if proj.post not in pops:
            continue
        n = len(proj.post_idx)
        keep = np.nonzero(here(proj.post, proj.post_idx) >= 0)[0]
        if not len(keep):
            continue
        if len(keep) == n:  # (all onto this rank, as a sliced read gives them: views, not copies)
            keep = slice(None)
        pre = proj.pre
        if pre in net.populations:
            if proj.pre_seg is not None and _compartments(net, pre) > 1:
                raise UnsupportedFeature(f"projection '{proj.id}': connections from a segment of a multi-compartment "
                                         "cell are not distributed across MPI ranks yet (run it in one process)")
            pre = exchange_id(pre)
        out.projections.append(replace(
            proj, pre=pre, source_port=None if pre != proj.pre else proj.source_port,
            pre_idx=np.asarray(proj.pre_idx)[keep], post_idx=here(proj.post, np.asarray(proj.post_idx)[keep]),
            weight=_per_item(proj.weight, n, keep) if proj.weight is not None else None,
            delay=_per_item(proj.delay, n, keep),
            pre_seg=None if pre != proj.pre else _take(proj.pre_seg, keep),
            pre_frac=None if pre != proj.pre else _take(proj.pre_frac, keep),
            post_seg=_take(proj.post_seg, keep), post_frac=_take(proj.post_frac, keep),
            full_index=_within(proj, keep)))
    for kind in ("electrical", "continuous"):
        for p in getattr(net, kind):
            mine_a, mine_b = here(p.pre, p.pre_idx) >= 0, here(p.post, p.post_idx) >= 0
            # a coupling with one end here: the other end is a halo cell
            keep = np.nonzero(mine_a | mine_b)[0]
            a = coupled[p.pre][np.asarray(p.pre_idx, dtype=np.int64)]
            b = coupled[p.post][np.asarray(p.post_idx, dtype=np.int64)]
            if not len(keep):
                continue
            n = len(p.pre_idx)
            getattr(out, kind).append(replace(
                p, pre_idx=a[keep], post_idx=b[keep],
                weight=_per_item(p.weight, n, keep) if p.weight is not None else None,
                pre_seg=_take(p.pre_seg, keep), pre_frac=_take(p.pre_frac, keep),
                post_seg=_take(p.post_seg, keep), post_frac=_take(p.post_frac, keep), full_index=_within(p, keep)))
    for inp in net.inputs:
        if inp.population not in pops:
            continue
        n = len(inp.target_idx)
        loc = here(inp.population, inp.target_idx)
        keep = np.nonzero(loc >= 0)[0]
        if not len(keep):
            continue
        out.inputs.append(replace(inp, target_idx=loc[keep],
                                  weight=_per_item(inp.weight, n, keep) if inp.weight is not None else None,
                                  seg=_take(inp.seg, keep), frac=_take(inp.frac, keep),
                                  full_index=_within(inp, keep)))
    return out


def halo_cells(net: Network, owner: Dict[str, np.ndarray], rank: int) -> Dict[str, np.ndarray]:
    """Per population, the cells of other ranks that a gap junction joins to one of ``rank``'s
    (sorted): the rank holds copies of them (``Population.halo``) whose v follows the owner's."""
    out: Dict[str, list] = {}
    for p in couplings(net):
        a = owner[p.pre][np.asarray(p.pre_idx, dtype=np.int64)] == rank
        b = owner[p.post][np.asarray(p.post_idx, dtype=np.int64)] == rank
        if np.any(a & ~b):
            out.setdefault(p.post, []).append(np.asarray(p.post_idx, dtype=np.int64)[a & ~b])
        if np.any(b & ~a):
            out.setdefault(p.pre, []).append(np.asarray(p.pre_idx, dtype=np.int64)[b & ~a])
    return {pid: np.unique(np.concatenate(v)) for pid, v in out.items()}


def cell_of(net: Network, pid: str, cell: int) -> Tuple[Optional[int], bool]:
    """(index in this share, True) of cell ``cell`` (array index in the whole population) of
    ``pid``, or (None, False) when another rank holds it."""
    pop = net.populations.get(pid)
    if pop is None or pop.full_index is None:
        return (cell if pop is not None else None), pop is not None
    real = pop.full_index[:pop.size - pop.halo]  # (a halo cell is another rank's)
    j = int(np.searchsorted(real, cell))
    if j < len(real) and real[j] == cell:
        return j, True
    return None, False
