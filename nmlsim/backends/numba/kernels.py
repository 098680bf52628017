"""An optional fused CPU backend: a :class:`~nmlsim.compile.program.Program` compiled by
Numba — derived variables, integration step and (``loop``) the event phase and the
time loop itself.

It is generated from the same flattened equations (the same ASTs, through the scalar
dialect of :mod:`nmlsim.lems.expr`): every derived variable, gather, scatter and state update
becomes one loop over its group's instances, consecutive loops of one size fused, so a step
costs no Python at all when the engine runs the compiled loop (it does whenever every
recorder takes its data in blocks, see :mod:`nmlsim.engine.simulator`).

Choices that keep it fast and exact:

* array arguments are declared ``noalias`` (they never overlap), so LLVM vectorises loops
  that touch many arrays;
* ``exp`` is :func:`_vexp`, a polynomial with exponent-bit scaling that vectorises and is
  within one ulp of libm's (libm's ``exp`` is a call per element); exponential Euler's
  ``expm1(z)/z`` likewise;
* no fast-math: the arithmetic is NumPy's, operation for operation, so models without
  ``exp`` give bit-identical spike trains and the others agree to float rounding.

Selected with ``--backend numba`` (``Simulator(..., backend="numba")``); euler and
exp_euler are compiled whole, RK4 runs its four stages on compiled derived/rate functions;
models it cannot compile (random numbers in expressions) are named in an
:class:`UnsupportedFeature` error.  Kernels are cached on disk (:func:`cache_dir`), keyed
by the hash of their source.  Results: tests/unit/test_numba_backend.py and the
conformance corpus.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
import sys
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from ...errors import UnsupportedFeature
from ...lems import expr as E
from ...compile.integrators import Spelling, lower_updates, rk4_stages, update_statements


def available() -> bool:
    if "numba" not in sys.modules:
        _wide_vectors()
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _wide_vectors():
    """LLVM's x86 tuning prefers 256-bit vectors on AVX-512 machines (early Xeons slowed
    their clock for 512-bit ones); these kernels are arithmetic-bound and ~13% faster with
    512-bit vectors (COBAHH). Numba reads its target features once, when it is imported:
    so, before the first import and unless the user set NUMBA_CPU_FEATURES or
    NUMBA_CPU_NAME, the host's features without that preference. The environment is
    restored at once; only the vector width changes, not the results."""
    if os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("NUMBA_CPU_NAME"):
        return
    try:
        import llvmlite.binding as ll
        feats = ll.get_host_cpu_features().flatten()
    except Exception:  # no llvmlite, or a host it cannot query: Numba's defaults
        return
    if "+avx512f" not in feats.split(","):
        return
    os.environ["NUMBA_CPU_FEATURES"] = feats + ",-prefer-256-bit"
    try:
        import numba  # noqa: F401  (reads the variable now)
    except ImportError:
        pass
    finally:
        del os.environ["NUMBA_CPU_FEATURES"]


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


# '&'/'|' on the (always parenthesised) booleans: no short-circuit branch, so loops over
# conditions vectorise
_DIALECT = E._Dialect({**E.PY_FUNCTIONS, "exp": "_vexp", "__phi": "_phi"}, "&", "|", "not ", power=_power,
                      select=lambda c, a, b: f"({a} if {c} else {b})")


_HELPERS_SRC = """import math as _m
import math
import numpy as _np
import numba
import numba.extending
inf = math.inf  # a folded literal may be infinite or NaN (repr: 'inf', 'nan')
nan = math.nan
from llvmlite import ir as _ir


@numba.njit(cache=True)
def _hs(x):
    return 0.0 if x < 0 else (0.5 if x == 0 else 1.0)


@numba.njit(cache=True)
def _sign1(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


@numba.njit(cache=True)
def _fact1(x):
    return math.gamma(x + 1.0)


@numba.extending.intrinsic
def _bits2f(typingctx, x):
    # the float64 whose bits are the int64 x
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _ir.DoubleType())
    return numba.types.float64(numba.types.int64), codegen


def _ptr_intrinsic(dtype):
    @numba.extending.intrinsic
    def ptr(typingctx, addr):
        # a typed pointer from an address (the kernels' table of arrays)
        rtype = numba.types.CPointer(dtype)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(rtype))
        return rtype(numba.types.int64), codegen
    return ptr


@numba.extending.intrinsic
def _fma(typingctx, a, b, c):
    # a * b + c rounded once (llvm.fma, which LLVM vectorises)
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return numba.types.float64(numba.types.float64, numba.types.float64, numba.types.float64), codegen


_p_f64 = _ptr_intrinsic(numba.types.float64)
_p_i64 = _ptr_intrinsic(numba.types.int64)
_p_u8 = _ptr_intrinsic(numba.types.uint8)
_carray = numba.carray


# exp, expm1 and phi emitted as LLVM IR at each call site (intrinsics): the same operations
# as Python-level helpers inlined by Numba (inline="always"), which LLVM vectorises alike, but
# Numba's own pipeline sees one call per site — inlining ~25 statements a site in Numba's IR
# (deep copies, SSA passes) was most of a kernel's compile time


def _f64c(v):
    return _ir.Constant(_ir.DoubleType(), v)


def _call_intr(builder, name, args):
    ty = _ir.DoubleType()
    fn = builder.module.declare_intrinsic(name, [ty], _ir.FunctionType(ty, [ty] * len(args)))
    return builder.call(fn, args)


def _reduced_ir(b, x):
    # x = k ln2 + r with |r| <= ln2/2 (Cody-Waite, two-part ln2, fused multiply-adds);
    # returns 2**k as s * post (post = 2**-64 where 2**k is subnormal) and expm1(r): r times
    # a degree-10 near-minimax polynomial of expm1(r)/r on |r| <= ln2/2 (Chebyshev fit,
    # error 2e-17). Only operations LLVM vectorises: libm's exp is a call per element
    fma = lambda a, c, d: _call_intr(b, "llvm.fma", [a, c, d])  # noqa: E731
    y = b.select(b.fcmp_ordered(">", x, _f64c(-746.0)), x, _f64c(-746.0))
    y = b.select(b.fcmp_ordered("<", y, _f64c(709.0)), y, _f64c(709.0))
    k = _call_intr(b, "llvm.floor", [b.fadd(b.fmul(y, _f64c(1.4426950408889634)), _f64c(0.5))])
    r = fma(k, _f64c(-6.93147180369123816490e-01), y)
    r = fma(k, _f64c(-1.90821492927058770002e-10), r)
    tiny = b.fcmp_ordered("<", k, _f64c(-1000.0))
    kk = b.select(tiny, b.fadd(k, _f64c(64.0)), k)
    post = b.select(tiny, _f64c(5.421010862427522e-20), _f64c(1.0))
    q = _f64c(2.510520637395701e-08)
    for c in (2.7626357241447223e-07, 2.7557255425746435e-06, 2.4801504346997686e-05, 0.00019841269874800493,
              0.0013888888932488599, 0.008333333333326141, 0.04166666666657314, 0.1666666666666667,
              0.5000000000000006, 1.0):
        q = fma(q, r, _f64c(c))
    i64 = _ir.IntType(64)
    bits = b.shl(b.fptosi(b.fadd(kk, _f64c(1023.0)), i64), _ir.Constant(i64, 52))
    return b.bitcast(bits, _ir.DoubleType()), post, b.fmul(r, q)


def _vexp_ir(b, x):
    # exp(x) within one ulp of libm's
    s, post, e = _reduced_ir(b, x)
    res = b.fmul(_call_intr(b, "llvm.fma", [s, e, s]), post)  # post: onto the subnormal grid
    res = b.select(b.fcmp_ordered(">", x, _f64c(709.782712893384)), _f64c(math.inf), res)
    res = b.select(b.fcmp_ordered("<", x, _f64c(-745.1332191019412)), _f64c(0.0), res)
    return b.select(b.fcmp_ordered("==", x, x), res, x)


def _vexpm1_ir(b, x):
    # exp(x) - 1 without cancellation near 0: 2**k expm1(r) + (2**k - 1), which is
    # expm1(r) itself for |x| < ln2/2; within two ulp of libm's
    s, post, e = _reduced_ir(b, x)
    s = b.fmul(s, post)
    res = _call_intr(b, "llvm.fma", [s, e, b.fsub(s, _f64c(1.0))])
    res = b.select(b.fcmp_ordered(">", x, _f64c(709.782712893384)), _f64c(math.inf), res)
    return b.select(b.fcmp_ordered("==", x, x), res, x)


def _phi_ir(b, z):
    e = b.fdiv(_vexpm1_ir(b, z), z)
    small = b.fcmp_ordered("<", _call_intr(b, "llvm.fabs", [z]), _f64c(1e-9))
    return b.select(small, b.fadd(_f64c(1.0), b.fmul(_f64c(0.5), z)), e)


def _unary_intrinsic(emit):
    @numba.extending.intrinsic
    def fn(typingctx, x):
        def codegen(context, builder, signature, args):
            return emit(builder, args[0])
        return numba.types.float64(numba.types.float64), codegen
    return fn


_vexp = _unary_intrinsic(_vexp_ir)
_vexpm1 = _unary_intrinsic(_vexpm1_ir)
_phi = _unary_intrinsic(_phi_ir)


@numba.njit(cache=True)
def _phi_libm(z):
    e = _m.expm1(z) / z
    return 1.0 + 0.5 * z if abs(z) < 1e-9 else e


"""


#: a generated function with more exp/expm1 call sites than this calls libm instead of
#: inlining the vectorisable polynomial: inlined (~25 statements a site, so that loops
#: vectorise), LLVM's optimisation of one function grows faster than linearly with its size.
#: The 5-cell Allen SONATA circuit's derived pass (176 sites): 375 s to compile inlined, 52 s
#: with libm; the thalamus's (96 sites) stays inlined: 160 s, and its run 1.7x faster than
#: with libm (docs/benchmarks.md)
VEXP_INLINE_MAX = 128


def _libm_if_large(source: str) -> str:
    """``source`` with the exp sites of its too-large functions calling libm."""
    parts = source.split("\ndef ")
    for i, part in enumerate(parts):
        sites = part.count("_vexp(") + part.count("_vexpm1(") + part.count("_phi(")
        if sites > VEXP_INLINE_MAX:
            parts[i] = (part.replace("_vexpm1(", "_m.expm1(").replace("_vexp(", "_m.exp(")
                        .replace("_phi(", "_phi_libm("))
    return "\ndef ".join(parts)


from .loop import HELPERS as _LOOP_HELPERS  # noqa: E402

_HELPERS_SRC += _LOOP_HELPERS


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


#: called (no arguments) when a model's kernels are about to be compiled for the first time —
#: the CLI sets it to say so, since the first run of a large model can compile for minutes
COMPILE_NOTICE = None


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
    fresh = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fresh = True
            if COMPILE_NOTICE is not None:
                COMPILE_NOTICE()
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
    mod._nmlsim_fresh = fresh  # (first compilation: compile_jobs may spread it over processes)
    return mod


#: literals left in the kernels' source: the generator's own constants (accumulators, selects),
#: which LLVM folds; any other value is read from the literal table
KEPT_LITERALS = frozenset({"0.0", "1.0", "-0.0"})
_FLOAT = re.compile(r"(?<![\w.])(?:\d+\.\d*(?:e[-+]?\d+)?|\d+e[-+]?\d+)(?![\w.])")


def hoist_literals(src: List[str], table: str, direct: bool = True) -> Tuple[List[str], np.ndarray]:
    """The kernels' source with every floating-point literal (parameter values folded by the
    code generator, the time step, derived constants) read from the array argument ``table``,
    and that array's values.  Kernels are then keyed by a model's structure, not its numbers:
    a changed conductance, time constant or time step loads the cached machine code and runs
    it with another table; the arithmetic is the literal's, bit for bit.  ``direct``: each use
    reads the table (``x7[3]``; the arguments are ``noalias``, so LLVM hoists the loads out of
    loops); otherwise each function first copies the values it uses into locals (``_K3 =
    x7[3]``: kernels reading their arrays from an address table make LLVM no promise that
    the table is not written)."""
    slots: Dict[str, int] = {}
    out: List[str] = []
    head = None  # index in out of the current function's def line
    used: Set[int] = set()

    def close():
        if head is not None and used and not direct:
            out[head + 1:head + 1] = [f"    _K{j} = {table}[{j}]" for j in sorted(used)]

    def sub(m):
        tok = m.group(0)
        if tok in KEPT_LITERALS:
            return tok
        j = slots.setdefault(tok, len(slots))
        used.add(j)
        return f"{table}[{j}]" if direct else f"_K{j}"
    for ln in src:
        if ln.startswith("def "):
            close()
            head, used = len(out), set()
            out.append(ln)
        elif ln.startswith(" ") and head is not None:
            out.append(_FLOAT.sub(sub, ln))
        else:
            out.append(ln)
    close()
    values = np.array([float(t) for t in slots] or [0.0], dtype=float)
    return out, values


_SIZES = (re.compile(r"(?<=\brange\()(\d+)(?=\))"), re.compile(r"(?<=\brange\()(\d+), (\d+)(?=\))"),
          re.compile(r"(?<=\b_np\.empty\()(\d+)(?=\))"), re.compile(r"(?<=\[)(\w+ [-+] )(\d+)(?=\])"))


_BLOCK = re.compile(r"^(\s+)for (\w+) in range\((\d+), (\d+)\):$")


def hoist_sizes(src: List[str], table: str) -> Tuple[List[str], np.ndarray]:
    """The kernels' source with the sizes in it — loop bounds (``range(4000)``, a population
    block's ``range(3200, 4000)`` and its offset ``a5[i - 3200]``) and scratch arrays
    (``_np.empty(4000)``) — read from the int64
    array argument ``table``, and that array's values: kernels keyed by structure, so that a
    population of another size runs the cached machine code (a bound of 0 or 1 stays: it decides
    whether a loop exists). Like :func:`hoist_literals`, correct by construction: the table is
    read off the very source that is compiled, so sizes that changed the generated code (a block
    split elsewhere, an index that is no longer the identity) give another source, hence other
    kernels."""
    slots: Dict[str, int] = {}

    def slot(tok: str) -> str:
        if int(tok) < 2:
            return tok
        return f"{table}[{slots.setdefault(tok, len(slots))}]"
    one, two, empty, offset = _SIZES
    out = []
    block = None  # (indentation of the loop's body, its variable) while in a population block's loop
    for ln in src:
        if block is not None and not ln.startswith(block[0]):
            block = None
        if ln.startswith(" "):
            m = _BLOCK.match(ln)
            if m and int(m.group(3)) >= 2:
                # a block's loop counted from 0, its index an unsigned sum: with a start LLVM
                # cannot see is not negative, each a[i] keeps Numba's wraparound test of a
                # negative index and the loop does not vectorise (COBAHH's loop 1.25 s against
                # 0.67 s with literal bounds); unsigned indices need no such test
                pad, var, a, b = m.group(1), m.group(2), slot(m.group(3)), slot(m.group(4))
                out += [f"{pad}for {var}_ in range({b} - {a}):", f"{pad}    {var} = {a} + {var}_",
                        f"{pad}    {var}_u = _np.uint64({a}) + _np.uint64({var}_)"]
                block = (pad + "    ", var)
                continue
            if "range(" in ln or "_np.empty(" in ln:
                ln = two.sub(lambda m: f"{slot(m.group(1))}, {slot(m.group(2))}", ln)
                ln = one.sub(lambda m: slot(m.group(1)), ln)
                ln = empty.sub(lambda m: slot(m.group(1)), ln)
            if block is not None:
                v = block[1]
                ln = re.sub(rf"\[{v} ([-+]) (\d+)\]",
                            lambda m: f"[{v}_u {m.group(1)} _np.uint64({slot(m.group(2))})]", ln)
                ln = ln.replace(f"[{v}]", f"[{v}_u]")
            elif " - " in ln or " + " in ln:
                ln = offset.sub(lambda m: m.group(1) + slot(m.group(2)), ln)
        out.append(ln)
    values = np.array([int(t) for t in slots] or [0], dtype=np.int64)
    return out, values


def _derived_aliases(prog) -> Dict[str, str]:
    """V name -> V name of derived variables that equal another derived variable of their
    group at all times (``x``, ``1.0 * x``: exact in IEEE arithmetic)."""
    computed = set(prog.order)
    alias: Dict[str, str] = {}
    one = ("num", 1.0)
    for gid, key in prog.order:
        d = prog.by_gid[gid].derived[key]
        if d.kind != "expr":
            continue
        a = d.ast
        if a[0] == "bin" and a[1] == "*" and one in (a[2], a[3]):
            a = a[3] if a[2] == one else a[2]
        if a[0] == "name" and (gid, a[1]) in computed and a[1] != key:
            target = prog.py(gid, a[1])
            alias[prog.py(gid, key)] = alias.get(target, target)  # the order is topological
    return alias


def _offset(idx):
    """o if ``idx`` is o, o+1, ..., else None."""
    if idx is None or len(idx) == 0:
        return None
    idx = np.asarray(idx)
    o = int(idx[0])
    return o if bool(np.array_equal(idx, np.arange(o, o + len(idx)))) else None


#: kernels with more arrays than this take one table of addresses (see NumbaKernels)
TABLE_ABOVE = 256
#: lines per part of a table-mode kernel (whole top-level loops; a longer loop is one part)
PART_LINES = 50
#: the event phase's parts are larger: the engine calls each of them every step (16 parts of
#: PART_LINES made the thalamus's warm run 1 s slower; its first run 29 s instead of 33 s)
EVENT_PART_LINES = 200


def _split_body(lines: List[str], limit: int) -> List[List[str]]:
    """A kernel body cut between top-level statements into pieces of at most ``limit`` lines
    (each piece runs after the one before: the statements keep their order)."""
    pieces: List[List[str]] = [[]]
    for head, body in _blocks(lines):
        block = [head] + body
        if pieces[-1] and len(pieces[-1]) + len(block) > limit:
            pieces.append([])
        pieces[-1] += block
    return pieces


#: at most this many processes compile a model's kernels on its first run (1: this process
#: alone); NMLSIM_COMPILE_JOBS overrides, default the CPUs this process may use
def compile_processes() -> int:
    import os
    env = os.environ.get("NMLSIM_COMPILE_JOBS")
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            from ...errors import SimulationError
            raise SimulationError(f"NMLSIM_COMPILE_JOBS='{env}': expected a number of processes, 1 or more")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: the compiled loop calls these through the module's globals: compiling it compiles them
_CALLEES_OF_RUN = ("_dstep", "_step", "_derived", "_events", "_due")


def compile_jobs(jobs, source: str, parallel: bool = True) -> None:
    """Compile ``jobs`` ((dispatcher, signature) pairs). The first compilation of a model's
    kernels (``parallel``: a fresh module in the on-disk cache) spreads them over forked
    processes, as many as the CPUs (:func:`compile_processes`): each child compiles its share
    into Numba's cache, reporting each through a pipe, and exits; this process compiles its own
    share meanwhile — the compiled loop once the functions it calls are in the cache, wherever
    they were compiled — then loads the children's from the cache (or, should a child fail,
    compiles them itself). Not under MPI (each rank is a process already), where
    ``os.fork`` is missing, or with other threads running."""
    import os
    import threading
    from ...parallel import launched_by_mpi
    jobs = [(f, sg) for f, sg in jobs if tuple(sg) not in f.overloads]  # (compiled in this process already)
    nproc = min(compile_processes(), len(jobs))
    # a fork copies only the calling thread: with others about (ranks as threads, a GUI), a lock
    # one of them holds — Numba's compiler lock — would never be released in the child
    if (not parallel or nproc < 2 or not hasattr(os, "fork") or launched_by_mpi()
            or threading.active_count() > 1 or threading.current_thread() is not threading.main_thread()):
        for f, sg in jobs:
            f.compile(sg)
        return
    size = {}
    for part in source.split("\ndef ")[1:]:
        size[part.split("(", 1)[0]] = len(part)
    names = [f.py_func.__name__ for f, _ in jobs]
    cost = [size.get(n, 1) for n in names]
    run = names.index("_run") if "_run" in names else None
    # the loop's callees must be compiled (or in the cache) before it: those come first, spread
    # over the processes; the loop then here, once they are done; the rest after, spread too
    pre = [j for j in range(len(jobs)) if run is not None and names[j] in _CALLEES_OF_RUN]
    rest = [j for j in range(len(jobs)) if j != run and j not in pre]
    order = [[] for _ in range(nproc)]
    load = [0] * nproc

    def spread(js):
        for j in sorted(js, key=lambda j: -cost[j]):
            b = min(range(nproc), key=lambda b: load[b])
            order[b].append(j)
            load[b] += cost[j]
    spread(pre)
    if run is not None:
        load[0] = max(load) + cost[run]
    spread(rest)
    mine = order[0]
    awaited = set(pre) - set(mine)
    children = []  # (pid, read end of its pipe, its jobs)
    try:
        for b in order[1:]:
            if not b:
                continue
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: its share into the cache, each reported; then gone
                os.close(r)
                code = 0
                try:
                    for j in b:
                        jobs[j][0].compile(jobs[j][1])
                        os.write(w, b"%d\n" % j)
                except BaseException:
                    code = 1
                os._exit(code)
            os.close(w)
            children.append((pid, r, b))
        for j in mine:
            if j in pre:
                jobs[j][0].compile(jobs[j][1])
        if run is not None:
            done = set()
            for pid, r, b in children:  # until the children's callees are in the cache
                buf = b""
                while awaited & set(b) - done:
                    chunk = os.read(r, 4096)
                    if not chunk:  # (a child that failed: compiled below, in this process)
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    done.update(int(x) for x in lines if x)
            for j in pre:  # loaded from the cache, or compiled here where a child failed
                jobs[j][0].compile(jobs[j][1])
            jobs[run][0].compile(jobs[run][1])
        for j in mine:
            if j not in pre:
                jobs[j][0].compile(jobs[j][1])
    finally:
        for pid, r, _ in children:
            try:
                os.waitpid(pid, 0)
            except (ChildProcessError, InterruptedError, OSError):
                pass
            os.close(r)
    for j in range(len(jobs)):  # the children's, from the cache (compiled here where one failed)
        jobs[j][0].compile(jobs[j][1])


class _Parts:
    """A kernel compiled as several functions of the same arguments, called in order."""

    def __init__(self, fns):
        self.fns = fns

    def __call__(self, *args):
        for f in self.fns:
            f(*args)

    def compile(self, sig):
        for f in self.fns:
            f.compile(sig)


class _EventParts(_Parts):
    """The event phase compiled as several functions, called in order: the first that reports
    an event loop (a nonzero result) ends the phase with it."""

    def __call__(self, *args):
        for f in self.fns:
            r = f(*args)
            if r:
                return r
        return 0


#: the event phase's locals that hold integers or flags (the generator's counters, fired counts,
#: cursors, ring slot, inbox loop): the only ones that may cross parts, in int64 arrays
_INT_LOCAL = re.compile(r"^_(?:any|n|cur|got)\d*$|^_(?:slot|again|guard)$")
_DEFINES = re.compile(r"^\s+(?:(_\w+) = |for (_\w+) in )")
_LOCAL_NAME = re.compile(r"(?<![\w.])(_[a-z]\w*)\b(?!\s*\()")


def _cross_locals(parts: List[List[str]]) -> Optional[Set[str]]:
    """The local variables of a function cut into ``parts`` that a part reads before it sets
    them (set in an earlier part; ``x += 1`` reads x): None where one of them is a loop
    variable (it cannot live in an array)."""
    defined_anywhere, loops, cross = set(), set(), set()
    for lines in parts:
        defined = set()
        for ln in lines:
            m = _DEFINES.match(ln)
            target = (m.group(1) or m.group(2)) if m else None
            rhs = ln[m.end():] if m else ln
            cross |= set(_LOCAL_NAME.findall(rhs)) - defined
            if target:
                defined.add(target)
                if m.group(2):
                    loops.add(target)
        defined_anywhere |= defined
    cross &= defined_anywhere
    return None if cross & loops else cross


def _allow_noalias():
    """Numba has a ``noalias`` compiler flag (LLVM ``noalias`` on array arguments) without a
    decorator option; map one once."""
    from numba.core import cpu, options
    if not hasattr(cpu.CPUTargetOptions, "noalias"):
        cpu.CPUTargetOptions.noalias = options._mapping("noalias")


_LOOP = re.compile(r"^    for i in range\((?:(\d+), )?(\d+)\):$")
_LOCAL = re.compile(r"^    [A-Za-z_]\w* = ")  # a kernel's own local variable (top level)


def _blocks(lines: List[str]) -> List[Tuple[str, List[str]]]:
    """A kernel body as (top-level line, the lines nested under it)."""
    out: List[Tuple[str, List[str]]] = []
    for ln in lines:
        if ln.startswith("        ") and out:
            out[-1][1].append(ln)
        else:
            out.append((ln, []))
    return out


def _fuse(lines: List[str], cut: bool = True) -> List[str]:
    """Merge consecutive elementwise loops (``for i in range(...)``, statements in dependency
    order, each touching index i of its arrays): the ranges of a run of such loops are cut
    at every loop's bounds and each piece runs, per i, the bodies of the loops that cover it,
    in their order — so a whole-population loop, a scatter split at population blocks and
    the loop after it become one loop per block. A run is left as it is where a body reads
    at another index an array that the run writes."""
    blocks: List[list] = []  # [lo, hi, body, header]; lo None: not an elementwise loop
    for head, body in _blocks(lines):
        m = _LOOP.match(head)
        if m:
            blocks.append([int(m.group(1) or 0), int(m.group(2)), body, head])
        else:
            blocks.append([None, None, [head] + body, None])
    out: List[str] = []
    k = 0
    while k < len(blocks):
        if blocks[k][0] is None:
            body = blocks[k][2]
            if body[0].startswith("    for _k in range(") and len(body) > 1:
                # loops over one domain's index array (a channel density's compartments), one
                # after another: one loop (each body elementwise at i, in the same order)
                head, idx_line = body[0], body[1]
                merged = list(body)
                while (k + 1 < len(blocks) and blocks[k + 1][0] is None and len(blocks[k + 1][2]) > 1
                       and blocks[k + 1][2][0] == head and blocks[k + 1][2][1] == idx_line):
                    k += 1
                    merged += blocks[k][2][2:]
                out += merged
            else:
                out += body
            k += 1
            continue
        run = [blocks[k]]
        k += 1
        while k < len(blocks) and blocks[k][0] is not None:
            run.append(blocks[k])
            k += 1
        out += _fuse_run(run, cut)
    return out


#: most lines that cutting one run of loops may repeat (bodies run in several pieces): big
#: models (the thalamus: ~50 group sizes) would otherwise get loops LLVM takes an hour over
FUSE_REPEAT_LIMIT = 120


def _fuse_run(run: List[list], cut: bool = True) -> List[str]:
    def header(lo, hi):
        return f"    for i in range({hi}):" if lo == 0 else f"    for i in range({lo}, {hi}):"

    def consecutive():  # only neighbours over the same range merge
        out: List[str] = []
        last = None
        for lo, hi, body, head in run:
            if (lo, hi) != last:
                out.append(head)
            out += body
            last = (lo, hi)
        return out
    if not cut:
        return consecutive()
    text = "\n".join(ln for _, _, body, _ in run for ln in body)
    written = set(re.findall(r"\b(a\d+)\[i\] [+*-]?= ", text))
    other = {m.group(1) for m in re.finditer(r"\b(a\d+)\[([^\]]*)\]", text) if m.group(2) != "i"}
    if written & other:
        return [ln for _, _, body, head in run for ln in [head] + body]
    cuts = sorted({x for lo, hi, _, _ in run for x in (lo, hi)})
    out: List[str] = []
    for lo, hi in zip(cuts, cuts[1:]):
        bodies = [body for a, b, body, _ in run if a <= lo and hi <= b]
        if bodies:
            out += [header(lo, hi)] + [ln for body in bodies for ln in body]
    if len(out) > len(text.splitlines()) + len(run) + FUSE_REPEAT_LIMIT:
        return consecutive()
    return out


class _Spelling(Spelling):
    """Updates as statements of a loop over a group's instances ``i``."""

    def __init__(self, K):
        self.K = K

    def expr(self, g, ast) -> str:
        return self.K._expr(g, ast)

    def expm1(self, g, z: str) -> str:
        return f"_vexpm1({z})"

    def select(self, g, c: str, a: str, b: str) -> str:
        return f"({a} if {c} else {b})"

    def store(self, g, name: str, value: str) -> str:
        return f"{self.K._arr(name)}[i] = {value}"

    def move(self, g, j: int, x: str, inc: str):
        return [], [f"{self.K._arr(x)}[i] += {inc}"]


class NumbaKernels:
    """``derived(V, t)`` and ``step(V, t)`` for a Program, compiled on first use."""

    def __init__(self, prog, dt: float, method: str, jdiag=None, loop_spec=None, keep=None, nmodl=False):
        """``keep``: V names read from outside the kernels between steps (recorded values);
        None: any. Derived values outside it that only their own loop reads are then
        computed into registers and never stored (``local``: their V names)."""
        if not available():
            raise UnsupportedFeature("the numba backend needs the 'numba' package (pip install numba)")
        if method not in ("euler", "exp_euler", "rk4", "neuron"):
            raise UnsupportedFeature(f"the numba backend has no integrator '{method}' (use --backend numpy)")
        self.prog = prog
        self.dt = float(dt)
        # random numbers drawn in event handlers come from the instances' streams (streams.py);
        # one drawn in a derived variable or rate is refused where it is compiled (_expr)
        # every derived value becomes an array of its group's size; one that only copies
        # another derived value of its group (exposures, `1.0 * x`) is that array itself
        self.alias = _derived_aliases(prog)
        for gid, key in prog.order:
            nm = prog.py(gid, key)
            if nm in self.alias:
                continue
            n = prog.by_gid[gid].n
            v = prog.V.get(nm)
            prog.V[nm] = np.zeros(n) if v is None else np.array(np.broadcast_to(np.asarray(v, dtype=float), (n,)))
        for nm, target in self.alias.items():
            prog.V[nm] = prog.V[target]
        self.domains = {k: np.ascontiguousarray(v, dtype=np.int64) for k, v in getattr(prog, "domains", {}).items()}
        self._dom_const: Dict[int, str] = {}
        self.arrays: Dict[str, int] = {}  # V name -> argument position
        self.consts: List[np.ndarray] = []
        self.extras: List[np.ndarray] = []  # the compiled loop's own buffers (rings, inboxes...)
        lines_d = self._derived_lines()
        lines_s2 = lines_d2 = None
        if method == "neuron":  # NEURON's step: f, B of the implicit states; the rest after the solve
            from ...compile.integrators import neuron_halves
            first, second = neuron_halves(prog)
            lines_s = self._step_lines(jdiag, keys=first)
            lines_s2 = self._step_lines(jdiag if nmodl else None, keys=second)  # cnexp on NEURON's own mods
            lines_d2 = self._derived_lines(only=self._after_closure(second, jdiag if nmodl else None))
        else:
            apart = getattr(prog, "solved_apart", set())  # euler: jLEMS's kinetic schemes, moved by the engine
            lines_s = (self._rk4_lines() if method == "rk4" else
                       self._step_lines(jdiag, keys={k for k in prog.rate_keys if k not in apart} if apart else None))
        lines_r = self._rates_lines()
        self.loop = None
        self.loop_refusal = None  # why the event phase could not be compiled (the engine loops in Python)
        lines_e = []
        if loop_spec is not None:
            from .loop import LoopGen
            try:
                gen = LoopGen(self, loop_spec)
                lines_e = gen.generate("{ARGS}")
                self.loop = gen
            except UnsupportedFeature as e:
                self.loop_refusal = str(e)
        # kernels over hundreds of arrays (table mode, below) keep one loop per range: cutting
        # and fusing across groups there makes LLVM's compile time explode
        # many arrays (the thalamus: ~900): one table of addresses instead of one argument
        # each — unboxing 900 arguments costs ~0.1 ms a call, and a compiled _run calling
        # kernels that size makes LLVM re-optimise them together for many minutes
        self.table = len(self.arrays) + len(self.consts) + len(self.extras) > TABLE_ABOVE
        lines_d = _fuse(lines_d, cut=not self.table)
        if lines_d2 is not None:
            lines_d2 = _fuse(lines_d2, cut=not self.table)
        if method != "rk4" and not self.table:  # each group's update reads its own states and derived arrays only
            lines_s = _fuse(lines_s)
            if lines_s2 is not None:
                lines_s2 = _fuse(lines_s2)
        self.local: Set[str] = set()
        self.fused = False  # _run records states only, then derived + update in one pass (_dstep)
        if keep is not None and self.loop is not None:
            # (without the compiled loop, NumPy event handlers read the arrays)
            lines_d = self._localize(lines_d, lines_s + (lines_r if method == "rk4" else []) + lines_e, keep)
        # table mode: the event phase in parts too (the thalamus's was one function that took
        # ~16 s to compile, the critical path of its first run)
        self._event_parts = None
        if self.table and lines_e:
            lines_e, self._event_parts = self._split_events(lines_e)
        self._names = sorted(self.arrays, key=self.arrays.get)  # V names in argument order
        kslot = len(self.extras)
        self._extra(np.zeros(1))  # the literal table (filled below)
        islot = None if self.table else len(self.extras)
        if islot is not None:  # the size table (filled below; table mode keeps literal sizes)
            self._extra(np.zeros(1, dtype=np.int64))
        names = ([f"a{i}" for i in range(len(self.arrays))] + [f"c{i}" for i in range(len(self.consts))]
                 + [f"x{i}" for i in range(len(self.extras))])
        plain = "P" if self.table else ", ".join(names)
        args = "t, " + plain
        rargs = ", ".join(f"r{j}" for j in range(len(prog.rate_keys)))
        lines_s = [ln.replace("{ARGS}", plain) for ln in lines_s]
        # table mode: the kernels the engine calls step by step are split into parts of
        # about PART_LINES lines (LLVM's time grows faster than the size of a function: the
        # thalamus's derived pass compiles in 88 s as one function, ~30 s in parts); a kernel
        # another one calls by name (RK4's stages call _derived) stays whole
        calls = "\n".join(lines_s)
        self._parts: Dict[str, List[str]] = {}
        src = []
        for kname, body in (("_derived", lines_d), ("_step", lines_s), ("_step2", lines_s2), ("_derived2", lines_d2)):
            if body is None:
                continue
            # (nor is a body with locals of its own, RK4's stage arrays: a part would not see them)
            whole = f"{kname}(" in calls or any(_LOCAL.match(ln) for ln in body)
            pieces = _split_body(body, PART_LINES) if self.table and not whole else [body]
            self._parts[kname] = [kname] if len(pieces) == 1 else [f"{kname}__{k}" for k in range(len(pieces))]
            for fname, piece in zip(self._parts[kname], pieces):
                src += [f"def {fname}({args}):"] + (piece or ["    pass"])
        src += [f"def _rates({args}{', ' + rargs if rargs else ''}):"] + (_fuse(lines_r) or ["    pass"])
        if self.loop is not None:
            from .loop import render_run, run_phases
            src += [ln.replace("{ARGS}", plain) for ln in lines_e]
            if not self.table:
                finite = []
                for gid, key in prog.state_keys:
                    nm = prog.py(gid, key)
                    if nm in self.arrays:
                        a = self._arr(nm)
                        finite += [f"            for i in range({a}.shape[0]):",
                                   f"                if not _m.isfinite({a}[i]):",
                                   "                    ST[0] = 1", "                    return ee"]
                # nothing recorded is a derived value: derived values and the update in one
                # pass (_dstep), the row of states recorded before it; the last row's
                # derived values still computed, for whoever reads them after the run
                derived = {self.alias.get(prog.py(*k), prog.py(*k)) for k in prog.order}
                fused = keep is not None and method != "rk4" and not derived & {self.alias.get(n, n) for n in keep}
                self.fused = fused
                if fused:
                    src += [f"def _dstep({args}):"] + (_fuse(lines_d + lines_s) or ["    pass"])
                src += render_run(run_phases(plain, "_dstep" if fused else "_step", derived=not fused,
                                             due=self.loop.spec.jlems_clock, finite=finite),
                                  plain, refresh=None if fused else f"_derived(t, {plain})")
        src, self.extras[kslot] = hoist_literals(src, f"x{kslot}", direct=not self.table)
        if islot is not None:  # (table mode rebuilds its arrays with literal shapes: sizes stay literals)
            src, self.extras[islot] = hoist_sizes(src, f"x{islot}")
        if self.table:
            src = self._table_prologues(src, names)
        self.source = _libm_if_large("\n".join(src) + "\n")
        opts = dict(error_model="numpy", fastmath=False)
        # the options are part of the file's hash: Numba's cache index does not key on them
        mod = _load_module(f"# numba options: {sorted(opts.items())}, noalias\n" + self.source)
        opts["cache"] = mod is not None
        import numba
        if mod is None:  # no writable cache folder: compile from memory
            ns = _helpers()
            exec(compile(self.source, "<nmlsim-numba>", "exec"), ns)
        else:
            ns = vars(mod)
        _allow_noalias()

        def jit(name):
            f = ns[name]  # a module seen before in this process already holds dispatchers
            # the arrays never overlap, which lets LLVM vectorise loops over many of them;
            # _run also reads recorded arrays through a tuple, so it makes no such promise
            f = f if hasattr(f, "py_func") else numba.njit(noalias=name != "_run", **opts)(f)
            ns[name] = f  # the compiled loop calls the others through the module's globals
            return f
        def kernel(kname):
            names = self._parts.get(kname)
            if names is None:
                return None
            return jit(kname) if names == [kname] else _Parts([jit(n) for n in names])
        self._r = jit("_rates") if method == "rk4" else None
        self._d, self._s = kernel("_derived"), kernel("_step")
        self._s2, self._d2 = kernel("_step2"), kernel("_derived2")
        self._run = None
        self._due = None
        if self.loop is not None:
            self._events = (_EventParts([jit(n) for n in self._event_parts]) if self._event_parts
                            else jit("_events"))
            if "_due" in ns:
                self._due = jit("_due")
            if not self.table:
                if "_dstep" in ns:
                    jit("_dstep")
                self._run = jit("_run")
        self._rate_out = [np.zeros(prog.by_gid[gid].n) for gid, _ in prog.rate_keys]
        # compile now (not on the first step), so that run times are run times
        sig = tuple(numba.typeof(x) for x in (0.0,) + self._args(prog.V))
        jobs = []  # (dispatcher, signature), each a function of its own (a kernel's parts apart)

        def add(kern, sg):
            jobs.extend((f, sg) for f in (kern.fns if isinstance(kern, _Parts) else [kern]))
        add(self._d, sig)
        if not self.fused:  # (fused: _run steps with _dstep; _step compiles if something calls it)
            add(self._s, sig)
        if self._s2 is not None:
            add(self._s2, sig)
        if self._d2 is not None:
            add(self._d2, sig)
        if self._r is not None:
            add(self._r, sig + tuple(numba.typeof(r) for r in self._rate_out))
        if self.loop is not None:
            sb = [np.zeros(0, dtype=np.int64)] * 3 + [np.zeros(2, dtype=np.int64)]  # the event buffer's types
            add(self._events, (numba.int64, numba.float64) + tuple(numba.typeof(x) for x in sb) + sig[1:])
            if self._due is not None:
                add(self._due, (numba.int64, numba.float64) + tuple(numba.typeof(x) for x in sb) + sig[1:])
            if self.fused and "_dstep" in ns:
                add(ns["_dstep"], sig)
            if self._run is not None:
                # the loop itself, for the usual case of at most one recorded array (LoopRun.R);
                # other cases compile or load on their first chunk
                i64, ia = numba.int64, numba.typeof(np.zeros(1, dtype=np.int64))
                rec = numba.types.UniTuple(numba.typeof(np.zeros(1)), 1)
                add(self._run, (i64, i64, i64, numba.float64, i64, i64, numba.typeof(np.zeros((1, 1))), ia, ia,
                                rec, ia, ia, ia, ia, ia, numba.typeof(np.zeros(2))) + sig[1:])
        compile_jobs(jobs, self.source, parallel=mod is not None and getattr(mod, "_nmlsim_fresh", False))

    def _split_events(self, lines_e: List[str]):
        """``_events`` cut between top-level statements into functions of about
        EVENT_PART_LINES lines (``_events__0``...), called in order by :class:`_EventParts`; the
        locals one part sets and a later one reads (an OnCondition handler's fired count, read
        where its events are routed) in one-element arrays. Returns the lines and the parts'
        names (None: kept whole)."""
        start = next(k for k, ln in enumerate(lines_e) if ln.startswith("def _events("))
        body = lines_e[start + 1:]
        if body and body[-1].strip() == "return 0":
            body = body[:-1]
        pieces = _split_body(body, EVENT_PART_LINES)
        if len(pieces) < 2:
            return lines_e, None
        cross = _cross_locals(pieces)
        if cross is None or any(not _INT_LOCAL.match(n) for n in cross):
            return lines_e, None  # (a loop variable, or a local that may not be an integer or flag)
        slots = {n: self._extra(np.zeros(1, dtype=np.int64)) for n in sorted(cross)}
        pat = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, slots)) + r")\b") if slots else None
        out = lines_e[:start]
        names = []
        for k, piece in enumerate(pieces):
            names.append(f"_events__{k}")
            out.append(lines_e[start].replace("def _events(", f"def _events__{k}(", 1))
            out += [pat.sub(lambda m: f"{slots[m.group(1)]}[0]", ln) if pat else ln for ln in piece]
            out.append("    return 0")
        return out, names

    def _localize(self, lines: List[str], others: List[str], keep) -> List[str]:
        """Registers instead of arrays for derived values written and read only at index i
        of one elementwise loop, read by no other loop or kernel, no event handler and no
        name in ``keep``: a COBAHH cell has ~20 such intermediates (products of gates,
        rate functions), whose stores and loads cost more than their arithmetic."""
        prog = self.prog
        keep = {self.alias.get(n, n) for n in keep}
        for g, h, _ in prog.handlers:  # the engine's NumPy handlers (start, and a fallback loop)
            asts = ([h.test] if h.test is not None else []) + [a for _, a in h.assignments]
            fn = prog.name_fn(g)
            for a in asts:
                keep |= {self.alias.get(x, x) for x in map(fn, E.names(a)) if x.startswith("x")}
        pinned = {f"a{self.arrays[n]}" for n in keep if n in self.arrays}
        pinned |= set(re.findall(r"\ba\d+\b", "\n".join(others)))
        blocks = [[head] + body for head, body in _blocks(lines)]
        texts = ["\n".join(b[1:]) if b[0].startswith("    for i in range(") else None for b in blocks]
        refs = [set(re.findall(r"\ba\d+\b", "\n".join(b))) for b in blocks]

        def private(a, text):  # written once at i before any read, every access at index i
            first = re.search(rf"\b{a}\b", text)
            return (len(re.findall(rf"^        {a}\[i\] = ", text, re.M)) == 1
                    and text[first.start():].startswith(f"{a}[i] = ")
                    and len(re.findall(rf"\b{a}\b", text)) == len(re.findall(rf"\b{a}\[i\]", text)))
        names = {f"a{k}": n for n, k in self.arrays.items()}
        # an array split over several loops (one per population block) is private to each
        for a in sorted(set().union(*refs) - pinned):
            where = [k for k, r in enumerate(refs) if a in r]
            if all(texts[k] is not None and private(a, texts[k]) for k in where):
                for k in where:
                    texts[k] = re.sub(rf"\b{a}\[i\]", f"_l{a[1:]}", texts[k])
                self.local.add(names[a])
        out: List[str] = []
        for b, text in zip(blocks, texts):
            out += b if text is None else [b[0]] + text.split("\n")
        return out

    def _table_prologues(self, src: List[str], names: List[str]) -> List[str]:
        """Each function's arrays as views of the addresses in table P (shapes are fixed)."""
        pos = {n: k for k, n in enumerate(names)}
        out: List[str] = []
        body_start = None

        def flush():
            if body_start is None:
                return
            used = sorted(set(re.findall(r"\b[acx]\d+\b", "\n".join(out[body_start:]))), key=pos.get)
            pro = []
            for n in used:
                arr = self._array_of(n)
                kind = {np.dtype(np.float64): "_p_f64", np.dtype(np.int64): "_p_i64",
                        np.dtype(np.uint8): "_p_u8"}[arr.dtype]
                pro.append(f"    {n} = _carray({kind}(P[{pos[n]}]), {arr.shape!r})")
            out[body_start:body_start] = pro
        for ln in src:
            if ln.startswith("def "):
                flush()
                out.append(ln)
                body_start = len(out)
            else:
                out.append(ln)
        flush()
        return out

    def _array_of(self, n: str) -> np.ndarray:
        k = int(n[1:])
        if n[0] == "a":
            return self.prog.V[self._names[k]]
        return self.consts[k] if n[0] == "c" else self.extras[k]

    # ------------------------------------------------------------- naming
    def _arr(self, nm: str) -> str:
        nm = self.alias.get(nm, nm)
        if nm not in self.arrays:
            v = self.prog.V.get(nm)
            if not isinstance(v, np.ndarray) or v.dtype != float or v.ndim != 1:
                self.prog.V[nm] = np.atleast_1d(np.asarray(v if v is not None else 0.0, dtype=float)).copy()
            self.arrays[nm] = len(self.arrays)
        return f"a{self.arrays[nm]}"

    def _extra(self, arr: np.ndarray) -> str:
        self.extras.append(arr)
        return f"x{len(self.extras) - 1}"

    def _const(self, idx) -> str:
        self.consts.append(np.ascontiguousarray(idx, dtype=np.int64))
        return f"c{len(self.consts) - 1}"

    def _expr(self, g, ast, i="i", allow_random=False) -> str:
        fn = self.prog.name_fn(g)

        def name(key):
            s = fn(key)
            if s == "t" or not s.startswith("x"):
                return s
            return f"{self._arr(s)}[{i}]"
        code = E._emit(ast, name, _DIALECT)
        if "_rand1(" in code and not allow_random:
            raise UnsupportedFeature(f"group '{g.name}' draws random numbers; use the numpy backend")
        return code

    # ------------------------------------------------------------- derived
    def _loop_head(self, g, key) -> List[str]:
        """The loop over the instances a value is computed on: every instance, or only those
        of its domain (a channel density's compartments, ``prog.domains``)."""
        dom = self.domains.get((g.gid, key))
        if dom is None:
            return [f"    for i in range({g.n}):"]
        c = self._dom_const.get(id(dom))
        if c is None:
            c = self._dom_const[id(dom)] = self._const(dom)
        return [f"    for _k in range({len(dom)}):", f"        i = {c}[_k]"]

    def _after_closure(self, second, jdiag) -> Set[Tuple[int, str]]:
        """--method neuron: the derived values read after the voltage solve — by the rates (and,
        on NEURON's own mods, the cnexp Jacobians) of the states moved then, the kinetic schemes'
        transition rates, and any event handler (the event phase follows) — with all they
        depend on. The rest (currents, conductances…) waits for the next step's full pass."""
        prog = self.prog
        roots: Set[Tuple[int, str]] = set()

        def add(gid, ast):
            g = prog.by_gid[gid]
            roots.update((gid, n) for n in E.names(ast) if n in g.derived)
        for j, (gid, key) in enumerate(prog.rate_keys):
            if (gid, key) in second:
                add(gid, prog.rate_ast(prog.by_gid[gid], key))
                if jdiag is not None and jdiag[j] is not None:
                    add(gid, jdiag[j])
        for g in prog.groups:
            for k in g.kinetic_init:
                for _, _, rf, rr in k.pairs:
                    roots.update((g.gid, x) for x in (rf, rr) if x in g.derived)
        for g, h, _ in prog.handlers:
            for a in ([h.test] if h.test is not None else []) + [a for _, a in h.assignments]:
                add(g.gid, a)
        for g in prog.groups:  # the values copied for the next step's stale reads
            roots.update((g.gid, p) for p, _ in getattr(g, "stale_reads", ()) if p in g.derived)
        out, todo = set(), list(roots)
        while todo:
            k = todo.pop()
            if k in out:
                continue
            out.add(k)
            g = prog.by_gid[k[0]]
            todo.extend(d for d in prog._deps(g, g.derived[k[1]]) if d[1] in prog.by_gid[d[0]].derived)
        return out

    def _derived_lines(self, only: Optional[Set[Tuple[int, str]]] = None) -> List[str]:
        prog = self.prog
        out: List[str] = []
        for gid, key in prog.order:
            if only is not None and (gid, key) not in only:
                continue
            g = prog.by_gid[gid]
            d = g.derived[key]
            if prog.py(gid, key) in self.alias:
                continue
            me = self._arr(prog.py(gid, key))
            if d.kind == "expr":
                out += self._loop_head(g, key) + [f"        {me}[i] = {self._expr(g, d.ast)}"]
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
                out += self._loop_head(g, key) + [f"        {me}[i] = {expr}"]
            elif d.kind == "gather":
                src = prog.by_gid[d.src.gid]
                sp = prog.name_fn(src)(d.src_key)
                val = sp if not sp.startswith("x") else None
                # (loop variable q: a gather reads other instances, so it is never fused;
                # one from the same index — a merged synapse reading its host — is elementwise)
                same = g.n == 1 if d.idx is None else (len(d.idx) == g.n and _offset(d.idx) == 0)
                if val is None and src.n == g.n and same:
                    out += [f"    for i in range({g.n}):", f"        {me}[i] = {self._arr(sp)}[i]"]
                    continue
                if d.idx is None:
                    rhs = val or (f"{self._arr(sp)}[0]" if src.n == 1 else f"{self._arr(sp)}[q]")
                else:
                    c = self._const(d.idx)
                    rhs = val or (f"{self._arr(sp)}[0]" if src.n == 1 else f"{self._arr(sp)}[{c}[q]]")
                out += [f"    for q in range({g.n}):", f"        {me}[q] = {rhs}"]
            elif d.kind == "scatter":
                mul = d.op == "multiply"
                blocks = [(ag, k, _offset(idx), 0 if idx is None else len(idx)) for ag, k, idx in d.terms]
                if all(o is not None and m == ag.n and o + m <= g.n for ag, k, o, m in blocks):
                    # every term a contiguous block of instances (merged synapses into their
                    # host, input lists on populations): one elementwise loop, the terms
                    # added in the same order as the indexed loops below
                    # (split where blocks start and end, so that every read is affine and the
                    # loops vectorise; with no partial block it fuses with its neighbours)
                    op = "*" if mul else "+"
                    cuts = sorted({0, g.n} | {c for ag, k, o, m in blocks for c in (o, o + m)})
                    for lo, hi in zip(cuts[:-1], cuts[1:]):
                        body = [f"        _acc = {1.0 if mul else 0.0!r}"]
                        for ag, k, o, m in blocks:
                            if o <= lo and hi <= o + m:
                                sp = prog.name_fn(ag)(k)
                                ix = "i" if o == 0 else f"i - {o}"
                                val = sp if not sp.startswith("x") else f"{self._arr(sp)}[{ix}]"
                                body.append(f"        _acc = _acc {op} {val}")
                        head = f"    for i in range({hi}):" if (lo, hi) == (0, g.n) else f"    for i in range({lo}, {hi}):"
                        out += [head] + body + [f"        {me}[i] = _acc"]
                    continue
                out += [f"    for q in range({g.n}):", f"        {me}[q] = {1.0 if mul else 0.0}"]
                for ag, k, idx in d.terms:
                    sp = prog.name_fn(ag)(k)
                    val = sp if not sp.startswith("x") else f"{self._arr(sp)}[{'0' if ag.n == 1 else 'j'}]"
                    off = _offset(idx)
                    if idx is None:
                        tgt = "0"
                    elif off is not None:  # a contiguous block (an input list on a population)
                        tgt = f"j + {off}" if off else "j"
                    else:
                        tgt = f"{self._const(idx)}[j]"
                    op = "*=" if mul else "+="
                    out += [f"    for j in range({ag.n}):", f"        {me}[{tgt}] {op} {val}"]
            else:
                raise UnsupportedFeature(f"derived variable kind '{d.kind}' has no numba form")
        return out

    # ------------------------------------------------------------- step
    def _step_lines(self, jdiag, keys=None) -> List[str]:
        """One loop per group: every rate of an instance from its current values, then the
        new values (rates read their own group's states and the derived arrays only).
        ``keys``: only these states (NEURON's step updates the voltage and the rest apart)."""
        prog = self.prog
        dt = self.dt
        heads = {}
        keys_of: Dict[Tuple[int, int], List[int]] = {}  # loop (group, domain) -> its rate indices, in order
        calc_of: Dict[int, List[str]] = defaultdict(list)
        write_of: Dict[int, List[str]] = defaultdict(list)
        sp = _Spelling(self)
        for u in lower_updates(prog, dt, jdiag, keys):  # (the step of each state; update_statements: its code)
            j, gid, key = u.j, u.gid, u.key
            g = prog.by_gid[gid]
            dom = self.domains.get((gid, key))
            slot = (gid, -1 if dom is None else id(dom))
            heads.setdefault(slot, self._loop_head(g, key))
            keys_of.setdefault(slot, []).append(j)
            c, w = update_statements(u, prog, dt, sp)
            calc_of[j] += ["        " + ln for ln in c]
            write_of[j] += ["        " + ln for ln in w]
        # one loop per set of states that read each other (a kinetic scheme, a gate and
        # the pool it feeds...), in rate-key order: no loop reads a state an earlier one moved,
        # so the split is exact; the compiled loop fuses them again, and table-mode kernels
        # split between them (one loop over every state of a 50-state cell compiles for minutes)
        out = []
        for slot, js in keys_of.items():
            for members in self._state_sets(slot[0], js):
                out += heads[slot] + [ln for m in members for ln in calc_of[m]] + \
                    [ln for m in members for ln in write_of[m]]
        return out

    def _state_sets(self, gid: int, js: List[int]) -> List[List[int]]:
        """Rate indices ``js`` of one group's loop, grouped so that the rate of each reads only
        states of its own set (exponential Euler's coefficient, the rate's derivative, reads no
        other names)."""
        prog = self.prog
        g = prog.by_gid[gid]
        parent = {j: j for j in js}
        by_key = {prog.rate_keys[j][1]: j for j in js}
        moved = {k for gg, k in prog.rate_keys if gg == gid}

        def find(j):
            while parent[j] != j:
                parent[j] = parent[parent[j]]
                j = parent[j]
            return j
        for j in js:
            key = prog.rate_keys[j][1]
            names = set(E.names(prog.rate_ast(g, key)))
            for n in names:
                if n in by_key:
                    parent[find(j)] = find(by_key[n])
                elif n in moved:
                    return [js]  # reads a state another loop moves: keep one loop
        sets: Dict[int, List[int]] = {}
        for j in js:
            sets.setdefault(find(j), []).append(j)
        return list(sets.values())

    def _rk4_lines(self) -> List[str]:
        """Classical RK4 as the engine's (integrators._generated_rk4), operation for
        operation: stages on compiled ``_derived``/``_rates``, states updated in place."""
        prog, dt = self.prog, self.dt
        h6 = dt / 6.0
        keys = prog.rate_keys
        states = [self._arr(prog.py(gid, key)) for gid, key in keys]
        ns = [prog.by_gid[gid].n for gid, _ in keys]
        out = [f"    _y{j} = {x}.copy()" for j, x in enumerate(states)]
        for st in "abcd":
            out += [f"    _k{st}{j} = _np.empty({n})" for j, n in enumerate(ns)]
        kargs = lambda st: ", ".join(f"_k{st}{j}" for j in range(len(keys)))  # noqa: E731
        for stage, prev, coef, at in rk4_stages(dt):
            if prev is not None:
                for j, (x, n) in enumerate(zip(states, ns)):
                    out += [f"    for i in range({n}):", f"        {x}[i] = _y{j}[i] + {coef!r} * _k{prev}{j}[i]"]
                out.append(f"    _derived(t + {at!r}, {{ARGS}})")
            if keys:
                out.append(f"    _rates(t + {at!r}, {{ARGS}}, {kargs(stage)})")
        for j, (x, n) in enumerate(zip(states, ns)):
            out += [f"    for i in range({n}):",
                    f"        {x}[i] = _y{j}[i] + {h6!r} * (_ka{j}[i] + 2.0 * _kb{j}[i] + 2.0 * _kc{j}[i] + _kd{j}[i])"]
        return out

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
            arrs = tuple(V[n] for n in self._names) + tuple(self.consts) + tuple(self.extras)
            if self.table:
                self._keep = [np.ascontiguousarray(a) for a in arrs]
                assert all(k is a for k, a in zip(self._keep, arrs))
                arrs = (np.array([a.ctypes.data for a in arrs], dtype=np.int64),)
            self._argv, self._argt = V, arrs
        return self._argt

    def derived(self, V, t):
        self._d(float(t), *self._args(V))

    def step(self, V, t):
        self._s(float(t), *self._args(V))

    def derived_after(self, V, t):
        """--method neuron: only the derived values the rest of the step reads (_after_closure)."""
        self._d2(float(t), *self._args(V))

    def step_after(self, V, t):
        """--method neuron: the states other than the implicit ones, after the solve."""
        self._s2(float(t), *self._args(V))

    def rates(self, V, t):
        """The time derivatives (fresh arrays, as the NumPy ``rates`` returns), for RK4."""
        out = [np.empty_like(r) for r in self._rate_out]
        self._r(float(t), *self._args(V), *out)
        return out
