"""The NumPy backend.

:class:`NumpyCode` renders the lowered program (compile/program.Program) as straight-line
Python over flat arrays (one entry of the namespace ``V`` per state, derived or per-instance
variable):

``derived(V, t)``   every time-dependent derived variable of every group, in the program's
                    order (gathers and scatters between groups included);
``rates(V, t)``     the time derivative of every state variable, as a list;
``step(V, t)``      a state update as ``integrators.lower_updates`` decides it;
``h<k>(V, t, m)``   one function per OnStart/OnCondition/OnEvent/OnEntry handler.

Each function exists twice: over NumPy arrays, and — for one-instance groups, which dominate
the LEMS examples — on Python floats with ``math`` (5-10x faster); a float error there (x/0,
overflow, a domain error) makes that call fall back to the NumPy version, which gives inf/nan
as NumPy and jLEMS do. The source is compiled under a pseudo-file registered with
``linecache``, so a traceback quotes the generated line. The engine's own event phase runs
these handlers on every backend (OnStart, and models whose events a backend does not compile).

:class:`NumpyBackend` steps the schedule with them (RK4's stages as one generated function).
"""
from __future__ import annotations

import linecache
import math
import re
from typing import Dict, List, Set

import numpy as np

from ..compile.integrators import (METHODS, Spelling, lower_updates, neuron_halves, rk4_stages, stepper_jacobian,
                                   update_statements)
from ..compile.program import Program
from ..errors import ModelError, SimulationError
from ..lems import expr as E
from ..lems.flatten import Derived, Group, Handler
from . import Backend, Primitives


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


class NumpyCode:
    """The generated NumPy functions of one program (see the module's docstring)."""

    def __init__(self, prog: Program, scalars: bool = True):
        """``scalars``: one-instance groups get their Python-float twins."""
        self.prog = prog
        self.consts: Dict[str, np.ndarray] = {}  # index arrays and constant arrays
        self.mode_fast = False
        self._nstep = 0  # steppers made for a subset of the states (named step1, step2...)
        # one-instance groups run as Python floats (faster than 1-element arrays); a group
        # with nothing to compute (a network root without dynamics) does not need it
        self.scalar_gids = {g.gid for g in prog.groups if g.n == 1 and (g.state or g.derived or g.handlers)
                            } if scalars else set()
        self.scalar_arrays = {prog.py(g.gid, k) for g in prog.groups if g.gid in self.scalar_gids
                              for k in list(g.state) + list(g.per_instance)}
        src = []
        for fast in ((False, True) if self.scalar_gids else (False,)):
            self.mode_fast = fast
            sfx = "_fast" if fast else ""
            src.extend(self._derived_src("derived" + sfx))
            src.extend(self._rates_src("rates" + sfx))
            for g, h, fname in prog.handlers:
                if fast and g.gid not in self.scalar_gids:
                    continue
                src.extend(self._handler_src(g, h, fname + sfx))
        self.mode_fast = False
        by_handler = {id(h): g for g, h, _ in prog.handlers}
        for gid, lst in prog.event_fns.items():
            for h, fname in lst:
                src.extend(self._merged_event_src(by_handler[id(h)], h, fname))
        self.source = "\n".join(src) + "\n"
        fname = f"<nmlsim-generated-{id(self)}>"
        linecache.cache[fname] = (len(self.source), None, self.source.splitlines(True), fname)
        # (a value folded to a literal may be infinite or NaN: repr gives 'inf' / 'nan')
        ns = {"inf": math.inf, "nan": math.nan, "_np": np, "np": np, "_m": math, "_bc": _bc, "_bcb": _bcb,
              "_scatter_add": _scatter_add,
              "_scatter_mul": _scatter_mul, "_heaviside": E.heaviside, "_factorial": E._factorial_fn,
              "_rng": prog.rng, "C": self.consts, "_at": _at,
              "_randu": lambda gid, m, x: prog.streams_for(gid).draw(m) * x, "_TRUE1": np.ones(1, dtype=bool),
              "_rand1g": lambda gid, x: prog.streams_for(gid).draw_one() * x,
              "_phi": _phi, "_phi1": _phi1, "_ix": _ix,
              **E.python_namespace(lambda x: prog.rng.random() * x)}
        try:
            exec(compile(self.source, fname, "exec"), ns)
        except SyntaxError as e:  # a bug in the generator, not in the model
            raise SimulationError(f"internal error in generated code line {e.lineno}: {e.text}") from None
        self.ns = ns
        self.derived = self._with_fallback(ns.get("derived_fast"), ns["derived"], self._floatify)
        self.rates = self._with_fallback(ns.get("rates_fast"), ns["rates"])
        self.handler_fns = {name: self._with_fallback(ns.get(name + "_fast"), ns[name])
                            for _, _, name in prog.handlers}
        self.merged_event_fns = {gid: [ns[f] for _, f in lst] for gid, lst in prog.event_fns.items()}

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
        for gid, key in self.prog.order:
            if gid in self.scalar_gids:
                nm = self.prog.py(gid, key)
                self.prog.V[nm] = float(np.asarray(self.prog.V[nm], dtype=float).reshape(-1)[0])

    def _derived_src(self, fname: str) -> List[str]:
        body, loads = [], set()
        for gid, key in self.prog.order:
            g = self.prog.by_gid[gid]
            body.extend(self._derived_stmt(g, g.derived[key], loads))
        src = [f"def {fname}(V, t):"]
        src.extend(self._loads(loads, defined={self.prog.py(*k) for k in self.prog.order}))
        src.extend(body)
        for gid, key in self.prog.order:
            src.append(f"    V[{self.prog.py(gid, key)!r}] = {self.prog.py(gid, key)}")
        src.append("    return None")
        return src

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
        fn = self.prog.name_fn(g)

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
        me = self.prog.py(g.gid, d.key)
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
            src = self.prog.by_gid[d.src.gid]
            sp = self.prog.name_fn(src)(d.src_key)
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
                sp = self.prog.name_fn(ag)(k)
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

    def _rates_src(self, fname: str = "rates") -> List[str]:
        loads: Set[str] = set()
        exprs = [self._code(self.prog.by_gid[gid], self.prog.rate_ast(self.prog.by_gid[gid], key), loads)
                 for gid, key in self.prog.rate_keys]
        return [f"def {fname}(V, t):"] + self._loads(loads) + ["    return ["] + [f"        {e}," for e in exprs] + ["    ]"]

    def _merged_event_src(self, g: Group, h: Handler, fname: str) -> List[str]:
        """OnEvent of a merged synapse group: every event adds its own increment (with its
        own connection weight ``w``) to the instance of its host, ``idx``."""
        loads: Set[str] = set()
        wkey = g.root.key("weight")
        fn = self.prog.name_fn(g)

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
            tgt = self.prog.py(g.gid, key)
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
            rp = self.prog.py(g.gid, h.regime[0])
            loads.add(rp)
            tests.append(f"({rp} == {float(h.regime[1])})")
        if h.test is not None:
            tests.append(self._code(g, h.test, loads))
        if tests:
            body.append(f"    if not ({' and '.join(tests)}):")
            body.append("        return None")
        for key, ast in h.assignments:
            tgt = self.prog.py(g.gid, key)
            loads.add(tgt)
            body.append(f"    {tgt} = {self._code(g, ast, loads)}")
            body.append(f"    V[{tgt!r}][0] = {tgt}")
        if h.transition is not None:
            rp = self.prog.py(g.gid, h.regime[0])
            body.append(f"    V[{rp!r}][0] = {float(h.transition)}")
        body.append("    return _TRUE1")
        return [f"def {fname}(V, t, m):"] + self._loads(loads) + body

    def _handler_src(self, g: Group, h: Handler, fname: str) -> List[str]:
        if self._fast(g):
            return self._handler_src_fast(g, h, fname)
        loads: Set[str] = set()
        body = []
        n = g.n
        conds = []
        if h.test is not None:
            code = self._code(g, h.test, loads)
            if self.prog._time_only(g, h.test):
                # a test on time and constants (pulse generators, spike times): one Python bool
                body.append(f"    if not ({code}):")
                body.append("        return None")
            else:
                conds.append(f"_bcb({code}, {n})")
        if h.regime is not None:
            rk, ri = h.regime
            rp = self.prog.py(g.gid, rk)
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
            tgt = self.prog.py(g.gid, key)
            loads.add(tgt)
            if self.prog._time_only(g, ast):
                body.append(f"    {tgt}[m] = {self._code(g, ast, loads)}")
            else:
                # an action's draws advance the streams of the instances that act only
                code = self._code(g, ast, loads).replace(f"_randu({g.gid}, None, ", f"_randu({g.gid}, m, ")
                body.append(f"    {tgt}[m] = _bc({code}, {n})[m]")
        if h.transition is not None:
            rp = self.prog.py(g.gid, h.regime[0])
            loads.add(rp)
            body.append(f"    {rp}[m] = {float(h.transition)}")
        body.append("    return m")
        return [f"def {fname}(V, t, m):"] + self._loads(loads) + body

    def make_stepper(self, dt: float, jdiag=None, keys=None):
        """Generate ``step(V, t)`` for forward Euler, or exponential Euler when ``jdiag``
        (∂f/∂x per state, as ASTs) is given; ``keys``: only these states (default all).
        All new values are computed before any state is written, so the scalar version
        can fall back mid-way safely."""
        fns = {}
        self._nstep += 1
        updates = lower_updates(self.prog, dt, jdiag, keys)
        for fast in ((False, True) if self.scalar_gids else (False,)):
            self.mode_fast = fast
            loads: Set[str] = set()
            calc, write = [], []
            sp = _Spelling(self, loads)
            for u in updates:  # (integrators.lower_updates: the step of each state; update_statements: its code)
                c, w = update_statements(u, self.prog, dt, sp)
                calc += ["    " + ln for ln in c]
                write += ["    " + ln for ln in w]
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


class _Spelling(Spelling):
    """Updates as NumPy statements (Python floats and ``math`` for one-instance groups)."""

    def __init__(self, code: NumpyCode, loads: Set[str]):
        self.code, self.loads = code, loads

    def expr(self, g, ast) -> str:
        return self.code._code(g, ast, self.loads)

    def expm1(self, g, z: str) -> str:
        return f"_m.expm1({z})" if self.code._fast(g) else f"_np.expm1({z})"

    def select(self, g, c: str, a: str, b: str) -> str:
        return f"({a} if {c} else {b})" if self.code._fast(g) else f"_np.where({c}, {a}, {b})"

    def store(self, g, name: str, value: str) -> str:
        return f"V[{name!r}][...] = {value}"

    def move(self, g, j: int, x: str, inc: str):
        self.loads.add(x)
        if self.code._fast(g):
            return [f"n{j} = {x} + {inc}"], [f"V[{x!r}][0] = n{j}"]
        return [], [f"{x} += {inc}"]


def make_update(method: str, code: NumpyCode, dt: float, nmodl: bool = False):
    """``step(V, t)`` advancing every state variable by ``dt`` (NEURON's scheme: the pair of
    steps before and after the voltage solve)."""
    prog = code.prog
    if method not in METHODS:
        raise ModelError(f"unknown integration method '{method}' (choose from {', '.join(METHODS)})")
    if method == "neuron":
        return _neuron_update(code, dt, nmodl)
    if method in ("euler", "exp_euler"):
        return code.make_stepper(dt, stepper_jacobian(method, prog))
    names = [prog.py(gid, key) for gid, key in prog.rate_keys]
    if not code.scalar_gids:
        return _generated_rk4(code, names, dt)

    def rk4(V, t):  # (single-instance groups: the scalar fast path's fallback rules apply)
        y0 = [np.array(V[nm], dtype=float) for nm in names]
        k = {}
        for stage, prev, coef, at in rk4_stages(dt):
            if prev is not None:
                for nm, y, kp in zip(names, y0, k[prev]):
                    V[nm][...] = y + coef * kp
                code.derived(V, t + at)
            k[stage] = [np.asarray(x, dtype=float) for x in code.rates(V, t + at)]
        for nm, y, a, b, c, d in zip(names, y0, k["a"], k["b"], k["c"], k["d"]):
            V[nm][...] = y + (dt / 6.0) * (a + 2.0 * b + 2.0 * c + d)
    return rk4


def _neuron_update(code: NumpyCode, dt: float, nmodl: bool = False):
    """NEURON's fixed step (``secondorder=0``), the explicit half: the implicit phase's f and
    B at t; then — after the engine's implicit phase has moved v to t + dt — every other
    state from derived values recomputed with the new v.  With the mod files jNeuroML writes
    that is forward Euler: their ``x' = rate_x`` (a rate computed in a PROCEDURE) gives
    ``cnexp`` nothing linear to integrate exactly, so it steps x + dt·rate.  With hand-written
    mods (``nmodl``: ``x' = (xInf - x)/xTau``), ``cnexp`` integrates the linear equation
    exactly — the exponential step.  Concentration models (``prog.early_states``) move in the
    first half, with the currents of the old voltage, as their mods read ``ica``.
    Returns (before, after)."""
    first, second = neuron_halves(code.prog)
    jac = stepper_jacobian("neuron", code.prog, nmodl)
    before = code.make_stepper(dt, jac, keys=first)
    after = code.make_stepper(dt, jac if nmodl else None, keys=second)
    return before, after


def _generated_rk4(code: NumpyCode, names, dt: float):
    """Classical RK4 (``integrators.rk4_stages``) as one generated function (no per-state
    Python loop); states are updated in place, as the engine expects."""
    h6 = dt / 6.0
    lines = ["def rk4_step(V, t):"]
    for j, nm in enumerate(names):
        lines.append(f"    s{j} = V[{nm!r}]")
        lines.append(f"    y{j} = s{j}.copy()")
    for stage, prev, coef, at in rk4_stages(dt):
        if prev is not None:
            for j in range(len(names)):
                lines.append(f"    s{j}[...] = y{j} + {coef!r} * {prev}[{j}]")
            lines.append(f"    derived(V, t + {at!r})")
        lines.append(f"    {stage} = rates(V, t + {at!r})")
    for j in range(len(names)):
        lines.append(f"    s{j}[...] = y{j} + {h6!r} * (a[{j}] + 2.0 * b[{j}] + 2.0 * c[{j}] + d[{j}])")
    lines.append("    return None")
    ns = {"rates": code.rates, "derived": code.derived}
    exec(compile("\n".join(lines) + "\n", "<nmlsim-rk4>", "exec"), ns)
    return ns["rk4_step"]


class NumpyBackend(Backend):
    name = "numpy"
    scalar_groups = True

    def prepare(self, sim, observe) -> Primitives:
        prog, code = sim.program, sim.numpy
        apart = getattr(prog, "solved_apart", None)
        if sim.method == "euler" and apart:  # (jLEMS's kinetic schemes: moved by the engine)
            update = code.make_stepper(sim.dt, keys={k for k in prog.rate_keys if k not in apart})
        else:
            update = make_update(sim.method, code, sim.dt, sim.nmodl)
        return Primitives(derived=code.derived, update=update, derived_after=code.derived, rates=code.rates)


BACKEND = NumpyBackend()
