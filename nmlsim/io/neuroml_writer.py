"""Write any :class:`nmlsim.graph.Network` as a NeuroML2 document plus a LEMS simulation file.

Components are written back as the elements they came from (cells, channels, synapses,
inputs, and every component they reference); the network's structure is written from
the graph's index arrays.  Files are streamed (a 4000-cell network has 320k connections)
and written atomically.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import ModelError
from ..graph.network import Network
from ..lems.model import Component, LemsModel
from .results import _atomic_write

NEUROML_HEAD = ('<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xsi:schemaLocation="http://www.neuroml.org/schema/neuroml2 '
                'https://raw.github.com/NeuroML/NeuroML2/development/Schemas/NeuroML2/NeuroML_v2.3.1.xsd" '
                'id={id}>\n')


#: top-level element order of the NeuroML v2.3.1 schema (NeuroMLDocument, groups resolved)
XSD_ORDER = ['include', 'extracellularProperties', 'intracellularProperties', 'morphology', 'ionChannel',
             'ionChannelHH', 'ionChannelVShift', 'ionChannelKS', 'decayingPoolConcentrationModel',
             'fixedFactorConcentrationModel', 'alphaCurrentSynapse', 'alphaSynapse', 'expOneSynapse',
             'expTwoSynapse', 'expThreeSynapse', 'blockingPlasticSynapse', 'doubleSynapse', 'gapJunction',
             'silentSynapse', 'linearGradedSynapse', 'gradedSynapse', 'biophysicalProperties', 'cell',
             'cell2CaPools', 'baseCell', 'iafTauCell', 'iafTauRefCell', 'iafCell', 'iafRefCell', 'izhikevichCell',
             'izhikevich2007Cell', 'adExIaFCell', 'fitzHughNagumoCell', 'fitzHughNagumo1969Cell',
             'pinskyRinzelCA3Cell', 'hindmarshRose1984Cell', 'pulseGenerator', 'pulseGeneratorDL', 'sineGenerator',
             'sineGeneratorDL', 'rampGenerator', 'rampGeneratorDL', 'compoundInput', 'compoundInputDL',
             'voltageClamp', 'voltageClampTriple', 'spikeArray', 'timedSynapticInput', 'spikeGenerator',
             'spikeGeneratorRandom', 'spikeGeneratorPoisson', 'spikeGeneratorRefPoisson', 'poissonFiringSynapse',
             'transientPoissonFiringSynapse', 'IF_curr_alpha', 'IF_curr_exp', 'IF_cond_alpha', 'IF_cond_exp',
             'EIF_cond_exp_isfa_ista', 'EIF_cond_alpha_isfa_ista', 'HH_cond_exp', 'expCondSynapse',
             'alphaCondSynapse', 'expCurrSynapse', 'alphaCurrSynapse', 'SpikeSourcePoisson', 'network',
             'ComponentType']
_RANK = {t: i for i, t in enumerate(XSD_ORDER)}


def schema_element(c: Component) -> bool:
    """Whether the NeuroML schema has a top-level element for ``c`` (not a LEMS ``<Component>``
    of a user type)."""
    return c.tag in _RANK and c.tag != "ComponentType"


def schema_order(comps: List[Component]) -> List[Component]:
    """Stable sort into the schema's order; elements the schema does not name (LEMS
    <Component>s of user types) keep their relative order after the known ones."""
    return sorted(comps, key=lambda c: _RANK.get(c.tag, len(XSD_ORDER) - 2))


def _attrs(comp: Component) -> str:
    parts = []
    if comp.id is not None:
        parts.append(f"id={quoteattr(comp.id)}")
    if comp.tag == "Component" and comp.type:
        parts.append(f"type={quoteattr(comp.type)}")
    elif comp.type_attr:
        parts.append(f"type={quoteattr(comp.type_attr)}")
    parts.extend(f"{k}={quoteattr(str(v))}" for k, v in comp.attrs.items())
    return (" " + " ".join(parts)) if parts else ""


#: elements whose children the schema orders (a sequence, not a choice): the order
_CHILD_ORDER = {"membraneProperties": (
    "channelPopulation", "channelDensity", "channelDensityVShift", "channelDensityNernst", "channelDensityNernstCa2",
    "channelDensityGHK", "channelDensityGHK2", "channelDensityNonUniform", "channelDensityNonUniformNernst",
    "channelDensityNonUniformGHK", "spikeThresh", "specificCapacitance", "initMembPotential", "reversalPotential")}


def _in_order(items, order: Sequence[str]) -> list:
    """``items`` (components or XML elements) stably sorted by where their tag stands in the
    schema's ``order``; tags it does not name go last."""
    return sorted(items, key=lambda e: order.index(e.tag) if e.tag in order else len(order))


def _types_block(type_xml: Sequence[str]) -> str:
    """ComponentType definitions indented one level inside a NeuroML document."""
    return "".join("    " + line + "\n" for x in type_xml for line in x.strip().splitlines())


def component_xml(comp: Component, indent: str = "    ") -> str:
    if not comp.children:
        return f"{indent}<{comp.tag}{_attrs(comp)}/>\n"
    order = _CHILD_ORDER.get(comp.tag)
    kids = _in_order(comp.children, order) if order else comp.children
    inner = "".join(component_xml(c, indent + "    ") for c in kids)
    return f"{indent}<{comp.tag}{_attrs(comp)}>\n{inner}{indent}</{comp.tag}>\n"


def referenced_components(model: LemsModel, roots: Iterable[Component]) -> List[Component]:
    """``roots`` and every top-level component they reference by id, dependencies first."""
    out: List[Component] = []
    seen = set()

    def visit(c: Component):
        if id(c) in seen:
            return
        seen.add(id(c))
        for v in _attr_values(c):
            ref = model.components.get(v)
            if ref is not None and ref is not c and not _is_network(model, ref):
                visit(ref)
        out.append(c)

    for r in roots:
        visit(r)
    return out


def user_type_xml(model: LemsModel, comps: Iterable[Component]) -> List[str]:
    """Definitions of the non-core ComponentTypes ``comps`` (and their children) use,
    supertypes first, as read — so a written document runs without the files it came from."""
    from ..coretypes import CORE_DIR
    core = str(Path(CORE_DIR).resolve())
    out: List[str] = []
    seen = set()

    def add_type(name: str):
        if name in seen or not model.has_type(name):
            return
        seen.add(name)
        ct = model.types[name]
        if ct.extends:
            add_type(ct.extends)
        for t in list(ct.children.values()) + list(ct.child.values()):
            add_type(t)
        if ct.xml and not (ct.file and str(Path(ct.file).resolve()).startswith(core)):
            out.append(ct.xml)

    def visit(c: Component, parent_type=None):
        try:
            t = model.type_of(c, parent_type)
        except Exception:
            return
        add_type(t)
        pt = model.resolved(t) if model.has_type(t) else None
        for ch in c.children:
            visit(ch, pt)

    for c in comps:
        visit(c)
    # the model's own <Dimension>s those types use (the core's are known everywhere)
    from ..units import _BASE, default_registry
    core = default_registry().dimensions
    used = sorted({d for x in out for d in re.findall(r'dimension="([^"]+)"', x)} - set(core))
    dims = []
    for name in used:
        exps = model.units.dimensions.get(name)
        if exps is not None:
            attrs = "".join(f' {b}="{e}"' for b, e in zip(_BASE, exps) if e)
            dims.append(f'<Dimension name={quoteattr(name)}{attrs}/>')
    return dims + out


#: NeuroML's slots for a component of a custom type (``<timeCourse type="myTau" .../>``) and the
#: parameters the schema lets them carry (HHRate, HHVariable, HHTime)
_SLOT_ATTRS = {"forwardRate": {"rate", "midpoint", "scale"}, "reverseRate": {"rate", "midpoint", "scale"},
               "steadyState": {"rate", "midpoint", "scale"}, "timeCourse": {"rate", "midpoint", "scale", "tau"}}
#: the schema's order of a ComponentType's elements
_CT_ORDER = ("Property", "Parameter", "DerivedParameter", "Constant", "Exposure", "Requirement",
             "InstanceRequirement", "Dynamics")


def schema_valid_slots(model: LemsModel, comps: Iterable[Component]) -> Tuple[List[Component], List[str]]:
    """``comps`` with every custom-typed slot that carries parameters the NeuroML schema does
    not allow there (``<timeCourse type="tauTwoExpSum" tauMin=... scale2=...>``: HHTime has
    only rate, midpoint, scale, tau) rewritten schema-valid: the slot gets a ComponentType of
    its own, a copy of its type with those parameters as Constants of the slot's values, named
    ``<type>_<ids of the elements above it>_<slot>``; returns the components (copies where
    changed) and the new types' XML, for the same document. The equations are the type's."""
    from lxml import etree
    new_types: List[str] = []

    def specialised(c: Component, t: str, owner: List[str]) -> Optional[Component]:
        extra = {k: v for k, v in c.attrs.items() if k not in _SLOT_ATTRS[c.tag]}
        ct = model.types.get(t)
        if not extra or ct is None or not ct.xml:
            return None
        root = etree.fromstring(ct.xml)
        params = {e.get("name"): e for e in root if e.tag == "Parameter"}
        if not set(extra) <= set(params):
            return None  # declared by a supertype: no copy of this type can fix it
        name = "_".join([t] + owner + [c.tag])
        root.set("name", name)
        for k, v in extra.items():
            e = params[k]
            e.tag = "Constant"
            e.set("value", v)
        for e in _in_order(root, _CT_ORDER):
            root.remove(e)
            root.append(e)
        etree.indent(root, space="    ")
        new_types.append(etree.tostring(root, encoding="unicode"))
        return replace(c, type_attr=name, type=None, attrs={k: v for k, v in c.attrs.items() if k not in extra})

    def visit(c: Component, parent_type, owner: List[str]) -> Component:
        try:
            t = model.type_of(c, parent_type)
        except ModelError:
            return c
        if c.tag in _SLOT_ATTRS and (c.type_attr or c.type) and not model.is_a(t, "baseHHRate") \
                and not model.is_a(t, "baseHHVariable"):
            spec = specialised(c, t, owner)
            if spec is not None:
                return spec
        pt = model.resolved(t) if model.has_type(t) else None
        kids = [visit(ch, pt, owner + [c.id] if c.id else owner) for ch in c.children]
        if c.tag in ("ionChannel", "ionChannelHH") and len({k.tag for k in kids if k.tag in _GATE_KINDS}) > 1:
            # the schema takes gates of one kind per channel; of several kinds, every gate is
            # written <gate type="kind"> with its elements in that element's order
            kids = [replace(k, tag="gate", type_attr=k.tag, type=None, children=_in_order(k.children, _GATE_ORDER))
                    if k.tag in _GATE_KINDS else k for k in kids]
        return c if all(a is b for a, b in zip(kids, c.children)) else replace(c, children=kids)
    out = [visit(c, None, []) for c in comps]
    return out, new_types


_GATE_KINDS = ("gateHHrates", "gateHHratesTau", "gateHHtauInf", "gateHHratesInf", "gateHHratesTauInf",
               "gateHHInstantaneous", "gateFractional")
#: the schema's order of the elements of a <gate type="..."> (GateHHUndetermined)
_GATE_ORDER = ("notes", "q10Settings", "forwardRate", "reverseRate", "timeCourse", "steadyState", "subGate")


def _attr_values(c: Component):
    for v in c.attrs.values():
        yield v
    for ch in c.children:
        yield from _attr_values(ch)


def _is_network(model, c) -> bool:
    try:
        return model.is_a(model.type_of(c), "network")
    except Exception:
        return False


def _cell_path(net: Network, pop: str, i: int) -> str:
    """jLEMS wants ``../pop[i]`` for a sized population and ``../pop/id/cell`` for a populationList."""
    p = net.populations[pop]
    if p.positions is None:
        return f"../{pop}[{int(i)}]"
    cid = p.instance_ids[i] if p.instance_ids is not None else i
    return f"../{pop}/{int(cid)}/{p.component.id}"


def write_nml_document(path, doc_id: str, comps: Iterable[Component], *, includes: Sequence[str] = (),
                       notes: str = "", type_xml: Sequence[str] = ()) -> Path:
    """One NeuroML document: notes, ``<include>``s, LEMS type definitions (``type_xml``)
    and ``comps`` in the schema's order; written atomically."""
    def w(fh):
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        fh.write(NEUROML_HEAD.format(id=quoteattr(doc_id)))
        if notes:
            fh.write(f"    <notes>{_escape(notes)}</notes>\n")
        for inc in includes:
            fh.write(f"    <include href={quoteattr(inc)}/>\n")
        for c in schema_order(list(comps)):
            fh.write(component_xml(c))
        fh.write(_types_block(type_xml))  # the schema's place for ComponentTypes: last
        fh.write("</neuroml>\n")
    _atomic_write(Path(path), w)
    return Path(path)


def write_lems_document(path, comps: Iterable[Component], *, type_xml: Sequence[str] = (), comment: str = "",
                        includes: Sequence[str] = ()) -> Path:
    """A LEMS file of type definitions and components (those the NeuroML schema does not
    know), including ``includes``; written atomically."""
    def w(fh):
        fh.write("<Lems>\n")
        if comment:
            fh.write(f"    <!-- {comment} -->\n")
        for inc in includes:
            fh.write(f"    <Include file={quoteattr(inc)}/>\n")
        for x in type_xml:
            fh.write("    " + x.strip() + "\n")
        for c in comps:
            fh.write(component_xml(c))
        fh.write("</Lems>\n")
    _atomic_write(Path(path), w)
    return Path(path)


def write_network(net: Network, path, doc_id: Optional[str] = None, hdf5: bool = False) -> List[Path]:
    """Write ``net`` as a NeuroML document; returns the files a LEMS file must include.

    Components of types the NeuroML schema does not know (user ComponentTypes, nmlsim's
    NEST neurons) and those types' definitions go into ``<stem>.types.xml``, a LEMS file
    listed first, so that the NeuroML document stays schema-valid.  With ``hdf5`` the
    network structure goes into ``<stem>.net.h5`` (NeuroML HDF5) and ``path`` holds the
    components only.
    """
    from ..graph.transform import sources_as_spike_arrays
    net = sources_as_spike_arrays(net)
    model = net.model
    path = Path(path)
    roots = _roots(net)
    comps = referenced_components(model, roots)
    custom = [c for c in comps if not schema_element(c)]
    types = user_type_xml(model, comps)
    out = []
    if custom or types:
        out.append(write_lems_document(path.with_name(path.name.split(".")[0] + ".types.xml"), custom,
                                       type_xml=types))
    out.append(write_network_nml(net, path, doc_id, skip=set(map(id, custom)), with_network=not hdf5))
    if hdf5:
        from .neuroml_hdf5 import write_network_h5
        out.append(write_network_h5(net, path.with_name(path.name.split(".")[0] + ".net.h5"), doc_id))
    return out


def _roots(net: Network) -> List[Component]:
    roots = [p.component for p in net.populations.values()]
    roots += [pr.synapse for pr in net.projections] + [e.synapse for e in net.electrical]
    roots += [c.pre_component for c in net.continuous] + [c.post_component for c in net.continuous]
    roots += [i.component for i in net.inputs]
    return roots


def write_network_nml(net: Network, path, doc_id: Optional[str] = None, skip=frozenset(),
                      with_network: bool = True, includes: Sequence[str] = ()) -> Path:
    """Write ``net`` (components and structure) as one NeuroML document (components whose
    ``id()`` is in ``skip`` are left to another file, named in ``includes``: see
    :func:`write_network`)."""
    from ..graph.transform import sources_as_spike_arrays
    net = sources_as_spike_arrays(net)
    model = net.model
    comps = [c for c in referenced_components(model, _roots(net)) if id(c) not in skip]
    comps, slot_types = schema_valid_slots(model, comps)
    path = Path(path)

    def end(fh):
        fh.write(_types_block(slot_types))  # the schema's place for ComponentTypes: last
        fh.write("</neuroml>\n")

    def write(fh):
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        fh.write(NEUROML_HEAD.format(id=quoteattr(doc_id or net.id)))
        if net.description:
            fh.write(f"    <notes>{_escape(net.description)}</notes>\n")
        for inc in includes:
            fh.write(f"    <include href={quoteattr(inc)}/>\n")
        for c in schema_order(comps):
            fh.write(component_xml(c))
        if not with_network:
            end(fh)
            return
        netc = net.component
        attrs = "".join(f" {k}={quoteattr(str(v))}" for k, v in netc.attrs.items())
        typ = f" type={quoteattr(netc.type_attr)}" if netc.type_attr else ""
        fh.write(f"    <network id={quoteattr(net.id)}{typ}{attrs}>\n")
        for p in net.populations.values():
            if p.positions is not None:
                fh.write(f'        <population id={quoteattr(p.id)} component={quoteattr(p.component.id)} '
                         f'type="populationList" size="{p.size}">\n')
                ids = p.instance_ids if p.instance_ids is not None else np.arange(p.size)
                for cid, (x, y, z) in zip(ids, p.positions):
                    fh.write(f'            <instance id="{int(cid)}"><location x="{x:g}" y="{y:g}" z="{z:g}"/>'
                             f'</instance>\n')
                fh.write("        </population>\n")
            else:
                fh.write(f'        <population id={quoteattr(p.id)} component={quoteattr(p.component.id)} '
                         f'size="{p.size}"/>\n')
        for pr in net.projections:
            fh.write(f'        <projection id={quoteattr(pr.id)} presynapticPopulation={quoteattr(pr.pre)} '
                     f'postsynapticPopulation={quoteattr(pr.post)} synapse={quoteattr(pr.synapse.id)}>\n')
            plain = np.all(pr.weight == 1.0) and np.all(pr.delay == 0.0)
            lines = []
            for k in range(len(pr.pre_idx)):
                base = (f'            <connection{"" if plain else "WD"} id="{k}" '
                        f'preCellId="{_cell_path(net, pr.pre, pr.pre_idx[k])}" '
                        f'postCellId="{_cell_path(net, pr.post, pr.post_idx[k])}"')
                if plain:
                    lines.append(base + "/>\n")
                else:
                    lines.append(base + f' weight="{pr.weight[k]:.10g}" delay="{pr.delay[k] * 1e3:.10g}ms"/>\n')
                if len(lines) >= 4096:
                    fh.write("".join(lines))
                    lines = []
            fh.write("".join(lines))
            fh.write("        </projection>\n")
        used = {pr.id for pr in net.projections}
        for e in net.electrical:
            _tunnel_projection(fh, net, "electrical", e, f" synapse={quoteattr(e.synapse.id)}", used)
        for c in net.continuous:
            _tunnel_projection(fh, net, "continuous", c, f" preComponent={quoteattr(c.pre_component.id)} "
                               f"postComponent={quoteattr(c.post_component.id)}", used)
        for i in net.inputs:
            fh.write(f'        <inputList id={quoteattr(i.id)} component={quoteattr(i.component.id)} '
                     f'population={quoteattr(i.population)}>\n')
            weighted = not np.all(i.weight == 1.0)
            for k, idx in enumerate(i.target_idx):
                tgt = _cell_path(net, i.population, idx)
                if weighted:
                    fh.write(f'            <inputW id="{k}" target="{tgt}" destination="synapses" '
                             f'weight="{i.weight[k]:.10g}"/>\n')
                else:
                    fh.write(f'            <input id="{k}" target="{tgt}" destination="synapses"/>\n')
            fh.write("        </inputList>\n")
        fh.write("    </network>\n")
        end(fh)
    _atomic_write(path, write)
    return path


def _tunnel_projection(fh, net: Network, kind: str, p, refs: str, used: set) -> None:
    """An electricalProjection or continuousProjection (one per synapse kind; ids kept unique)."""
    pid = p.id
    k = 1
    while pid in used:
        pid = f"{p.id}_{k}"
        k += 1
    used.add(pid)
    fh.write(f'        <{kind}Projection id={quoteattr(pid)} presynapticPopulation={quoteattr(p.pre)} '
             f'postsynapticPopulation={quoteattr(p.post)}>\n')
    for k in range(len(p.pre_idx)):
        w = "" if p.weight[k] == 1.0 else f' weight="{p.weight[k]:.10g}"'
        tag = f"{kind}ConnectionInstance" + ("W" if w else "")
        fh.write(f'            <{tag} id="{k}" preCell="{_cell_path(net, p.pre, p.pre_idx[k])}" '
                 f'postCell="{_cell_path(net, p.post, p.post_idx[k])}"{refs}'
                 f' preSegment="0" postSegment="0" preFractionAlong="0.5" postFractionAlong="0.5"{w}/>\n')
    fh.write(f"        </{kind}Projection>\n")


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_lems_simulation(path, *, sim_id: str, target: str, includes: Sequence[str], length_s: float,
                          step_s: float, seed: Optional[int] = None,
                          event_outputs: Dict[str, Sequence[str]] = None,
                          traces: Dict[str, Sequence[str]] = None, extra_core=("Inputs.xml",)) -> Path:
    """A LEMS file that includes the NeuroML files and records spikes and traces.

    ``event_outputs``: file name -> list of cell selections (``pop[i]``), one EventSelection
    each, ids = the selection strings' cell indices (unique per file).
    ``traces``: file name -> list of quantities.
    """
    def write(fh):
        fh.write("<Lems>\n")
        fh.write(f'    <Target component={quoteattr(sim_id)}/>\n')
        for core in ("Cells.xml", "Networks.xml", "Simulation.xml", *extra_core):
            fh.write(f'    <Include file="{core}"/>\n')
        for inc in includes:
            fh.write(f'    <Include file={quoteattr(inc)}/>\n')
        seed_attr = f' seed="{seed}"' if seed is not None else ""
        fh.write(f'    <Simulation id={quoteattr(sim_id)} length="{length_s * 1e3:.10g}ms" '
                 f'step="{step_s * 1e3:.10g}ms" target={quoteattr(target)}{seed_attr}>\n')
        for k, (fname, qs) in enumerate((traces or {}).items()):
            fh.write(f'        <OutputFile id="of{k}" fileName={quoteattr(fname)}>\n')
            for j, q in enumerate(qs):
                fh.write(f'            <OutputColumn id="c{j}" quantity={quoteattr(q)}/>\n')
            fh.write("        </OutputFile>\n")
        for k, (fname, sels) in enumerate((event_outputs or {}).items()):
            fh.write(f'        <EventOutputFile id="ev{k}" fileName={quoteattr(fname)} format="ID_TIME">\n')
            for s in sels:
                sid = s[s.index("[") + 1:-1] if "[" in s else (s.split("/")[1] if s.count("/") >= 1 else s)
                fh.write(f'            <EventSelection id="{sid}" select={quoteattr(s)} eventPort="spike"/>\n')
            fh.write("        </EventOutputFile>\n")
        fh.write("    </Simulation>\n</Lems>\n")
    _atomic_write(Path(path), write)
    # the folders the outputs go to (results/): jnml writes into them but does not create them
    for fname in list(traces or {}) + list(event_outputs or {}):
        folder = (Path(path).parent / fname).parent
        if folder.resolve().is_relative_to(Path(path).parent.resolve()):
            folder.mkdir(parents=True, exist_ok=True)
    return Path(path)
