"""NeuroML2 networks (populations, projections, inputs) -> :class:`nmlsim.graph.Network`.

The cells, synapses and inputs stay LEMS components; what this module adds is the
meaning of NeuroML's structural elements, which jLEMS expresses with ``Structure``
(MultiInstantiate, EventConnection, Tunnel) and nmlsim expresses as index arrays.
"""
from __future__ import annotations

import math
import re
from typing import List, Tuple

import numpy as np

from ..errors import ModelError
from ..graph.network import (MAX_CELLS, ContinuousProjection, ElectricalProjection, InputList, Network,
                             Population, Projection)
from ..graph.multicompartment import morphology_of
from ..lems.model import Component, LemsModel
from ..units import finite_number

_BRACKET = re.compile(r"^(?:\.\./)?([^/\[\]]+)\[(\d+)\]$")
_SLASH = re.compile(r"^(?:\.\./)?([^/\[\]]+)/(\d+)(?:/[^/]+)?$")




def parse_cell_ref(text: str, *, where=None) -> Tuple[str, int]:
    """``pop[3]``, ``../pop[3]``, ``pop/3/cellType`` or ``../pop/3/cellType`` -> ('pop', 3).
    ``where``: the error's location, or a function giving it (looked up only on an error)."""
    s = (text or "").strip()
    m = _BRACKET.match(s) or _SLASH.match(s)
    if not m:
        raise ModelError(f"cannot understand cell reference '{text}' (expected pop[i] or pop/i/cell)",
                         **((where() if callable(where) else where) or {}))
    return m.group(1), int(m.group(2))


def find_network(model: LemsModel, root: Component) -> Tuple[Component, List[str]]:
    """The <network> inside the simulation target (the target itself, or a child of a tissue)."""
    def is_net(c):
        try:
            return model.is_a(model.type_of(c), "network")
        except ModelError:
            return False
    if is_net(root):
        return root, []
    stack = [(c, [c.id or c.tag]) for c in root.children]
    for attr in root.attrs.values():
        if attr in model.components and is_net(model.components[attr]):
            return model.components[attr], [attr]
    while stack:
        c, path = stack.pop(0)
        if is_net(c):
            return c, path
        stack.extend((cc, path + [cc.id or cc.tag]) for cc in c.children)
    raise ModelError(f"simulation target '{root.id}' contains no <network>", **root.where())


def _f(model: LemsModel, comp: Component, name: str, default=None, dim=None):
    raw = comp.attrs.get(name)
    if raw is None:
        if default is None:
            raise ModelError(f"missing attribute '{name}'", **comp.where())
        return default
    return model.units.parse(raw, dim)


def build_network(model: LemsModel, target: Component) -> Network:
    """Build the graph of the network found in the simulation ``target``; a target that is one
    component with dynamics (a cell, as jLEMS runs it) is a network of one population of one."""
    try:
        netc, path = find_network(model, target)
    except ModelError:
        if not _has_dynamics(model, target):
            raise
        netc = Component(tag="network", id=f"{target.id}__network", file=target.file, line=target.line,
                         children=[Component(tag="population", id=target.id, file=target.file, line=target.line,
                                             attrs={"component": target.id, "size": "1"})])
        net = Network(id=netc.id, component=netc, model=model, root=netc, bare=target.id)
        _population(model, net, netc.children[0], "population")
        return net
    net = Network(id=netc.id or "network", component=netc, model=model, root=target, root_path=path,
                  # (an MPI rank's read of an HDF5 network: the cells' ranks, io/neuroml_hdf5.py)
                  owner=getattr(netc, "owner", None), read_for=getattr(netc, "read_for", None))
    for c in netc.children:
        t = model.type_of(c)
        if model.is_a(t, "basePopulation"):
            _population(model, net, c, t)
    seen = {}
    for c in netc.children:
        t = model.type_of(c)
        w = c.where()
        if c.id and not model.is_a(t, "basePopulation"):
            if (c.tag, c.id) in seen:  # two projections or input lists of one id: which would a path mean?
                raise ModelError(f"network '{netc.id}' has two <{c.tag}> elements with the id '{c.id}'", **w)
            seen[(c.tag, c.id)] = True
        if model.is_a(t, "basePopulation"):
            continue
        if model.is_a(t, "projection") or t == "projection":
            _projection(model, net, c)
        elif model.is_a(t, "electricalProjection"):
            _electrical(model, net, c)
        elif model.is_a(t, "continuousProjection"):
            _continuous(model, net, c)
        elif model.is_a(t, "explicitInput"):
            pop, idx = parse_cell_ref(c.attrs.get("target"), where=w)
            p = net.population(pop, where=w)
            comp = model.component(c.attrs.get("input"), where=w)
            net.inputs.append(InputList(c.id or f"explicitInput{len(net.inputs)}", comp, pop,
                                        np.array([p.index_of(idx)]), np.ones(1)))
        elif model.is_a(t, "inputList"):
            _input_list(model, net, c)
        elif model.is_a(t, "explicitConnection"):
            _synaptic_connection(model, net, c, t)
    return net


def _has_dynamics(model: LemsModel, c: Component) -> bool:
    try:
        ct = model.resolved(model.type_of(c))
    except ModelError:
        return False
    return ct.dynamics is not None


def _population(model: LemsModel, net: Network, c: Component, t: str) -> None:
    w = c.where()
    comp = model.component(c.attrs.get("component"), where=w)
    instances = [ch for ch in c.children if ch.tag == "instance"]
    if c.data is not None and "positions" in c.data:  # HDF5 populationList
        pos, ids = c.data["positions"], c.data.get("ids")
        if ids is not None and np.array_equal(ids, np.arange(len(ids))):
            ids = None
        net.populations[c.id] = Population(c.id, comp, len(pos), pos, ids)
        return
    if instances:
        ids = np.array([int(i.id) for i in instances], dtype=np.int64)
        pos = np.zeros((len(instances), 3))
        for k, i in enumerate(instances):
            loc = i.find_child("location")
            if loc is not None:
                pos[k] = [float(loc.attrs.get(a, 0)) for a in ("x", "y", "z")]
        size = len(instances)
    else:
        raw = c.attrs.get("size")
        if raw is None:
            raise ModelError(f"population '{c.id}' has neither size nor instances", **w)
        try:
            v = float(raw)
        except ValueError:
            raise ModelError(f"population size '{raw}' is not a number", **w) from None
        if math.isfinite(v) and v != int(v):
            raise ModelError(f"population size '{raw}' is not a whole number", **w)
        size = int(v) if math.isfinite(v) else MAX_CELLS + 1
        ids, pos = None, None
    if size < 0 or size > MAX_CELLS:
        raise ModelError(f"population '{c.id}' size {size} is outside 0..{MAX_CELLS}", **w)
    net.populations[c.id] = Population(c.id, comp, size, pos, ids)


def _conn_lists(model, net, c, pre_pop, post_pop, pre_attr, post_attr, index_form):
    pre_idx, post_idx, weights, delays = [], [], [], []
    locs = ([], [], [], [])  # pre segment, pre fraction, post segment, post fraction
    seg_attrs = (("preSegment", "preFractionAlong", "postSegment", "postFractionAlong") if index_form else
                 ("preSegmentId", "preFractionAlong", "postSegmentId", "postFractionAlong"))
    pp, qp = net.population(pre_pop, where=c.where()), net.population(post_pop, where=c.where())
    pre_segs, post_segs = _segment_ids(model, pp), _segment_ids(model, qp)
    placed = set(seg_attrs)
    # (a network of 10^5-10^6 connections: the usual connection, with no location, weight or delay
    # written, takes a short path; an error's location is looked up when there is one)
    for ch in c.children:
        if ch.tag in ("notes", "annotation", "property"):
            continue
        at = ch.attrs
        if index_form and pre_attr in at and not any(x in at[pre_attr] for x in "[/"):
            try:
                pi, qi = int(at[pre_attr]), int(at[post_attr])
            except (ValueError, KeyError):
                raise ModelError(f"{pre_attr}='{at.get(pre_attr)}' / {post_attr}='{at.get(post_attr)}': "
                                 "expected cell indices", **ch.where()) from None
        else:
            if pre_attr not in at or post_attr not in at:
                raise ModelError(f"connection without {pre_attr}/{post_attr}", **ch.where())
            pi = parse_cell_ref(at[pre_attr], where=ch.where)[1]
            qi = parse_cell_ref(at[post_attr], where=ch.where)[1]
        try:  # (a cell out of range, a delay's unit: the connection named)
            pre_idx.append(pp.index_of(pi))
            post_idx.append(qp.index_of(qi))
            weights.append(_weight(ch) if "weight" in at else 1.0)
            delays.append(model.units.parse(at["delay"], "time") if "delay" in at else 0.0)
        except ModelError as e:
            raise e.located(**ch.where()) from None
        if placed.isdisjoint(at):
            for k, lst in enumerate(locs):
                lst.append(-1 if k % 2 == 0 else 0.5)
            continue
        for k, (a, lst) in enumerate(zip(seg_attrs, locs)):
            lst.append(_location_value(ch, a, -1 if k % 2 == 0 else 0.5, pre_segs if k < 2 else post_segs))
    return (np.array(pre_idx, dtype=np.int64), np.array(post_idx, dtype=np.int64), np.array(weights, dtype=float),
            np.array(delays, dtype=float), _locations(locs))


def _location_value(ch, attr, default, segments=None):
    """A segment id or fraction along on a connection or input; a segment id must be one of
    ``segments`` (the ids of the cell's morphology; None: a cell without one, ids ignored)."""
    raw = ch.attrs.get(attr)
    if raw is None:
        return default
    try:
        v = float(raw)
    except ValueError:
        raise ModelError(f"{attr}='{raw}' is not a number", **ch.where()) from None
    if attr.endswith("FractionAlong") or attr == "fractionAlong":
        if not 0.0 <= v <= 1.0:
            raise ModelError(f"{attr}={raw} is outside 0..1", **ch.where())
        return v
    if not math.isfinite(v) or v != int(v) or v < 0:
        raise ModelError(f"{attr}='{raw}' is not a segment id", **ch.where())
    sid = int(v)
    if segments is not None and sid not in segments[1]:
        raise ModelError(f"{attr}={sid}: the cells of population '{segments[0]}' have no segment {sid}",
                         **ch.where())
    return sid


def _weight(el) -> float:
    """A connection's or input's weight: a finite number (1 where absent)."""
    raw = el.attrs.get("weight", "1")
    return finite_number(raw, f"weight '{raw}'", el.where())


def _segment_ids(model, pop):
    """(population id, segment ids of its cell's morphology), or None for cells without one."""
    morph = morphology_of(model, pop.component)
    if morph is None:
        return None
    return pop.id, {int(c.id) for c in morph.children if c.tag == "segment" and str(c.id).isdigit()}


def _locations(locs):
    """Segment/fraction columns as arrays, or None where every connection is on the soma."""
    out = []
    for k, lst in enumerate(locs):
        arr = np.array(lst, dtype=np.int64 if k % 2 == 0 else float)
        if k % 2 == 0:
            out.append(None if not len(arr) or np.all(arr < 0) else arr)
        else:
            out.append(None if not len(arr) or np.all(arr == 0.5) else arr)
    return dict(zip(("pre_seg", "pre_frac", "post_seg", "post_frac"), out))


def _prepost(c):
    pre = c.attrs.get("presynapticPopulation")
    post = c.attrs.get("postsynapticPopulation")
    if pre is None or post is None:
        raise ModelError("projection needs presynapticPopulation and postsynapticPopulation", **c.where())
    return pre, post


def _ids(net, pop, raw, c, what) -> np.ndarray:
    """Cell ids from an HDF5 column -> array indices of ``pop``."""
    p = net.population(pop, where=c.where())
    ids = np.asarray(raw, dtype=float)
    if len(ids) and (not np.all(ids == np.round(ids))):
        raise ModelError(f"{what} ids of '{c.id}' are not integers", **c.where())
    ids = ids.astype(np.int64)
    if p.instance_ids is None:
        if len(ids) and (ids.min() < 0 or ids.max() >= p.size):
            raise ModelError(f"{what} cell {int(ids.max())} of '{c.id}' is out of range for population "
                             f"'{pop}' of size {p.size}", **c.where())
        return ids
    return np.array([p.index_of(int(i)) for i in ids], dtype=np.int64)


def _projection(model, net, c):
    pre, post = _prepost(c)
    syn = model.component(c.attrs.get("synapse"), where=c.where())
    if c.data is not None:  # HDF5 columns
        d = c.data
        pi, qi = _ids(net, pre, d["pre"], c, "presynaptic"), _ids(net, post, d["post"], c, "postsynaptic")
        if len(pi) != len(qi):
            raise ModelError(f"projection '{c.id}': pre and post columns differ in length", **c.where())
        wt = np.ones(len(pi)) if d.get("weight") is None else np.asarray(d["weight"], dtype=float)
        dl = np.zeros(len(pi)) if d.get("delay_ms") is None else np.asarray(d["delay_ms"], dtype=float) * 1e-3
        net.projections.append(Projection(c.id, pre, post, syn, pi, qi, wt, dl, full_index=d.get("rows")))
        return
    pi, qi, wt, dl, loc = _conn_lists(model, net, c, pre, post, "preCellId", "postCellId", False)
    net.projections.append(Projection(c.id, pre, post, syn, pi, qi, wt, dl, **loc))


def _electrical(model, net, c):
    pre, post = _prepost(c)
    syns = {ch.attrs.get("synapse") for ch in c.children if "synapse" in ch.attrs}
    for sid in sorted(syns):
        sub = Component(tag=c.tag, id=c.id, attrs=c.attrs, file=c.file, line=c.line,
                        children=[ch for ch in c.children if ch.attrs.get("synapse") == sid])
        pi, qi, wt, _, loc = _conn_lists(model, net, sub, pre, post, "preCell", "postCell", True)
        net.electrical.append(ElectricalProjection(c.id, pre, post, model.component(sid, where=c.where()),
                                                   pi, qi, wt, **loc))


def _continuous(model, net, c):
    pre, post = _prepost(c)
    keys = {(ch.attrs.get("preComponent"), ch.attrs.get("postComponent")) for ch in c.children
            if "preComponent" in ch.attrs}
    for pc, qc in sorted(keys):
        sub = Component(tag=c.tag, id=c.id, attrs=c.attrs, file=c.file, line=c.line,
                        children=[ch for ch in c.children if (ch.attrs.get("preComponent"),
                                                              ch.attrs.get("postComponent")) == (pc, qc)])
        pi, qi, wt, _, loc = _conn_lists(model, net, sub, pre, post, "preCell", "postCell", True)
        net.continuous.append(ContinuousProjection(c.id, pre, post, model.component(pc, where=c.where()),
                                                   model.component(qc, where=c.where()), pi, qi, wt, **loc))


def _input_list(model, net, c):
    """An inputList; jnml takes each input's population from its target path (the
    ``population`` attribute is often wrong in real files), so this does too."""
    w = c.where()
    comp = model.component(c.attrs.get("component"), where=w)
    if c.data is not None:  # HDF5 columns
        pop = c.attrs.get("population")
        idx = _ids(net, pop, c.data["target"], c, "target")
        wts = np.ones(len(idx)) if c.data.get("weight") is None else np.asarray(c.data["weight"], dtype=float)
        net.inputs.append(InputList(c.id, comp, pop, idx, wts))
        return
    per_pop, seg_ids = {}, {}
    for ch in c.children:
        if ch.tag not in ("input", "inputW"):
            continue
        pop, i = parse_cell_ref(ch.attrs.get("target"), where=ch.where())
        if pop not in net.populations:
            pop = c.attrs.get("population", pop)
        p = net.population(pop, where=ch.where())
        idx, wts, segs, fracs = per_pop.setdefault(pop, ([], [], [], []))
        idx.append(p.index_of(i))
        wts.append(_weight(ch))
        if pop not in seg_ids:
            seg_ids[pop] = _segment_ids(model, p)
        segs.append(_location_value(ch, "segmentId", -1, seg_ids[pop]))
        fracs.append(_location_value(ch, "fractionAlong", 0.5))
    for pop, (idx, wts, segs, fracs) in per_pop.items():
        loc = _locations([segs, fracs, [], []])
        net.inputs.append(InputList(c.id, comp, pop, np.array(idx, dtype=np.int64), np.array(wts),
                                    seg=loc["pre_seg"], frac=loc["pre_frac"]))


def _synaptic_connection(model, net, c, t):
    w = c.where()
    pre, pi = parse_cell_ref(c.attrs.get("from"), where=w)
    post, qi = parse_cell_ref(c.attrs.get("to"), where=w)
    syn = model.component(c.attrs.get("synapse"), where=w)
    wt = _weight(c)
    dl = model.units.parse(c.attrs["delay"], "time") if "delay" in c.attrs else 0.0
    pp, qp = net.population(pre, where=w), net.population(post, where=w)
    net.projections.append(Projection(c.id or f"synapticConnection{len(net.projections)}", pre, post, syn,
                                      np.array([pp.index_of(pi)]), np.array([qp.index_of(qi)]),
                                      np.array([wt]), np.array([dl])))
