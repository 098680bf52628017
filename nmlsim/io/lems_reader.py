"""Read LEMS and NeuroML2 XML files (with their includes) into a :class:`LemsModel`.

Core-type include names (``Cells.xml``, ``Networks.xml``...) resolve to the shipped
NeuroML2CoreTypes when no such file exists next to the including file, as jnml does.
NeuroML documents are read here too: every NeuroML element is a LEMS component whose
ComponentType is named by the element (or by its ``type=`` attribute).
"""
from __future__ import annotations

import os

from lxml import etree
from pathlib import Path
from typing import Optional

from ..coretypes import CORE_DIR, NEST_DIR, core_file
from ..errors import FormatError, NmlsimError
from ..lems.model import (NMLSIM_NS, Assignment, Component, ComponentType, DerivedVariable, Dynamics,
                          EventConnectionDecl, EventHandler, KineticScheme, LemsModel, Regime)
from .xmlsafe import confined, local, parse_xml

#: how many folders above the top-level file an include may reach by default
DEFAULT_INCLUDE_DEPTH = 3

_SKIP_TAGS = {"Description", "About", "Meta", "notes", "annotation", "Documentation"}
_TYPE_SKIP = {"Description", "About", "Meta", "Simulation", "InstanceRequirement", "ComponentRequirement",
              "Collection", "PairCollection", "DerivedParameterInStructure"}


def default_include_root(top: Path) -> Path:
    root = Path(os.path.realpath(top)).parent
    for _ in range(DEFAULT_INCLUDE_DEPTH):
        if root.parent != root:
            root = root.parent
    return root


class LemsReader:
    """Load files into one model, following includes once each."""

    def __init__(self, model: Optional[LemsModel] = None, include_root=None, share=None):
        self.model = model or LemsModel()
        self.include_root = Path(include_root) if include_root else None
        self.loaded = set()
        #: (rank, ranks) of an MPI rank's read: HDF5 networks keep the connections onto its cells
        self.share = share

    # -- files -------------------------------------------------------------
    def load(self, path, *, _from=None, _line=None) -> None:
        path = Path(path)
        real = Path(os.path.realpath(path))
        is_core = real.parent in (Path(os.path.realpath(CORE_DIR)), Path(os.path.realpath(NEST_DIR)))
        if self.include_root is None:
            self.include_root = default_include_root(path)
        if not is_core and _from is not None:
            confined(path, self.include_root, file=_from, line=_line)
        if real in self.loaded:
            return
        self.loaded.add(real)
        self.model.files.append(str(path))
        if path.suffix in (".h5", ".hdf5"):  # a NeuroML HDF5 network
            from .neuroml_hdf5 import read_network_h5
            self.model.add_component(read_network_h5(path, share=self.share))
            return
        root = parse_xml(path)
        tag = local(root.tag)
        if tag not in ("Lems", "neuroml", "lems", "NeuroML"):
            raise FormatError(f"root element <{tag}> is neither <Lems> nor <neuroml>", file=path,
                              line=root.sourceline)
        for el in root:
            t = local(el.tag)
            if not t or t in _SKIP_TAGS:
                continue
            try:
                self._top(el, t, path)
            except NmlsimError as e:
                raise e.located(file=path, line=el.sourceline, element=t)

    def _resolve_include(self, href: str, here: Path, line) -> Path:
        if not href:
            raise FormatError("include without a file name", file=here, line=line)
        if os.path.isabs(href):
            raise FormatError(f"absolute include path '{href}' is not allowed", file=here, line=line)
        cand = here.parent / href
        if cand.exists():
            return cand
        core = core_file(href)
        if core is not None:
            return core
        confined(cand, self.include_root, file=here, line=line)
        raise FormatError(f"included file '{href}' not found", file=here, line=line)

    def _top(self, el, t: str, path: Path) -> None:
        m = self.model
        if t in ("Include", "include"):
            href = el.get("file") or el.get("href") or el.get("url")
            if t == "include" and el.get("segmentGroup") is not None:
                return
            self.load(self._resolve_include(href, path, el.sourceline), _from=path, _line=el.sourceline)
        elif t == "Dimension":
            m.units.add_dimension(el.get("name"), **{b: el.get(b) for b in ("m", "l", "t", "i", "k", "n", "j")})
        elif t == "Unit":
            m.units.add_unit(el.get("symbol"), el.get("dimension"), float(el.get("power", 0) or 0),
                             float(el.get("scale", 1) or 1), float(el.get("offset", 0) or 0))
        elif t == "Constant":
            m.constants[el.get("name")] = (el.get("dimension", "none"), el.get("value"))
        elif t == "ComponentType":
            m.add_type(self._component_type(el, path))
        elif t == "Target":
            m.targets.append(el.get("component"))
        else:
            m.add_component(self._component(el, t, path))

    # -- components ---------------------------------------------------------
    def _component(self, el, t: str, path: Path) -> Component:
        # (a name without a namespace is its own local name; namespaced attributes are not the model's)
        attrs = {k: v for k, v in el.attrib.items() if not k.startswith("{")}
        cid = attrs.pop("id", None)
        ctype = None
        type_attr = attrs.pop("type", None)
        if t == "Component":
            ctype = type_attr
            type_attr = None
            if ctype is None:
                raise FormatError("<Component> without type", file=path, line=el.sourceline)
        comp = Component(tag=t, id=cid, type=ctype, type_attr=type_attr, attrs=attrs, file=str(path),
                         line=el.sourceline)
        for sub in el:
            st = local(sub.tag)
            if st == "annotation":
                comp.extensions.extend(self._component(x, local(x.tag), path) for x in sub
                                       if isinstance(x.tag, str) and x.tag.startswith("{" + NMLSIM_NS + "}"))
            if not st or st in _SKIP_TAGS:
                continue
            comp.children.append(self._component(sub, st, path))
        return comp

    # -- ComponentType --------------------------------------------------------
    def _component_type(self, el, path: Path) -> ComponentType:
        name = el.get("name")
        if not name:
            raise FormatError("ComponentType without a name", file=path, line=el.sourceline)
        ct = ComponentType(name=name, extends=el.get("extends"), file=str(path), line=el.sourceline)
        ct.xml = etree.tostring(el, encoding="unicode", with_tail=False)
        for sub in el:
            t = local(sub.tag)
            g = sub.get
            if not t or t in _TYPE_SKIP:
                continue
            if t == "Parameter":
                ct.parameters[g("name")] = g("dimension", "none")
            elif t == "DerivedParameter":
                ct.derived_parameters[g("name")] = (g("dimension", "none"), g("value") or g("select"))
            elif t == "Constant":
                ct.constants[g("name")] = (g("dimension", "none"), g("value"))
            elif t == "Exposure":
                ct.exposures[g("name")] = g("dimension", "none")
            elif t == "Requirement":
                ct.requirements[g("name")] = g("dimension", "none")
            elif t == "Property":
                ct.properties[g("name")] = (g("dimension", "none"), g("defaultValue"))
            elif t == "IndexParameter":
                ct.index_parameters.append(g("name"))
            elif t == "Text":
                ct.texts.append(g("name"))
            elif t == "Path":
                ct.paths.append(g("name"))
            elif t == "Link":
                ct.links[g("name")] = g("type")
            elif t == "Children":
                ct.children[g("name")] = g("type")
            elif t == "Child":
                ct.child[g("name")] = g("type")
            elif t == "Attachments":
                ct.attachments[g("name")] = g("type")
            elif t == "ComponentReference":
                ct.component_refs[g("name")] = g("type")
            elif t == "EventPort":
                ct.event_ports[g("name")] = g("direction", "in")
            elif t == "Fixed":
                ct.fixed[g("parameter")] = g("value")
            elif t == "Dynamics":
                ct.dynamics = self._dynamics(sub, path)
            elif t == "Structure":
                self._structure(sub, ct, path)
            else:
                raise FormatError(f"unknown element <{t}> in ComponentType '{name}'", file=path,
                                  line=sub.sourceline)
        return ct

    def _structure(self, el, ct: ComponentType, path: Path) -> None:
        ct.has_structure = True
        aliases = {}
        for sub in el:
            t = local(sub.tag)
            if t == "ChildInstance":
                ct.child_instances.append(sub.get("component"))
            elif t == "With":
                aliases[sub.get("as")] = sub.get("instance") or sub.get("list")
            elif t == "EventConnection":
                src = aliases.get(sub.get("from"), sub.get("from"))
                dst = aliases.get(sub.get("to"), sub.get("to"))
                ct.event_connections.append(EventConnectionDecl(src, dst, sub.get("sourcePort"),
                                                                sub.get("targetPort")))
            # MultiInstantiate / Tunnel / ForEach on network types are handled by nmlsim.graph

    def _handler(self, sub, kind: str) -> EventHandler:
        h = EventHandler(kind=kind, test=sub.get("test"), port=sub.get("port"))
        for a in sub:
            t = local(a.tag)
            if t == "StateAssignment":
                h.assignments.append(Assignment(a.get("variable"), a.get("value")))
            elif t == "EventOut":
                h.event_outs.append(a.get("port"))
            elif t == "Transition":
                h.transition = a.get("regime")
        return h

    def _derived(self, sub) -> DerivedVariable:
        g = sub.get
        return DerivedVariable(name=g("name"), dimension=g("dimension", "none"), exposure=g("exposure"),
                               value=g("value"), select=g("select"), reduce=g("reduce"), required=g("required"))

    def _conditional(self, sub) -> DerivedVariable:
        dv = DerivedVariable(name=sub.get("name"), dimension=sub.get("dimension", "none"),
                             exposure=sub.get("exposure"), cases=[])
        for c in sub:
            if local(c.tag) == "Case":
                dv.cases.append((c.get("condition"), c.get("value")))
        return dv

    def _dynamics(self, el, path: Path) -> Dynamics:
        d = Dynamics()
        for sub in el:
            t = local(sub.tag)
            if not t or t in ("Description",):
                continue
            if t == "StateVariable":
                d.state[sub.get("name")] = sub.get("dimension", "none")
            elif t == "DerivedVariable":
                d.derived.append(self._derived(sub))
            elif t == "ConditionalDerivedVariable":
                d.derived.append(self._conditional(sub))
            elif t == "TimeDerivative":
                d.time_derivatives[sub.get("variable")] = sub.get("value")
            elif t == "OnStart":
                d.handlers.append(self._handler(sub, "start"))
            elif t == "OnCondition":
                d.handlers.append(self._handler(sub, "condition"))
            elif t == "OnEvent":
                d.handlers.append(self._handler(sub, "event"))
            elif t == "KineticScheme":
                g = sub.get
                d.kinetic.append(KineticScheme(g("name"), g("nodes"), g("stateVariable"), g("edges"),
                                               g("edgeSource"), g("edgeTarget"), g("forwardRate"),
                                               g("reverseRate")))
            elif t == "Regime":
                r = Regime(name=sub.get("name"), initial=sub.get("initial", "false") == "true")
                for rs in sub:
                    rt = local(rs.tag)
                    if rt == "TimeDerivative":
                        r.time_derivatives[rs.get("variable")] = rs.get("value")
                    elif rt == "OnCondition":
                        r.handlers.append(self._handler(rs, "condition"))
                    elif rt == "OnEntry":
                        r.handlers.append(self._handler(rs, "entry"))
                    elif rt == "OnEvent":
                        r.handlers.append(self._handler(rs, "event"))
                    elif rt == "DerivedVariable":
                        r.derived.append(self._derived(rs))
                    elif rt == "ConditionalDerivedVariable":
                        r.derived.append(self._conditional(rs))
                    elif rt == "StateVariable":
                        d.state[rs.get("name")] = rs.get("dimension", "none")
                d.regimes.append(r)
            else:
                raise FormatError(f"unknown element <{t}> in Dynamics", file=path, line=sub.sourceline)
        return d


CORE_FILES_ORDER = ("NeuroML2CoreTypes.xml", "Cells.xml", "Networks.xml", "Simulation.xml", "Inputs.xml",
                    "PyNN.xml", "Synapses.xml", "Channels.xml")


def core_model() -> LemsModel:
    """A model holding just the NeuroML2 core types (for graphs built in Python)."""
    reader = LemsReader(include_root=CORE_DIR)
    for f in CORE_FILES_ORDER:
        reader.load(CORE_DIR / f)
    return reader.model


def load_model(path, include_root=None, with_core=True, before=(), share=None) -> LemsModel:
    """Load a LEMS or NeuroML file and everything it includes.

    NeuroML documents (which include no core types) get the standard core types, as
    jnml gives them; ``before`` are files to load ahead of ``path``; ``share=(rank, ranks)``:
    an MPI rank's read (HDF5 networks keep the connections onto the rank's cells).
    """
    reader = LemsReader(include_root=include_root or default_include_root(Path(path)), share=share)
    if with_core:
        for f in CORE_FILES_ORDER:
            reader.load(CORE_DIR / f)
    for f in before:
        reader.load(f)
    reader.load(path)
    return reader.model
