"""SONATA ``biophysical`` nodes: an ``nml:`` template's biophysics on an SWC morphology, as bmtk
BioNet builds them in NEURON.

bmtk's ``NMLLoad`` (``model_template: nml:<file>``) does, per node type:

1. load the SWC file with NEURON's Import3d (:mod:`nmlsim.io.swc`: sections ``soma``, ``axon``,
   ``dend``, ``apic``);
2. replace the reconstructed axon by a stub, whatever ``model_processing`` says: two 30 µm
   sections of diameter 1 µm, the first on the soma's centre, the second on the first's end
   (``fix_axon_peri``);
3. give each section ``nseg = 1 + 2·int(L / 2dL)`` with the run's ``dL``;
4. apply the template's ``<biophysicalProperties>`` by segment group, a group naming the
   sections of one type (``soma``/``somatic``, ``axon``/``axonal``, ``dend``/``basal``/
   ``dendritic``, ``apic``/``apical``, ``all``);
5. detect spikes on the soma's centre at ``run.spike_threshold`` and start at
   ``conditions.v_init``.

Here the result is a NeuroML ``<cell>`` with that morphology written out (one unbranched-cable
segment group per NEURON section, ``numberInternalDivisions`` = its nseg), so the ordinary
multi-compartment lowering runs it.  Mechanisms the template names but does not define (the
NEURON mod files of the circuit's ``mechanisms_dir``: ``NaTs``, ``CaDynamics``…) come from the
LEMS translations shipped in :mod:`nmlsim.library.allen`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelError
from ..graph.morphology import CABLE_LEXID
from ..graph.multicompartment import _child
from ..lems.model import Component
from .swc import SwcSection, read_swc

LIBRARY = Path(__file__).resolve().parent.parent / "library" / "allen"
#: bmtk's NMLTree: segment group names -> the section type they name
GROUP_SYNONYMS = {"somatic": "soma", "axonal": "axon", "basal": "dend", "dendritic": "dend", "apical": "apic"}


def axon_stub(sections: List[SwcSection], *, length=30.0, diam=1.0) -> List[SwcSection]:
    """bmtk's ``fix_axon_peri``: the axon sections removed, two ``length`` µm sections of
    diameter ``diam`` added — the first on the soma's centre (x = 0.5), the second on its end."""
    keep = [k for k, s in enumerate(sections) if s.type != 2]
    if not keep or sections[0].type != 1:
        raise ModelError("the morphology has no soma at its root (the axon stub hangs on the soma)")
    new = {k: j for j, k in enumerate(keep)}
    out = []
    for k in keep:
        s = sections[k]
        parent = s.parent
        if parent is not None and parent not in new:
            raise ModelError(f"section {s.name} hangs on the axon that the axon stub replaces "
                             "(bmtk would leave it disconnected)")
        out.append(SwcSection(s.type, s.points, None if parent is None else new[parent], s.parent_x, s.name, s.line))
    soma = out[0].points
    c = soma[len(soma) // 2, :3] if len(soma) % 2 else soma[:, :3].mean(axis=0)
    p0 = np.array([*c, diam])
    p1 = np.array([c[0], c[1] - length, c[2], diam])
    p2 = np.array([c[0], c[1] - 2 * length, c[2], diam])
    out.append(SwcSection(2, np.array([p0, p1]), 0, 0.5, "axon_0", 0))
    out.append(SwcSection(2, np.array([p1, p2]), len(out) - 1, 1.0, "axon_1", 0))
    return out


def nseg_for(length: float, dl: Optional[float]) -> int:
    """bmtk's ``set_segment_dl``: 1 + 2·int(L / 2dL) (odd, so a section has a centre node)."""
    if dl is None:
        return 1
    return 1 + 2 * int(length / (2.0 * dl))


def _dedup(points: np.ndarray) -> np.ndarray:
    """Drop a point that repeats the previous one's position (a zero-length piece carries no
    membrane in NEURON; a NeuroML segment may not have zero length)."""
    keep = [0]
    for i in range(1, len(points)):
        if np.array_equal(points[i, :3], points[keep[-1], :3]):
            keep[-1] = i  # the later diameter
        else:
            keep.append(i)
    return points[keep]


def _points_and_arcs(s: SwcSection, file: str) -> Tuple[np.ndarray, np.ndarray]:
    """A section's points as its NeuroML segments join them, and their arc positions (µm)."""
    pts = _dedup(s.points)
    if len(pts) < 2:
        raise ModelError(f"section {s.name} has zero length", file=file, line=s.line or None)
    return pts, np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts[:, :3], axis=0), axis=1))])


def morphology_component(sections: List[SwcSection], *, dl: Optional[float], file: str,
                         mid: str = "morphology") -> Component:
    """A NeuroML ``<morphology>`` holding NEURON's sections: one segment per pair of
    neighbouring points, one cable segment group per section (nseg from ``dl``), and the
    groups ``soma``, ``axon``, ``dend``, ``apic`` (and bmtk's synonyms) by section type."""
    segs: List[Component] = []
    groups: List[Component] = []
    sec_segments: List[List[Tuple[int, float, float]]] = []  # (segment id, arc start, arc end)
    by_type: Dict[str, List[str]] = {"soma": [], "axon": [], "dend": [], "apic": []}

    def point(tag, p):
        return Component(tag=tag, attrs={"x": repr(float(p[0])), "y": repr(float(p[1])), "z": repr(float(p[2])),
                                         "diameter": repr(float(p[3]))}, file=file)

    for k, s in enumerate(sections):
        pts, arcs = _points_and_arcs(s, file)
        mine = []
        for j in range(len(pts) - 1):
            sid = len(segs)
            children = []
            if j == 0 and s.parent is not None:
                ps = sec_segments[s.parent]
                at = s.parent_x * ps[-1][2]
                pid, frac = ps[-1][0], 1.0
                for (cand, a, b) in ps:
                    if a <= at <= b:
                        pid, frac = cand, (at - a) / (b - a)
                        break
                children.append(Component(tag="parent", attrs={"segment": str(pid), "fractionAlong": repr(frac)},
                                          file=file))
            elif j > 0:
                children.append(Component(tag="parent", attrs={"segment": str(sid - 1)}, file=file))
            children += [point("proximal", pts[j]), point("distal", pts[j + 1])]
            segs.append(Component(tag="segment", id=str(sid), attrs={"name": f"{s.name}_{j}"}, children=children,
                                  file=file, line=s.line or None))
            mine.append((sid, float(arcs[j]), float(arcs[j + 1])))
        sec_segments.append(mine)
        members = [Component(tag="member", attrs={"segment": str(sid)}, file=file) for sid, _, _ in mine]
        prop = Component(tag="property", attrs={"tag": "numberInternalDivisions",
                                                "value": str(nseg_for(float(arcs[-1]), dl))}, file=file)
        groups.append(Component(tag="segmentGroup", id=s.name, attrs={"neuroLexId": CABLE_LEXID},
                                children=[prop] + members, file=file))
        kind = s.name.rsplit("_", 1)[0]
        by_type.setdefault(kind, []).append(s.name)
    for kind, names in by_type.items():
        groups.append(Component(tag="segmentGroup", id=kind, file=file,
                                children=[Component(tag="include", attrs={"segmentGroup": n}, file=file)
                                          for n in names]))
    for syn, kind in GROUP_SYNONYMS.items():
        groups.append(Component(tag="segmentGroup", id=syn, file=file,
                                children=[Component(tag="include", attrs={"segmentGroup": kind}, file=file)]))
    return Component(tag="morphology", id=mid, children=segs + groups, file=file)


def biophysical_cell(template: Component, morphology: Component, cid: str, *, spike_threshold_mv: float,
                     v_init_mv: float) -> Component:
    """The template cell on ``morphology``, with bmtk's spike threshold and initial voltage
    (replacing any the template sets).  A morphology the template has of its own is dropped:
    bmtk ignores it, the SWC file is the cell's shape."""
    bio = _child(template, "biophysicalProperties")
    if bio is None:
        raise ModelError(f"cell '{template.id}' has no <biophysicalProperties>", **template.where())
    mp = _child(bio, "membraneProperties")
    if mp is None:
        raise ModelError(f"cell '{template.id}' has no <membraneProperties>", **bio.where())
    new_mp = copy.copy(mp)
    new_mp.children = [c for c in mp.children if c.tag not in ("spikeThresh", "initMembPotential")]
    # on "all", as NeuroML cells write it (jNeuroML's NEURON export refuses any other group); the
    # spikes are detected at the soma's centre either way, where bmtk's NetCon watches
    new_mp.children.append(Component(tag="spikeThresh", attrs={"value": f"{spike_threshold_mv!r}mV",
                                                               "segmentGroup": "all"}, file=template.file))
    new_mp.children.append(Component(tag="initMembPotential", attrs={"value": f"{v_init_mv!r}mV",
                                                                     "segmentGroup": "all"}, file=template.file))
    new_bio = copy.copy(bio)
    new_bio.children = [new_mp if c is mp else c for c in bio.children]
    cell = copy.copy(template)
    cell.id = cid
    cell.attrs = {k: v for k, v in template.attrs.items() if k not in ("morphology", "biophysicalProperties")}
    cell.children = [morphology] + [new_bio if c is bio else c for c in template.children
                                    if c.tag not in ("morphology",)]
    return cell


def missing_mechanisms(model, cell: Component) -> List[Tuple[str, Component]]:
    """(name, referring element) of the channels and concentration models the cell names but
    the model does not define (a component, or the ComponentType of a component it has)."""
    out = []
    bio = _child(cell, "biophysicalProperties")
    for sect in (bio.children if bio is not None else []):
        for c in sect.children:
            ref = c.attrs.get("ionChannel") if c.tag.startswith("channel") else (
                c.attrs.get("concentrationModel") if c.tag == "species" else None)
            if not ref:
                continue
            comp = model.components.get(ref)
            if comp is None:
                out.append((ref, c))
                continue
            tname = comp.type or comp.type_attr or comp.tag
            if not model.has_type(tname):
                out.append((tname, comp))
    return out


def library_file(name: str) -> Optional[Path]:
    f = LIBRARY / f"{name}.xml"
    return f if f.is_file() else None


def library_types() -> List[str]:
    return sorted(p.stem for p in LIBRARY.glob("*.xml"))


def load_swc_sections(path: Path, *, stub_axon: bool = True) -> List[SwcSection]:
    """The SWC file's NEURON sections, the axon replaced by bmtk's stub."""
    secs = read_swc(path)
    if stub_axon:
        try:
            secs = axon_stub(secs)
        except ModelError as e:
            raise e.located(file=str(path))
    return secs


def load_swc_morphology(path: Path, *, dl: Optional[float], stub_axon: bool = True) -> Component:
    return morphology_component(load_swc_sections(path, stub_axon=stub_axon), dl=dl, file=str(path),
                                mid=f"morphology_{Path(path).stem}")


#: bmtk's Morphology.sec_type_swc: section names in edge types' ``target_sections``
SECTION_TYPES = {"soma": 1, "somatic": 1, "axon": 2, "axonal": 2, "dend": 3, "basal": 3, "apic": 4, "apical": 4}


class BmtkSections:
    """A biophysical cell's sections as bmtk numbers and samples them for synapses.

    ``afferent_section_id`` counts sections in the order of the cell's ``hobj.all``: Import3d
    fills it by type (soma, dend, apic, then other types), each in file order, and the axon
    stub, appended last. :meth:`locate` turns (section id, x) into the NeuroML segment and
    fraction along it of :func:`morphology_component`'s morphology. For edges without
    preselected targets bmtk draws a segment (NEURON's, one per node) per synapse:
    ``find_sections`` keeps the segments of the named types that overlap the distance range
    (path distance from the soma's 0 end, NEURON's ``h.distance`` from ``soma[0]``), with
    probability ∝ the overlapping length, and the synapse goes to the segment's centre."""

    def __init__(self, sections: List[SwcSection], dl: Optional[float], file: str):
        self.file = file
        layout, sid = [], 0
        for s in sections:
            pts, arcs = _points_and_arcs(s, file)
            layout.append((np.arange(sid, sid + len(pts) - 1), arcs))
            sid += len(pts) - 1
        stub = [k for k, s in enumerate(sections) if s.type == 2]
        rest = [k for k, s in enumerate(sections) if s.type != 2]
        order = sorted(rest, key=lambda k: ({1: 0, 3: 1, 4: 2}.get(sections[k].type, 3 + abs(sections[k].type)), k))
        self.order = order + stub  # bmtk section id -> index in ``sections``
        self.layout = layout
        self.length = np.array([layout[k][1][-1] for k in range(len(sections))])
        # path distance of each section's 0 end from the soma's 0 end
        start = np.zeros(len(sections))
        for k, s in enumerate(sections):
            if s.parent is not None:
                start[k] = start[s.parent] + s.parent_x * self.length[s.parent]
        seg_sec, seg_x, seg_len, seg_dist, seg_type = [], [], [], [], []
        for bid, k in enumerate(self.order):
            n = nseg_for(float(self.length[k]), dl)
            xs = (np.arange(n) + 0.5) / n
            seg_sec += [bid] * n
            seg_x.append(xs)
            seg_len += [self.length[k] / n] * n
            seg_dist.append(start[k] + xs * self.length[k])
            seg_type += [sections[k].type] * n
        self.seg_sec = np.array(seg_sec, dtype=np.int64)
        self.seg_x = np.concatenate(seg_x)
        self.seg_length = np.array(seg_len)
        self.seg_dist = np.concatenate(seg_dist)
        self.seg_type = np.array(seg_type)
        self._cache: Dict[tuple, Tuple[np.ndarray, np.ndarray]] = {}

    @property
    def n_sections(self) -> int:
        return len(self.order)

    def locate(self, sec_id: np.ndarray, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """NeuroML segment ids and fractions along them of bmtk's (section id, x)."""
        sec_id = np.asarray(sec_id, dtype=np.int64)
        x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
        seg = np.empty(len(sec_id), dtype=np.int64)
        frac = np.empty(len(sec_id))
        for i, (b, xi) in enumerate(zip(sec_id, x)):
            ids, arcs = self.layout[self.order[b]]
            a = xi * arcs[-1]
            j = min(int(np.searchsorted(arcs, a, side="right")) - 1, len(ids) - 1)
            seg[i] = ids[j]
            frac[i] = min(max((a - arcs[j]) / (arcs[j + 1] - arcs[j]), 0.0), 1.0)
        return seg, frac

    def targets(self, names, distance_range) -> Tuple[np.ndarray, np.ndarray]:
        """bmtk's ``find_sections``: candidate segment indices and their probabilities."""
        key = (tuple(names), tuple(float(d) for d in distance_range))
        if key not in self._cache:
            dmin, dmax = key[1]
            d0 = self.seg_dist - self.seg_length / 2.0
            d1 = self.seg_dist + self.seg_length / 2.0
            overlap = np.maximum(0.0, np.minimum(d1, dmax) - np.maximum(d0, dmin)) / self.seg_length
            in_range = np.where(overlap > 0)
            labels = np.array([], dtype=int)
            for n in names:
                if n not in SECTION_TYPES:
                    raise ModelError(f"target section '{n}' is not one of {', '.join(SECTION_TYPES)}",
                                     file=self.file)
                labels = np.append(labels, np.where(self.seg_type == SECTION_TYPES[n]))
            ix = np.intersect1d(in_range, labels)
            w = self.seg_length[ix] * overlap[ix]
            self._cache[key] = (ix, w / np.sum(w) if len(ix) else w)
        return self._cache[key]
