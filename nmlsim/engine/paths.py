"""Recording paths (LEMS ``quantity`` / ``select`` strings) -> (group, variable key, instance).

Forms understood, as jLEMS writes them::

    pop[3]/v                      pop/3/cellType/v             net1/pop[0]/v
    pop[0]/bioPhys1/membraneProperties/naChans/naChan/m/q
    pop[0]/synapses:syn1:0/g      pop[0]/i0/I   (an attached input by component id)
    pop/0/cellType/5/v            (segment 5 of a multi-compartment cell; without it: the soma)
    temperature                   (a variable of the simulation target itself)
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

import numpy as np

from ..compile.build import Built
from ..errors import ModelError
from ..graph.partition import NotHere, cell_of
from ..lems.flatten import Group

_BRACKET = re.compile(r"^([^\[\]/]+)\[(\d+)\]$")


def _split(q: str) -> List[str]:
    return [p for p in q.strip().split("/") if p not in ("", ".")]


def resolve_cell(built: Built, parts: List[str], q: str) -> Tuple[Group, int, List[str]]:
    net = built.net
    if parts and parts[0] == net.id and parts[0] not in net.populations and len(parts) > 1:
        parts = parts[1:]
    if net.bare is not None and not (parts and (_BRACKET.match(parts[0]) or parts[0] in net.populations
                                                 and len(parts) > 1 and parts[1].isdigit())):
        # a bare target's paths are its own ("v", "gate/q"); the target itself: "" or its id
        parts = [f"{net.bare}[0]"] + (parts[1:] if parts[:1] == [net.bare] else parts)
    if not parts:
        raise ModelError(f"empty quantity path '{q}'")
    # an MPI rank's share (graph/partition.py) resolves paths against the whole network and
    # says which cells another rank holds
    known = net.whole.populations if net.whole is not None else built.pop_groups
    m = _BRACKET.match(parts[0])
    if m and m.group(1) in known:
        pid, i = m.group(1), int(m.group(2))
        rest = parts[1:]
    elif parts[0] in known and len(parts) >= 2 and parts[1].isdigit():
        pid, i = parts[0], int(parts[1])
        rest = parts[2:]
        pop = (net.whole or net).populations[pid]
        if rest and rest[0] == pop.component.id:
            rest = rest[1:]
    else:
        return built.root, 0, parts
    if net.whole is not None:
        cell, mine = cell_of(net, pid, net.whole.populations[pid].index_of(i))
        if not mine:
            raise NotHere(f"cell {i} of '{pid}' is on another rank")
    else:
        cell = net.populations[pid].index_of(i)
    seg = None
    if pid in built.layouts and len(rest) >= 2 and rest[0].isdigit():
        seg = int(rest[0])  # pop/0/cell/5/v: segment 5 of a multi-compartment cell
        rest = rest[1:]
    return built.pop_groups[pid], int(built.instances(pid, [cell], seg)[0]), rest


def resolve_quantity(built: Built, q: str) -> Tuple[Group, str, int]:
    """Return (group, variable key, instance index) of a recorded quantity."""
    g, node, var, idx = _locate(built, q)
    return g, node.key(var), idx


def quantity_dimension(built: Built, q: str) -> Optional[str]:
    """The LEMS dimension of a recorded quantity (``voltage``, ``current``...); None if its
    type does not declare it."""
    _, node, var, _ = _locate(built, q)
    ct = node.ct
    if var in ct.exposures:
        return ct.exposures[var]
    dyn = ct.dynamics
    if dyn is None:
        return None
    if var in dyn.state:
        return dyn.state[var]
    return next((d.dimension for d in dyn.derived if d.name == var), None)


def _locate(built: Built, q: str):
    parts = _split(q)
    g, idx, rest = resolve_cell(built, parts, q)
    if not rest:
        raise ModelError(f"quantity '{q}' names a cell, not a variable")
    if g is not built.root and len(rest) >= 2:
        att = _attachment(built, g, idx, rest[0])
        if att is not None:
            g, idx = att
            rest = rest[1:]
    try:
        node, var = g.node_at(rest)
    except ModelError as e:
        raise ModelError(f"cannot record '{q}': {e.message}") from None
    if var not in g.local_names(node):
        found = g.ancestor_lookup(node, var) if node.ct.exposures.get(var) or node.ct.requirements.get(var) else None
        if found is None:
            raise ModelError(f"cannot record '{q}': {node.tname} has no variable '{var}'")
        g2, anc, chain = found
        if g2 is not g:
            raise ModelError(f"cannot record '{q}': '{var}' belongs to another element")
        node = anc
    return g, node, var, idx


def _attachment(built: Built, host: Group, idx: int, seg: str):
    """``synapses:syn1:0`` or an input component id -> (attachment group, instance)."""
    if ":" in seg:
        bits = seg.split(":")
        if len(bits) != 3 or not bits[2].isdigit():
            return None
        slot, cid, k = bits[0], bits[1], int(bits[2])
    else:
        slot, cid, k = "synapses", seg, 0
    hits = []
    for g in host.attached.get(("", slot), []):
        if g.member_ids is None:
            if g.root.comp.id != cid:
                continue
            inst = np.nonzero(g.parent.idx == idx)[0]
        else:  # input lists fused into one group
            inst = np.nonzero((g.parent.idx == idx) & (g.member_ids == cid))[0]
        hits.extend((g, int(i)) for i in inst)
    if len(hits) > k:
        return hits[k]
    return None


def resolve_outputs(built: Built, spec, path, elsewhere: bool = False):
    """The recorded columns of a Simulation's OutputFiles and the cells of its EventOutputFiles:
    ([(OutputFile, [(group, key, instance)...])...], [(EventOutputFile, [(id, group, port,
    instance)...])...]); errors name ``path`` and the element. ``elsewhere``: an MPI rank's
    share, where a column or selection of a cell another rank holds is None."""
    traces, events = [], []
    for of in spec.outputs:
        cols = []
        for c in of.columns:
            try:
                cols.append(resolve_quantity(built, c.quantity))
            except NotHere:
                if not elsewhere:
                    raise
                cols.append(None)
            except ModelError as e:
                raise e.located(file=path, element=f"OutputColumn id='{c.id}'") from None
        traces.append((of, cols))
    for ef in spec.event_outputs:
        sels = []
        for s in ef.selections:
            try:
                g, idx, rest = resolve_cell(built, _split(s.select or ""), s.select)
            except NotHere:
                if not elsewhere:
                    raise
                sels.append(None)
                continue
            except ModelError as e:
                raise e.located(file=path, element=f"EventSelection id='{s.id}'") from None
            if rest and g is not built.root and len(rest) == 1:
                # an input or synapse on the cell: izhPop/4/RS/poissonFiringSyn (its own events)
                att = _attachment(built, g, idx, rest[0])
                if att is not None:
                    (g, idx), rest = att, []
            if rest:
                raise ModelError(f"EventSelection '{s.select}' must name a cell, or an input or synapse "
                                 "on one", file=path, element=f"EventSelection id='{s.id}'")
            sels.append((s.id, g, s.port, idx))
        events.append((ef, sels))
    return traces, events
