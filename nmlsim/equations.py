"""Brian2-style model equations as a LEMS ComponentType.

>>> lif = NeuronModel("dv/dt = (1 - v) / tau : 1", threshold="v > 0.8", reset="v = 0",
...                   refractory="5*ms", parameters={"tau": "10*ms"})
>>> print(lif.component_type_xml().splitlines()[0])
<ComponentType name="neuron" extends="baseSpikingCell">

Equations are Brian2's: ``dx/dt = expr : unit [(unless refractory)]`` (a state), ``y = expr : unit``
(a derived value), ``p : unit`` (a parameter); units as Brian2 writes them (``1``, ``volt``, ``mV``,
``ms``, ``nS``, ``amp/metre**2``...); ``xi`` / ``xi_<name>`` is white noise (units s^-1/2), which
nmlsim integrates by Euler–Maruyama. ``threshold``, ``reset`` (statements, ``;`` or newlines:
``v = vr; w += b``) and ``refractory`` (a time) are Brian2's too. Every expression is checked for
dimensional consistency here, with errors naming the equation; the LEMS written is consistent for
LEMS's own checker as well, so nmlsim runs and exports it, and jnml runs it where there is no noise.
"""
from __future__ import annotations

import ast
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import ModelError

Dims = Tuple[Fraction, ...]  # exponents of (kg, m, s, A, K, mol, cd): LEMS's m l t i k n j
_ZERO: Dims = (Fraction(0),) * 7


def _d(kg=0, m=0, s=0, a=0, k=0, mol=0, cd=0) -> Dims:
    return tuple(Fraction(x) for x in (kg, m, s, a, k, mol, cd))


# --------------------------------------------------------------------------- units
_BASE_UNITS: Dict[str, Tuple[float, Dims]] = {
    "metre": (1.0, _d(m=1)), "meter": (1.0, _d(m=1)), "m": (1.0, _d(m=1)),
    "gram": (1e-3, _d(kg=1)), "gramme": (1e-3, _d(kg=1)), "g": (1e-3, _d(kg=1)), "kilogram": (1.0, _d(kg=1)),
    "second": (1.0, _d(s=1)), "s": (1.0, _d(s=1)),
    "amp": (1.0, _d(a=1)), "ampere": (1.0, _d(a=1)), "A": (1.0, _d(a=1)),
    "kelvin": (1.0, _d(k=1)), "K": (1.0, _d(k=1)),
    "mole": (1.0, _d(mol=1)), "mol": (1.0, _d(mol=1)),
    "candela": (1.0, _d(cd=1)), "cd": (1.0, _d(cd=1)),
    "volt": (1.0, _d(kg=1, m=2, s=-3, a=-1)), "V": (1.0, _d(kg=1, m=2, s=-3, a=-1)),
    "siemens": (1.0, _d(kg=-1, m=-2, s=3, a=2)), "S": (1.0, _d(kg=-1, m=-2, s=3, a=2)),
    "farad": (1.0, _d(kg=-1, m=-2, s=4, a=2)), "F": (1.0, _d(kg=-1, m=-2, s=4, a=2)),
    "ohm": (1.0, _d(kg=1, m=2, s=-3, a=-2)), "Ohm": (1.0, _d(kg=1, m=2, s=-3, a=-2)),
    "hertz": (1.0, _d(s=-1)), "Hz": (1.0, _d(s=-1)),
    "coulomb": (1.0, _d(s=1, a=1)), "C": (1.0, _d(s=1, a=1)),
    "joule": (1.0, _d(kg=1, m=2, s=-2)), "J": (1.0, _d(kg=1, m=2, s=-2)),
    "watt": (1.0, _d(kg=1, m=2, s=-3)), "W": (1.0, _d(kg=1, m=2, s=-3)),
    "molar": (1e3, _d(m=-3, mol=1)), "M": (1e3, _d(m=-3, mol=1)),
    "liter": (1e-3, _d(m=3)), "litre": (1e-3, _d(m=3)), "l": (1e-3, _d(m=3)),
}
_PREFIXES = {"y": 1e-24, "z": 1e-21, "a": 1e-18, "f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3,
             "c": 1e-2, "d": 1e-1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def unit(name: str) -> Optional[Tuple[float, Dims]]:
    """(SI scale, dimensions) of a Brian2 unit name (``mV``, ``msecond``, ``nS``, ``cm2``), or None."""
    m = re.fullmatch(r"([A-Za-z]+?)([23])?", name)
    if not m:
        return None
    base, power = m.group(1), int(m.group(2) or 1)
    got = _BASE_UNITS.get(base)
    if got is None and len(base) > 1 and base[0] in _PREFIXES and base[1:] in _BASE_UNITS and base != "mol":
        s, d = _BASE_UNITS[base[1:]]
        got = (s * _PREFIXES[base[0]], d)
    if got is None:
        return None
    s, d = got
    return s ** power, tuple(x * power for x in d)


# ------------------------------------------------------------------- expressions
_FUNCS_NODIM = {"exp", "log", "log10", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin", "arccos",
                "arctan"}
_LEMS_FUNC = {"arcsin": "asin", "arccos": "acos", "arctan": "atan"}
_CMP = {ast.Gt: ".gt.", ast.GtE: ".geq.", ast.Lt: ".lt.", ast.LtE: ".leq.", ast.Eq: ".eq.", ast.NotEq: ".neq."}
_NOISE = re.compile(r"^xi(_[A-Za-z0-9_]+)?$")


class EquationError(ModelError):
    """A Brian2-style equation that cannot be read or is not dimensionally consistent."""


def _dims_text(d: Dims) -> str:
    names = ("kg", "m", "s", "A", "K", "mol", "cd")
    parts = [n if e == 1 else f"{n}^{e}" for n, e in zip(names, d) if e != 0]
    return " ".join(parts) or "1"


@dataclass
class _Sym:
    dims: Dims
    kind: str  # state, derived, param, unit, noise, time


class _Translator:
    """Checks the dimensions of a Python-syntax expression and writes it in LEMS's language.

    ``normalised``: every dimensional name is divided by its SI unit (a LEMS Constant of value 1),
    so that the LEMS expression is a plain number in SI units; the caller multiplies it by the
    unit of the result. That keeps LEMS's checker content where Brian2's algebra has square roots
    of dimensional values or half powers (white noise)."""

    def __init__(self, symbols: Dict[str, _Sym], where: str, normalised: bool, unit_consts: Dict[Dims, str]):
        self.symbols = symbols
        self.where = where
        self.normalised = normalised
        self.unit_consts = unit_consts  # dimensions -> LEMS constant name (value 1 SI)
        self.used_units: Dict[str, Tuple[float, Dims]] = {}

    def fail(self, msg):
        raise EquationError(f"{self.where}: {msg}")

    def unit_const(self, d: Dims) -> str:
        if d not in self.unit_consts:
            self.unit_consts[d] = f"SI_{len(self.unit_consts)}"
        return self.unit_consts[d]

    def __call__(self, node) -> Tuple[str, Dims, bool]:
        """(LEMS text, dimensions, is a plain number literal)."""
        if isinstance(node, ast.Expression):
            return self(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return repr(float(node.value)), _ZERO, True
        if isinstance(node, ast.Name):
            n = node.id
            if n == "t":
                s = _Sym(_d(s=1), "time")
            elif n in self.symbols:
                s = self.symbols[n]
            elif _NOISE.match(n):
                s = _Sym(_d(s=Fraction(-1, 2)), "noise")
            else:
                u = unit(n)
                if u is None:
                    self.fail(f"unknown name '{n}' (not a variable, parameter or unit)")
                self.used_units[n] = u
                if self.normalised or u[1] == _ZERO:
                    return repr(u[0]), u[1], False
                return n, u[1], False
            if self.normalised and s.dims != _ZERO and s.kind != "noise":
                return f"({n} / {self.unit_const(s.dims)})", s.dims, False
            return n, s.dims, False
        if isinstance(node, ast.UnaryOp):
            txt, d, lit = self(node.operand)
            if isinstance(node.op, ast.USub):
                return f"-{txt}" if lit else f"-({txt})", d, lit
            if isinstance(node.op, ast.UAdd):
                return txt, d, lit
            if isinstance(node.op, ast.Not):
                return f".not.({txt})", _ZERO, False
            self.fail("unsupported operator")
        if isinstance(node, ast.BinOp):
            a, da, la = self(node.left)
            if isinstance(node.op, ast.Pow):
                b_node = node.right
                try:
                    e = Fraction(ast.literal_eval(b_node)).limit_denominator(12)
                except (ValueError, TypeError):
                    e = None
                if e is None:
                    bt, db, _ = self(b_node)
                    if db != _ZERO or da != _ZERO:
                        self.fail("a power with a variable exponent needs dimensionless base and exponent")
                    return f"({a}) ^ ({bt})", _ZERO, False
                return f"({a}) ^ {float(e)!r}", tuple(x * e for x in da), False
            b, db, lb = self(node.right)
            if isinstance(node.op, (ast.Add, ast.Sub)):
                if da != db and not (la and float(a) == 0) and not (lb and float(b) == 0):
                    self.fail(f"cannot {'add' if isinstance(node.op, ast.Add) else 'subtract'} "
                              f"{_dims_text(da)} and {_dims_text(db)} in '{ast.unparse(node)}'")
                op = "+" if isinstance(node.op, ast.Add) else "-"
                return f"({a} {op} {b})", da if da != _ZERO or not la else db, False
            if isinstance(node.op, ast.Mult):
                return f"({a} * {b})", tuple(x + y for x, y in zip(da, db)), False
            if isinstance(node.op, ast.Div):
                return f"({a} / {b})", tuple(x - y for x, y in zip(da, db)), False
            self.fail(f"unsupported operator in '{ast.unparse(node)}'")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            f = node.func.id
            if len(node.args) != 1:
                self.fail(f"{f}() takes one argument")
            a, da, _ = self(node.args[0])
            if f in _FUNCS_NODIM:
                if da != _ZERO:
                    self.fail(f"{f}() of a value in {_dims_text(da)} (it takes a dimensionless value)")
                return f"{_LEMS_FUNC.get(f, f)}({a})", _ZERO, False
            if f == "sqrt":
                return f"sqrt({a})" if da == _ZERO else f"({a}) ^ 0.5", tuple(x / 2 for x in da), False
            if f == "abs":
                return f"abs({a})", da, False
            self.fail(f"unknown function {f}()")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                self.fail("chained comparisons are not supported")
            a, da, la = self(node.left)
            b, db, lb = self(node.comparators[0])
            if da != db and not (la and float(a) == 0) and not (lb and float(b) == 0):
                self.fail(f"cannot compare {_dims_text(da)} with {_dims_text(db)} in '{ast.unparse(node)}'")
            return f"({a} {_CMP[type(node.ops[0])]} {b})", _ZERO, False
        if isinstance(node, ast.BoolOp):
            op = ".and." if isinstance(node.op, ast.And) else ".or."
            parts = [self(v)[0] for v in node.values]
            return "(" + f" {op} ".join(parts) + ")", _ZERO, False
        self.fail(f"cannot translate '{ast.unparse(node)}'")


def _parse(text: str, where: str):
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise EquationError(f"{where}: cannot parse '{text.strip()}' ({e.msg})") from None


def _unit_expr(text: str, where: str) -> Tuple[float, Dims]:
    """A unit written as Brian2 does after the colon: ``1``, ``volt``, ``amp/meter**2``."""
    node = _parse(text, where)

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and n.value == 1:
            return 1.0, _ZERO
        if isinstance(n, ast.Name):
            u = unit(n.id)
            if u is None:
                raise EquationError(f"{where}: unknown unit '{n.id}'")
            return u
        if isinstance(n, ast.BinOp):
            (sa, da) = ev(n.left)
            if isinstance(n.op, ast.Pow):
                e = Fraction(ast.literal_eval(n.right))
                return sa ** float(e), tuple(x * e for x in da)
            (sb, db) = ev(n.right)
            if isinstance(n.op, ast.Mult):
                return sa * sb, tuple(x + y for x, y in zip(da, db))
            if isinstance(n.op, ast.Div):
                return sa / sb, tuple(x - y for x, y in zip(da, db))
        raise EquationError(f"{where}: cannot read the unit '{text.strip()}'")
    return ev(node)


def _quantity(text, where: str) -> Tuple[float, Dims]:
    """A value as Brian2 writes it: ``10*ms``, ``-70*mV``, ``0.5``, or a number (SI)."""
    if isinstance(text, (int, float)):
        return float(text), _ZERO
    node = _parse(str(text), where)
    tr = _Translator({}, where, True, {})
    txt, d, _ = tr(node)
    try:
        value = float(eval(compile(ast.Expression(body=ast.parse(txt.replace("^", "**"), mode="eval").body),
                                   "<quantity>", "eval"), {"__builtins__": {}}, {}))
    except Exception:
        raise EquationError(f"{where}: '{text}' is not a value") from None
    return value, d


# ------------------------------------------------------------------------- model
_LINE = re.compile(r"^\s*(?:d(?P<state>[A-Za-z_]\w*)/dt|(?P<name>[A-Za-z_]\w*))\s*(?:=\s*(?P<expr>.*?))?\s*:"
                   r"\s*(?P<unit>[^()]+?)\s*(?:\((?P<flags>[^)]*)\))?\s*$")


@dataclass
class _Eq:
    kind: str  # state, derived, param
    name: str
    expr: Optional[str]
    dims: Dims
    flags: Tuple[str, ...]


class NeuronModel:
    """A point-neuron model from Brian2-style equations, as a LEMS ComponentType.

    ``parameters``: values of the parameters (``{"tau": "10*ms"}``; names not declared in the
    equations become parameters of the type too); ``initial``: starting values of states (default
    0); ``threshold``/``reset``/``refractory`` as Brian2's NeuronGroup takes them.
    """

    def __init__(self, equations: str, *, threshold: Optional[str] = None, reset: Optional[str] = None,
                 refractory=None, parameters: Optional[Dict[str, object]] = None,
                 initial: Optional[Dict[str, object]] = None, name: str = "neuron"):
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise EquationError(f"'{name}' is not a valid type name")
        self.name = name
        self.eqs: List[_Eq] = []
        for k, line in enumerate(equations.splitlines(), start=1):
            line = line.split("#", 1)[0]
            if not line.strip():
                continue
            m = _LINE.match(line)
            if not m:
                raise EquationError(f"equation line {k}: cannot read '{line.strip()}' (write 'dv/dt = expr : unit', "
                                    "'x = expr : unit' or 'p : unit')")
            where = f"equation line {k}"
            _, dims = _unit_expr(m.group("unit"), where)
            flags = tuple(f.strip() for f in (m.group("flags") or "").split(",") if f.strip())
            bad = [f for f in flags if f != "unless refractory"]
            if bad:
                raise EquationError(f"{where}: unknown flag '{bad[0]}' (only 'unless refractory')")
            if m.group("state"):
                if m.group("expr") is None:
                    raise EquationError(f"{where}: d{m.group('state')}/dt needs '= expression'")
                self.eqs.append(_Eq("state", m.group("state"), m.group("expr"), dims, flags))
            elif m.group("expr") is not None:
                self.eqs.append(_Eq("derived", m.group("name"), m.group("expr"), dims, flags))
            else:
                self.eqs.append(_Eq("param", m.group("name"), None, dims, flags))
        if not any(e.kind == "state" for e in self.eqs):
            raise EquationError("the equations define no state variable (dx/dt = ...)")
        seen = set()
        for e in self.eqs:
            if e.name in seen:
                raise EquationError(f"'{e.name}' is defined twice")
            seen.add(e.name)
        self.values: Dict[str, Tuple[float, Dims]] = {}
        for p, v in (parameters or {}).items():
            self.values[p] = _quantity(v, f"parameter {p}")
            if p not in seen:
                self.eqs.append(_Eq("param", p, None, self.values[p][1], ()))
                seen.add(p)
        for e in self.eqs:
            if e.kind == "param" and e.name in self.values and self.values[e.name][1] != e.dims \
                    and self.values[e.name][0] != 0:
                raise EquationError(f"parameter {e.name}: {parameters[e.name]!r} is in "
                                    f"{_dims_text(self.values[e.name][1])}, the equations say {_dims_text(e.dims)}")
        missing = [e.name for e in self.eqs if e.kind == "param" and e.name not in self.values]
        if missing:
            raise EquationError(f"no value for parameter{'s' * (len(missing) > 1)} {', '.join(missing)} "
                                "(give parameters={...})")
        self.initial = {k: _quantity(v, f"initial value of {k}") for k, v in (initial or {}).items()}
        for k, (_, d) in self.initial.items():
            e = next((e for e in self.eqs if e.name == k and e.kind == "state"), None)
            if e is None:
                raise EquationError(f"initial value for '{k}', which is not a state variable")
            if d != e.dims and self.initial[k][0] != 0:
                raise EquationError(f"initial value of {k} is in {_dims_text(d)}, {k} in {_dims_text(e.dims)}")
        self.threshold = threshold
        self.reset = reset
        self.refractory = None if refractory is None else _quantity(refractory, "refractory")
        if self.refractory is not None and self.refractory[1] not in (_d(s=1), _ZERO):
            raise EquationError("refractory must be a time (5*ms)")
        if reset and not threshold:
            raise EquationError("a reset needs a threshold")
        self._translate()

    # --------------------------------------------------------------- translation
    def _symbols(self) -> Dict[str, _Sym]:
        return {e.name: _Sym(e.dims, e.kind) for e in self.eqs}

    def _translate(self):
        """Check every expression and write its LEMS form (plain where LEMS's checker accepts
        it, normalised to SI numbers where it does not: square roots of dimensional values,
        half powers, white noise)."""
        self.unit_consts: Dict[Dims, str] = {}
        syms = self._symbols()
        self.used_units: Dict[str, Tuple[float, Dims]] = {}
        self.td: Dict[str, str] = {}
        self.dv: Dict[str, str] = {}
        self.noisy = False
        for e in self.eqs:
            if e.kind == "param":
                continue
            where = f"{'d' + e.name + '/dt' if e.kind == 'state' else e.name} = {e.expr}"
            want = tuple(x - y for x, y in zip(e.dims, _d(s=1))) if e.kind == "state" else e.dims
            node = _parse(e.expr, where)
            noise = any(isinstance(n, ast.Name) and _NOISE.match(n.id) and n.id not in syms for n in ast.walk(node))
            self.noisy |= noise
            text = self._expr(node, syms, where, want, plain=not noise)
            (self.td if e.kind == "state" else self.dv)[e.name] = text
        self.cond = None
        if self.threshold:
            self.cond = self._expr(_parse(self.threshold, "threshold"), syms, f"threshold '{self.threshold}'", None)
        self.resets: List[Tuple[str, str]] = []
        for stmt in re.split(r"[;\n]", self.reset or ""):
            if not stmt.strip():
                continue
            m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*([-+*/]?=)\s*(.+?)\s*", stmt)
            if not m:
                raise EquationError(f"reset: cannot read '{stmt.strip()}' (write 'v = expr' or 'w += expr')")
            var, op, rhs = m.groups()
            e = next((x for x in self.eqs if x.name == var), None)
            if e is None or e.kind != "state":
                raise EquationError(f"reset: '{var}' is not a state variable")
            expr = rhs if op == "=" else f"{var} {op[0]} ({rhs})"
            want = e.dims if op in ("=", "+=", "-=") else None
            text = self._expr(_parse(expr, "reset"), syms, f"reset '{stmt.strip()}'", want)
            self.resets.append((var, text))

    def _expr(self, node, syms, where, want, plain=True) -> str:
        if plain:
            tr = _Translator(syms, where, False, self.unit_consts)
            text, d, lit = tr(node)
            if want is not None and d != want and not (lit and float(text) == 0):
                raise EquationError(f"{where}: the expression is in {_dims_text(d)}, it should be in {_dims_text(want)}")
            if self._lems_accepts(node, syms):
                self.used_units.update(tr.used_units)
                return text
        tr = _Translator(syms, where, True, self.unit_consts)
        text, d, lit = tr(node)
        if want is not None and d != want and not (lit and float(text) == 0):
            raise EquationError(f"{where}: the expression is in {_dims_text(d)}, it should be in {_dims_text(want)}")
        target = want if want is not None else _ZERO
        if target == _ZERO:
            return text
        return f"{tr.unit_const(target)} * ({text})"

    @staticmethod
    def _lems_accepts(node, syms) -> bool:
        """Whether the plain form is consistent for LEMS's checker: no square root or
        fractional power of a dimensional value, no white noise."""
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and _NOISE.match(n.id) and n.id not in syms:
                return False
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "sqrt":
                return False
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow):
                try:
                    e = ast.literal_eval(n.right)
                except (ValueError, TypeError):
                    continue
                if float(e) != int(e):
                    return False
        return True

    # ------------------------------------------------------------------- output
    def _lems_dimension(self, d: Dims, extra: Dict[str, Dims]) -> str:
        from .units import default_registry
        if d == _ZERO:
            return "none"
        if any(x.denominator != 1 for x in d):
            raise EquationError(f"a variable in {_dims_text(d)} (a fractional power of a unit) cannot be a LEMS "
                                "variable; only expressions may hold half powers")
        ints = tuple(int(x) for x in d)
        for name, dd in default_registry().dimensions.items():
            if dd == ints:
                return name
        name = "dim_" + "_".join(f"{n}{e}".replace("-", "m") for n, e in zip("mltiknj", ints) if e)
        extra[name] = d
        return name

    def _initial_text(self, e) -> str:
        value = self.initial.get(e.name, (0.0,))[0]
        if value == 0 or e.dims == _ZERO:
            return repr(value) if value else "0"
        if e.dims not in self.unit_consts:
            self.unit_consts[e.dims] = f"SI_{len(self.unit_consts)}"
        return f"{value!r} * {self.unit_consts[e.dims]}"

    def component_type_xml(self) -> str:
        """The LEMS ``<ComponentType>`` (preceded by any ``<Dimension>`` it needs)."""
        extra: Dict[str, Dims] = {}
        for e in self.eqs:  # (the unit constants the initial values need, before they are listed)
            if e.kind == "state":
                self._initial_text(e)
        dim = {e.name: self._lems_dimension(e.dims, extra) for e in self.eqs}
        lines = [f'<ComponentType name="{self.name}" extends="baseSpikingCell">']
        for e in self.eqs:
            if e.kind == "param":
                lines.append(f'    <Parameter name="{e.name}" dimension="{dim[e.name]}"/>')
        if self.refractory is not None:
            lines.append('    <Parameter name="refractory" dimension="time"/>')
        for u, (s, d) in sorted(self.used_units.items()):
            lines.append(f'    <Constant name="{u}" dimension="{self._lems_dimension(d, extra)}" value="{s!r}"/>')
        for d, cname in sorted(self.unit_consts.items(), key=lambda x: x[1]):
            lines.append(f'    <Constant name="{cname}" dimension="{self._lems_dimension(d, extra)}" value="1"/>')
        for e in self.eqs:
            if e.kind != "param":
                lines.append(f'    <Exposure name="{e.name}" dimension="{dim[e.name]}"/>')
        lines.append("    <Dynamics>")
        for e in self.eqs:
            if e.kind == "state":
                lines.append(f'        <StateVariable name="{e.name}" dimension="{dim[e.name]}" exposure="{e.name}"/>')
        if self.refractory is not None:
            lines.append('        <StateVariable name="lastSpike" dimension="time"/>')
        for e in self.eqs:
            if e.kind == "derived":
                lines.append(f'        <DerivedVariable name="{e.name}" dimension="{dim[e.name]}" exposure="{e.name}" '
                             f'value="{_xml(self.dv[e.name])}"/>')
        states = [e for e in self.eqs if e.kind == "state"]

        def tds(indent, during_refractory=False):
            out = []
            for e in states:
                if during_refractory and "unless refractory" in e.flags:
                    continue
                out.append(f'{indent}<TimeDerivative variable="{e.name}" value="{_xml(self.td[e.name])}"/>')
            return out
        start = [f'            <StateAssignment variable="{e.name}" value="{self._initial_text(e)}"/>' for e in states]
        if self.refractory is not None:
            start.append('            <StateAssignment variable="lastSpike" value="0"/>')
        lines += ["        <OnStart>"] + start + ["        </OnStart>"]
        spike = ['            <EventOut port="spike"/>'] + [
            f'            <StateAssignment variable="{v}" value="{_xml(t)}"/>' for v, t in self.resets]
        if self.refractory is None:
            lines += tds("        ")
            if self.cond:
                lines += [f'        <OnCondition test="{_xml(self.cond)}">'] + spike + ["        </OnCondition>"]
        else:
            # as NeuroML's iafRefCell: the reset on entering the refractory regime (jLEMS lets a
            # regime's actions set only what that regime moves or enters with)
            lines += ['        <Regime name="integrating" initial="true">'] + tds("            ")
            lines += [f'            <OnCondition test="{_xml(self.cond)}">', '                <EventOut port="spike"/>',
                      '                <Transition regime="refractory"/>', "            </OnCondition>", "        </Regime>"]
            lines += ['        <Regime name="refractory">', "            <OnEntry>",
                      '                <StateAssignment variable="lastSpike" value="t"/>']
            lines += [f'                <StateAssignment variable="{v}" value="{_xml(t)}"/>' for v, t in self.resets]
            lines += ["            </OnEntry>"] + tds("            ", True)
            lines += ['            <OnCondition test="t .geq. lastSpike + refractory">',
                      '                <Transition regime="integrating"/>', "            </OnCondition>",
                      "        </Regime>"]
        lines += ["    </Dynamics>", "</ComponentType>"]
        dims = [f'<Dimension name="{n}" ' + " ".join(f'{b}="{int(e)}"' for b, e in zip("mltiknj", d) if e) + "/>"
                for n, d in extra.items()]
        return "\n".join(dims + lines)

    def component_xml(self, cid: Optional[str] = None) -> str:
        """A component of the type with the parameter values, in SI units written out (jLEMS
        takes no bare number for a dimensional parameter)."""
        from .units import default_registry
        reg = default_registry()
        extra: Dict[str, Dims] = {}

        def text(value, dims):
            dname = self._lems_dimension(dims, extra)
            if dname == "none":
                return repr(value)
            sym = reg.symbol_for(dname) if dname in reg.dimensions else f"SI_{dname}"
            return f"{value!r}{sym}"
        attrs = [f'{e.name}="{text(self.values[e.name][0], e.dims)}"' for e in self.eqs if e.kind == "param"]
        if self.refractory is not None:
            attrs.append(f'refractory="{self.refractory[0]!r}s"')
        units = [f'<Unit symbol="SI_{n}" dimension="{n}" power="0"/>' for n in extra]
        return "\n".join(units + [f'<{self.name} id="{cid or self.name + "_cell"}" {" ".join(attrs)}/>'])

    def lems(self, *, n: int = 1, duration="100*ms", dt="0.1*ms", record: Sequence[str] = (),
             seed: Optional[int] = None, inputs: str = "") -> str:
        """A whole LEMS file: the type, ``n`` cells, a Simulation recording ``record`` (variables of
        cell 0... as ``v`` or ``v[3]``) to ``<name>.dat`` and every spike to ``<name>.spikes``."""
        length, _ = _quantity(duration, "duration")
        step, _ = _quantity(dt, "dt")
        cid = self.name + "_cell"
        cols = []
        for r in record:
            m = re.fullmatch(r"([A-Za-z_]\w*)(?:\[(\d+)\])?", r)
            if not m or not any(e.name == m.group(1) and e.kind != "param" for e in self.eqs):
                raise EquationError(f"record: '{r}' is not a variable of the model")
            i = int(m.group(2) or 0)
            cols.append(f'        <OutputColumn id="{m.group(1)}_{i}" quantity="pop[{i}]/{m.group(1)}"/>')
        sel = "\n".join(f'        <EventSelection id="{i}" select="pop[{i}]" eventPort="spike"/>' for i in range(n))
        seed_attr = f' seed="{seed}"' if seed is not None else ""
        return f"""<Lems>
<Target component="sim"/>
<Include file="Cells.xml"/>
<Include file="Networks.xml"/>
<Include file="Simulation.xml"/>
{self.component_type_xml()}
{self.component_xml(cid)}
<network id="net">
    <population id="pop" component="{cid}" size="{n}"/>
{inputs}</network>
<Simulation id="sim" length="{length!r}s" step="{step!r}s" target="net"{seed_attr}>
    <OutputFile id="trace" fileName="{self.name}.dat">
{chr(10).join(cols)}
    </OutputFile>
    <EventOutputFile id="spikes" fileName="{self.name}.spikes" format="ID_TIME">
{sel}
    </EventOutputFile>
</Simulation>
</Lems>
"""

    def write(self, path, **kw) -> Path:
        """Write :meth:`lems` to ``path``."""
        path = Path(path)
        path.write_text(self.lems(**kw))
        return path

    def simulate(self, *, n: int = 1, duration="100*ms", dt="0.1*ms", record: Sequence[str] = (),
                 method: str = "exp_euler", backend: str = "numpy", seed: Optional[int] = None):
        """Run ``n`` cells of the model with nmlsim; returns a :class:`nmlsim.results.RunResult`
        (spikes of every cell in ``result.spikes['pop']``, the recorded variables in its output)."""
        from . import api
        with tempfile.TemporaryDirectory() as tmp:
            p = self.write(Path(tmp) / f"LEMS_{self.name}.xml", n=n, duration=duration, dt=dt, record=record,
                           seed=seed)
            sim = api.load(p)
            res = sim.run(method=method, backend=backend)
        res.simulator = None
        return res


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
