"""IR groups -> generated NumPy functions.

The whole network becomes a handful of straight-line Python functions over flat
arrays (one entry of the namespace ``V`` per state, derived or per-instance variable):

``derived(V, t)``   every time-dependent derived variable of every group, in one global
                    topological order (gathers and scatters between groups included);
``rates(V, t)``     the time derivative of every state variable, as a list;
``h<k>(V, t, m)``   one function per OnStart/OnCondition/OnEvent/OnEntry handler.

Uniform parameters and derived values that depend on nothing but parameters are folded
into literals at compile time.  Generated source is compiled under a pseudo-file name
and kept (``Program.source``) so errors can quote it.
"""
from __future__ import annotations

import linecache
import math
import re
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from ..errors import ModelError, SimulationError
from ..lems import expr as E
from ..lems.flatten import Derived, Group, Handler
from .streams import Streams, identities

Key = Tuple[int, str]


def _bc(x, n):
    """Broadcast ``x`` to a float array of shape (n,) (a view when possible)."""
    if type(x) is np.ndarray and x.shape == (n,):
        return x
    a = np.asarray(x, dtype=float)
    if a.shape == (n,):
        return a
    return np.broadcast_to(a, (n,))


def _bcb(x, n):
    if type(x) is np.ndarray and x.shape == (n,) and x.dtype == bool:
        return x
    a = np.asarray(x, dtype=bool)
    if a.shape == (n,):
        return a
    return np.broadcast_to(a, (n,))


def _phi(z):
    """(e^z - 1)/z, elementwise, 1 + z/2 near z = 0."""
    z = np.asarray(z, dtype=float)
    out = np.expm1(z)
    out /= z
    bad = np.abs(z) < 1e-9
    if bad.any():
        out[bad] = 1.0 + 0.5 * z[bad]
    return out


def _phi1(z):
    return 1.0 + 0.5 * z if -1e-9 < z < 1e-9 else math.expm1(z) / z


def _ix(x, idx):
    """x[idx] for arrays, x itself for scalars (per-event values of merged synapses)."""
    if isinstance(x, np.ndarray) and x.ndim:
        return x[idx]
    return x


def _at(x, i):
    """Element i of an array, or x itself if it is a scalar."""
    try:
        return float(x[i])
    except (TypeError, IndexError):
        return float(x)


class _Fallback(Exception):
    pass


def _is_zero_literal(src: str) -> bool:
    try:
        return float(src) == 0.0
    except ValueError:
        return False


def _scatter_add(idx, vals, nsrc, n):
    return np.bincount(idx, weights=_bc(vals, nsrc), minlength=n)


def _scatter_mul(idx, vals, nsrc, n):
    out = np.ones(n)
    np.multiply.at(out, idx, _bc(vals, nsrc))
    return out


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

    def __init__(self, groups: List[Group], seed: Optional[int] = None, fast_scalars: bool = True):
        self.groups = groups
        self.fast_scalars = fast_scalars
        self.mode_fast = False
        self.by_gid = {g.gid: g for g in groups}
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        #: the seed of the instances' streams (a fresh one per program when the run has none)
        self.stream_seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (1 << 63))
        self._streams: Dict[int, Streams] = {}
        self.names: Dict[Key, str] = {}
        self.literals: Dict[Key, float] = {}
        self.V: Dict[str, np.ndarray] = {}
        self.consts: Dict[str, np.ndarray] = {}  # index arrays and constant arrays
        self.state_keys: List[Key] = []
        self.source = ""
        #: states an implicit phase updates (the cable's v): (v, f, B) V names; the explicit
        #: step writes f = dx/dt and B = ∂f/∂x there instead of moving x
        self.implicit: Dict[Key, Tuple[str, str, str]] = {}
        self._nstep = 0  # steppers made for a subset of the states (named step1, step2...)
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
        # one-instance groups run as Python floats (faster than 1-element arrays); a group
        # with nothing to compute (a network root without dynamics) does not need it
        self.scalar_gids = {g.gid for g in self.groups if g.n == 1 and (g.state or g.derived or g.handlers)
                            } if self.fast_scalars else set()
        self.scalar_arrays = {self.py(g.gid, k) for g in self.groups if g.gid in self.scalar_gids
                              for k in list(g.state) + list(g.per_instance)}
        src = []
        self.handlers: List[Tuple[Group, Handler, str]] = []
        for g in self.groups:
            for hi, h in enumerate(g.handlers):
                self.handlers.append((g, h, f"h{g.gid}_{hi}"))
        for fast in ((False, True) if self.scalar_gids else (False,)):
            self.mode_fast = fast
            sfx = "_fast" if fast else ""
            src.extend(self._derived_src("derived" + sfx))
            src.extend(self._rates_src("rates" + sfx))
            for g, h, fname in self.handlers:
                if fast and g.gid not in self.scalar_gids:
                    continue
                src.extend(self._handler_src(g, h, fname + sfx))
        self.mode_fast = False
        self.event_fns: Dict[int, List[Tuple[Handler, str]]] = {}
        for g, h, fname in self.handlers:
            if g.merged and h.kind == "event" and h.node is g.root:
                src.extend(self._merged_event_src(g, h, fname + "_ev"))
                self.event_fns.setdefault(g.gid, []).append((h, fname + "_ev"))
        self.source = "\n".join(src) + "\n"
        fname = f"<nmlsim-generated-{id(self)}>"
        linecache.cache[fname] = (len(self.source), None, self.source.splitlines(True), fname)
        # (a value folded to a literal may be infinite or NaN: repr gives 'inf' / 'nan')
        ns = {"inf": math.inf, "nan": math.nan, "_np": np, "np": np, "_m": math, "_bc": _bc, "_bcb": _bcb,
              "_scatter_add": _scatter_add,
              "_scatter_mul": _scatter_mul, "_heaviside": E.heaviside, "_factorial": E._factorial_fn,
              "_rng": self.rng, "C": self.consts, "_at": _at,
              "_randu": lambda gid, m, x: self.streams_for(gid).draw(m) * x, "_TRUE1": np.ones(1, dtype=bool),
              "_rand1g": lambda gid, x: self.streams_for(gid).draw_one() * x,
              "_phi": _phi, "_phi1": _phi1, "_ix": _ix,
              **E.python_namespace(lambda x: self.rng.random() * x)}
        try:
            exec(compile(self.source, fname, "exec"), ns)
        except SyntaxError as e:  # a bug in the generator, not in the model
            raise SimulationError(f"internal error in generated code line {e.lineno}: {e.text}") from None
        self.ns = ns
        self.derived = self._with_fallback(ns.get("derived_fast"), ns["derived"], self._floatify)
        #: what --method neuron computes after the voltage solve (the numba backend: a subset)
        self.derived_after = self.derived
        self.rates = self._with_fallback(ns.get("rates_fast"), ns["rates"])
        self.handler_fns = {name: self._with_fallback(ns.get(name + "_fast"), ns[name])
                            for _, _, name in self.handlers}
        self.merged_event_fns = {gid: [ns[f] for _, f in lst] for gid, lst in self.event_fns.items()}

    def _with_fallback(self, fast, slow, after=None):
        """Run the scalar version; on a float error (x/0, overflow, domain) run the NumPy one."""
        if fast is None:
            return slow
        errors = (ZeroDivisionError, OverflowError, ValueError, TypeError)

        def call(*a):
            try:
                return fast(*a)
            except errors:
                try:
                    out = slow(*a)
                except ZeroDivisionError:  # a literal divided by a literal zero: no array to give inf
                    raise SimulationError(
                        f"the model's equations divide by zero at t = {a[1]:g} s (a parameter of zero that "
                        "divides: a capacitance, a time constant, a cell without membrane properties?)") from None
                if after is not None:
                    after()
                return out
        return call

    def _floatify(self):
        for gid, key in self.order:
            if gid in self.scalar_gids:
                nm = self.py(gid, key)
                self.V[nm] = float(np.asarray(self.V[nm], dtype=float).reshape(-1)[0])

    def _derived_src(self, fname: str) -> List[str]:
        body, loads = [], set()
        for gid, key in self.order:
            g = self.by_gid[gid]
            body.extend(self._derived_stmt(g, g.derived[key], loads))
        src = [f"def {fname}(V, t):"]
        src.extend(self._loads(loads, defined={self.py(*k) for k in self.order}))
        src.extend(body)
        for gid, key in self.order:
            src.append(f"    V[{self.py(gid, key)!r}] = {self.py(gid, key)}")
        src.append("    return None")
        return src

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

    def _loads(self, loads: Set[str], defined: Set[str] = frozenset()) -> List[str]:
        out = []
        for n in sorted(loads):
            if n in defined:
                continue
            if self.mode_fast and n in self.scalar_arrays:
                out.append(f"    {n} = V[{n!r}][0]")
            else:
                out.append(f"    {n} = V[{n!r}]")
        return out

    def _fast(self, g: Group) -> bool:
        return self.mode_fast and g.gid in self.scalar_gids

    def _code(self, g: Group, ast, loads: Set[str]) -> str:
        fn = self.name_fn(g)

        def wrap(key):
            s = fn(key)
            if s.startswith("x"):
                loads.add(s)
            return s
        if self._fast(g):
            return E.to_python(ast, wrap).replace("_rand1(", f"_rand1g({g.gid}, ")
        code = E.to_numpy(ast, wrap)
        if "_random(" in code:
            code = re.sub(r"_random\(", f"_randu({g.gid}, None, ", code)
        return code

    def _derived_stmt(self, g: Group, d: Derived, loads: Set[str]) -> List[str]:
        me = self.py(g.gid, d.key)
        if d.kind == "expr":
            return [f"    {me} = {self._code(g, d.ast, loads)}"]
        if d.kind == "cases":
            default = "0.0"
            conds = []
            for c, v in d.cases:
                if c is None:
                    default = self._code(g, v, loads)
                else:
                    conds.append((self._code(g, c, loads), self._code(g, v, loads)))
            expr = default
            for c, v in reversed(conds):
                expr = f"({v} if {c} else {expr})" if self._fast(g) else f"_np.where({c}, {v}, {expr})"
            return [f"    {me} = {expr}"]
        if d.kind == "gather":
            src = self.by_gid[d.src.gid]
            sp = self.name_fn(src)(d.src_key)
            if sp.startswith("x"):
                loads.add(sp)
            if d.idx is None:
                return [f"    {me} = {sp}"]
            if self._fast(g):
                return [f"    {me} = _at({sp}, {int(d.idx[0])})"]
            cname = f"I{len(self.consts)}"
            self.consts[cname] = np.asarray(d.idx, dtype=np.int64)
            return [f"    {me} = _bc({sp}, {src.n})[C[{cname!r}]]"]
        if d.kind == "scatter":
            parts = []
            for ag, k, idx in d.terms:
                sp = self.name_fn(ag)(k)
                if d.op != "multiply" and _is_zero_literal(sp):
                    continue  # adds nothing (a delta synapse's current)
                if sp.startswith("x"):
                    loads.add(sp)
                if self._fast(g):
                    red = "_np.prod" if d.op == "multiply" else "_np.sum"
                    parts.append(sp if ag.gid in self.scalar_gids else f"float({red}(_bc({sp}, {ag.n})))")
                    continue
                if ag.n == 1 and d.op != "multiply":
                    # a single attached instance: no bincount, one element update below
                    i0 = int(idx[0]) if idx is not None else 0
                    parts.append(("one", i0, sp))
                    continue
                if (d.op != "multiply" and idx is not None and ag.n == g.n
                        and np.array_equal(idx, np.arange(g.n))):
                    # one attached instance per host cell, in order (merged synapses): no scatter
                    parts.append(f"_bc({sp}, {g.n}).copy()")
                    continue
                cname = f"I{len(self.consts)}"
                ix = np.asarray(idx if idx is not None else np.zeros(ag.n, dtype=np.int64), dtype=np.int64)
                self.consts[cname] = ix
                fn = "_scatter_mul" if d.op == "multiply" else "_scatter_add"
                if parts and d.op != "multiply" and len(np.unique(ix)) < len(ix):
                    # several instances on one host (fused input lists), after other terms:
                    # added one by one into the sum, in the compiled backend's order
                    parts.append(("at", cname, sp, ag.n))
                    continue
                parts.append(f"{fn}(C[{cname!r}], {sp}, {ag.n}, {g.n})")
            if not parts:
                return [f"    {me} = 0.0" if self._fast(g) else f"    {me} = _np.zeros({g.n})"]
            if self._fast(g):
                op = " * " if d.op == "multiply" else " + "
                return [f"    {me} = {op.join(parts)}"]
            op = " * " if d.op == "multiply" else " + "
            # terms in order: array sums while they come, then element-wise additions in place
            # (bincount results are fresh arrays)
            lines = []
            for p in parts:
                if isinstance(p, str) and (not lines or lines[-1].startswith(f"    {me} = ")):
                    lines = [f"{lines[0]}{op}{p}"] if lines else [f"    {me} = {p}"]
                elif isinstance(p, str):
                    lines.append(f"    {me} += {p}")
                elif p[0] == "one":
                    lines = lines or [f"    {me} = _np.zeros({g.n})"]
                    lines.append(f"    {me}[{p[1]}] += _at({p[2]}, 0)")
                else:
                    lines.append(f"    _np.add.at({me}, C[{p[1]!r}], _bc({p[2]}, {p[3]}))")
            return lines
        raise ValueError(d.kind)

    def rate_ast(self, g: Group, key: str):
        ast = g.rates.get(key)
        cases = g.rate_cases.get(key)
        if cases:
            expr = ast if ast is not None else ("num", 0.0)
            for (rkey, ri), a in cases:
                expr = ("call", "__select", (("cmp", "==", ("name", rkey), ("num", float(ri))), a, expr))
            return expr
        return ast

    def _rates_src(self, fname: str = "rates") -> List[str]:
        lines, loads = [], set()
        self.rate_keys: List[Key] = []
        exprs = []
        for g in self.groups:
            for key in g.state:
                ast = self.rate_ast(g, key)
                if ast is None:
                    continue
                self.rate_keys.append((g.gid, key))
                exprs.append(self._code(g, ast, loads))
        lines.append(f"def {fname}(V, t):")
        lines.extend(self._loads(loads))
        lines.append("    return [")
        for e in exprs:
            lines.append(f"        {e},")
        lines.append("    ]")
        return lines

    def _merged_event_src(self, g: Group, h: Handler, fname: str) -> List[str]:
        """OnEvent of a merged synapse group: every event adds its own increment (with its
        own connection weight ``w``) to the instance of its host, ``idx``."""
        loads: Set[str] = set()
        wkey = g.root.key("weight")
        fn = self.name_fn(g)

        def name(key):
            if key == wkey:
                return "w"
            code = fn(key)
            if code.startswith("x"):
                loads.add(code)
                return f"_ix({code}, idx)"
            return code
        body = []
        for key, ast in h.assignments:
            tgt = self.py(g.gid, key)
            loads.add(tgt)
            inc = ast[3] if ast[2] == ("name", key) else ast[2]
            body.append(f"    _np.add.at({tgt}, idx, _np.broadcast_to({E.to_numpy(inc, name)}, idx.shape))")
        return [f"def {fname}(V, t, idx, w):"] + self._loads(loads) + body + ["    return None"]

    def _handler_src_fast(self, g: Group, h: Handler, fname: str) -> List[str]:
        """A handler of a single-instance group, on Python floats."""
        loads: Set[str] = set()
        body = ["    if m is not None and not m[0]:", "        return None"]
        tests = []
        if h.regime is not None:
            rp = self.py(g.gid, h.regime[0])
            loads.add(rp)
            tests.append(f"({rp} == {float(h.regime[1])})")
        if h.test is not None:
            tests.append(self._code(g, h.test, loads))
        if tests:
            body.append(f"    if not ({' and '.join(tests)}):")
            body.append("        return None")
        for key, ast in h.assignments:
            tgt = self.py(g.gid, key)
            loads.add(tgt)
            body.append(f"    {tgt} = {self._code(g, ast, loads)}")
            body.append(f"    V[{tgt!r}][0] = {tgt}")
        if h.transition is not None:
            rp = self.py(g.gid, h.regime[0])
            body.append(f"    V[{rp!r}][0] = {float(h.transition)}")
        body.append("    return _TRUE1")
        return [f"def {fname}(V, t, m):"] + self._loads(loads) + body

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

    def _handler_src(self, g: Group, h: Handler, fname: str) -> List[str]:
        if self._fast(g):
            return self._handler_src_fast(g, h, fname)
        loads: Set[str] = set()
        body = []
        n = g.n
        conds = []
        if h.test is not None:
            code = self._code(g, h.test, loads)
            if self._time_only(g, h.test):
                # a test on time and constants (pulse generators, spike times): one Python bool
                body.append(f"    if not ({code}):")
                body.append("        return None")
            else:
                conds.append(f"_bcb({code}, {n})")
        if h.regime is not None:
            rk, ri = h.regime
            rp = self.py(g.gid, rk)
            loads.add(rp)
            conds.append(f"({rp} == {float(ri)})")
        if conds:
            first = conds.pop(0)
            body.append(f"    m = {first} if m is None else m & {first}")
        else:
            body.append("    m = _np.ones(%d, dtype=bool) if m is None else m" % n)
        for c in conds:
            body.append(f"    m = m & {c}")
        body.append("    if not m.any():")
        body.append("        return None")
        for key, ast in h.assignments:
            tgt = self.py(g.gid, key)
            loads.add(tgt)
            if self._time_only(g, ast):
                body.append(f"    {tgt}[m] = {self._code(g, ast, loads)}")
            else:
                # an action's draws advance the streams of the instances that act only
                code = self._code(g, ast, loads).replace(f"_randu({g.gid}, None, ", f"_randu({g.gid}, m, ")
                body.append(f"    {tgt}[m] = _bc({code}, {n})[m]")
        if h.transition is not None:
            rp = self.py(g.gid, h.regime[0])
            loads.add(rp)
            body.append(f"    {rp}[m] = {float(h.transition)}")
        body.append("    return m")
        return [f"def {fname}(V, t, m):"] + self._loads(loads) + body

    def declare_implicit(self, keys) -> None:
        """Hand the update of states ``keys`` ((gid, key) pairs) to an implicit phase."""
        for gid, key in keys:
            n = self.by_gid[gid].n
            f, b = f"__f{len(self.implicit)}", f"__b{len(self.implicit)}"
            self.V[f] = np.zeros(n)
            self.V[b] = np.zeros(n)
            self.implicit[(gid, key)] = (self.py(gid, key), f, b)

    def make_stepper(self, dt: float, jdiag=None, keys=None):
        """Generate ``step(V, t)`` for forward Euler, or exponential Euler when ``jdiag``
        (∂f/∂x per state, as ASTs) is given; ``keys``: only these states (default all).
        All new values are computed before any state is written, so the scalar version
        can fall back mid-way safely."""
        from .integrators import lower_updates
        fns = {}
        self._nstep += 1
        updates = lower_updates(self, dt, jdiag, keys)
        for fast in ((False, True) if self.scalar_gids else (False,)):
            self.mode_fast = fast
            loads: Set[str] = set()
            calc, write = [], []
            for u in updates:  # (integrators.lower_updates: the step of each state, rendered here)
                j, g = u.j, self.by_gid[u.gid]
                x = self.py(u.gid, u.key)
                loads.add(x)
                calc.append(f"    r{j} = {self._code(g, u.rate, loads)}")
                if u.kind == "implicit":
                    _, fn, bn = self.implicit[(u.gid, u.key)]
                    calc.append(f"    q{j} = {'0.0' if u.coef is None else self._code(g, u.coef, loads)}")
                    write.append(f"    V[{fn!r}][...] = r{j}")
                    write.append(f"    V[{bn!r}][...] = q{j}")
                    continue
                inc = f"{dt!r} * r{j}"  # the step's increment of x
                if u.kind == "backward":
                    calc.append(f"    r{j} = r{j} / (1.0 - {dt!r} * ({self._code(g, u.coef, loads)}))")
                elif u.kind == "exp" and u.phi is not None:
                    calc.append(f"    r{j} = r{j} * {self._code(g, u.phi, loads)}")
                elif u.kind == "exp":  # x + (N/M) expm1(B dt); x + f dt where M is 0
                    q, m = (self._code(g, a, loads) for a in u.quot)
                    z = f"({self._code(g, u.coef, loads)}) * {dt!r}"
                    if self._fast(g):
                        calc.append(f"    r{j} = ({q}) * _m.expm1({z}) if ({m}) != 0.0 else {dt!r} * r{j}")
                    elif u.m_nonzero:
                        calc.append(f"    r{j} = ({q}) * _np.expm1({z})")
                    else:
                        calc.append(f"    r{j} = _np.where(({m}) != 0.0, ({q}) * _np.expm1({z}), {dt!r} * r{j})")
                    inc = f"r{j}"
                if self._fast(g):
                    calc.append(f"    n{j} = {x} + {inc}")
                    write.append(f"    V[{x!r}][0] = n{j}")
                else:
                    write.append(f"    {x} += {inc}")
            name = ("step_fast" if fast else "step") + ("" if keys is None else str(self._nstep))
            self.add_source([f"def {name}(V, t):"] + self._loads(loads) + calc + write + ["    return None"])
            fns[fast] = self.ns[name]
        self.mode_fast = False
        return self._with_fallback(fns.get(True), fns[False])

    def add_source(self, lines: List[str]) -> None:
        """Compile more generated functions into the program's namespace."""
        text = "\n".join(lines) + "\n"
        start = len(self.source.splitlines())
        self.source += text
        fname = f"<nmlsim-generated-{id(self)}-{start}>"
        linecache.cache[fname] = (len(text), None, text.splitlines(True), fname)
        exec(compile(text, fname, "exec"), self.ns)

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
