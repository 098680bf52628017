"""Network graph -> flattened groups (one per population, projection side, input list)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..errors import ModelError
from ..graph.network import Network
from ..lems.flatten import Group, Link, linear_event_synapse
from ..graph.network import STRUCTURAL_TYPES
from ..graph.multicompartment import is_multicompartment, lower_cell
from ..graph.morphology import CableTree
from .streams import identities


class EventRoute:
    """Spikes of ``src`` group's ``port`` delivered to ``dst`` group instances ``dst_idx``."""

    def __init__(self, src: Group, port: str, dst: Group, dst_port: str, pre_idx, dst_idx, delay_s, weight=None):
        self.src, self.port, self.dst, self.dst_port = src, port, dst, dst_port
        self.weight = None if weight is None else np.asarray(weight, dtype=float)
        self.pre_idx = np.asarray(pre_idx, dtype=np.int64)
        self.dst_idx = np.asarray(dst_idx, dtype=np.int64)
        self.delay_s = np.asarray(delay_s, dtype=float)


@dataclass
class CableSpec:
    """The cells of one group, all of one morphology: compartment c of cell k is instance
    ``k * ncomp + c``; capacitance per compartment (F), or None to read the group's ``totCap``."""
    gid: int
    v_key: str
    tree: CableTree
    capacitance: Optional[np.ndarray]
    ncells: int


class SourceGroup:
    """A spike-source population: nothing to compile, the simulator replays its spike times.

    ``steps[i]`` is the step at whose end spike i is emitted: ``ceil(t / dt)``, the grid
    point at or after the spike (NEST's rule for spikes off the grid).
    """
    merged = False
    port = "spike"

    def __init__(self, gid: int, name: str, size: int, times, ids):
        self.gid, self.name, self.n = gid, name, int(size)
        self.times = np.asarray(times, dtype=float)
        self.ids = np.asarray(ids, dtype=np.int64)


class Built:
    def __init__(self, net: Network):
        self.net = net
        self.groups: List[Group] = []
        self.root: Optional[Group] = None
        self.pop_groups = {}  # population id -> group (several populations may share one)
        self.pop_offset = {}  # population id -> index of its first cell in that group
        self.routes: List[EventRoute] = []
        self.sources: dict = {}  # population id -> SourceGroup
        # (population id, component id) -> list of (group, host index array) for attachment lookup
        self.attachments = []
        #: multi-compartment populations: population id -> CellLayout (cell i, compartment c is
        #: instance pop_offset + i * ncomp + c of its group)
        self.layouts = {}
        self.cables = []  # CableSpec per group of multi-compartment cells

    def instances(self, pid: str, idx, seg=None, frac=None, *, where=None) -> np.ndarray:
        """Group instances of cells ``idx`` of population ``pid`` — for multi-compartment
        cells, of the compartment holding (segment ``seg``, ``frac``) (default: the soma)."""
        idx = np.asarray(idx, dtype=np.int64)
        lay = self.layouts.get(pid)
        if lay is None:
            return idx + self.pop_offset[pid]
        n = len(idx)
        segs = np.full(n, -1, dtype=np.int64) if seg is None else np.broadcast_to(np.asarray(seg, dtype=np.int64), (n,))
        fr = np.full(n, 0.5) if frac is None else np.broadcast_to(np.asarray(frac, dtype=float), (n,))
        # one lookup per distinct (segment, fraction): connections share a few locations
        locs, back = np.unique(np.stack([segs.astype(float), fr], axis=1), axis=0, return_inverse=True)
        comp = np.array([lay.soma if s < 0 else lay.compartment(int(s), f, where=where) for s, f in locs],
                        dtype=np.int64)
        return self.pop_offset[pid] + idx * lay.ncomp + comp[back.reshape(-1)]

    def soma_stride(self, pid: str):
        """(compartments per cell, soma compartment) of a population; (1, 0) for point cells."""
        lay = self.layouts.get(pid)
        return (1, 0) if lay is None else (lay.ncomp, lay.soma)


def _out_port(g) -> str:
    if isinstance(g, SourceGroup):
        return g.port
    for name, d in g.root.ct.event_ports.items():
        if d == "out":
            return name
    raise ModelError(f"population '{g.name}' of {g.root.tname} emits no events, so it cannot be presynaptic",
                     **g.root.where())


def spiking_groups(built: "Built"):
    """(population id, group, out port, offset, size, stride, soma) of every population whose
    cells emit events (cell i is instance offset + i * stride + soma of the group)."""
    out = []
    for pid, g in built.pop_groups.items():
        try:
            pop = built.net.populations[pid]
            out.append((pid, g, _out_port(g), built.pop_offset[pid], pop.size - pop.halo,  # (not halo copies)
                        *built.soma_stride(pid)))
        except ModelError:
            continue
    return out


def _in_port(g: Group) -> str:
    for name, d in g.root.ct.event_ports.items():
        if d == "in":
            return name
    raise ModelError(f"synapse {g.root.tname} has no input event port", **g.root.where())


def _fusion_key(model, comp):
    """Components of one type, without children, whose attributes differ in parameter
    values only, fuse; anything else keys on the component itself."""
    if comp.children:
        return ("component", id(comp))
    tname = model.type_of(comp)
    if not model.has_type(tname):
        return ("component", id(comp))
    ct = model.resolved(tname)
    fixed = tuple(sorted((k, v) for k, v in comp.attrs.items() if k not in ct.parameters))
    return ("type", tname, tuple(sorted(k for k in comp.attrs if k in ct.parameters)), fixed)


def _param_values(model, comp) -> dict:
    """Parameter values (SI) of a childless component, by group key."""
    probe = Group(-1, "probe", model, comp, 1)
    return {probe.root.key(p): v for p, v in probe.root.params.items() if v is not None}


#: input lists of fewer instances fuse with others of their type on the same cells
FUSE_INPUT_LISTS_BELOW = 64


def _full(x, n: int) -> np.ndarray:
    """Positions in the whole population/projection/list of a rank's share (all: 0..n-1)."""
    fi = getattr(x, "full_index", None)
    return np.arange(n, dtype=np.int64) if fi is None else np.asarray(fi, dtype=np.int64)


def _vary(g: Group, model, comps, sizes) -> None:
    """Members of a fused group (components of one type, ``sizes[k]`` instances of
    ``comps[k]``): the parameters whose values differ become per-instance arrays."""
    if all(c is comps[0] for c in comps):
        return
    values = [_param_values(model, c) for c in comps]
    for key in values[0]:
        col = [v[key] for v in values]
        if any(x != col[0] for x in col):
            g.per_instance[key] = np.repeat(np.asarray(col, dtype=float), sizes)


def build_groups(net: Network, merge_synapses: bool = True, fuse_populations: bool = True) -> Built:
    model = net.model
    b = Built(net)
    root = Group(0, "root", model, net.root, 1, skip_types=STRUCTURAL_TYPES)
    b.root = root
    root.stream_ids = identities("root", [0])
    b.groups.append(root)
    net_node = root.root
    for part in net.root_path:
        nxt = net_node.find(part)
        if nxt is None:
            raise ModelError(f"network '{part}' not found inside the simulation target")
        net_node = nxt

    def new_group(name, comp, n):
        g = Group(len(b.groups), name, model, comp, n)
        b.groups.append(g)
        return g

    def attach(g, host: Group, idx, slot="synapses"):
        g.parent = Link(host, host.root, np.asarray(idx, dtype=np.int64))
        if slot not in host.root.ct.attachments:
            raise ModelError(f"{host.root.tname} cells of population '{host.name}' take no attachments "
                             f"named '{slot}'", **host.root.where())
        host.attached.setdefault(("", slot), []).append(g)
        b.attachments.append(g)

    def weights(g, w):
        if "weight" in g.root.params and w is not None and len(w) and not np.all(w == 1.0):
            g.per_instance["weight"] = np.asarray(w, dtype=float)

    # Populations of the same cell component are one group (E and I of an E-I network):
    # half the generated statements, twice the work per statement.  pop_offset maps a
    # population's cell i to index i + offset of its group.
    # Cells whose components differ only in parameter values (the node types of a SONATA
    # population, NEST models with per-type parameters) share a group too, the differing
    # parameters becoming per-cell arrays.
    buckets = {}
    for pid, pop in net.populations.items():
        key = _fusion_key(model, pop.component) if fuse_populations else pid
        buckets.setdefault(key, []).append(pid)
    lowered = {}
    for pids in buckets.values():
        comp = net.populations[pids[0]].component
        sizes = [net.populations[p].size for p in pids]
        if is_multicompartment(model, comp):
            lay = lowered.get(id(comp))
            if lay is None:
                lay = lowered[id(comp)] = lower_cell(model, comp)
            ncells = sum(sizes)
            g = new_group("+".join(pids), lay.component, ncells * lay.ncomp)
            g.parent = Link(root, net_node, None)
            for node in g.nodes:
                for pname, arr in lay.values.get(id(node.comp), {}).items():
                    g.per_instance[node.key(pname)] = np.tile(arr, ncells)
            b.cables.append(CableSpec(g.gid, "v", lay.tree, lay.capacitance, ncells))
            g.stream_ids = np.concatenate([identities(p, (_full(net.populations[p], net.populations[p].size)[:, None]
                                                          * lay.ncomp + np.arange(lay.ncomp)).reshape(-1))
                                           for p in pids])
            offset = 0
            for pid in pids:
                b.pop_groups[pid] = g
                b.pop_offset[pid] = offset * lay.ncomp
                b.layouts[pid] = lay
                offset += net.populations[pid].size
            continue
        g = new_group("+".join(pids), comp, sum(sizes))
        g.parent = Link(root, net_node, None)
        _vary(g, model, [net.populations[p].component for p in pids], sizes)
        g.stream_ids = np.concatenate([identities(p, _full(net.populations[p], net.populations[p].size))
                                       for p in pids])
        offset = 0
        for pid in pids:
            b.pop_groups[pid] = g
            b.pop_offset[pid] = offset
            offset += net.populations[pid].size

    for k, (sid, src) in enumerate(net.sources.items()):
        b.sources[sid] = SourceGroup(-(k + 1), sid, src.size, src.times, src.ids)
        b.pop_offset[sid] = 0

    def off(pid, idx, seg=None, frac=None, where=None):
        if pid in b.sources:
            return np.asarray(idx, dtype=np.int64)
        return b.instances(pid, idx, seg, frac, where=where)
    mergeable = {}
    merged = {}

    def can_merge(comp, host):
        key = (id(comp), host.gid)
        if key not in mergeable:
            probe = Group(-1, "probe", model, comp, 1)
            probe.parent = Link(host, host.root, np.zeros(1, dtype=np.int64))
            try:
                probe.compile_equations()
                mergeable[key] = linear_event_synapse(probe)
            except ModelError:
                mergeable[key] = False
        return mergeable[key]

    for proj in net.projections:
        post = b.pop_groups[proj.post]
        pre = b.pop_groups[proj.pre] if proj.pre in b.pop_groups else b.sources[proj.pre]
        post_idx = off(proj.post, proj.post_idx, proj.post_seg, proj.post_frac)
        pre_idx = off(proj.pre, proj.pre_idx, proj.pre_seg, proj.pre_frac)
        if merge_synapses and len(proj.post_idx) and can_merge(proj.synapse, post):
            # one instance per host cell carries the sum over every connection of every
            # projection that uses this synapse on this cell group
            key = (id(proj.synapse), post.gid)
            g = merged.get(key)
            if g is None:
                g = new_group(f"{proj.synapse.id}@{post.name}", proj.synapse, post.n)
                g.host_pop = proj.post
                g.merged = True
                g.stream_ids = post.stream_ids ^ identities("@" + proj.synapse.id, [0])[0]
                attach(g, post, np.arange(post.n))
                merged[key] = g
            b.routes.append(EventRoute(pre, proj.source_port or _out_port(pre), g, _in_port(g), pre_idx,
                                       post_idx, proj.delay, weight=proj.weight))
            continue
        g = new_group(f"{proj.id}:{proj.synapse.id}", proj.synapse, len(proj.post_idx))
        g.host_pop = proj.post
        g.stream_ids = identities(proj.stream_name or proj.id, _full(proj, len(proj.post_idx)))
        attach(g, post, post_idx)
        weights(g, proj.weight)
        b.routes.append(EventRoute(pre, proj.source_port or _out_port(pre), g, _in_port(g), pre_idx,
                                   np.arange(len(proj.post_idx)), proj.delay))
    # Small input lists whose components fuse (one type, parameter values apart) on one host
    # group are one group: a SONATA config with one current clamp per cell, or a NeuroML
    # network with a pulse generator per cell, is one group of n instances, not n groups.
    # A large list keeps its own group, where its parameters stay literals (a pulse's timing
    # tested once per step for all its instances, not per instance).
    in_buckets = {}
    for inp in net.inputs:
        host = b.pop_groups[inp.population]
        fuse = fuse_populations and len(inp.target_idx) < FUSE_INPUT_LISTS_BELOW
        key = (host.gid, _fusion_key(model, inp.component) if fuse else id(inp))
        in_buckets.setdefault(key, []).append(inp)
    for inps in in_buckets.values():
        inp = inps[0]
        host = b.pop_groups[inp.population]
        sizes = [len(i.target_idx) for i in inps]
        name = f"{inp.id}:{inp.component.id}" + (f"(+{len(inps) - 1})" if len(inps) > 1 else "")
        g = new_group(name, inp.component, sum(sizes))
        g.host_pop = inp.population
        g.stream_ids = np.concatenate([identities(i.id, _full(i, len(i.target_idx))) for i in inps])
        g.member_ids = None if len(inps) == 1 else np.repeat(
            np.array([i.component.id for i in inps], dtype=object), sizes)
        attach(g, host, np.concatenate([off(i.population, i.target_idx, i.seg, i.frac) for i in inps]))
        weights(g, np.concatenate([np.ones(len(i.target_idx)) if i.weight is None else np.asarray(i.weight, float)
                                   for i in inps]))
        _vary(g, model, [i.component for i in inps], sizes)
    def tunnel(pid, pre_comp, post_comp, pre, post, pre_idx, post_idx, w, loc):
        """Both ends of gap junctions / graded connections, each the other's ``peer``."""
        m = len(pre_idx)
        a = new_group(f"{pid}:pre", pre_comp, m)
        c = new_group(f"{pid}:post", post_comp, m)
        a.host_pop, c.host_pop = pre, post
        a.stream_ids = identities(f"{pid}:pre", _full(loc, m))
        c.stream_ids = identities(f"{pid}:post", _full(loc, m))
        attach(a, b.pop_groups[pre], off(pre, pre_idx, loc.pre_seg, loc.pre_frac))
        attach(c, b.pop_groups[post], off(post, post_idx, loc.post_seg, loc.post_frac))
        a.links["peer"] = Link(c, c.root, np.arange(m))
        c.links["peer"] = Link(a, a.root, np.arange(m))
        weights(a, w)
        weights(c, w)

    for ep in net.electrical:
        tunnel(ep.id, ep.synapse, ep.synapse, ep.pre, ep.post, ep.pre_idx, ep.post_idx, ep.weight, ep)
    for cp in net.continuous:
        tunnel(cp.id, cp.pre_component, cp.post_component, cp.pre, cp.post, cp.pre_idx, cp.post_idx, cp.weight, cp)
    for g in b.groups:
        g.compile_equations()
    return b
