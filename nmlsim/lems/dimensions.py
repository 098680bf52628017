"""Dimensional consistency of LEMS ComponentType expressions, checked as jLEMS checks them.

jLEMS (``Lems.resolve`` -> ``Dynamics.checkEquations``) gives every expression node a
dimension — seven exponents of the base dimensions — and refuses a model at load time when a
TimeDerivative, a StateAssignment or an OnCondition test is inconsistent. nmlsim applies the
same rules (its own reading of jLEMS, summarised here), so that it refuses what jnml refuses
and accepts what jnml accepts:

* a number literal is dimensionless; the literal ``0`` is "any" (it matches every dimension in
  ``-``, comparisons and as the whole value of a TimeDerivative or assignment); so is a name of
  dimension ``*``, and a unary minus of a dimensionless value (jLEMS reads ``-k`` as ``0 - k``);
* ``+``, ``-`` and comparisons want one dimension on both sides; ``*`` and ``/`` add and
  subtract exponents; ``x ^ n`` with a dimensionless ``x`` is dimensionless, otherwise ``n``
  must be an integer literal (other exponents leave the dimension unknown);
* the functions of LEMS (exp, log, sin, sqrt, abs, H, random...) take a dimensionless argument
  and give a dimensionless value;
* a TimeDerivative has its state variable's dimension per time, an assignment (OnStart,
  OnCondition, OnEvent) its variable's.

Those are errors (``DimensionError``, exit 3, naming the file, the ComponentType and the
expression). A DerivedVariable whose value differs from its declared dimension, a
DerivedParameter, the expressions inside Regimes and the later Cases of a
ConditionalDerivedVariable are not held to this by jLEMS (it logs the first and skips the
rest; NeuroML's own core types have such DerivedVariables): nmlsim reports them as warnings
(``nmlsim validate``). An unknown dimension (an undeclared name, a power it cannot work out)
is never reported: the check only says what it can prove.
"""
from __future__ import annotations

import re

from dataclasses import replace
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple

from ..errors import ModelError
from . import expr as E
from .model import ComponentType, LemsModel

Dim = Tuple[Fraction, ...]
_NONE: Dim = tuple(Fraction(0) for _ in range(7))
_BASE = ("m", "l", "t", "i", "k", "n", "j")
#: the functions of LEMS (jLEMS's FunctionNode): a dimensionless argument, a dimensionless value
_LEMS_FUNCTIONS = {"exp", "log", "ln", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
                   "tanh", "sqrt", "ceil", "floor", "abs", "H", "random", "factorial"}


class DimensionError(ModelError):
    """An expression's dimension differs from what it defines, or its terms disagree."""


class _Mismatch(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def _add(a: Dim, b: Dim) -> Dim:
    return tuple(x + y for x, y in zip(a, b))


def _sub(a: Dim, b: Dim) -> Dim:
    return tuple(x - y for x, y in zip(a, b))


def _scale(a: Dim, k: Fraction) -> Dim:
    return tuple(x * k for x in a)


#: "any": the literal 0, a name of dimension ``*``
ANY = "any"
_WHITE_NOISE = re.compile(r"^xi(_[A-Za-z0-9_]+)?$")


def _is_dimensionless(d) -> bool:
    return d is ANY or d == _NONE


def _dims(d):
    """A dimension for arithmetic: "any" counts as dimensionless there (as in jLEMS)."""
    return _NONE if d is ANY else d


class Checker:
    """Dimensions of the expressions of one model's ComponentTypes."""

    def __init__(self, model: LemsModel):
        self.model = model
        self.units = model.units
        self._named = {tuple(Fraction(x) for x in d): n for n, d in self.units.dimensions.items()}

    # ---------------------------------------------------------------- naming
    def dim(self, name: Optional[str]):
        """The exponents of a declared dimension name (``*``: ANY; None: unknown)."""
        if name == "*":
            return ANY
        if not name:
            return None
        d = self.units.dimensions.get(name)
        return tuple(Fraction(x) for x in d) if d is not None else None

    def describe(self, d) -> str:
        if d is ANY:
            return "any"
        if d in self._named:
            return self._named[d]
        parts = [f"{b}^{x}" if x != 1 else b for b, x in zip(_BASE, d) if x]
        return " ".join(parts) if parts else "none"

    # ---------------------------------------------------------------- expressions
    def of(self, node, env):
        """The dimension of an AST: a Dim, ANY or None (not known); raises _Mismatch."""
        k = node[0]
        if k == "num":
            return ANY if node[1] == 0 else _NONE
        if k == "name":
            if node[1] not in env and _WHITE_NOISE.match(node[1]):
                return ANY  # white noise (nmlsim's xi): s^-1/2, which LEMS cannot write
            return env.get(node[1])
        if k == "neg":
            d = self.of(node[1], env)
            return ANY if d is not None and _is_dimensionless(d) else d
        if k in ("and", "or"):
            self.of(node[1], env)
            self.of(node[2], env)
            return _NONE
        if k == "not":
            self.of(node[1], env)
            return _NONE
        if k == "cmp":
            self._same(node[2], node[3], env, "compare")
            return _NONE
        if k == "bin":
            op, a, b = node[1], node[2], node[3]
            if op in "*/" and a[0] == "neg":
                # jLEMS reads a leading minus as "0 - (the whole product)": -Si/150 is 0 - Si/150
                return self.of(("neg", ("bin", op, a[1], b)), env)
            if op == "+":
                return self._same(a, b, env, "add")
            if op == "-":
                da, db = self.of(a, env), self.of(b, env)
                if da is ANY and db is not None and _is_dimensionless(db):
                    return ANY  # jLEMS keeps the zero's "any" (0 - k, and a zero DV minus k)
                return self._same(a, b, env, "subtract")
            da, db = self.of(a, env), self.of(b, env)
            if op in "*/":
                if da is None or db is None:
                    return None
                return (_add if op == "*" else _sub)(_dims(da), _dims(db))
            return self._power(b, da, db)
        if k == "call":
            return self._call(node[1], node[2], env)
        return None

    def _same(self, a, b, env, verb: str):
        da, db = self.of(a, env), self.of(b, env)
        if da is None or db is None:
            return None
        if da is ANY:
            return db
        if db is ANY or da == db:
            return da
        raise _Mismatch(f"cannot {verb} {self.describe(db)} and {self.describe(da)}" if verb != "compare" else
                        f"compares {self.describe(da)} with {self.describe(db)}")

    def _power(self, b, da, db):
        if da is None:
            return None
        if _is_dimensionless(da):
            return _NONE
        if db is not None and not _is_dimensionless(db):
            raise _Mismatch(f"an exponent of dimension {self.describe(db)}")
        n = _literal(b)
        if n is None or n < 0 or abs(n - round(n)) > 1e-6:
            return None  # (jLEMS: a warning, and no dimension)
        return _scale(da, Fraction(round(n)))

    def _call(self, fn: str, args, env):
        dims = [self.of(a, env) for a in args]
        if fn in _LEMS_FUNCTIONS:
            if dims and dims[0] is not None and not _is_dimensionless(dims[0]):
                raise _Mismatch(f"{fn}() of {self.describe(dims[0])} (functions take dimensionless values)")
            return _NONE
        return None  # nmlsim's own additions (max, min, pow, sign): not judged

    # ---------------------------------------------------------------- types
    def problems(self, ct: ComponentType) -> Iterator[Tuple[bool, str, str, str]]:
        """(is an error, what, expression, detail) of each inconsistent expression of the
        resolved ``ct``."""
        env = {"t": self.dim("time")}
        for table in (ct.parameters, ct.requirements, ct.exposures):
            for n, d in table.items():
                env[n] = self.dim(d)
        for table in (ct.derived_parameters, ct.constants, ct.properties):
            for n, (d, _v) in table.items():
                env[n] = self.dim(d)
        for n in ct.index_parameters:
            env[n] = _NONE
        dyn = ct.dynamics
        if dyn is not None:
            for n, d in dyn.state.items():
                env[n] = self.dim(d)
            for dv in list(dyn.derived) + [dv for r in dyn.regimes for dv in r.derived]:
                env[dv.name] = self.dim(dv.dimension)
            for dv in dyn.derived:
                if dv.value is not None and dv.dimension in (None, "none"):
                    # (jLEMS: a DerivedVariable without a dimension has its value's: 0 is "any")
                    try:
                        if self.of(E.parse(dv.value), env) is ANY:
                            env[dv.name] = ANY
                    except (ModelError, _Mismatch):
                        pass
                # a ConditionalDerivedVariable has its first Case's dimension (jLEMS)
                if dv.cases:
                    try:
                        d = self.of(E.parse(dv.cases[0][1]), env)
                    except (ModelError, _Mismatch):
                        d = None
                    if d is not None:
                        env[dv.name] = _dims(d)
        for n, (d, value) in ct.derived_parameters.items():
            yield from self._judge(False, f"DerivedParameter '{n}'", value, env.get(n), env)
        if dyn is None:
            return
        for dv in dyn.derived:
            if dv.value is not None:
                yield from self._judge(False, f"DerivedVariable '{dv.name}'", dv.value, env.get(dv.name), env,
                                       zero_any=False)
            for k, (cond, value) in enumerate(dv.cases or ()):
                if cond:
                    yield from self._judge(False, f"Case condition of '{dv.name}'", cond, None, env)
                yield from self._judge(k == 0, f"Case of '{dv.name}'", value,
                                       env.get(dv.name) if k else None, env)
        per_time = self.dim("per_time")
        for var, value in dyn.time_derivatives.items():
            yield from self._judge(True, f"TimeDerivative of '{var}'", value, _per(env.get(var), per_time), env)
        for h in dyn.handlers:
            if h.kind == "entry":
                continue
            if h.test:
                yield from self._judge(True, "OnCondition test", h.test, None, env)
            for a in h.assignments:
                yield from self._judge(True, f"StateAssignment of '{a.variable}'", a.value, env.get(a.variable), env)
        for r in dyn.regimes:  # (jLEMS checks nothing in a Regime)
            for dv in r.derived:
                if dv.value is not None:
                    yield from self._judge(False, f"DerivedVariable '{dv.name}' of Regime '{r.name}'", dv.value,
                                           env.get(dv.name), env, zero_any=False)
            for var, value in r.time_derivatives.items():
                yield from self._judge(False, f"TimeDerivative of '{var}' in Regime '{r.name}'", value,
                                       _per(env.get(var), per_time), env)
            for h in r.handlers:
                for a in h.assignments:
                    yield from self._judge(False, f"StateAssignment of '{a.variable}' in Regime '{r.name}'", a.value,
                                           env.get(a.variable), env)

    def _judge(self, error: bool, what: str, text: str, want, env, zero_any: bool = True):
        try:
            node = E.parse(text)
        except ModelError:
            return  # a syntax error is reported where the expression is compiled
        try:
            got = self.of(node, env)
        except _Mismatch as m:
            yield error, what, text, m.detail
            return
        if want is None or want is ANY or got is None or (got is ANY and zero_any):
            return
        if _dims(got) != want:
            yield error, what, text, f"is {self.describe(_dims(got))} where {self.describe(want)} is due"


def _per(d, per_time):
    if d is None or d is ANY or per_time is None:
        return None
    return _add(d, per_time)


def _literal(node) -> Optional[float]:
    if node[0] == "num":
        return node[1]
    if node[0] == "neg" and node[1][0] == "num":
        return -node[1][1]
    return None


def user_types(model: LemsModel) -> List[str]:
    """The model's ComponentTypes but those nmlsim ships (NeuroML's core types pass the check
    as jLEMS applies it: tests/unit/test_dimensions.py; their DerivedVariable inconsistencies,
    which jLEMS only logs, are not the model's)."""
    from ..coretypes import shipped
    return [n for n, t in model.types.items() if not shipped(t.file)]


def check_model(model: LemsModel, types: Optional[List[str]] = None, warnings: bool = False) -> List[DimensionError]:
    """The dimension errors (with ``warnings``, also what jLEMS lets pass: see the module
    docstring) of the ComponentTypes ``types`` (default: every type of the model), each naming
    the file, the ComponentType and the expression; a warning has ``.warning`` set."""
    checker = Checker(model)
    out = []
    for name in types if types is not None else list(model.types):
        declared = model.types[name]
        try:
            ct = model.resolved(name)
        except ModelError:
            continue
        if declared.dynamics is None:  # (jLEMS checks the Dynamics a type declares itself;
            ct = replace(ct, dynamics=None)  # the resolved type is the model's: not changed)
        for error, what, text, detail in checker.problems(ct):
            if not (error or warnings):
                continue
            e = DimensionError(f"dimension mismatch in {what}: '{text}' {detail}", file=declared.file,
                               line=declared.line, element=f"ComponentType name='{name}'")
            e.warning = not error
            out.append(e)
    return out
