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
        pts = _dedup(s.points)
        if len(pts) < 2:
            raise ModelError(f"section {s.name} has zero length", file=file, line=s.line or None)
        arcs = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts[:, :3], axis=0), axis=1))])
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


def load_swc_morphology(path: Path, *, dl: Optional[float], stub_axon: bool = True) -> Component:
    secs = read_swc(path)
    if stub_axon:
        try:
            secs = axon_stub(secs)
        except ModelError as e:
            raise e.located(file=str(path))
    return morphology_component(secs, dl=dl, file=str(path), mid=f"morphology_{Path(path).stem}")
