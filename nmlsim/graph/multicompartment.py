"""Multi-compartment cells lowered to compartments of one LEMS component.

A NeuroML ``<cell>`` whose morphology has more than one segment becomes, per cell, ``C``
instances of one *compartment component*: the cell's own component tree with the morphology
taken out and ``surfaceArea`` made a parameter (a synthesised ComponentType extending the
cell's type).  Everything that varies along the cell is a per-compartment parameter value:
the area, every channel density's ``condDensity`` (or ``permeability``; zero outside the
density's segment group), specific capacitances, inhomogeneous densities evaluated on each
compartment's path length.  Channel and concentration ComponentTypes therefore run
unchanged, one instance per compartment; the cable between compartments is the engine's
implicit phase (:mod:`nmlsim.engine.cable`), fed by the :class:`~nmlsim.graph.morphology.CableTree`.

LEMS has no cable semantics, so this step is nmlsim's (as it is jNeuroML's NEURON export's);
results are checked against NEURON.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..errors import ModelError, UnsupportedFeature
from ..lems import expr as E
from ..lems.model import Component, ComponentType, DerivedVariable, Dynamics, LemsModel
from .morphology import CableTree, Morphology, cable_tree, location, sections_of

#: non-uniform densities -> the uniform type computing the same current, and their parameter
_NONUNIFORM = {"channelDensityNonUniform": "channelDensity",
               "channelDensityNonUniformNernst": "channelDensityNernst",
               "channelDensityNonUniformGHK": "channelDensityGHK"}
_DENSITY_PARAM = {"channelDensityGHK": "permeability"}
_DENSITY_DIM = {"condDensity": "conductanceDensity", "permeability": "permeability"}


@dataclass
class CellLayout:
    """One multi-compartment cell type, lowered."""
    cell: Component
    component: Component  # one compartment
    morphology: Morphology
    tree: CableTree
    capacitance: np.ndarray  # F, per compartment
    values: Dict[int, Dict[str, np.ndarray]] = field(default_factory=dict)  # id(component) -> param -> per comp
    soma: int = 0

    @property
    def ncomp(self) -> int:
        return self.tree.ncomp

    def compartment(self, seg: Optional[int], frac: Optional[float], *, where=None) -> int:
        """Compartment of a point on a segment (default: the root segment's middle)."""
        if seg is None:
            seg = self.morphology.root
        return location(self.tree, self.morphology, int(seg), 0.5 if frac is None else float(frac), where=where)


def morphology_of(model: LemsModel, cell: Component) -> Optional[Component]:
    for c in cell.children:
        if c.tag == "morphology":
            return c
    ref = cell.attrs.get("morphology")
    if ref is not None:
        return model.component(ref, where=cell.where())
    return None


def is_multicompartment(model: LemsModel, cell: Component) -> bool:
    try:
        tname = model.type_of(cell)
    except ModelError:
        return False
    if not model.is_a(tname, "cell"):
        return False
    m = morphology_of(model, cell)
    return m is not None and sum(1 for c in m.children if c.tag == "segment") > 1


def _child(comp: Component, *tags) -> Optional[Component]:
    for c in comp.children:
        if c.tag in tags:
            return c
    return None


def _biophysics(model: LemsModel, cell: Component) -> Component:
    b = _child(cell, "biophysicalProperties", "biophysicalProperties2CaPools")
    if b is None:
        ref = cell.attrs.get("biophysicalProperties")
        if ref is None:
            raise ModelError(f"cell '{cell.id}' has no biophysicalProperties", **cell.where())
        b = model.component(ref, where=cell.where())
    return b


def _extension(model: LemsModel, tname: str, suffix: str, params: Dict[str, str], edit) -> str:
    """A synthesised type ``<tname>__<suffix>`` extending ``tname``: extra parameters ``params``
    (name -> dimension), its dynamics' derived variables rewritten by ``edit(list) -> list``."""
    name = f"{tname}__{suffix}"
    if model.has_type(name):
        return name
    base = model.resolved(tname)
    dyn = copy.deepcopy(base.dynamics) if base.dynamics is not None else Dynamics()
    dyn.derived = edit(dyn.derived)
    ct = ComponentType(name=name, extends=tname, file=base.file, line=base.line)
    ct.parameters.update(params)
    ct.dynamics = dyn
    model.add_type(ct)
    return name


def _compartment_type(model: LemsModel, tname: str) -> str:
    """The cell's type with ``surfaceArea`` a parameter instead of a sum over segments."""
    return _extension(model, tname, "compartment", {"surfaceArea": "area"},
                      lambda derived: [d for d in derived if d.name != "surfaceArea"])


def _masked_species_type(model: LemsModel, tname: str) -> str:
    """A species type whose concentrations count only on the compartments of its segment group.

    ``presence`` is 1 on the compartments the species covers; ``fixedShare`` is 1 on the
    compartments no species of its ion covers (last species of the ion only): there the
    concentrations stay at the species' initial values, as NEURON keeps ``cai``/``cao`` at
    ``cai0``/``cao0`` in sections without the pool mechanism (jNeuroML sets those globals once
    per species, so the last one stays).  The intracellular properties sum their species'
    concentrations per ion, so without the mask two pools on two groups would add up on
    every compartment.
    """
    def edit(derived):
        out = []
        for d in derived:
            if d.name in ("concentration", "extConcentration") and d.select:
                init = "initialConcentration" if d.name == "concentration" else "initialExtConcentration"
                out.append(DerivedVariable(name=f"{d.name}__pool", dimension=d.dimension, select=d.select,
                                           reduce=d.reduce, required=d.required))
                out.append(DerivedVariable(name=d.name, dimension=d.dimension, exposure=d.exposure,
                                           value=f"presence * {d.name}__pool + fixedShare * {init}"))
            else:
                out.append(d)
        return out
    return _extension(model, tname, "masked", {"presence": "none", "fixedShare": "none"}, edit)


def _species_masks(model: LemsModel, ip: Component, C: int, in_group, values) -> Component:
    """``ip`` with its species masked by segment group where the groups do not all cover the cell."""
    species = [c for c in ip.children if c.tag == "species"]
    by_ion: Dict[str, List[Component]] = {}
    for sp in species:
        by_ion.setdefault(sp.attrs.get("ion", sp.id), []).append(sp)
    masks = {}
    needed = False
    for lst in by_ion.values():
        owner = np.full(C, -1)
        for j, sp in enumerate(lst):
            owner[in_group(sp)] = j  # a later species on the same compartment wins
        needed |= len(lst) > 1 or bool((owner < 0).any())
        for j, sp in enumerate(lst):
            masks[id(sp)] = ((owner == j).astype(float), ((owner < 0) & (j == len(lst) - 1)).astype(float))
    if not needed:
        return ip
    children = []
    seen_ids = set()
    for c in ip.children:
        if c.tag == "species":
            nc = copy.copy(c)
            if nc.id in seen_ids:  # the same species (id "ca") on two groups: two pools, two names
                k = 2
                while f"{c.id}__{k}" in seen_ids:
                    k += 1
                nc.id = f"{c.id}__{k}"
            seen_ids.add(nc.id)
            nc.type = _masked_species_type(model, model.type_of(c))
            nc.type_attr = None
            nc.attrs = dict(c.attrs, presence="1", fixedShare="0")
            w, u = masks[id(c)]
            values[id(nc)] = {"presence": w, "fixedShare": u}
            c = nc
        children.append(c)
    new_ip = copy.copy(ip)
    new_ip.children = children
    return new_ip


def lower_cell(model: LemsModel, cell: Component) -> CellLayout:
    """Lower one multi-compartment cell component (see the module docstring)."""
    mcomp = morphology_of(model, cell)
    morph = Morphology(mcomp)
    bio = _biophysics(model, cell)
    mp = _child(bio, "membraneProperties", "membraneProperties2CaPools")
    ip = _child(bio, "intracellularProperties", "intracellularProperties2CaPools")
    if mp is None:
        raise ModelError(f"cell '{cell.id}' has no membraneProperties", **bio.where())

    def group_of(c: Component) -> str:
        return c.attrs.get("segmentGroup", "all")

    # resistivity per section (needed for the tree)
    ra_items = []
    if ip is not None:
        for c in ip.children:
            if c.tag == "resistivity":
                ra_items.append((set(morph.members(group_of(c), where=c.where())),
                                 model.units.parse(c.attrs.get("value"), "resistivity")))

    # Ra of a section: the last resistivity whose group holds its first segment (later ones override)
    def ra_for_section(k: int) -> float:
        sec = tree_secs[k]
        val = None
        for members, v in ra_items:
            if sec.segments[0] in members:
                val = v
        if val is None:
            raise ModelError(f"cell '{cell.id}': no resistivity for segment {sec.segments[0]} "
                             f"(a multi-compartment cell needs one)", **(ip or bio).where())
        if not val > 0:
            raise ModelError(f"cell '{cell.id}': resistivity must be positive", **(ip or bio).where())
        return val

    tree_secs = sections_of(morph)
    tree = cable_tree(morph, ra_for_section, tree_secs)
    C = tree.ncomp
    comp_segments = np.array(_compartment_segments(morph, tree), dtype=np.int64)

    def group_mask(name: str, where: dict) -> np.ndarray:
        """Compartments whose centre lies on a segment of group ``name``."""
        return np.isin(comp_segments, morph.members(name, where=where))

    def in_group(c: Component) -> np.ndarray:
        return group_mask(group_of(c), c.where())

    new_mp_children: List[Component] = []
    values: Dict[int, Dict[str, np.ndarray]] = {}
    spec_cap = np.zeros(C)
    have_cap = np.zeros(C, dtype=bool)
    cap_children: List[Component] = []
    for c in mp.children:
        tag = c.tag
        if tag in ("notes", "annotation", "property"):
            continue
        if tag == "specificCapacitance":
            # a later one overrides an earlier one where their groups overlap (NEURON's
            # `forsec g cm = x`, in document order), it does not add to it
            mask = in_group(c)
            val = model.units.parse(c.attrs.get("value"), "specificCapacitance")
            for earlier in cap_children:
                values[id(earlier)]["value"][mask] = 0.0
            nc = copy.copy(c)
            values[id(nc)] = {"value": np.where(mask, val, 0.0)}
            cap_children.append(nc)
            spec_cap[mask] = val
            have_cap |= mask
            new_mp_children.append(nc)
        elif tag in _NONUNIFORM:
            nc = _uniform_from(morph, tree, c, _NONUNIFORM[tag], group_mask, values)
            new_mp_children.append(nc)
        elif tag.startswith("channelDensity"):
            param = _DENSITY_PARAM.get(tag, "condDensity")
            mask = in_group(c)
            raw = c.attrs.get(param)
            if raw is None:
                raise ModelError(f"{tag} '{c.id}' has no {param}", **c.where())
            val = model.units.parse(raw, _DENSITY_DIM[param])
            nc = copy.copy(c)
            if tag == "channelDensityNernstCa2" and nc.attrs.get("ion") != "ca2":
                # its reversal potential is that of the second pool (caConc2); its current
                # feeds that pool too, as in jNeuroML's NEURON export (USEION ca2), whatever
                # its ion attribute says (SolinasEtAl's Golgi cell writes ion="ca")
                nc.attrs = dict(nc.attrs, ion="ca2")
            values[id(nc)] = {param: np.where(mask, val, 0.0)}
            new_mp_children.append(nc)
        elif tag == "channelPopulation" or tag == "channelPopulationNernst":
            mask = np.zeros(C, dtype=bool)
            if "segment" in c.attrs:
                mask[location(tree, morph, int(c.attrs["segment"]), 0.5, where=c.where())] = True
            else:
                mask = in_group(c)
            nc = copy.copy(c)
            values[id(nc)] = {"number": np.where(mask, float(c.attrs.get("number", 0)), 0.0)}
            new_mp_children.append(nc)
        else:
            new_mp_children.append(c)
    if not have_cap.all():
        bad = int(np.nonzero(~have_cap)[0][0])
        raise ModelError(f"cell '{cell.id}': no specificCapacitance covers segment {comp_segments[bad]}",
                         **mp.where())
    new_mp = copy.copy(mp)
    new_mp.children = new_mp_children
    new_bio = copy.copy(bio)
    new_ip = _species_masks(model, ip, C, in_group, values) if ip is not None else None
    new_bio.children = [new_mp if c is mp else new_ip if c is ip else c for c in bio.children]
    tname = model.type_of(cell)
    lowered = copy.copy(cell)
    lowered.type = _compartment_type(model, tname)
    lowered.type_attr = None
    lowered.attrs = {k: v for k, v in cell.attrs.items() if k not in ("morphology", "biophysicalProperties")}
    lowered.children = [c for c in cell.children if c.tag not in ("morphology", "biophysicalProperties",
                                                                    "biophysicalProperties2CaPools")]
    lowered.children.append(new_bio)
    values[id(lowered)] = {"surfaceArea": tree.area.copy()}
    cap = spec_cap * tree.area
    layout = CellLayout(cell, lowered, morph, tree, cap, values)
    layout.soma = layout.compartment(morph.root, 0.5)
    return layout


def _compartment_segments(morph: Morphology, tree: CableTree) -> List[int]:
    """The segment holding each compartment's centre."""
    out = []
    for c in range(tree.ncomp):
        sec = tree.sections[int(tree.comp_section[c])]
        s = float(tree.comp_x[c]) * float(sec.arc[-1])
        hit = sec.segments[-1]
        for sid in sec.segments:
            a, b = sec.seg_bounds[sid]
            if a <= s <= b:
                hit = sid
                break
        out.append(hit)
    return out


def _uniform_from(morph: Morphology, tree: CableTree, c: Component, new_tag: str, group_mask,
                  values) -> Component:
    """A channelDensityNonUniform* as the uniform density it is per compartment, its
    parameter evaluated from the inhomogeneous expression on each compartment."""
    vp = _child(c, "variableParameter")
    if vp is None:
        raise ModelError(f"{c.tag} '{c.id}' has no variableParameter", **c.where())
    param = vp.attrs.get("parameter")
    want = _DENSITY_PARAM.get(new_tag, "condDensity")
    if param != want:
        raise UnsupportedFeature(f"{c.tag} '{c.id}': variableParameter '{param}' (only {want} can vary)",
                                 **vp.where())
    mask = group_mask(vp.attrs.get("segmentGroup"), vp.where())
    iv = _child(vp, "inhomogeneousValue")
    if iv is None:
        raise ModelError(f"{c.tag} '{c.id}': variableParameter has no inhomogeneousValue", **vp.where())
    pname = iv.attrs.get("inhomogeneousParameter")
    ip = _inhomogeneous_parameter(morph, pname, iv)
    var = ip.attrs.get("variable")
    metric = ip.attrs.get("metric", "Path Length from root")
    if metric != "Path Length from root":
        raise UnsupportedFeature(f"inhomogeneousParameter '{pname}': metric '{metric}'", **ip.where())
    # p: path length (µm) from the root section's 0 end to each compartment's centre, shifted
    # and scaled as NEURON's SubsetDomainIterator does (what jNeuroML's export uses): p0 and p1
    # are the least and greatest distances over the group's sections, their ends included
    p = tree.path_length * 1e6
    prox, dist = _child(ip, "proximal"), _child(ip, "distal")
    shifted = prox is not None and "translationStart" in prox.attrs
    scaled = dist is not None and "normalizationEnd" in dist.attrs
    if shifted or scaled:
        in_g = group_mask(_ip_group(morph, ip), ip.where())
        length = np.array([tree.sections[k].arc[-1] for k in tree.comp_section])
        start = p - tree.comp_x * length
        p0 = float(start[in_g].min()) if in_g.any() else 0.0
        p1 = max(1.0, float((start + length)[in_g].max()) if in_g.any() else 1.0)
        if shifted:
            p = p - p0 + float(prox.attrs["translationStart"])
            p1 -= p0
        if scaled:
            p = p / p1 * float(dist.attrs["normalizationEnd"])
    try:
        ast = E.parse(iv.attrs.get("value", ""))
    except E.ExpressionError as e:
        raise e.located(**iv.where()) from None
    unknown = E.names(ast) - {var}
    if unknown:
        raise ModelError(f"inhomogeneousValue '{iv.attrs.get('value')}' uses unknown names "
                         f"{', '.join(sorted(unknown))} (only '{var}')", **iv.where())
    with np.errstate(all="ignore"):
        vals = np.broadcast_to(np.asarray(E.evaluate(ast, {var: p}), dtype=float), p.shape).copy()
    if not np.all(np.isfinite(vals[mask])):
        raise ModelError(f"inhomogeneousValue '{iv.attrs.get('value')}' is not finite on every compartment",
                         **iv.where())
    # the expression gives the parameter in SI units (NeuroML's convention for inhomogeneous values)
    nc = Component(tag=new_tag, id=c.id, type=new_tag, attrs={k: v for k, v in c.attrs.items()},
                   children=[], file=c.file, line=c.line)
    nc.attrs[want] = "0"
    values[id(nc)] = {want: np.where(mask, vals, 0.0)}
    return nc


def _ip_group(morph: Morphology, ip: Component) -> str:
    for name, g in morph.groups.items():
        if any(ch is ip for ch in g.children):
            return name
    return "all"


def _inhomogeneous_parameter(morph: Morphology, pname: str, where: Component) -> Component:
    for g in morph.groups.values():
        for ch in g.children:
            if ch.tag == "inhomogeneousParameter" and ch.id == pname:
                return ch
    raise ModelError(f"unknown inhomogeneousParameter '{pname}'", **where.where())
