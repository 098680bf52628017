"""Flatten LEMS component trees into vectorisable groups (the IR).

A :class:`Group` is ``n`` identical instances of one component tree: a population of
cells, the synapses of one projection, the inputs of one input list, or the single
root of the simulation (network, tissue...).  Every variable of every node of the tree
gets a key ``"<node path>/<name>"`` in its group; expressions are parsed once and their
names resolved to keys.  References that leave the group (a synapse's requirement ``v``
met by its host cell, a cell's ``iSyn`` summing its attached synapses, a gap junction's
``peer/v``) become synthetic *gather* and *scatter* variables, so that the code
generator sees one flat, topologically sortable set of equations per network.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelError, UnitError, UnsupportedFeature
from . import expr as E
from .model import Component, ComponentType, EventHandler, LemsModel


@dataclass
class KineticScheme:
    """A kinetic scheme of one group: its occupancy keys, its transitions as (from, to, forward
    rate key, reverse rate key), and how NEURON starts it (:class:`KineticInitial`, or None for the
    steady state with the first state's balance replaced by the conservation of occupancy)."""
    states: List[str]
    pairs: List[Tuple[str, str, str, str]]
    initial: Optional["KineticInitial"] = None


@dataclass
class KineticInitial:
    """The linear system a mod file's INITIAL block solves in place of the exact steady state
    (``<nmlsim:kineticInitial gate="...">`` in the channel's annotation): the balance of ``replaced`` is replaced
    by the conservation of occupancy, and each (to, from, rate key) of ``inflows`` is the rate at
    which the balance of ``to`` takes occupancy from ``from``, in place of the scheme's."""
    replaced: str
    inflows: List[Tuple[str, str, str]]


def _kinetic_initial(node, ks, states, edges) -> Optional[KineticInitial]:
    # on the gate, or (NeuroML allows no annotation in a gateKS) on its channel, naming the gate
    near = node.comp.extensions + (node.parent.comp.extensions if node.parent is not None else [])
    spec = [x for x in near if x.tag == "kineticInitial" and x.attrs.get("gate", node.comp.id) == node.comp.id]
    if not spec:
        return None
    x = spec[0]
    sv = ks.state_variable

    def state(name, attr, el):
        if name not in states:
            raise ModelError(f"kineticInitial: {attr} '{name}' is not a state of the kinetic scheme "
                             f"(states: {', '.join(states)})", **el.where())
        return states[name].key(sv)

    replaced = state(x.attrs.get("conservationReplaces", next(iter(states), "")), "conservationReplaces", x)
    inflows = []
    for f in x.children:
        if f.tag != "inflow":
            raise ModelError(f"kineticInitial: unknown element <{f.tag}> (only <inflow>)", **f.where())
        e = edges.get(f.attrs.get("transition"))
        if e is None:
            raise ModelError(f"kineticInitial: inflow names unknown transition '{f.attrs.get('transition')}'",
                             **f.where())
        which = f.attrs.get("rate", {"forwardTransition": "forward", "reverseTransition": "reverse"}.get(e.comp.tag))
        if which not in ("forward", "reverse"):
            raise ModelError("kineticInitial: inflow needs rate=\"forward\" or rate=\"reverse\"", **f.where())
        rate = e.key(ks.forward_rate if which == "forward" else ks.reverse_rate)
        inflows.append((state(f.attrs.get("to"), "to", f), state(f.attrs.get("from"), "from", f), rate))
    return KineticInitial(replaced, inflows)


@dataclass
class Link:
    """From each instance of a group to one instance of ``group`` (idx None: all to 0)."""
    group: "Group"
    node: "Node"
    idx: Optional[np.ndarray] = None


@dataclass
class Derived:
    key: str
    kind: str  # 'expr' | 'cases' | 'gather' | 'scatter' | 'reduce'
    ast: object = None
    cases: Optional[List[Tuple[object, object]]] = None  # (cond ast or None, value ast)
    # gather: value of src_key in src group at idx
    src: Optional["Group"] = None
    src_key: Optional[str] = None
    idx: Optional[np.ndarray] = None
    # scatter / reduce: op over terms
    op: str = "add"
    terms: List = field(default_factory=list)  # reduce: local keys; scatter: (group, key, idx)
    regime: Optional[Tuple[str, int]] = None  # (regime key, index) for regime-local derived
    # gather: the links it follows (parents; or one 'peer'-like link when via_link)
    chain: Optional[List["Link"]] = None
    via_link: bool = False


@dataclass
class Handler:
    node: "Node"
    kind: str  # 'start' | 'condition' | 'event' | 'entry'
    test: object = None
    port: Optional[str] = None
    assignments: List[Tuple[str, object]] = field(default_factory=list)
    event_outs: List[str] = field(default_factory=list)
    transition: Optional[int] = None
    regime: Optional[Tuple[str, int]] = None  # active only in this regime


#: names of white noise in expressions (nmlsim's extension, Brian2's spelling): xi, xi_1, xi_exc...
_WHITE_NOISE = re.compile(r"^xi(_[A-Za-z0-9_]+)?$")

_SEG = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\*|([A-Za-z_][A-Za-z0-9_]*)\s*=\s*'([^']*)')\])?$")


class Node:
    """One component of a group's tree."""

    def __init__(self, group: "Group", comp: Component, tname: str, parent: Optional["Node"], name: str,
                 aliases=()):
        self.group = group
        self.comp = comp
        self.tname = tname
        self.ct: ComponentType = group.model.resolved(tname)
        self.parent = parent
        self.name = name
        self.aliases = {name, *[a for a in aliases if a]}
        self.prefix = name if parent is None or parent.prefix == "" else f"{parent.prefix}/{name}"
        if parent is None:
            self.prefix = ""
        self.child: Dict[str, Node] = {}
        self.children: Dict[str, List[Node]] = {}
        self.subnodes: List[Node] = []  # every node below, in order
        self.params: Dict[str, Optional[float]] = {}
        self.texts: Dict[str, str] = {}
        self.paths: Dict[str, str] = {}
        self.links: Dict[str, str] = {}
        self.refs: Dict[str, Component] = {}
        self.local: Dict[str, str] = {}  # variable name -> kind

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def where(self) -> dict:
        return self.comp.where()

    def find(self, alias: str) -> Optional["Node"]:
        for n in self.subnodes:
            if alias in n.aliases:
                return n
        return None

    def __repr__(self):
        return f"Node({self.tname}:{self.prefix or '<root>'})"


class Group:
    """``n`` instances of one flattened component tree."""

    def __init__(self, gid: int, name: str, model: LemsModel, comp: Component, n: int,
                 tname: Optional[str] = None, aliases=(), skip_types=()):
        self.gid = gid
        self.skip_types = tuple(skip_types)
        self.name = name
        self.model = model
        self.n = int(n)
        self.parent: Optional[Link] = None
        self.links: Dict[str, Link] = {}  # named links out of this group, e.g. 'peer'
        self.attached: Dict[Tuple[str, str], List["Group"]] = {}  # (node prefix, slot) -> groups
        self.per_instance: Dict[str, np.ndarray] = {}  # key -> array(n)
        self.params: Dict[str, Optional[float]] = {}  # key -> value (None: missing)
        self.state: Dict[str, str] = {}  # key -> dimension
        self.derived: Dict[str, Derived] = {}
        self.rates: Dict[str, object] = {}  # state key -> ast
        self.rate_cases: Dict[str, List[Tuple[Tuple[str, int], object]]] = {}  # regime-dependent rates
        self.handlers: List[Handler] = []
        self.internal: List[Tuple[Node, str, Node, str]] = []
        self.regimes: Dict[str, Tuple[Node, List[str], int]] = {}  # regime key -> node, names, initial
        self.nodes: List[Node] = []
        self.kinetic_init: List[KineticScheme] = []
        self.has_random = False
        #: per-instance keys of white-noise sources (``xi``): N(0, 1)/sqrt(dt), drawn afresh each step
        self.noise: List[str] = []
        self.merged = False  # one instance per host carries the sum of several connections
        #: fused input lists: the component id of each instance (None: all are ``comp``'s)
        self.member_ids: Optional[np.ndarray] = None
        self._syn = 0
        self.root = self._build(comp, tname or model.type_of(comp), None, "", aliases)

    # ------------------------------------------------------------------ build
    def _build(self, comp: Component, tname: str, parent: Optional[Node], name: str, aliases) -> Node:
        node = Node(self, comp, tname, parent, name, aliases)
        self.nodes.append(node)
        a = parent
        while a is not None:
            a.subnodes.append(node)
            a = a.parent
        ct = node.ct
        m = self.model
        where = comp.where()
        for pname, dim in ct.parameters.items():
            raw = comp.attrs.get(pname)
            if raw is None:
                node.params[pname] = None
                continue
            try:
                node.params[pname] = m.units.parse(raw, dim)
            except UnitError as e:
                raise UnitError(f"parameter {pname}: {e.message}", **where) from None
        for pname, val in ct.fixed.items():
            node.params[pname] = m.units.parse(val)
        for pname, (dim, default) in ct.properties.items():
            raw = comp.attrs.get(pname, default)
            node.params[pname] = None if raw is None else m.units.parse(raw, dim)
        for pname in ct.index_parameters:
            raw = comp.attrs.get(pname)
            node.params[pname] = None if raw is None else float(raw)
        for tn in ct.texts:
            if tn in comp.attrs:
                node.texts[tn] = comp.attrs[tn]
        for pn in ct.paths:
            if pn in comp.attrs:
                node.paths[pn] = comp.attrs[pn]
        for ln in ct.links:
            if ln in comp.attrs:
                node.links[ln] = comp.attrs[ln]
        for rn in ct.component_refs:
            if rn in comp.attrs:
                node.refs[rn] = m.component(comp.attrs[rn], where=where)
        # Child slots given by reference attribute (NeuroML: <cell morphology="m1">)
        for slot in ct.child:
            if slot in comp.attrs and comp.attrs[slot] in m.components and slot not in ct.parameters:
                ref = m.components[comp.attrs[slot]]
                self._add_child(node, ref, "child", slot)
        for sub in comp.children:
            try:
                stype = m.type_of(sub, ct)
            except ModelError:
                if sub.tag in ("notes", "annotation", "property", "include"):
                    continue
                raise
            if self.skip_types and any(m.is_a(stype, st) for st in self.skip_types):
                continue
            slot = m.slot_for(ct, sub, stype)
            if slot is None:
                sct = m.resolved(stype)
                if sct.dynamics is None and not sct.parameters:
                    continue
                raise ModelError(f"<{sub.tag}> is not allowed inside a {tname}", **sub.where())
            self._add_child(node, sub, slot[0], slot[1], stype)
        for rn in ct.child_instances:
            ref = node.refs.get(rn)
            if ref is None:
                raise ModelError(f"{tname} needs a '{rn}' reference", **where)
            self._add_child(node, ref, "child", rn, aliases=(ref.id,))
        self._fix_segments(node)
        return node

    def _add_child(self, node: Node, comp: Component, kind: str, slot: str, stype=None, aliases=()):
        stype = stype or self.model.type_of(comp, node.ct)
        if kind == "child":
            child = self._build(comp, stype, node, slot, (comp.id, *aliases))
            node.child[slot] = child
        else:
            nm = comp.id if comp.id is not None else f"{slot}{len(node.children.get(slot, []))}"
            child = self._build(comp, stype, node, nm, aliases)
            node.children.setdefault(slot, []).append(child)

    def _fix_segments(self, node: Node) -> None:
        """A morphology of several segments reaches the flattener only where the cell is not
        in a population (populations lower it to compartments: graph.multicompartment)."""
        segs = node.children.get("segments")
        if not segs or node.tname != "morphology" and not self.model.is_a(node.tname, "morphology"):
            return
        owner = node.parent
        if owner is not None and not self.model.is_a(owner.tname, "cell"):
            return  # a morphology inside a LEMS type of its own (a two-compartment cell): data it reads
        if len(segs) > 1:
            raise UnsupportedFeature(
                f"a multi-compartment cell ({len(segs)} segments) runs only as cells of a population "
                "(a network), not as the simulation target itself", **node.where())

    # -------------------------------------------------------------- names
    def local_names(self, node: Node) -> Dict[str, str]:
        if node.local:
            return node.local
        ct = node.ct
        d = {}
        for p in node.params:
            d[p] = "param"
        for p in ct.constants:
            d[p] = "const"
        for p in ct.derived_parameters:
            d[p] = "derived"
        if ct.dynamics is not None:
            for s in ct.dynamics.state:
                d[s] = "state"
            for dv in ct.dynamics.derived:
                d[dv.name] = "derived"
            for r in ct.dynamics.regimes:
                for dv in r.derived:
                    d[dv.name] = "derived"
        node.local = d
        return d

    def _syn_key(self, base: str) -> str:
        self._syn += 1
        return f"__{base}{self._syn}"

    def ancestor_lookup(self, node: Node, name: str):
        """Find ``name`` in ``node``'s ancestors (requirement resolution): (group, node) or None."""
        g, cur = self, node.parent
        chain: List[Link] = []
        while True:
            while cur is not None:
                if name in g.local_names(cur):
                    return g, cur, chain
                cur = cur.parent
            if g.parent is None:
                return None
            chain.append(g.parent)
            cur = g.parent.node
            # the parent node itself is searched first in the parent group
            if name in g.parent.group.local_names(cur):
                return g.parent.group, cur, chain
            g = g.parent.group
            cur = cur.parent

    def gather(self, chain: List[Link], key: str, via_link: bool = False) -> str:
        """A synthetic variable of this group holding ``key`` of the group at the end of ``chain``."""
        idx = None
        src = self
        for link in chain:
            li = link.idx if link.idx is not None else np.zeros(src.n, dtype=np.int64)
            idx = li if idx is None else li[idx]
            src = link.group
        if src.n == 1:
            idx = None
        k = self._syn_key("g")
        self.derived[k] = Derived(k, "gather", src=src, src_key=key, idx=idx, chain=list(chain), via_link=via_link)
        return k

    def resolve_name(self, node: Node, name: str, *, where=None) -> object:
        """Map a name used in ``node``'s expressions to an AST leaf."""
        loc = self.local_names(node)
        if name in loc:  # a local variable shadows the time 't' (e.g. a timeCourse's exposure)
            if loc[name] == "const":
                dim, val = node.ct.constants[name]
                return ("num", self.model.units.parse(val))
            return ("name", node.key(name))
        if name == "t":
            return ("name", "t")
        if name in self.model.constants:
            return ("num", self.model.units.parse(self.model.constants[name][1]))
        found = self.ancestor_lookup(node, name)
        if found is not None:
            g, anc, chain = found
            kind = g.local_names(anc)[name]
            if kind == "const":
                return ("num", self.model.units.parse(anc.ct.constants[name][1]))
            if g is self:
                return ("name", anc.key(name))
            return ("name", self.gather(chain, anc.key(name)))
        if _WHITE_NOISE.match(name):
            # Brian2's white noise: a Wiener term of the TimeDerivative it appears in (docs/features.md)
            key = node.key(f"__{name}")
            if key not in self.per_instance:
                self.per_instance[key] = np.zeros(self.n)
                self.noise.append(key)
            return ("name", key)
        raise ModelError(f"'{name}' is not defined for {node.tname}" +
                         (f" '{node.comp.id}'" if node.comp.id else "") +
                         " (not a parameter, variable or requirement met by a parent)", **(where or node.where()))

    def resolve_expr(self, node: Node, text: str, *, where=None):
        try:
            ast = E.parse(text)
        except E.ExpressionError as e:
            raise e.located(**(where or node.where())) from None
        if E.has_random(ast):
            self.has_random = True
        cache = {}

        def fn(nm):
            if nm not in cache:
                cache[nm] = self.resolve_name(node, nm, where=where)
            return cache[nm]
        return E.rename(ast, fn)

    # ------------------------------------------------------------- select
    def resolve_select(self, node: Node, dv) -> Derived:
        path = dv.select.strip()
        reduce = dv.reduce
        segs = [s for s in path.split("/") if s]
        # current positions: list of (group, node, chain)
        pos = [(self, node, [])]
        for i, seg in enumerate(segs[:-1]):
            m = _SEG.match(seg)
            if not m:
                raise ModelError(f"cannot understand select path '{path}'", **node.where())
            name, fkey, fval = m.group(1), m.group(3), m.group(4)
            nxt = []
            for g, nd, chain in pos:
                if name in nd.child:
                    nxt.append((g, nd.child[name], chain))
                elif name in nd.children:
                    for c in nd.children[name]:
                        if fkey is None or c.texts.get(fkey) == fval:
                            nxt.append((g, c, chain))
                elif name in nd.ct.attachments:
                    for ag in g.attached.get((nd.prefix, name), []):
                        if fkey is None or ag.root.texts.get(fkey) == fval:
                            nxt.append((ag, ag.root, chain + [("scatter", ag)]))
                elif name in g.links and nd is g.root:
                    link = g.links[name]
                    nxt.append((link.group, link.node, chain + [("link", link)]))
                else:
                    sub = nd.find(name)
                    if sub is not None:
                        nxt.append((g, sub, chain))
            pos = nxt
        last = segs[-1]
        terms = []
        for g, nd, chain in pos:
            if last not in g.local_names(nd):
                found = g.ancestor_lookup(nd, last) if nd is not g.root or g.parent is not None else None
                if found is None:
                    continue
            terms.append((g, nd, chain))
        key = node.key(dv.name)
        if not terms:
            identity = 1.0 if reduce == "multiply" else 0.0
            return Derived(key, "expr", ast=("num", identity))
        out_terms = []
        for g, nd, chain in terms:
            leaf = g.resolve_name(nd, last)
            if not chain:
                out_terms.append(leaf)
                continue
            # walk the chain back: a scatter (attachments) or a link (peer)
            if leaf[0] == "num":
                lkey = g._syn_key("c")
                g.derived[lkey] = Derived(lkey, "expr", ast=leaf)
                leaf = ("name", lkey)
            kind, obj = chain[-1]
            if len(chain) > 1:
                raise UnsupportedFeature(f"select path '{path}' crosses more than one group boundary",
                                         **node.where())
            if kind == "scatter":
                out_terms.append(("scatter", obj, leaf[1]))
            else:
                out_terms.append(("name", self.gather([obj], leaf[1], via_link=True)))
        scat = [t for t in out_terms if t[0] == "scatter"]
        if scat:
            k = self._syn_key("s")
            op = reduce or "add"
            self.derived[k] = Derived(k, "scatter", op=op,
                                      terms=[(ag, lk, ag.parent.idx) for _, ag, lk in scat])
            rest = [t for t in out_terms if t[0] != "scatter"]
            out_terms = rest + [("name", k)]
        if len(out_terms) == 1:
            return Derived(key, "expr", ast=out_terms[0])
        op = "*" if reduce == "multiply" else "+"
        ast = out_terms[0]
        for t in out_terms[1:]:
            ast = ("bin", op, ast, t)
        return Derived(key, "expr", ast=ast)

    # ----------------------------------------------------------- equations
    def compile_equations(self) -> None:
        """Resolve every node's parameters, dynamics and structure into keys and ASTs."""
        for node in self.nodes:
            self._node_equations(node)
        # A name declared both StateVariable and DerivedVariable (pinskyRinzelCA3Cell's
        # Sisat) is recomputed every step, as in jLEMS: the derived definition wins.
        for k in [k for k in self.state if k in self.derived and k not in self.rates]:
            del self.state[k]
        for k, v in self.per_instance.items():
            self.params.pop(k, None)

    def _node_equations(self, node: Node) -> None:
        ct = node.ct
        for p, v in node.params.items():
            self.params[node.key(p)] = v
        for p, (dim, val) in ct.derived_parameters.items():
            self.derived[node.key(p)] = Derived(node.key(p), "expr", ast=self.resolve_expr(node, val))
        self._structure_events(node)
        dyn = ct.dynamics
        if dyn is None:
            return
        for s, dim in dyn.state.items():
            self.state[node.key(s)] = dim
        for dv in dyn.derived:
            self.derived[node.key(dv.name)] = self._derived(node, dv)
        for var, val in dyn.time_derivatives.items():
            if var not in dyn.state:
                raise ModelError(f"TimeDerivative of '{var}', which is not a StateVariable", **node.where())
            self.rates[node.key(var)] = self.resolve_expr(node, val)
        for h in dyn.handlers:
            hh = self._handler(node, h)
            if h.kind == "start" and len(hh.assignments) > 1:
                # OnStart assignments run one by one, each seeing derived values recomputed
                # after the previous one (e.g. v = v0, then h = h_inf(v))
                for a in hh.assignments:
                    self.handlers.append(Handler(node=node, kind="start", assignments=[a]))
            else:
                self.handlers.append(hh)
        for ks in dyn.kinetic:
            self._kinetic(node, ks)
        if dyn.regimes:
            rkey = node.key("__regime")
            names = [r.name for r in dyn.regimes]
            initial = next((i for i, r in enumerate(dyn.regimes) if r.initial), 0)
            self.regimes[rkey] = (node, names, initial)
            self.state[rkey] = "none"
            for ri, r in enumerate(dyn.regimes):
                reg = (rkey, ri)
                for var, val in r.time_derivatives.items():
                    self.rate_cases.setdefault(node.key(var), []).append((reg, self.resolve_expr(node, val)))
                for dv in r.derived:
                    d = self._derived(node, dv)
                    prev = self.derived.get(d.key)
                    d.regime = reg
                    if prev is not None and prev.regime is not None:
                        # several regimes define it: chain as cases on the regime index
                        d = Derived(d.key, "cases", cases=[(("cmp", "==", ("name", rkey), ("num", float(ri))), d.ast)]
                                    + (prev.cases or []))
                    self.derived[d.key] = d
                for h in r.handlers:
                    hh = self._handler(node, h)
                    hh.regime = reg
                    if h.transition is not None:
                        hh.transition = names.index(h.transition) if h.transition in names else None
                        if hh.transition is None:
                            raise ModelError(f"transition to unknown regime '{h.transition}'", **node.where())
                    self.handlers.append(hh)

    def _derived(self, node: Node, dv) -> Derived:
        key = node.key(dv.name)
        if dv.cases is not None:
            cases = []
            for cond, val in dv.cases:
                cases.append((self.resolve_expr(node, cond) if cond else None, self.resolve_expr(node, val)))
            return Derived(key, "cases", cases=cases)
        if dv.select:
            return self.resolve_select(node, dv)
        if dv.value is None:
            raise ModelError(f"DerivedVariable '{dv.name}' has neither value nor select", **node.where())
        return Derived(key, "expr", ast=self.resolve_expr(node, dv.value))

    def _handler(self, node: Node, h: EventHandler) -> Handler:
        out = Handler(node=node, kind=h.kind, port=h.port, event_outs=list(h.event_outs))
        if h.test:
            out.test = self.resolve_expr(node, h.test)
        loc = self.local_names(node)
        dyn = node.ct.dynamics
        for a in h.assignments:
            if loc.get(a.variable) == "derived" and dyn is not None and a.variable in dyn.state:
                continue  # declared both ways: the derived value, recomputed each step, wins (as in jLEMS)
            if loc.get(a.variable) != "state":
                raise ModelError(f"StateAssignment to '{a.variable}', which is not a StateVariable of "
                                 f"{node.tname}", **node.where())
            out.assignments.append((node.key(a.variable), self.resolve_expr(node, a.value)))
        return out

    def _kinetic(self, node: Node, ks) -> None:
        states = node.children.get(ks.nodes, [])
        edges = node.children.get(ks.edges, [])
        by_id = {s.comp.id: s for s in states}
        rates: Dict[str, List] = {node_.key(ks.state_variable): [] for node_ in states}
        pairs = []
        for e in edges:
            a = by_id.get(e.links.get(ks.edge_source))
            b = by_id.get(e.links.get(ks.edge_target))
            if a is None or b is None:
                raise ModelError(f"kinetic transition '{e.comp.id}' links unknown states", **e.where())
            xa, xb = ("name", a.key(ks.state_variable)), ("name", b.key(ks.state_variable))
            rf, rr = ("name", e.key(ks.forward_rate)), ("name", e.key(ks.reverse_rate))
            flux = ("bin", "-", ("bin", "*", rf, xa), ("bin", "*", rr, xb))
            rates[a.key(ks.state_variable)].append(("neg", flux))
            rates[b.key(ks.state_variable)].append(flux)
            pairs.append((a.key(ks.state_variable), b.key(ks.state_variable), e.key(ks.forward_rate),
                          e.key(ks.reverse_rate)))
        for k, terms in rates.items():
            ast = terms[0] if terms else ("num", 0.0)
            for t in terms[1:]:
                ast = ("bin", "+", ast, t)
            self.rates[k] = ast
        self.kinetic_init.append(KineticScheme(list(rates), pairs,
                                               _kinetic_initial(node, ks, by_id, {e.comp.id: e for e in edges})))

    def _structure_events(self, node: Node) -> None:
        ct = node.ct
        for ec in ct.event_connections:
            src = self._event_end(node, ec.source)
            dst = self._event_end(node, ec.target)
            if src is None or dst is None:
                continue
            sport = ec.source_port or _default_port(src, "out") or _default_port(src, "in")
            dport = ec.target_port or _default_port(dst, "in")
            if sport is None or dport is None:
                continue
            self.internal.append((src, sport, dst, dport))

    def _event_end(self, node: Node, name: str) -> Optional[Node]:
        if name in (None, "this", "."):
            return node
        if name == "parent":
            return node.parent
        if name in node.paths:
            target = node.paths[name].strip()
            for part in target.split("/"):
                if part in (".", ""):
                    continue
                if part in ("..",):
                    node = node.parent
                    continue
                nxt = node.find(part)
                if nxt is None:
                    raise ModelError(f"path '{target}' names no child of {node.tname}", **node.where())
                node = nxt
            return node
        if name in node.child:
            return node.child[name]
        return node.find(name)

    # ------------------------------------------------------------ lookups
    def where_of(self, key: str) -> dict:
        """File/line/element of the node that owns variable ``key``."""
        prefix = key.rsplit("/", 1)[0] if "/" in key else ""
        for nd in self.nodes:
            if nd.prefix == prefix:
                return nd.where()
        return self.root.where()

    def node_at(self, parts: List[str]) -> Tuple[Node, str]:
        """Navigate a recording path (child ids or slot names) to (node, variable name)."""
        nd = self.root
        for p in parts[:-1]:
            nxt = None
            if p in nd.child:
                nxt = nd.child[p]
            else:
                for lst in nd.children.values():
                    for c in lst:
                        if p in c.aliases:
                            nxt = c
                            break
                    if nxt:
                        break
            if nxt is None:
                nxt = nd.find(p)
            if nxt is None:
                raise ModelError(f"'{p}' is not a child of {nd.tname} in group {self.name}")
            nd = nxt
        return nd, parts[-1]


def _default_port(node: Node, direction: str) -> Optional[str]:
    for name, d in node.ct.event_ports.items():
        if d == direction:
            return name
    return None


# --------------------------------------------------------------------------- merging
def _inline_eval(g: Group, ast, env: dict, memo: dict):
    """Evaluate ``ast`` of group ``g`` numerically, inlining its derived variables; names
    that are neither in ``env`` nor derived (gathers, scatters) get a fixed random value."""
    def value(name):
        if name in env:
            return env[name]
        if name in memo:
            return memo[name]
        d = g.derived.get(name)
        if d is not None and d.kind == "expr":
            v = _inline_eval(g, d.ast, env, memo)
        elif d is not None and d.kind == "cases":
            v = 0.0
            for c, val in d.cases:
                if c is None or bool(_inline_eval(g, c, env, memo)):
                    v = _inline_eval(g, val, env, memo)
                    break
        elif name in g.params and g.params[name] is not None:
            v = g.params[name]
        else:
            # a probe value that is the same in every process (str hashes are salted per run)
            v = float(np.random.default_rng(zlib.crc32(name.encode())).uniform(0.5, 1.5))
        memo[name] = v
        return v
    names = {n: value(n) for n in E.names(ast)}
    code = E.to_python(ast, lambda n: f"_v[{n!r}]")
    return eval(code, {"_v": names, **E.python_namespace(lambda x: 0.5 * x)})


def linear_event_synapse(g: Group) -> bool:
    """True if instances of ``g`` on the same host can be merged into one.

    That holds when the state is linear and homogeneous (every rate and every exposed
    value of the root is a linear function of the states with state-free coefficients,
    zero at zero state), the state starts at zero, nothing but incoming events changes
    it, and each event adds a state-free amount (``g = g + weight * gbase``).  The sum of
    such instances then obeys the same equations, so one instance per host can carry the
    sum of all connections' events.
    """
    if g.regimes or g.kinetic_init or g.internal or not g.state:
        return False
    if any(k != "weight" for k in g.per_instance):
        return False
    states = list(g.state)
    sset = set(states)
    for h in g.handlers:
        if h.kind == "start":
            continue
        if h.kind != "event" or h.test is not None or h.event_outs:
            return False
        for key, ast in h.assignments:
            if not (ast[0] == "bin" and ast[1] == "+"):
                return False
            a, b = ast[2], ast[3]
            inc = b if a == ("name", key) else a if b == ("name", key) else None
            if inc is None or E.names(inc) & sset or _depends_on_state(g, inc, sset):
                return False
    wkey = g.root.key("weight")
    for d in g.derived.values():
        asts = [d.ast] if d.kind == "expr" else [x for c in (d.cases or []) for x in c if x is not None]
        if any(wkey in E.names(a) for a in asts):
            return False
    if any(wkey in E.names(a) for a in g.rates.values()):
        return False
    root_exposed = [g.root.key(n) for n in g.root.ct.exposures if g.root.key(n) in g.derived]
    exprs = [g.rates[k] for k in states if k in g.rates] + [("name", k) for k in root_exposed]
    rng = np.random.default_rng(7)
    try:
        for h in g.handlers:
            if h.kind == "start":
                for key, ast in h.assignments:
                    if abs(_inline_eval(g, ast, {}, {})) > 0:
                        return False
        for ast in exprs:
            for _ in range(2):
                s1 = dict(zip(states, rng.uniform(-1, 1, len(states))))
                s2 = dict(zip(states, rng.uniform(-1, 1, len(states))))
                a = float(rng.uniform(0.5, 2.0))
                mix = {k: a * s1[k] + s2[k] for k in states}
                zero = {k: 0.0 for k in states}
                f1, f2, fm, f0 = (_inline_eval(g, ast, env, {}) for env in (s1, s2, mix, zero))
                scale = max(abs(f1), abs(f2), abs(fm), 1e-300)
                if abs(f0) > 1e-9 * scale or abs(fm - (a * f1 + f2)) > 1e-9 * scale:
                    return False
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        return False
    return True


def _depends_on_state(g: Group, ast, sset, seen=None) -> bool:
    seen = set() if seen is None else seen
    for n in E.names(ast):
        if n in sset:
            return True
        if n in seen:
            continue
        seen.add(n)
        d = g.derived.get(n)
        if d is None:
            continue
        asts = [d.ast] if d.kind == "expr" else [x for c in (d.cases or []) for x in c if x is not None]
        if d.kind in ("gather", "scatter"):
            continue
        if any(_depends_on_state(g, a, sset, seen) for a in asts):
            return True
    return False
