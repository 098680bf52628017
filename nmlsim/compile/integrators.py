"""Integrators: ``euler`` (jLEMS), ``exp_euler`` (default) and ``rk4``.

``exp_euler`` advances each state variable x with dx/dt = f(x, ...) exactly under its own
local linearisation f ≈ f(x0) + B (x - x0), B = ∂f/∂x taken symbolically at compile
time through the derived variables of the same group::

    x(t + dt) = x + f · dt · φ(B dt),   φ(z) = (eᶻ - 1) / z

which is exact for HH gates (dq/dt = (inf - q)/tau) and for membranes whose conductances
are frozen over the step.  Where f and B share their denominator (f = N/D, B = M/D: a gate's
(inf - q)/tau and -1/tau, a membrane's currents and conductances over its capacitance) the
step is taken as ``x + (N/M) · expm1(B dt)`` instead, the same value with two divisions
fewer (see :func:`exp_euler_quotient`).  Terms that reach x through another group (synaptic currents
summed over attachments, gap-junction peers) are held constant over the step.

>>> from nmlsim.lems.expr import parse
>>> d = Differentiator(lambda k: None)
>>> d.diff(parse("(inf - q) / tau"), "q")
('bin', '/', ('num', -1.0), ('name', 'tau'))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import UnsupportedFeature
from ..lems import expr as E
from ..lems.flatten import Derived

METHODS = ("euler", "exp_euler", "rk4", "neuron")

ZERO = ("num", 0.0)
ONE = ("num", 1.0)


def _is0(a):
    return a[0] == "num" and a[1] == 0.0


def _is1(a):
    return a[0] == "num" and a[1] == 1.0


def add(a, b):
    if _is0(a):
        return b
    if _is0(b):
        return a
    return ("bin", "+", a, b)


def sub(a, b):
    if _is0(b):
        return a
    if _is0(a):
        return neg(b)
    return ("bin", "-", a, b)


def mul(a, b):
    if _is0(a) or _is0(b):
        return ZERO
    if _is1(a):
        return b
    if _is1(b):
        return a
    return ("bin", "*", a, b)


def div(a, b):
    if _is0(a):
        return ZERO
    if _is1(b):
        return a
    return ("bin", "/", a, b)


def neg(a):
    if a[0] == "num":
        return ("num", -a[1])
    return ("neg", a)


class Differentiator:
    """Symbolic ∂/∂x of LEMS ASTs; ``definition(key)`` gives a same-group derived
    variable's AST (or None), through which the derivative is chained."""

    def __init__(self, definition: Callable[[str], Optional[object]]):
        self.definition = definition
        self.memo: Dict[tuple, object] = {}

    def diff(self, a, x: str):
        k = a[0]
        if k == "num":
            return ZERO
        if k == "name":
            n = a[1]
            if n == x:
                return ONE
            if n == "t":
                return ZERO
            key = (n, x)
            if key not in self.memo:
                self.memo[key] = ZERO  # guards against cycles
                d = self.definition(n)
                self.memo[key] = ZERO if d is None else self.diff(d, x)
            return self.memo[key]
        if k == "neg":
            return neg(self.diff(a[1], x))
        if k == "bin":
            op, u, v = a[1], a[2], a[3]
            du, dv = self.diff(u, x), self.diff(v, x)
            if op == "+":
                return add(du, dv)
            if op == "-":
                return sub(du, dv)
            if op == "*":
                return add(mul(du, v), mul(u, dv))
            if op == "/":
                if _is0(dv):
                    return div(du, v)
                return div(sub(mul(du, v), mul(u, dv)), mul(v, v))
            if op == "^":
                if _is0(dv):
                    if _is0(du):
                        return ZERO
                    return mul(mul(v, ("bin", "^", u, sub(v, ONE))), du)
                return mul(a, add(mul(dv, ("call", "log", (u,))), div(mul(v, du), u)))
        if k == "call":
            fn, args = a[1], a[2]
            if fn == "__select":
                d1, d2 = self.diff(args[1], x), self.diff(args[2], x)
                if _is0(d1) and _is0(d2):
                    return ZERO
                return ("call", "__select", (args[0], d1, d2))
            if fn in ("H", "random", "ceil", "floor", "sign", "factorial"):
                return ZERO
            u = args[0]
            du = self.diff(u, x)
            if _is0(du) and fn not in ("max", "min", "pow"):
                return ZERO
            if fn == "exp":
                return mul(a, du)
            if fn in ("log", "ln"):
                return div(du, u)
            if fn == "log10":
                return div(du, mul(u, ("num", float(np.log(10.0)))))
            if fn == "sqrt":
                return div(du, mul(("num", 2.0), a))
            if fn == "sin":
                return mul(("call", "cos", (u,)), du)
            if fn == "cos":
                return neg(mul(("call", "sin", (u,)), du))
            if fn == "tan":
                c = ("call", "cos", (u,))
                return div(du, mul(c, c))
            if fn == "tanh":
                return mul(sub(ONE, mul(a, a)), du)
            if fn == "sinh":
                return mul(("call", "cosh", (u,)), du)
            if fn == "cosh":
                return mul(("call", "sinh", (u,)), du)
            if fn == "abs":
                return mul(("call", "sign", (u,)), du)
            if fn == "atan":
                return div(du, add(ONE, mul(u, u)))
            if fn in ("max", "min", "pow"):
                return self.diff(("bin", "^", args[0], args[1]), x) if fn == "pow" else ZERO
            return ZERO
        # comparisons and logic are piecewise constant
        return ZERO


def exp_euler_quotient(f, b):
    """f/B with the common denominator cancelled, for ``x + (f/B) · expm1(B dt)``.

    Returns ``(N/M, M)`` as ASTs where f = N/D and B = M/D share D, else None.  (N/M is f/B
    wherever B is not zero; where M is 0 the caller steps ``x + f dt``; where D is infinite
    both f and the step are 0.)

    >>> from nmlsim.lems.expr import parse
    >>> exp_euler_quotient(parse("(inf - q) / tau"), parse("-1 / tau"))
    (('bin', '/', ('bin', '-', ('name', 'inf'), ('name', 'q')), ('num', -1.0)), ('num', -1.0))
    """
    if f[0] == "bin" and f[1] == "/" and b[0] == "bin" and b[1] == "/" and f[3] == b[3]:
        return ("bin", "/", f[2], b[2]), b[2]
    return None


@dataclass
class Update:
    """How one state moves in a step: the backend-neutral form of the explicit integrators,
    rendered once (:func:`update_statements`) in each backend's :class:`Spelling`
    (``NumpyCode.make_stepper``, ``NumbaKernels._step_lines``).

    - ``implicit``: not moved here; its rate f and coefficient B (``coef``, None: 0) are stored
      for the implicit (cable) solve;
    - ``euler``: x += dt·f;
    - ``backward``: linearised backward Euler, x += dt·f/(1 − dt·B) (NEURON's step of a section
      voltage driven by a mod's current, ``coef`` = B);
    - ``exp``: exponential Euler, x += dt·f·φ with ``phi`` an AST of φ = expm1(B dt)/(B dt)
      (a number where B is constant, a select of such where it is constant per regime, else
      ``__phi(B·dt)`` per instance); or, where ``phi`` is None, x += (N/M)·expm1(B dt) with
      ``quot`` = (N/M, M) (see :func:`exp_euler_quotient`), x += dt·f where M is 0 unless
      ``m_nonzero``.
    """
    j: int
    gid: int
    key: str
    rate: tuple
    kind: str
    coef: Optional[tuple] = None
    phi: Optional[tuple] = None
    quot: Optional[tuple] = None
    m_nonzero: bool = False


def _phi_ast(prog, g, b, dt: float, top: bool = True):
    """φ(B dt) as an AST: a number for constant B, a select of numbers or calls where B is a
    select (per regime); None at the top for a B computed per instance."""
    if b[0] == "call" and b[1] == "__select":
        c, v1, v2 = b[2]
        return ("call", "__select", (c, _phi_ast(prog, g, v1, dt, False), _phi_ast(prog, g, v2, dt, False)))
    if "t" not in E.names(b) and not E.has_random(b) and all((g.gid, n) in prog.literals for n in E.names(b)):
        z = float(E.evaluate(b, {n: prog.literals[(g.gid, n)] for n in E.names(b)})) * dt
        return ("num", 1.0 + 0.5 * z if abs(z) < 1e-9 else math.expm1(z) / z)
    return None if top else ("call", "__phi", (("bin", "*", b, ("num", dt)),))


def lower_updates(prog, dt: float, jdiag=None, keys=None) -> List[Update]:
    """The step of every state (in ``prog.rate_keys`` order; ``keys``: only these): forward
    Euler, or exponential Euler where ``jdiag`` (∂f/∂x per state) gives a nonzero B."""
    out = []
    for j, (gid, key) in enumerate(prog.rate_keys):
        if keys is not None and (gid, key) not in keys:
            continue
        g = prog.by_gid[gid]
        fa = prog.rate_ast(g, key)
        b = jdiag[j] if jdiag is not None else None
        if (gid, key) in prog.implicit:
            out.append(Update(j, gid, key, fa, "implicit", coef=b))
        elif (gid, key) in getattr(prog, "point_voltages", ()) and b is not None:
            out.append(Update(j, gid, key, fa, "backward", coef=b))
        elif b is None or b == ZERO:
            out.append(Update(j, gid, key, fa, "euler"))
        else:
            phi = _phi_ast(prog, g, b, dt)
            quot = exp_euler_quotient(fa, b) if phi is None else None
            if phi is None and quot is None:
                phi = ("call", "__phi", (("bin", "*", b, ("num", dt)),))
            out.append(Update(j, gid, key, fa, "exp", coef=b, phi=phi, quot=quot,
                              m_nonzero=quot is not None and prog._nonzero_constant(g, quot[1])))
    return out


class Spelling:
    """How a backend writes the pieces of a state's update (:func:`update_statements`); each
    method gets the state's group ``g``: ``expr(g, ast)`` code of an expression; ``expm1(g, z)``;
    ``select(g, c, a, b)`` a if c else b, per instance; ``store(g, name, value)`` a statement
    writing V name ``name`` (the implicit phase's f and B); ``move(g, j, x, inc)`` the
    statements moving state ``x`` by ``inc``: (computed with the rest, written after them)."""

    def expr(self, g, ast) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def expm1(self, g, z: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def select(self, g, c: str, a: str, b: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def store(self, g, name: str, value: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def move(self, g, j: int, x: str, inc: str) -> Tuple[List[str], List[str]]:  # pragma: no cover
        raise NotImplementedError


def update_statements(u: Update, prog, dt: float, sp: Spelling) -> Tuple[List[str], List[str]]:
    """One state's update as statements (without indentation) in a backend's spelling: those
    computing its increment ``r<j>`` (every state's are computed before any is written) and
    those writing it. The rules are :func:`lower_updates`'s; this is their one rendering."""
    j, g = u.j, prog.by_gid[u.gid]
    calc = [f"r{j} = {sp.expr(g, u.rate)}"]
    if u.kind == "implicit":  # f and B for the implicit phase; x is not moved here
        _, fn, bn = prog.implicit[(u.gid, u.key)]
        calc.append(f"q{j} = {'0.0' if u.coef is None else sp.expr(g, u.coef)}")
        return calc, [sp.store(g, fn, f"r{j}"), sp.store(g, bn, f"q{j}")]
    inc = f"{dt!r} * r{j}"  # the step's increment of x
    if u.kind == "backward":
        calc.append(f"r{j} = r{j} / (1.0 - {dt!r} * ({sp.expr(g, u.coef)}))")
    elif u.kind == "exp" and u.phi is not None:
        calc.append(f"r{j} = r{j} * {sp.expr(g, u.phi)}")
    elif u.kind == "exp":  # x + (N/M) expm1(B dt); x + f dt where M is 0
        q, m = (sp.expr(g, a) for a in u.quot)
        step = f"({q}) * {sp.expm1(g, f'({sp.expr(g, u.coef)}) * {dt!r}')}"
        calc.append(f"r{j} = " + (step if u.m_nonzero else sp.select(g, f"({m}) != 0.0", step, f"{dt!r} * r{j}")))
        inc = f"r{j}"
    c, w = sp.move(g, j, prog.py(u.gid, u.key), inc)
    return calc + c, w


def _where_ast(cases):
    """A ConditionalDerivedVariable as nested selects (for differentiation)."""
    default = ZERO
    conds = []
    for c, v in cases:
        if c is None:
            default = v
        else:
            conds.append((c, v))
    out = default
    for c, v in reversed(conds):
        out = ("call", "__select", (c, v, out))
    return out


def _node_of(key: str) -> str:
    return key.rsplit("/", 1)[0] if "/" in key else ""


def _definition(d):
    """The AST a derived value stands for (None: a gather, scatter… — a constant to ∂)."""
    if d is None:
        return None
    if d.kind == "expr":
        return d.ast
    if d.kind == "cases":
        return _where_ast(d.cases)
    return None


def _same_index(a, b, n: int, host_n: int) -> bool:
    """Whether a gather index and a scatter index of an attached group of ``n`` instances
    name the same host instance for each (None: instance i is host i, or host 0 of one)."""
    def full(x):
        if x is not None:
            return np.broadcast_to(np.asarray(x), (n,))
        return np.zeros(n, dtype=np.int64) if host_n == 1 else np.arange(n)
    return np.array_equal(full(a), full(b))


def add_attached_slopes(groups, implicit, with_states: bool = True) -> None:
    """Let the implicit phase see the currents of what is attached to its cells.

    A cell's synapses, gap junctions and inputs live in their own groups; their currents reach
    the cell through a scatter (a sum over the attached instances), which the symbolic Jacobian
    cannot see through. NEURON's matrix has them: every point process's di/dv (by a finite
    difference of its BREAKPOINT, its peer's voltage held) is on the diagonal. For each scatter
    of a group whose ``implicit`` key (the cell's v) it feeds, this adds to each attached group
    the derivative of its current through its gather of that same instance's v, and to the host
    a scatter of those slopes; ``g.scatter_slopes`` maps the scatter to it
    (:func:`jacobian_diagonal` chains through it). Must run before the Program is made.

    ``with_states=False`` (jNeuroML's mod files): only mechanisms without a TimeDerivative
    count. jNeuroML computes a mechanism with states in its DERIVATIVE block, so the current
    its BREAKPOINT leaves is the one the state update computed: NEURON's finite difference
    sees no dependence on v. A stateless one (a gap junction) computes it in BREAKPOINT."""
    implicit = set(implicit)
    for g in groups:
        keys = [k for (gid, k) in implicit if gid == g.gid]
        if not keys or getattr(g, "scatter_slopes", None) is not None:  # none, or done (a rerun)
            continue
        slopes = {}
        for name, d in list(g.derived.items()):
            if d.kind != "scatter" or d.op != "add":
                continue
            terms = []
            for ag, k, idx in d.terms:
                own = [n for n, x in ag.derived.items() if x.kind == "gather" and x.src is g
                       and x.src_key in keys and _same_index(x.idx, idx, ag.n, g.n)]
                if not own or k not in ag.derived or (ag.rates and not with_states):
                    continue

                dif = Differentiator(lambda n, ag=ag: _definition(ag.derived.get(n)))
                slope = ZERO
                for n in own:
                    slope = add(slope, dif.diff(("name", k), n))
                if _is0(slope):
                    continue
                skey = f"{k}__dv{g.gid}"
                ag.derived[skey] = type(d)(skey, "expr", ast=slope)
                terms.append((ag, skey, idx))
            if terms:
                skey = f"{name}__dv"
                g.derived[skey] = type(d)(skey, "scatter", op="add", terms=terms)
                slopes[name] = skey
        g.scatter_slopes = slopes


def _rename(ast, old: str, new: str):
    return None if ast is None else E.rename(ast, lambda n: new if n == old else n)


def copy_rate(src, slot: str, dt: float):
    """The rate that makes one Euler step move state ``slot`` onto ``src`` (an AST of the values
    before the step): ``(src − slot)/dt`` — a copy taken by the step itself, so that both backends
    run it as they run any state (jLEMS's history slots, NEURON's stored values)."""
    return ("bin", "/", ("bin", "-", src, ("name", slot)), ("num", float(dt)))


#: jNeuroML's ``v_I`` (a point cell's own rate of v, stored by its mod's rates()) and the
#: derived value rates() computes it from (see :func:`stored_point_rates`)
STORED_RATE = "__nrn_vI"
OWN_RATE = "__nrn_own"


def point_cell_shapes(groups, skip=()):
    """(shape 1, shape 2): the abstract point cells (``baseCell`` types that integrate ``v``,
    not solved as cables: ``skip``) by the mod jNeuroML's NEURON export writes for them
    (docs/research/neuron_point_cells.md): v their only integrated state, or others too."""
    one, two = [], []
    for g in groups:
        if g.gid in skip or not g.model.is_a(g.root.tname, "baseCell") or "v" not in g.state:
            continue
        moved = set(g.rates) | set(g.rate_cases)
        if "v" not in moved:
            continue
        (two if moved - {"v", STORED_RATE, SOLVED_V} else one).append(g)
    return one, two


def stored_point_rates(groups, dt: float) -> None:
    """jNeuroML's mod of a point cell with states besides v (``BREAKPOINT { SOLVE states METHOD
    cnexp; i = v_I * C }``): the cell's own rate of v is computed in ``rates()``, inside the
    state update — after the voltage solve, from the new v and the states before their update,
    with the attachments' currents left out (``iSyn = 0``: the synapse and input mods add their
    currents to the section themselves) — and stored as ``v_I``, which the next step's current
    uses. So here:

    * ``STORED_RATE`` (v_I) is a state moved with the other states to ``OWN_RATE``, the rate of v
      with every scatter of the cell (its attachments' sums) read as 0 — the Euler step of
      ``(own − v_I)/dt``;
    * v moves by ``v_I + Σ i_attached / C`` (C the cell's ``C``, else the 1 nF section the export
      makes), in every regime — NEURON's section takes the point processes' currents whatever
      the cell's regime says of v;
    * the other states see the attachments' currents as 0 too;
    * a top-level OnCondition that assigns v (a reset) sets v_I to 0, as the export's NET_RECEIVE
      does (a regime's entry does not).

    The initial v_I (INITIAL's rates(): v at NEURON's v_init, states 0) is set by the engine.
    Must run before the Program is made; idempotent."""
    for g in groups:
        if STORED_RATE in g.state:
            continue
        scatters = {n for n, d in g.derived.items() if d.kind == "scatter" and d.op == "add" and "/" not in n}
        breakpoint = _breakpoint_values(g, dt)

        def leaf(n, scatters=scatters, breakpoint=breakpoint):
            if n in scatters:
                return ("num", 0.0)
            if breakpoint is not None and n in breakpoint.owned:
                r = breakpoint.read(n)
                return ("bin", "*", ("name", r) if isinstance(r, str) else r, ("name", BREAKPOINT_DONE))
            return None
        own = _rewritten_reads(g, leaf, "__nrn_own")

        rv = g.rates.get("v")
        cases = g.rate_cases.pop("v", None)
        if cases:  # by regime, 0 in a regime that does not move v (Program.rate_ast's select)
            rv = rv if rv is not None else ("num", 0.0)
            for (rkey, ri), a in cases:
                rv = ("call", "__select", (("cmp", "==", ("name", rkey), ("num", float(ri))), a, rv))
        for key in list(g.rates):
            if key != "v":
                g.rates[key] = E.rename(g.rates[key], own)
        for key, cs in g.rate_cases.items():
            g.rate_cases[key] = [(reg, E.rename(a, own)) for reg, a in cs]
        g.derived[OWN_RATE] = Derived(OWN_RATE, "expr", ast=E.rename(rv, own))
        g.state[STORED_RATE] = "none"
        g.rates[STORED_RATE] = copy_rate(("name", OWN_RATE), STORED_RATE, dt)
        cap = ("name", "C") if "C" in g.params or "C" in g.per_instance else ("num", 1e-9)
        attached = ("num", 0.0)
        for n in sorted(scatters):
            attached = ("bin", "+", attached, ("name", n)) if attached != ("num", 0.0) else ("name", n)
        g.rates["v"] = ("bin", "+", ("name", STORED_RATE), ("bin", "/", attached, cap))
        for h in g.handlers:
            if h.kind == "condition" and h.regime is None and h.node.prefix == "" \
                    and any(k == "v" for k, _ in h.assignments):
                h.assignments.append((STORED_RATE, ("num", 0.0)))


def _rewritten_reads(g, leaf, suffix: str):
    """A renamer (for :func:`E.rename`) of group ``g``'s names: ``leaf(name)`` where it gives a
    replacement AST; a derived value (expression or cases) that reads a replaced name, directly or
    through others, becomes a copy ``name + suffix`` that reads the replacements; the rest stay."""
    memo: Dict[str, object] = {}

    def fn(n):
        if n in memo:
            return memo[n]
        r = leaf(n)
        if r is None:
            r = n
            d = g.derived.get(n)
            if d is not None and d.kind in ("expr", "cases"):
                if d.kind == "expr":
                    new = E.rename(d.ast, fn)
                    changed = new != d.ast
                else:
                    new = [(None if c is None else E.rename(c, fn), E.rename(v, fn)) for c, v in d.cases]
                    changed = new != d.cases
                if changed:
                    r = n + suffix
                    g.derived[r] = Derived(r, d.kind, ast=new if d.kind == "expr" else None,
                                           cases=new if d.kind == "cases" else None, regime=d.regime)
        memo[n] = r
        return r
    return fn


#: 0 until a point cell's first BREAKPOINT, then 1 (see :func:`_breakpoint_values`)
BREAKPOINT_DONE = "__nrn_breakpoint"


class _Breakpoint:
    """The values of a point cell's ion channels, as jNeuroML's mod computes them: in BREAKPOINT's
    current pass (a channel's ``fopen``, ``g``…), from the gates' ``fcond`` that the previous
    ``rates()`` stored — the gates before their last update. ``rates()`` (the cell's own rate of
    v) reads those: conductances one update older than the gates it sees itself. So each gate
    state gets a slot holding its value before the last update (0 at the start: INITIAL's
    rates() sees the gates at 0), and the channels' values read through ``read`` are copies
    computed from the slots."""

    def __init__(self, g, channels, dt):
        self.g = g
        self.channels = channels
        self.owned = {k for k in g.derived if _node_of(k) in channels}
        self.slots: Dict[str, str] = {}
        for k in list(g.state):
            if any(k.startswith(c + "/") for c in channels) and (k in g.rates or k in g.rate_cases):
                slot = self.slots[k] = f"{k}__nrn_stored"
                g.state[slot] = g.state[k]
                g.rates[slot] = copy_rate(("name", k), slot, dt)
        self.read = _rewritten_reads(g, lambda n: ("name", self.slots[n]) if n in self.slots else None,
                                     "__nrn_stored")


def _breakpoint_values(g, dt):
    channels = {nd.prefix for nd in g.nodes if nd.prefix and g.model.is_a(nd.tname, "baseIonChannel")}
    if not channels:
        return None
    g.state[BREAKPOINT_DONE] = "none"
    g.rates[BREAKPOINT_DONE] = ("num", 0.0)
    return _Breakpoint(g, channels, dt)


#: a point cell's voltage as the last state update saw it (see :func:`solved_voltage_reads`)
SOLVED_V = "__nrn_v_solved"


def solved_voltage_reads(groups, dt: float) -> None:
    """The mechanisms with states attached to abstract point cells (synapses: jNeuroML's mods
    compute their current in ``rates()``, inside the state update) pass the section a current
    computed at the end of the previous step — from the voltage the solve reached then. A reset
    in between (a WATCH action at the start of the step) does not reach it: the step after a
    spike sees the synaptic current of the spike's peak. So each such cell gets ``SOLVED_V``, a
    state moved with the other states to v (the Euler step of ``(v − v_s)/dt``), and those
    attachments read it in place of v. Stateless ones (gap junctions) compute in BREAKPOINT, at
    the present v. Must run before the Program is made; idempotent."""
    for g in groups:
        if SOLVED_V in g.state:
            continue
        readers = [ag for ags in g.attached.values() for ag in ags if ag.rates or ag.rate_cases]
        hits = [(ag, k) for ag in readers for k, d in ag.derived.items()
                if d.kind == "gather" and d.src is g and d.src_key == "v"]
        if not hits:
            continue
        g.state[SOLVED_V] = g.state["v"]
        g.rates[SOLVED_V] = copy_rate(("name", "v"), SOLVED_V, dt)
        for ag, k in hits:
            ag.derived[k].src_key = SOLVED_V


def stale_ancestor_reads(groups) -> None:
    """jNeuroML's mod files compute a channel's derived values in one PROCEDURE rates(), each
    child component's (rates, time course, steady state…) before its parent's own. A child that
    reads a parent's value — a custom time course requiring the gate's ``alpha``/``beta``, as
    neuroConstruct's channels do — so gets the value the previous call of rates() left: that of
    the previous step's voltage (INITIAL calls rates() twice, so the first is right).

    For ``--method neuron`` (jNeuroML's flavour) such a read becomes a read of a copy, which the
    engine refreshes after each evaluation of the step's rates (``g.stale_reads``: (parent key,
    copy key) pairs). Must run before the Program is made."""
    for g in groups:
        if getattr(g, "stale_reads", None) is not None:
            continue
        g.stale_reads = []
        model = g.model
        channels = [nd.prefix for nd in g.nodes if nd.prefix and model.is_a(nd.tname, "baseIonChannel")]

        def channel_of(prefix):
            for c in channels:
                if prefix == c or prefix.startswith(c + "/"):
                    return c
            return None
        copies = {}
        for key, d in list(g.derived.items()):
            if d.kind not in ("expr", "cases"):
                continue
            me = _node_of(key)
            ch = channel_of(me)
            if ch is None:
                continue
            for n in E.names(_definition(d)):
                pd = g.derived.get(n)
                if pd is None or pd.kind not in ("expr", "cases"):
                    continue
                owner = _node_of(n)
                # a strict ancestor of this node, inside the same channel
                if not (me.startswith(owner + "/") and (owner == ch or owner.startswith(ch + "/"))):
                    continue
                copy = copies.get(n)
                if copy is None:
                    copy = copies[n] = f"{n}__previous_rates"
                    g.per_instance[copy] = np.zeros(g.n)
                    g.stale_reads.append((n, copy))
                if d.kind == "expr":
                    d.ast = _rename(d.ast, n, copy)
                else:
                    d.cases = [(_rename(c, n, copy), _rename(v, n, copy)) for c, v in d.cases]


def jacobian_diagonal(prog, local: bool = False) -> list:
    """∂(dx/dt)/∂x for every integrated state of ``prog``, as ASTs (same order as rate_keys).

    ``local``: differentiate a state's rate only through the derived values of its own
    component (except for the implicitly solved states): what NEURON's ``cnexp`` sees of a
    mod file, where a value another mechanism computes (``ica`` read by a calcium pool,
    whose reversal potential moves with the pool) is a constant over the step."""
    out = []
    for gid, key in prog.rate_keys:
        g = prog.by_gid[gid]
        own = _node_of(key) if local and (gid, key) not in prog.implicit and key not in prog.implicit else None

        def definition(n, g=g, own=own):
            if (g.gid, n) in prog.literals:
                return None
            if own is not None and _node_of(n) != own:
                return None
            d = g.derived.get(n)
            if d is None:
                return None
            if d.kind in ("expr", "cases"):
                return _definition(d)
            slope = getattr(g, "scatter_slopes", {}).get(n)
            if slope is not None and (gid, key) in prog.implicit:
                # the attached currents as the host's v sees them: slope * v (slope a constant)
                return ("bin", "*", ("name", slope), ("name", key))
            return None
        out.append(Differentiator(definition).diff(prog.rate_ast(g, key), key))
    return out


def stepper_jacobian(method: str, prog, nmodl: bool = False) -> Optional[list]:
    """∂f/∂x per state as the explicit step of ``method`` needs it: every state for
    exp_euler (and for neuron on NEURON's own mod files: ``cnexp``); for euler only the states
    an implicit phase takes over (it needs B); None when nothing needs it.  Refuses rk4 where
    an implicit phase exists."""
    if prog.implicit and method == "rk4":
        raise UnsupportedFeature("rk4 cannot step multi-compartment cells (their voltage is solved "
                                 "implicitly): use --method exp_euler or euler")
    if method == "exp_euler":
        return jacobian_diagonal(prog)
    if method == "neuron" and nmodl:
        return jacobian_diagonal(prog, local=True)
    points = getattr(prog, "point_voltages", set()) if method == "neuron" else set()
    if method in ("euler", "neuron") and (prog.implicit or points):
        return [b if k in prog.implicit or k in points else None
                for k, b in zip(prog.rate_keys, jacobian_diagonal(prog))]
    return None


def neuron_halves(prog):
    """The states NEURON's step moves before the voltage solve (the implicit ones' f and B, and
    concentration pools: ``prog.early_states``) and after it (the rest, but the kinetic schemes
    the engine solves itself: ``prog.solved_apart``) — one rule for both backends."""
    first = set(prog.implicit) | getattr(prog, "early_states", set())
    apart = getattr(prog, "solved_apart", set())
    return first, {k for k in prog.rate_keys if k not in first and k not in apart}


def rk4_stages(dt: float):
    """Classical RK4's schedule, for every backend: (stage, previous stage, coefficient, time
    offset) — stage s's rates are taken at t + offset after states = y + coefficient·k_prev
    (and derived values recomputed there); then x = y + dt/6 (k_a + 2 k_b + 2 k_c + k_d)."""
    h2 = 0.5 * dt
    return (("a", None, None, 0.0), ("b", "a", h2, h2), ("c", "b", h2, h2), ("d", "c", dt, dt))
