"""NeuroML morphologies: segments, segment groups, and their discretisation into the
compartments (nodes) a cable solver steps.

The discretisation is NEURON's, as jNeuroML's NEURON export lays a cell out:

* a segment group marked as an unbranched cable (``neuroLexId="sao864921383"``) is one
  NEURON *section* holding its segments in order; every other segment is a section of its own;
  a section is cut into ``nseg`` equal lengths (the group's ``numberInternalDivisions``
  property, else 1), each with one node at its centre;
* a node's membrane area is the lateral area of the frusta between the section's 3-D points
  over its length; the axial resistance between two neighbouring nodes is the exact integral
  of 4 Ra / (π d²) over the half segments between them (``4 Ra h / (π d1 d2)`` per frustum);
* each section also has an end node (x = 1) of zero area, and the root section a start node
  (x = 0); a child section attached at its parent's x = 1 hangs on the end node, at x = 0
  on the start node, and elsewhere on the centre node of the parent segment holding x.
  Junction nodes with a single neighbour carry no current and are dropped.

Everything here is geometry in micrometres; :class:`CableTree` gives SI values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelError
from ..lems.model import Component
from ..units import finite_number

#: neuroLexId of a segment group that is one unbranched cable (a NEURON section)
CABLE_LEXID = "sao864921383"


@dataclass
class Segment:
    id: int
    name: str
    parent: Optional[int]
    fraction_along: float
    proximal: Optional[np.ndarray]  # x, y, z, diameter (µm); None: from the parent
    distal: np.ndarray
    comp: Component


@dataclass
class Section:
    name: str
    segments: List[int]
    nseg: int
    parent: Optional[int] = None  # index of the parent section
    parent_x: float = 1.0
    points: Optional[np.ndarray] = None  # (k, 4): x, y, z, d
    arc: Optional[np.ndarray] = None  # arc length at each point
    seg_bounds: Dict[int, Tuple[float, float]] = field(default_factory=dict)  # segment -> arc range


def _point(c: Component, what: str, seg: Component) -> np.ndarray:
    vals = []
    for a in ("x", "y", "z", "diameter"):
        raw = c.attrs.get(a)
        if raw is None:
            raise ModelError(f"segment {seg.id}: <{what}> has no {a}", **c.where())
        vals.append(finite_number(raw, f"segment {seg.id}: <{what}> {a}='{raw}'", c.where()))
    if vals[3] <= 0:
        raise ModelError(f"segment {seg.id}: <{what}> diameter {vals[3]} must be positive", **c.where())
    return np.array(vals)


class Morphology:
    """Segments and segment groups of one ``<morphology>``."""

    def __init__(self, comp: Component):
        self.comp = comp
        self.segments: Dict[int, Segment] = {}
        self.groups: Dict[str, Component] = {}
        for c in comp.children:
            if c.tag == "segment":
                self._add_segment(c)
            elif c.tag == "segmentGroup":
                if c.id in self.groups:
                    raise ModelError(f"segment group '{c.id}' is defined twice", **c.where())
                self.groups[c.id] = c
        if not self.segments:
            raise ModelError("morphology has no segments", **comp.where())
        self._check_tree()
        self._fill_proximal()
        self._members: Dict[str, List[int]] = {}

    def _add_segment(self, c: Component):
        try:
            sid = int(c.id)
        except (TypeError, ValueError):
            raise ModelError(f"segment id '{c.id}' is not a non-negative integer", **c.where()) from None
        if sid < 0:
            raise ModelError(f"segment id '{c.id}' is not a non-negative integer", **c.where())
        if sid in self.segments:
            raise ModelError(f"segment {sid} is defined twice", **c.where())
        parent, frac, prox, dist = None, 1.0, None, None
        for ch in c.children:
            if ch.tag == "parent":
                try:
                    parent = int(ch.attrs.get("segment"))
                    frac = float(ch.attrs.get("fractionAlong", 1.0))
                except (TypeError, ValueError):
                    raise ModelError(f"segment {sid}: bad <parent> segment/fractionAlong", **ch.where()) from None
                if not 0.0 <= frac <= 1.0:
                    raise ModelError(f"segment {sid}: fractionAlong {frac} is outside 0..1", **ch.where())
            elif ch.tag == "proximal":
                prox = _point(ch, "proximal", c)
            elif ch.tag == "distal":
                dist = _point(ch, "distal", c)
        if dist is None:
            raise ModelError(f"segment {sid} has no <distal> point", **c.where())
        self.segments[sid] = Segment(sid, c.attrs.get("name", f"seg{sid}"), parent, frac, prox, dist, c)

    def _check_tree(self):
        roots = [s for s in self.segments.values() if s.parent is None]
        if len(roots) != 1:
            what = "no root segment (every segment has a parent: a cycle)" if not roots else \
                f"{len(roots)} root segments ({', '.join(str(s.id) for s in roots[:5])}); a cell is one tree"
            raise ModelError(f"morphology has {what}", **self.comp.where())
        self.root = roots[0].id
        self.children: Dict[int, List[int]] = {i: [] for i in self.segments}
        for s in self.segments.values():
            if s.parent is not None:
                if s.parent not in self.segments:
                    raise ModelError(f"segment {s.id}: parent segment {s.parent} does not exist", **s.comp.where())
                self.children[s.parent].append(s.id)
        # every segment reachable from the root (else a cycle hangs apart)
        seen, stack = set(), [self.root]
        while stack:
            i = stack.pop()
            seen.add(i)
            stack.extend(self.children[i])
        if len(seen) != len(self.segments):
            bad = min(set(self.segments) - seen)
            raise ModelError(f"segment {bad} is not connected to the root segment (its parents form a cycle)",
                             **self.segments[bad].comp.where())
        self.order = self._preorder()

    def _preorder(self) -> List[int]:
        out, stack = [], [self.root]
        while stack:
            i = stack.pop()
            out.append(i)
            stack.extend(sorted(self.children[i], reverse=True))
        return out

    def _fill_proximal(self):
        for i in self.order:
            s = self.segments[i]
            if s.proximal is None:
                if s.parent is None:
                    raise ModelError(f"root segment {i} has no <proximal> point", **s.comp.where())
                p = self.segments[s.parent]
                s.proximal = (p.distal.copy() if s.fraction_along == 1.0 else
                              p.proximal + s.fraction_along * (p.distal - p.proximal))

    # ------------------------------------------------------------ groups
    def members(self, name: str, *, where=None) -> List[int]:
        """Segment ids of a group (members, includes, paths, subtrees), in tree order."""
        if name == "all" and name not in self.groups:
            return list(self.order)
        if name in self._members:
            return self._members[name]
        if name not in self.groups:
            raise ModelError(f"unknown segment group '{name}'", **(where or self.comp.where()))
        self._members[name] = []  # an include cycle resolves to what is found so far
        g = self.groups[name]
        got = set()
        for ch in g.children:
            if ch.tag == "member":
                got.add(self._seg_ref(ch.attrs.get("segment"), ch))
            elif ch.tag == "include":
                got.update(self.members(ch.attrs.get("segmentGroup"), where=ch.where()))
            elif ch.tag in ("path", "subTree"):
                frm = ch.find_child("from")
                to = ch.find_child("to")
                a = self._seg_ref(frm.attrs.get("segment"), frm) if frm is not None else self.root
                if ch.tag == "subTree" or to is None:
                    got.update(self._subtree(a))
                else:
                    b = self._seg_ref(to.attrs.get("segment"), to)
                    got.update(self._path(a, b, ch))
        order = {s: k for k, s in enumerate(self.order)}
        self._members[name] = sorted(got, key=order.get)
        return self._members[name]

    def _seg_ref(self, raw, c: Component) -> int:
        try:
            sid = int(raw)
        except (TypeError, ValueError):
            raise ModelError(f"segment reference '{raw}' is not an integer", **c.where()) from None
        if sid not in self.segments:
            raise ModelError(f"segment {sid} does not exist in the morphology", **c.where())
        return sid

    def _subtree(self, a: int) -> List[int]:
        out, stack = [], [a]
        while stack:
            i = stack.pop()
            out.append(i)
            stack.extend(self.children[i])
        return out

    def _path(self, a: int, b: int, c: Component) -> List[int]:
        out = [b]
        while out[-1] != a:
            p = self.segments[out[-1]].parent
            if p is None:
                raise ModelError(f"path: segment {a} is not an ancestor of segment {b}", **c.where())
            out.append(p)
        return out

    def group_property(self, name: str, tag: str) -> Optional[str]:
        g = self.groups.get(name)
        if g is None:
            return None
        for ch in g.children:
            if ch.tag == "property" and ch.attrs.get("tag") == tag:
                return ch.attrs.get("value")
        return None


# ------------------------------------------------------------------ sections
def sections_of(m: Morphology) -> List[Section]:
    """NEURON sections: unbranched cable groups, and one per remaining segment."""
    owner: Dict[int, int] = {}
    secs: List[Section] = []
    for name, g in m.groups.items():
        if g.attrs.get("neuroLexId") != CABLE_LEXID:
            continue
        segs = m.members(name)
        if not segs:
            continue
        # a cable is unbranched: each segment's parent is the previous one
        for a, b in zip(segs, segs[1:]):
            if m.segments[b].parent != a:
                segs = None
                break
        if segs is None or any(s in owner for s in segs):
            continue
        raw = m.group_property(name, "numberInternalDivisions")
        try:
            nseg = max(1, int(float(raw))) if raw is not None else 1
        except ValueError:
            raise ModelError(f"segment group '{name}': numberInternalDivisions '{raw}' is not a number",
                             **g.where()) from None
        for s in segs:
            owner[s] = len(secs)
        secs.append(Section(name, segs, nseg))
    for s in m.order:
        if s not in owner:
            owner[s] = len(secs)
            secs.append(Section(m.segments[s].name or f"seg{s}", [s], 1))
    # parents first (order of the first segment in the tree)
    pos = {s: k for k, s in enumerate(m.order)}
    perm = sorted(range(len(secs)), key=lambda k: pos[secs[k].segments[0]])
    remap = {old: new for new, old in enumerate(perm)}
    secs = [secs[k] for k in perm]
    owner = {s: remap[k] for s, k in owner.items()}
    for sec in secs:
        _geometry(m, sec)
    for k, sec in enumerate(secs):
        first = m.segments[sec.segments[0]]
        if first.parent is None:
            continue
        psec = secs[owner[first.parent]]
        sec.parent = owner[first.parent]
        a, b = psec.seg_bounds[first.parent]
        total = psec.arc[-1]
        sec.parent_x = 1.0 if total == 0 else (a + first.fraction_along * (b - a)) / total
    m.owner = owner
    return secs


def _geometry(m: Morphology, sec: Section):
    """The section's points as jNeuroML writes them — the first segment's proximal point,
    then every distal point (a later <proximal> is ignored) — and their arc lengths."""
    pts, arc, bounds = [], [0.0], {}
    for sid in sec.segments:
        s = m.segments[sid]
        prox, dist = s.proximal, s.distal
        if np.array_equal(prox[:3], dist[:3]):
            # a sphere (proximal = distal): a cylinder of length and diameter d has its area
            d = dist[3]
            if d != prox[3]:
                raise ModelError(f"segment {sid} has zero length (proximal = distal) and two diameters; "
                                 "only a sphere (equal diameters) may have proximal = distal",
                                 **s.comp.where())
            prox = prox.copy()
            dist = dist.copy()
            prox[1] -= d / 2.0
            dist[1] += d / 2.0
        if not pts:
            pts.append(prox)
        start = arc[-1]
        arc.append(start + float(np.linalg.norm(dist[:3] - pts[-1][:3])))
        pts.append(dist)
        if arc[-1] - start <= 0:
            raise ModelError(f"segment {sid} has zero length", **s.comp.where())
        bounds[sid] = (start, arc[-1])
    sec.points = np.array(pts)
    sec.arc = np.array(arc)
    sec.seg_bounds = bounds


def _integrate(sec: Section, a: float, b: float) -> Tuple[float, float]:
    """(lateral area µm², ∫ 4/(π d²) ds in 1/µm) of the section between arc a and b
    (diameters linear between points, whose arc lengths strictly increase)."""
    if b <= a:
        return 0.0, 0.0
    inner = sec.arc[np.searchsorted(sec.arc, a, side="right"):np.searchsorted(sec.arc, b, side="left")]
    cuts = np.concatenate([[a], inner, [b]])
    d = np.interp(cuts, sec.arc, sec.points[:, 3])
    h = np.diff(cuts)
    r0, r1 = d[:-1] / 2.0, d[1:] / 2.0
    area = float(np.sum(math.pi * (r0 + r1) * np.sqrt((r1 - r0) ** 2 + h * h)))
    res = float(np.sum(4.0 * h / (math.pi * d[:-1] * d[1:])))
    return area, res


# ------------------------------------------------------------------ nodes
@dataclass
class CableTree:
    """The nodes of one cell: compartments (with membrane) and junctions (without).

    Nodes are in Hines order (a parent before its children, node 0 the root).
    ``comp[i]``: compartment index of node i, or -1 for a junction; ``g[i]``: axial
    conductance (S) between node i and its parent; the other arrays are per compartment (SI).
    """
    parent: np.ndarray
    g: np.ndarray
    comp: np.ndarray
    area: np.ndarray  # per compartment, m²
    comp_section: np.ndarray  # section index of each compartment
    comp_x: np.ndarray  # centre position (0..1) of each compartment in its section
    path_length: np.ndarray  # from the root section's x = 0 to the compartment centre (through nodes), m
    sections: List[Section]

    @property
    def ncomp(self) -> int:
        return len(self.area)


def cable_tree(m: Morphology, ra_of_section, secs: Optional[List[Section]] = None) -> CableTree:
    """Nodes of a morphology; ``ra_of_section(k)`` is section k's resistivity (Ω·m)."""
    secs = sections_of(m) if secs is None else secs
    # node records: (parent node, resistance Ω, comp or -1)
    parent: List[int] = []
    res: List[float] = []
    comp: List[int] = []
    areas, csec, cx, plen = [], [], [], []
    start_node: Dict[int, int] = {}
    end_node: Dict[int, int] = {}
    centre: Dict[int, List[int]] = {}
    sec_plen0: Dict[int, float] = {}

    def add(p, r, c):
        parent.append(p)
        res.append(r)
        comp.append(c)
        return len(parent) - 1

    for k, sec in enumerate(secs):
        ra = ra_of_section(k)
        L = float(sec.arc[-1])
        if sec.parent is None:
            attach = add(-1, 0.0, -1)
            start_node[k] = attach
            sec_plen0[k] = 0.0
        else:
            psec = secs[sec.parent]
            x = sec.parent_x
            # path distances run through the node the section hangs on, as NEURON's distance()
            Lp = float(psec.arc[-1])
            if x >= 1.0:
                attach, at = end_node[sec.parent], Lp
            elif x <= 0.0:
                attach, at = start_node[sec.parent], 0.0
            else:
                j = min(int(x * psec.nseg), psec.nseg - 1)
                attach, at = centre[sec.parent][j], Lp * (j + 0.5) / psec.nseg
            start_node[k] = attach
            sec_plen0[k] = sec_plen0[sec.parent] + at
        n = sec.nseg
        edges = [L * j / n for j in range(n + 1)]
        mids = [L * (j + 0.5) / n for j in range(n)]
        prev, prev_pos = attach, 0.0
        centre[k] = []
        for j in range(n):
            a, _ = _integrate(sec, edges[j], edges[j + 1])
            _, r = _integrate(sec, prev_pos, mids[j])
            c = len(areas)
            areas.append(a * 1e-12)
            csec.append(k)
            cx.append((j + 0.5) / n)
            plen.append((sec_plen0[k] + mids[j]) * 1e-6)
            node = add(prev, ra * r * 1e6, c)
            centre[k].append(node)
            prev, prev_pos = node, mids[j]
        _, r = _integrate(sec, prev_pos, L)
        end_node[k] = add(prev, ra * r * 1e6, -1)
    parent_a = np.array(parent, dtype=np.int64)
    res_a = np.array(res)
    comp_a = np.array(comp, dtype=np.int64)
    # drop junctions with one neighbour (no current through them), repeatedly
    alive = np.ones(len(parent_a), dtype=bool)
    while True:
        linked = alive & (parent_a >= 0)
        deg = linked.astype(np.int64) + np.bincount(parent_a[linked], minlength=len(parent_a))
        dead = alive & (comp_a < 0) & (deg <= 1)
        if not dead.any():
            break
        alive &= ~dead
        orphan = alive & (parent_a >= 0) & dead[np.maximum(parent_a, 0)]
        parent_a[orphan] = -1  # the junction was the root: its only child is the new root
        res_a[orphan] = 0.0
    keep = np.nonzero(alive)[0]
    # Hines order: depth-first from the root
    kids: Dict[int, List[int]] = {int(i): [] for i in keep}
    roots = [int(i) for i in keep if parent_a[i] < 0]
    for i in keep:
        if parent_a[i] >= 0:
            kids[int(parent_a[i])].append(int(i))
    order, stack = [], roots[:1]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(reversed(kids[i]))
    new = {old: k for k, old in enumerate(order)}
    P = np.array([new[int(parent_a[i])] if parent_a[i] >= 0 else -1 for i in order], dtype=np.int64)
    R = np.array([res_a[i] for i in order])
    with np.errstate(divide="ignore"):
        G = np.where(R > 0, 1.0 / np.where(R > 0, R, 1.0), 0.0)
    if np.any((P >= 0) & (R <= 0)):
        raise ModelError("morphology has a connection of zero axial resistance (a zero-length segment?)",
                         **m.comp.where())
    return CableTree(P, G, comp_a[order], np.array(areas), np.array(csec, dtype=np.int64), np.array(cx),
                     np.array(plen), secs)


def location(tree: CableTree, m: Morphology, seg: int, frac: float, *, where=None) -> int:
    """Compartment holding point ``frac`` of segment ``seg`` (NEURON: the segment of the
    section containing x; x at a section end goes to its first/last compartment)."""
    if seg not in m.segments:
        raise ModelError(f"segment {seg} does not exist in the cell's morphology", **(where or {}))
    if not 0.0 <= frac <= 1.0:
        raise ModelError(f"fractionAlong {frac} is outside 0..1", **(where or {}))
    k = m.owner[seg]
    sec = tree.sections[k]
    a, b = sec.seg_bounds[seg]
    L = float(sec.arc[-1])
    x = (a + frac * (b - a)) / L if L > 0 else 0.5
    # jNeuroML writes x as a Java float: a point on a node boundary (the middle of segment 3
    # of a 6-node cable at x = 5/6) falls in the node NEURON then picks
    x = float(np.float32(x))
    if x == 0.0 and sec.parent is not None and 0.0 < sec.parent_x < 1.0:
        # NEURON: a section's 0 end is the node it hangs on — a branch off a soma's middle
        # puts a point at x = 0 on the soma's compartment (at the parent's 0 or 1 end it is a
        # zero-area junction node, which has no compartment here: the first one is taken)
        psec = tree.sections[sec.parent]
        j = min(int(sec.parent_x * psec.nseg), psec.nseg - 1)
        return int(np.nonzero(tree.comp_section == sec.parent)[0][0]) + j
    j = min(max(int(x * sec.nseg), 0), sec.nseg - 1)
    first = int(np.nonzero(tree.comp_section == k)[0][0])
    return first + j
