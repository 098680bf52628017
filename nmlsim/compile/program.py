"""The lowered program: one network's equations as flat, named arrays, ready for a backend.

Every variable of every group gets a name (``x<k>``) and, where it varies per instance, an
array in ``V``; uniform parameters and derived values depending on nothing but parameters
are folded into ``literals``; the derived values of all groups are put in one topological
``order`` (gathers and scatters between groups included); ``rate_keys`` lists the states with
a time derivative (``rate_ast`` gives it), ``handlers`` every OnStart/OnCondition/OnEvent/
OnEntry handler with its name, ``event_fns`` the OnEvent handlers of merged synapses;
``implicit`` the states an implicit phase moves. Each state's update is decided once from
this (``compile/integrators.lower_updates``) and the step's order is ``compile/schedule``.
Backends (``nmlsim/backends``) render it: NumPy functions (``backends/numpy.NumpyCode``,
which the engine's own event phase uses on every backend) or Numba kernels.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from ..errors import ModelError
from ..lems import expr as E
from ..lems.flatten import Derived, Group, Handler
from .streams import Streams, identities

Key = Tuple[int, str]


def derived_deps(g: Group, d: Derived) -> Set[Key]:
    """The (group id, key) values derived value ``d`` of ``g`` is computed from."""
    if d.kind == "expr":
        return {(g.gid, n) for n in E.names(d.ast) if n != "t"}
    if d.kind == "cases":
        out = set()
        for c, v in d.cases:
            if c is not None:
                out |= {(g.gid, n) for n in E.names(c) if n != "t"}
            out |= {(g.gid, n) for n in E.names(v) if n != "t"}
        return out
    if d.kind == "gather":
        return {(d.src.gid, d.src_key)}
    if d.kind == "scatter":
        return {(ag.gid, k) for ag, k, _ in d.terms}
    raise ValueError(d.kind)


class Program:
    """Generated code and data of one network."""

    def __init__(self, groups: List[Group], seed: Optional[int] = None):
        self.groups = groups
        self.by_gid = {g.gid: g for g in groups}
        #: (random() in a model without instance streams: the program's generator)
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        #: the seed of the instances' streams (a fresh one per program when the run has none)
        self.stream_seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (1 << 63))
        self._streams: Dict[int, Streams] = {}
        self.names: Dict[Key, str] = {}
        self.literals: Dict[Key, float] = {}
        self.V: Dict[str, np.ndarray] = {}
        self.state_keys: List[Key] = []
        #: states an implicit phase updates (the cable's v): (v, f, B) V names; the explicit
        #: step writes f = dx/dt and B = ∂f/∂x there instead of moving x
        self.implicit: Dict[Key, Tuple[str, str, str]] = {}
        self._build()

    def streams_for(self, gid: int) -> Streams:
        """The random streams of one group's instances (compile/streams.py): keyed by what
        each instance is (``Group.stream_ids``: population, projection or input list and its
        index there) and the run's seed, so that draws do not depend on how groups were
        built, fused or partitioned."""
        st = self._streams.get(gid)
        if st is None:
            g = self.by_gid[gid]
            ids = getattr(g, "stream_ids", None)
            if ids is None:
                ids = identities(g.name, np.arange(g.n))
            st = self._streams[gid] = Streams(ids, self.stream_seed)
        return st

    def reset_streams(self) -> None:
        """Every stream back to its first draw (the start of a run)."""
        for st in self._streams.values():
            st.reset()

    # ------------------------------------------------------------ naming
    def py(self, gid: int, key: str) -> str:
        k = (gid, key)
        if k not in self.names:
            self.names[k] = f"x{len(self.names)}"
        return self.names[k]

    def name_fn(self, g: Group):
        def fn(key):
            if key == "t":
                return "t"
            lit = self.literals.get((g.gid, key))
            if lit is not None:
                return repr(float(lit))
            if (g.gid, key) in self.missing:
                raise ModelError(f"parameter '{key.rsplit('/', 1)[-1]}' of group '{g.name}' has no value "
                                 f"(set it on the component)", **self.missing[(g.gid, key)])
            return self.py(g.gid, key)
        return fn

    # ------------------------------------------------------------- build
    def _build(self):
        self.missing: Dict[Key, dict] = {}
        for g in self.groups:
            for key, val in g.params.items():
                if val is None:
                    self.missing[(g.gid, key)] = g.root.where()
                else:
                    self.literals[(g.gid, key)] = float(val)
            for key, arr in g.per_instance.items():
                self.V[self.py(g.gid, key)] = np.asarray(arr, dtype=float).copy()
            for key in g.state:
                self.state_keys.append((g.gid, key))
                self.V[self.py(g.gid, key)] = np.zeros(g.n)
        self._fold_constants()
        self.order = self._topo_order()
        self.rate_keys: List[Key] = [(g.gid, key) for g in self.groups for key in g.state
                                     if self.rate_ast(g, key) is not None]
        self.handlers: List[Tuple[Group, Handler, str]] = []
        for g in self.groups:
            for hi, h in enumerate(g.handlers):
                self.handlers.append((g, h, f"h{g.gid}_{hi}"))
        #: gid -> [(handler, name)]: the OnEvent handlers of merged synapse groups, which add
        #: each event's own increment to the instance of its host
        self.event_fns: Dict[int, List[Tuple[Handler, str]]] = {}
        for g, h, fname in self.handlers:
            if g.merged and h.kind == "event" and h.node is g.root:
                self.event_fns.setdefault(g.gid, []).append((h, fname + "_ev"))
        self._check_names()

    def _check_names(self) -> None:
        """Every name the equations read resolves (a parameter without a value is an error
        naming it), and gets its V name in a fixed order: the derived values' order, then
        the rest as the equations meet them."""
        asts = []
        for gid, key in self.order:
            g = self.by_gid[gid]
            self.py(gid, key)
            d = g.derived[key]
            if d.kind == "expr":
                asts.append((g, d.ast))
            elif d.kind == "cases":
                asts += [(g, x) for c in d.cases for x in c if x is not None]
            elif d.kind == "gather":  # (a parent's value read by a child, a host's by its synapse)
                self.name_fn(d.src)(d.src_key)
            elif d.kind == "scatter":  # (children's values summed into their parent)
                for ag, k, _ in d.terms:
                    self.name_fn(ag)(k)
        asts += [(self.by_gid[gid], self.rate_ast(self.by_gid[gid], key)) for gid, key in self.rate_keys]
        for g, h, _ in self.handlers:
            asts += [(g, a) for a in ([h.test] if h.test is not None else []) + [a for _, a in h.assignments]]
        for g, ast in asts:
            fn = self.name_fn(g)
            for n in sorted(E.names(ast)):
                fn(n)

    def _deps(self, g: Group, d: Derived) -> Set[Key]:
        return derived_deps(g, d)

    def _uses_t_or_random(self, g, d) -> bool:
        asts = []
        if d.kind == "expr":
            asts = [d.ast]
        elif d.kind == "cases":
            asts = [x for c in d.cases for x in c if x is not None]
        return any("t" in E.names(a) or E.has_random(a) for a in asts)

    def _fold_constants(self):
        changed = True
        while changed:
            changed = False
            for g in self.groups:
                for key, d in list(g.derived.items()):
                    if (g.gid, key) in self.literals:
                        continue
                    if d.kind in ("expr", "cases") and not self._uses_t_or_random(g, d):
                        deps = self._deps(g, d)
                        if all(k in self.literals for k in deps):
                            env = {k[1]: self.literals[k] for k in deps}
                            val = self._eval_const(g, d, env)
                            if val is not None:
                                self.literals[(g.gid, key)] = val
                                changed = True
                    elif d.kind == "gather" and (d.src.gid, d.src_key) in self.literals:
                        self.literals[(g.gid, key)] = self.literals[(d.src.gid, d.src_key)]
                        changed = True

    def _eval_const(self, g, d, env):
        with np.errstate(all="ignore"):
            if d.kind == "expr":
                return float(E.evaluate(d.ast, env))
            for c, v in d.cases:
                if c is None or bool(E.evaluate(c, env)):
                    return float(E.evaluate(v, env))
            return 0.0

    def _topo_order(self) -> List[Key]:
        todo = [(g.gid, k) for g in self.groups for k in g.derived if (g.gid, k) not in self.literals]
        todo_set = set(todo)
        deps = {}
        for gid, k in todo:
            g = self.by_gid[gid]
            deps[(gid, k)] = sorted(x for x in self._deps(g, g.derived[k]) if x in todo_set)  # stable order
        order, state = [], {}
        for start in todo:  # iterative depth-first search: no recursion limit on big models
            if state.get(start) == 2:
                continue
            stack = [(start, iter(deps[start]))]
            state[start] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    state[node] = 2
                    order.append(node)
                    continue
                st = state.get(nxt)
                if st == 2:
                    continue
                if st == 1:
                    path = [n for n, _ in stack]
                    cyc = " -> ".join(k for _, k in path[path.index(nxt):] + [nxt])
                    raise ModelError(f"derived variables depend on each other in a circle: {cyc}",
                                     **self.by_gid[nxt[0]].where_of(nxt[1]))
                state[nxt] = 1
                stack.append((nxt, iter(deps[nxt])))
        return order

    def rate_ast(self, g: Group, key: str):
        ast = g.rates.get(key)
        cases = g.rate_cases.get(key)
        if cases:
            expr = ast if ast is not None else ("num", 0.0)
            for (rkey, ri), a in cases:
                expr = ("call", "__select", (("cmp", "==", ("name", rkey), ("num", float(ri))), a, expr))
            return expr
        return ast

    def _nonzero_constant(self, g: Group, ast) -> bool:
        """True if ``ast`` is a compile-time constant other than 0."""
        if "t" in E.names(ast) or not self._time_only(g, ast):
            return False
        with np.errstate(all="ignore"):
            v = float(E.evaluate(ast, {n: self.literals[(g.gid, n)] for n in E.names(ast)}))
        return v != 0.0 and v == v

    def _time_only(self, g: Group, ast) -> bool:
        """True if ``ast`` depends on nothing but time and compile-time constants."""
        return not E.has_random(ast) and all(n == "t" or (g.gid, n) in self.literals for n in E.names(ast))

    def declare_implicit(self, keys) -> None:
        """Hand the update of states ``keys`` ((gid, key) pairs) to an implicit phase."""
        for gid, key in keys:
            n = self.by_gid[gid].n
            f, b = f"__f{len(self.implicit)}", f"__b{len(self.implicit)}"
            self.V[f] = np.zeros(n)
            self.V[b] = np.zeros(n)
            self.implicit[(gid, key)] = (self.py(gid, key), f, b)

    # ------------------------------------------------------------ access
    def value(self, gid: int, key: str):
        """Current value of a variable: an array of the group's size, or a float."""
        lit = self.literals.get((gid, key))
        if lit is not None:
            return lit
        nm = self.names.get((gid, key))
        if nm is None or nm not in self.V:
            raise ModelError(f"variable '{key}' is not computed in group '{self.by_gid[gid].name}'")
        return self.V[nm]
