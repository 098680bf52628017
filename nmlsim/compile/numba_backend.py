"""An optional fused CPU backend: the derived variables and the integration step of a
:class:`~nmlsim.compile.codegen.Program` compiled by Numba into two functions.

It is generated from the same flattened equations (the same ASTs, through the scalar
dialect of :mod:`nmlsim.lems.expr`): every derived variable, gather, scatter and state update
becomes one loop over its group's instances inside one compiled function, so a step costs
a few function calls instead of hundreds of NumPy operations.  Conditions, events and
recording stay in the NumPy engine and read the same arrays.

Selected with ``--backend numba`` (``Simulator(..., backend="numba")``); euler and
exp_euler are compiled whole, RK4 runs its four stages on compiled derived/rate functions;
models it cannot compile (random numbers in expressions) are named in an
:class:`UnsupportedFeature` error.  Results equal the NumPy backend's to float rounding
(tests/unit/test_numba_backend.py, and the conformance corpus).
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np

from ..errors import UnsupportedFeature
from ..lems import expr as E


def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _power(a: str, b: str) -> str:
    """x ** small integer as products (math.pow is a libm call per element)."""
    try:
        k = float(b)
    except ValueError:
        return f"_m.pow({a}, {b})"
    if k == int(k) and 0 <= k <= 4:
        k = int(k)
        return "1.0" if k == 0 else "(" + " * ".join([f"({a})"] * k) + ")"
    return f"_m.pow({a}, {b})"


_DIALECT = E._Dialect(E.PY_FUNCTIONS, "and", "or", "not ", power=_power,
                      select=lambda c, a, b: f"({a} if {c} else {b})")


_HELPERS_SRC = """import math as _m
import math
import numpy as _np
import numba


@numba.njit(cache=True)
def _hs(x):
    return 0.0 if x < 0 else (0.5 if x == 0 else 1.0)


@numba.njit(cache=True)
def _sign1(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


@numba.njit(cache=True)
def _fact1(x):
    return math.gamma(x + 1.0)


@numba.njit(cache=True)
def _phi(z):
    if -1e-9 < z < 1e-9:
        return 1.0 + 0.5 * z
    return math.expm1(z) / z


"""


def _helpers():
    """The helper functions in a namespace of their own (kernels compiled from memory)."""
    ns: dict = {}
    exec(compile(_HELPERS_SRC.replace("cache=True", "cache=False"), "<nmlsim-numba-helpers>", "exec"), ns)
    return ns


def cache_dir():
    """Where generated kernels and Numba's compiled code are kept: $NMLSIM_CACHE_DIR, else
    ~/.cache/nmlsim/numba (XDG_CACHE_HOME respected)."""
    import os
    from pathlib import Path
    env = os.environ.get("NMLSIM_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nmlsim" / "numba"


def _load_module(source: str):
    """The kernels as a module in a file named by the hash of their source, so that Numba's
    on-disk cache (keyed by file and function) serves a model's second and later runs without
    recompiling.  None where no cache folder can be written."""
    import hashlib
    import importlib.util
    import os
    import numba
    text = _HELPERS_SRC + source
    key = hashlib.sha1((numba.__version__ + "\0" + text).encode()).hexdigest()[:20]
    folder = cache_dir()
    path = folder / f"k_{key}.py"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = folder / f".k_{key}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, path)
    except OSError:
        return None
    import sys
    name = f"nmlsim_kernels_{key}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # Numba's cache re-imports the module by name when it loads
    spec.loader.exec_module(mod)
    return mod


def _fuse(lines: List[str]) -> List[str]:
    """Merge consecutive ``for i in range(n):`` loops (elementwise statements of one group
    in dependency order: fusing keeps the order, so each instance sees its own values)."""
    out: List[str] = []
    for ln in lines:
        if ln.startswith("    for i in range(") and out:
            # find the last loop header; fuse if it is the same range and only its body followed
            k = len(out) - 1
            while k >= 0 and out[k].startswith("        "):
                k -= 1
            if k >= 0 and out[k] == ln:
                continue
        out.append(ln)
    return out


class NumbaKernels:
    """``derived(V, t)`` and ``step(V, t)`` for a Program, compiled on first use."""

    def __init__(self, prog, dt: float, method: str, jdiag=None):
        if not available():
            raise UnsupportedFeature("the numba backend needs the 'numba' package (pip install numba)")
        if method not in ("euler", "exp_euler", "rk4"):
            raise UnsupportedFeature(f"the numba backend has no integrator '{method}'")
        self.prog = prog
        self.dt = float(dt)
        # random numbers drawn in event handlers stay in NumPy (the group's own stream);
        # one drawn in a derived variable or rate is refused where it is compiled (_expr)
        # every derived value becomes an array of its group's size
        for gid, key in prog.order:
            nm = prog.py(gid, key)
            n = prog.by_gid[gid].n
            v = prog.V.get(nm)
            prog.V[nm] = np.zeros(n) if v is None else np.array(np.broadcast_to(np.asarray(v, dtype=float), (n,)))
        self.arrays: Dict[str, int] = {}  # V name -> argument position
        self.consts: List[np.ndarray] = []
        lines_d = self._derived_lines()
        lines_s = self._step_lines(jdiag if method == "exp_euler" else None)
        lines_r = self._rates_lines()
        args = ", ".join(["t"] + [f"a{i}" for i in range(len(self.arrays))] + [f"c{i}" for i in range(len(self.consts))])
        rargs = ", ".join(f"r{j}" for j in range(len(prog.rate_keys)))
        src = [f"def _derived({args}):"] + (_fuse(lines_d) or ["    pass"])
        src += [f"def _step({args}):"] + (lines_s or ["    pass"])
        src += [f"def _rates({args}{', ' + rargs if rargs else ''}):"] + (_fuse(lines_r) or ["    pass"])
        self.source = "\n".join(src) + "\n"
        mod = _load_module(self.source)
        opts = dict(cache=mod is not None, error_model="numpy", fastmath=False)
        import numba
        if mod is None:  # no writable cache folder: compile from memory
            ns = _helpers()
            exec(compile(self.source, "<nmlsim-numba>", "exec"), ns)
        else:
            ns = vars(mod)
        self._d = numba.njit(**opts)(ns["_derived"])
        self._s = numba.njit(**opts)(ns["_step"])
        self._r = numba.njit(**opts)(ns["_rates"]) if method == "rk4" else None
        self._names = sorted(self.arrays, key=self.arrays.get)
        self._rate_out = [np.zeros(prog.by_gid[gid].n) for gid, _ in prog.rate_keys]
        # compile now (not on the first step), so that run times are run times
        sig = tuple(numba.typeof(x) for x in (0.0,) + self._args(prog.V))
        self._d.compile(sig)
        self._s.compile(sig)
        if self._r is not None:
            self._r.compile(sig + tuple(numba.typeof(r) for r in self._rate_out))

    # ------------------------------------------------------------- naming
    def _arr(self, nm: str) -> str:
        if nm not in self.arrays:
            v = self.prog.V.get(nm)
            if not isinstance(v, np.ndarray) or v.dtype != float or v.ndim != 1:
                self.prog.V[nm] = np.atleast_1d(np.asarray(v if v is not None else 0.0, dtype=float)).copy()
            self.arrays[nm] = len(self.arrays)
        return f"a{self.arrays[nm]}"

    def _const(self, idx) -> str:
        self.consts.append(np.ascontiguousarray(idx, dtype=np.int64))
        return f"c{len(self.consts) - 1}"

    def _expr(self, g, ast, i="i") -> str:
        fn = self.prog.name_fn(g)

        def name(key):
            s = fn(key)
            if s == "t" or not s.startswith("x"):
                return s
            return f"{self._arr(s)}[{i}]"
        code = E._emit(ast, name, _DIALECT)
        if "_rand1(" in code:
            raise UnsupportedFeature(f"group '{g.name}' draws random numbers; use the numpy backend")
        return code

    # ------------------------------------------------------------- derived
    def _derived_lines(self) -> List[str]:
        prog = self.prog
        out: List[str] = []
        for gid, key in prog.order:
            g = prog.by_gid[gid]
            d = g.derived[key]
            me = self._arr(prog.py(gid, key))
            if d.kind == "expr":
                out += [f"    for i in range({g.n}):", f"        {me}[i] = {self._expr(g, d.ast)}"]
            elif d.kind == "cases":
                default, conds = "0.0", []
                for c, v in d.cases:
                    if c is None:
                        default = self._expr(g, v)
                    else:
                        conds.append((self._expr(g, c), self._expr(g, v)))
                expr = default
                for c, v in reversed(conds):
                    expr = f"(({v}) if ({c}) else ({expr}))"
                out += [f"    for i in range({g.n}):", f"        {me}[i] = {expr}"]
            elif d.kind == "gather":
                src = prog.by_gid[d.src.gid]
                sp = prog.name_fn(src)(d.src_key)
                val = sp if not sp.startswith("x") else None
                # (loop variable q: a gather reads other instances, so it is never fused)
                if d.idx is None:
                    rhs = val or (f"{self._arr(sp)}[0]" if src.n == 1 else f"{self._arr(sp)}[q]")
                else:
                    c = self._const(d.idx)
                    rhs = val or (f"{self._arr(sp)}[0]" if src.n == 1 else f"{self._arr(sp)}[{c}[q]]")
                out += [f"    for q in range({g.n}):", f"        {me}[q] = {rhs}"]
            elif d.kind == "scatter":
                mul = d.op == "multiply"
                out += [f"    for q in range({g.n}):", f"        {me}[q] = {1.0 if mul else 0.0}"]
                for ag, k, idx in d.terms:
                    sp = prog.name_fn(ag)(k)
                    val = sp if not sp.startswith("x") else f"{self._arr(sp)}[{'0' if ag.n == 1 else 'j'}]"
                    if idx is None:
                        tgt = "0"
                    else:
                        tgt = f"{self._const(idx)}[j]"
                    op = "*=" if mul else "+="
                    out += [f"    for j in range({ag.n}):", f"        {me}[{tgt}] {op} {val}"]
            else:
                raise UnsupportedFeature(f"derived variable kind '{d.kind}' has no numba form")
        return out

    # ------------------------------------------------------------- step
    def _step_lines(self, jdiag) -> List[str]:
        prog = self.prog
        dt = self.dt
        calc, write = [], []
        for j, (gid, key) in enumerate(prog.rate_keys):
            g = prog.by_gid[gid]
            x = self._arr(prog.py(gid, key))
            rate = self._expr(g, prog.rate_ast(g, key))
            b = jdiag[j] if jdiag is not None else None
            tmp = f"r{j}"
            calc.append(f"    {tmp} = np_empty({g.n})")
            calc.append(f"    for i in range({g.n}):")
            const = None
            if b is not None and "t" not in E.names(b) and all((g.gid, n) in prog.literals for n in E.names(b)):
                env = {n: prog.literals[(g.gid, n)] for n in E.names(b)}
                const = float(E.evaluate(b, env))  # a constant linear coefficient (synaptic decay)
            if const is not None:
                z = const * dt
                phi = 1.0 + 0.5 * z if abs(z) < 1e-9 else math.expm1(z) / z
                calc.append(f"        {tmp}[i] = ({rate}) * {phi!r}")
            elif b is not None and not (b[0] == "num" and b[1] == 0.0):
                calc.append(f"        {tmp}[i] = ({rate}) * _phi(({self._expr(g, b)}) * {dt!r})")
            else:
                calc.append(f"        {tmp}[i] = {rate}")
            write += [f"    for i in range({g.n}):", f"        {x}[i] += {dt!r} * {tmp}[i]"]
        return [line.replace("np_empty", "_np.empty") for line in calc] + write

    def _rates_lines(self) -> List[str]:
        prog = self.prog
        out = []
        for j, (gid, key) in enumerate(prog.rate_keys):
            g = prog.by_gid[gid]
            out += [f"    for i in range({g.n}):", f"        r{j}[i] = {self._expr(g, prog.rate_ast(g, key))}"]
        return out

    # ------------------------------------------------------------- calls
    def _args(self, V) -> Tuple:
        # the arrays are built once and only ever written in place (kernels, event handlers
        # and the engine alike), so the argument tuple is built once per V
        if getattr(self, "_argv", None) is not V:
            self._argv, self._argt = V, tuple(V[n] for n in self._names) + tuple(self.consts)
        return self._argt

    def derived(self, V, t):
        self._d(float(t), *self._args(V))

    def step(self, V, t):
        self._s(float(t), *self._args(V))

    def rates(self, V, t):
        """The time derivatives (fresh arrays, as the NumPy ``rates`` returns), for RK4."""
        out = [np.empty_like(r) for r in self._rate_out]
        self._r(float(t), *self._args(V), *out)
        return out
