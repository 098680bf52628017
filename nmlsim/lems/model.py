"""LEMS ComponentTypes and Components as plain data.

Readers in :mod:`nmlsim.io` fill a :class:`LemsModel`; nothing here knows XML.  A
ComponentType is stored as declared; :meth:`LemsModel.resolved` merges its ``extends``
chain (an extending type inherits every declaration; its own Dynamics, when present,
replace the inherited one, as in jLEMS).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import ModelError
from ..units import UnitRegistry, default_registry


@dataclass
class Assignment:
    variable: str
    value: str


@dataclass
class EventHandler:
    """OnStart / OnCondition / OnEvent / OnEntry: assignments, events out, a transition."""
    kind: str  # 'start' | 'condition' | 'event' | 'entry'
    test: Optional[str] = None  # OnCondition
    port: Optional[str] = None  # OnEvent
    assignments: List[Assignment] = field(default_factory=list)
    event_outs: List[str] = field(default_factory=list)
    transition: Optional[str] = None


@dataclass
class DerivedVariable:
    name: str
    dimension: str = "none"
    exposure: Optional[str] = None
    value: Optional[str] = None
    select: Optional[str] = None
    reduce: Optional[str] = None
    required: Optional[str] = None
    cases: Optional[List[Tuple[Optional[str], str]]] = None  # ConditionalDerivedVariable


@dataclass
class KineticScheme:
    name: str
    nodes: str
    state_variable: str
    edges: str
    edge_source: str
    edge_target: str
    forward_rate: str
    reverse_rate: str


@dataclass
class Regime:
    name: str
    initial: bool = False
    time_derivatives: Dict[str, str] = field(default_factory=dict)
    derived: List[DerivedVariable] = field(default_factory=list)
    handlers: List[EventHandler] = field(default_factory=list)  # conditions, events, entry


@dataclass
class Dynamics:
    state: Dict[str, str] = field(default_factory=dict)  # name -> dimension
    derived: List[DerivedVariable] = field(default_factory=list)
    time_derivatives: Dict[str, str] = field(default_factory=dict)
    handlers: List[EventHandler] = field(default_factory=list)  # start, condition, event
    regimes: List[Regime] = field(default_factory=list)
    kinetic: List[KineticScheme] = field(default_factory=list)


@dataclass
class EventConnectionDecl:
    """Structure/EventConnection inside a type: aliases already resolved to 'this',
    'parent', or a Path/ComponentReference/Child name."""
    source: str
    target: str
    source_port: Optional[str] = None
    target_port: Optional[str] = None


@dataclass
class ComponentType:
    name: str
    extends: Optional[str] = None
    parameters: Dict[str, str] = field(default_factory=dict)
    derived_parameters: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    constants: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    exposures: Dict[str, str] = field(default_factory=dict)
    requirements: Dict[str, str] = field(default_factory=dict)
    properties: Dict[str, Tuple[str, Optional[str]]] = field(default_factory=dict)
    index_parameters: List[str] = field(default_factory=list)
    texts: List[str] = field(default_factory=list)
    paths: List[str] = field(default_factory=list)
    links: Dict[str, str] = field(default_factory=dict)
    children: Dict[str, str] = field(default_factory=dict)   # <Children name type>
    child: Dict[str, str] = field(default_factory=dict)      # <Child name type>
    attachments: Dict[str, str] = field(default_factory=dict)
    component_refs: Dict[str, str] = field(default_factory=dict)
    event_ports: Dict[str, str] = field(default_factory=dict)  # name -> 'in' | 'out'
    fixed: Dict[str, str] = field(default_factory=dict)
    dynamics: Optional[Dynamics] = None
    child_instances: List[str] = field(default_factory=list)
    event_connections: List[EventConnectionDecl] = field(default_factory=list)
    has_structure: bool = False
    file: Optional[str] = None
    line: Optional[int] = None
    xml: Optional[str] = None  # the definition as read, so writers can carry user types along


#: namespace of nmlsim's own elements inside a NeuroML/LEMS ``<annotation>``
NMLSIM_NS = "https://nmlsim.org/ns/annotation"


@dataclass
class Component:
    """One component as written in a file.

    ``tag`` is the element name, ``type`` the ComponentType name when known at read
    time (element name, or ``type=`` of a LEMS ``<Component>``), ``type_attr`` the raw
    ``type=`` attribute of a NeuroML element such as ``<gate type="gateHHrates">``.
    """
    tag: str
    id: Optional[str] = None
    type: Optional[str] = None
    type_attr: Optional[str] = None
    attrs: Dict[str, str] = field(default_factory=dict)
    children: List["Component"] = field(default_factory=list)
    file: Optional[str] = None
    line: Optional[int] = None
    #: column arrays standing in for many child elements (NeuroML HDF5 networks)
    data: Optional[dict] = None
    #: nmlsim's own elements found in this element's ``<annotation>`` (namespace
    #: :data:`NMLSIM_NS`), read as components: e.g. a kinetic scheme's NEURON INITIAL block
    extensions: List["Component"] = field(default_factory=list)

    def where(self) -> dict:
        return {"file": self.file, "line": self.line, "element": self.tag + (f" id='{self.id}'" if self.id else "")}

    def find_child(self, tag: str) -> Optional["Component"]:
        for c in self.children:
            if c.tag == tag:
                return c
        return None


class LemsModel:
    """All types, components, units and simulation elements of a loaded model."""

    def __init__(self, units: Optional[UnitRegistry] = None):
        self.units = (units or default_registry()).copy()
        self.types: Dict[str, ComponentType] = {}
        self.components: Dict[str, Component] = {}  # top-level components by id
        self.targets: List[str] = []
        self.constants: Dict[str, Tuple[str, str]] = {}
        self.files: List[str] = []
        self._resolved: Dict[str, ComponentType] = {}

    # -- types -------------------------------------------------------------
    def add_type(self, ct: ComponentType) -> None:
        self.types[ct.name] = ct
        self._resolved.clear()

    def has_type(self, name: Optional[str]) -> bool:
        return name is not None and name in self.types

    def ancestry(self, name: str) -> List[str]:
        out, seen = [], set()
        while name is not None:
            if name in seen:
                raise ModelError(f"ComponentType '{name}' extends itself")
            seen.add(name)
            ct = self.types.get(name)
            if ct is None:
                raise ModelError(f"unknown ComponentType '{name}'")
            out.append(name)
            name = ct.extends
        return out

    def is_a(self, name: str, base: str) -> bool:
        try:
            return base in self.ancestry(name)
        except ModelError:
            return False

    def resolved(self, name: str) -> ComponentType:
        """The type with its extends chain merged in."""
        r = self._resolved.get(name)
        if r is not None:
            return r
        chain = self.ancestry(name)
        m = ComponentType(name=name, extends=self.types[name].extends,
                          file=self.types[name].file, line=self.types[name].line)
        for tname in reversed(chain):
            t = self.types[tname]
            # A name defined again further down the chain takes the new kind: channelDensityVShift's
            # Parameter vShift replaces the Constant vShift = 0 of channelDensity, which it extends.
            for own, others in (("parameters", ("constants", "derived_parameters")),
                                ("constants", ("parameters", "derived_parameters")),
                                ("derived_parameters", ("parameters", "constants"))):
                for nm in getattr(t, own):
                    for o in others:
                        getattr(m, o).pop(nm, None)
            for attr in ("parameters", "derived_parameters", "constants", "exposures", "requirements",
                         "properties", "links", "children", "child", "attachments", "component_refs",
                         "event_ports", "fixed"):
                getattr(m, attr).update(getattr(t, attr))
            for attr in ("index_parameters", "texts", "paths"):
                getattr(m, attr).extend(x for x in getattr(t, attr) if x not in getattr(m, attr))
            if t.dynamics is not None:
                m.dynamics = t.dynamics
            if t.has_structure:
                m.child_instances = list(t.child_instances)
                m.event_connections = list(t.event_connections)
                m.has_structure = True
        for p in m.fixed:
            m.parameters.pop(p, None)
        self._resolved[name] = m
        return m

    # -- components --------------------------------------------------------
    def add_component(self, comp: Component) -> None:
        if comp.id is not None:
            self.components[comp.id] = comp

    def component(self, cid: str, *, where: Optional[dict] = None) -> Component:
        c = self.components.get(cid)
        if c is None:
            raise ModelError(f"reference to unknown component '{cid}'", **(where or {}))
        return c

    def type_of(self, comp: Component, parent_type: Optional[ComponentType] = None) -> str:
        """Work out the ComponentType name of ``comp`` (see :class:`Component`)."""
        if parent_type is not None:
            slot_type = parent_type.child.get(comp.tag) or parent_type.children.get(comp.tag)
            if slot_type is not None:
                t = comp.type_attr or comp.type
                if t and self.has_type(t):
                    return t
                if comp.type_attr and not self.has_type(comp.tag):
                    # <forwardRate type="myRate"> with myRate defined nowhere: an error, not
                    # the slot's abstract type (which would silently give a zero rate)
                    raise ModelError(f"unknown component type '{comp.type_attr}'", **comp.where())
                if self.has_type(comp.tag) and self.is_a(comp.tag, slot_type):
                    return comp.tag
                return slot_type
        if comp.type and self.has_type(comp.type):
            return comp.type
        if comp.type_attr and self.has_type(comp.type_attr):
            return comp.type_attr
        if self.has_type(comp.tag):
            return comp.tag
        raise ModelError(f"unknown component type '{comp.type or comp.type_attr or comp.tag}'", **comp.where())

    def slot_for(self, parent_type: ComponentType, comp: Component, comp_type: str) -> Optional[Tuple[str, str]]:
        """Which Child/Children slot of ``parent_type`` ``comp`` fills: (kind, name)."""
        if comp.tag in parent_type.child:
            return ("child", comp.tag)
        if comp.tag in parent_type.children:
            return ("children", comp.tag)
        for name, t in parent_type.child.items():
            if self.is_a(comp_type, t):
                return ("child", name)
        for name, t in parent_type.children.items():
            if self.is_a(comp_type, t):
                return ("children", name)
        return None
