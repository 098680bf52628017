"""LEMS expressions: a small grammar parsed once into an AST, then generated into NumPy.

Grammar (lowest to highest precedence)::

    or   : and ('.or.' and)*
    and  : not ('.and.' not)*
    not  : '.not.' not | cmp
    cmp  : sum (('.gt.'|'.lt.'|'.geq.'|'.leq.'|'.eq.'|'.neq.'|'>'|'<'|...) sum)?
    sum  : prod (('+'|'-') prod)*
    prod : unary (('*'|'/') unary)*
    unary: '-' unary | '+' unary | pow
    pow  : atom ('^' unary)?          (right associative)
    atom : number | name | name '(' args ')' | '(' or ')'

AST nodes are tuples: ``('num', float)``, ``('name', str)``, ``('bin', op, a, b)`` with op in
``+ - * / ^``, ``('neg', a)``, ``('cmp', op, a, b)``, ``('and', a, b)``, ``('or', a, b)``,
``('not', a)``, ``('call', fname, (args...))``.

>>> parse("rate * x / (1 - exp(0 - x))")
('bin', '/', ('bin', '*', ('name', 'rate'), ('name', 'x')), ('bin', '-', ('num', 1.0), ('call', 'exp', (('bin', '-', ('num', 0.0), ('name', 'x')),))))
>>> sorted(names(parse("v .gt. thresh .and. spiking .lt. 0.5")))
['spiking', 'thresh', 'v']
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Callable, Iterator, Optional, Set

from ..errors import ModelError

#: functions known to LEMS (jLEMS) and their NumPy spelling
FUNCTIONS = {
    "exp": "_np.exp", "log": "_np.log", "ln": "_np.log", "log10": "_np.log10", "sqrt": "_np.sqrt",
    "sin": "_np.sin", "cos": "_np.cos", "tan": "_np.tan", "asin": "_np.arcsin", "acos": "_np.arccos",
    "atan": "_np.arctan", "sinh": "_np.sinh", "cosh": "_np.cosh", "tanh": "_np.tanh",
    "abs": "_np.abs", "ceil": "_np.ceil", "floor": "_np.floor", "H": "_heaviside",
    "random": "_random", "factorial": "_factorial", "max": "_np.maximum", "min": "_np.minimum",
    "pow": "_np.power", "sign": "_np.sign",
    "__select": "_np.where",  # internal: regime-dependent and piecewise expressions
    "__phi": "_phi",  # internal: expm1(z)/z, exponential Euler's factor (compile/integrators.lower_updates)
}
_ARITY = {"random": 1, "H": 1, "max": 2, "min": 2, "pow": 2}

_DOT_OPS = {".gt.": ">", ".lt.": "<", ".geq.": ">=", ".ge.": ">=", ".leq.": "<=", ".le.": "<=",
            ".eq.": "==", ".neq.": "!=", ".ne.": "!=", ".and.": "and", ".or.": "or", ".not.": "not"}
_SYM_OPS = {">=": ">=", "<=": "<=", "==": "==", "!=": "!=", ">": ">", "<": "<",
            "&&": "and", "||": "or", "!": "not"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<dot>\.[A-Za-z]+\.)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<sym>>=|<=|==|!=|&&|\|\||[-+*/^(),<>!])
""", re.X)


class ExpressionError(ModelError):
    """A LEMS expression does not parse."""


def _tokenize(text: str):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExpressionError(f"unexpected character {text[pos]!r} at column {pos + 1} in '{text}'")
        pos = m.end()
        kind = m.lastgroup
        tok = m.group(kind)
        if kind == "ws":
            continue
        if kind == "dot":
            op = _DOT_OPS.get(tok.lower())
            if op is None:
                raise ExpressionError(f"unknown operator '{tok}' in '{text}'")
            out.append(("op", op))
        elif kind == "sym":
            out.append(("op", _SYM_OPS.get(tok, tok)))
        else:
            out.append((kind, tok))
    out.append(("end", None))
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, op):
        t = self.take()
        if t != ("op", op):
            raise ExpressionError(f"expected '{op}' but found {t[1]!r} in '{self.text}'")

    def parse(self):
        node = self.p_or()
        if self.peek()[0] != "end":
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in '{self.text}'")
        return node

    def p_or(self):
        a = self.p_and()
        while self.peek() == ("op", "or"):
            self.take()
            a = ("or", a, self.p_and())
        return a

    def p_and(self):
        a = self.p_not()
        while self.peek() == ("op", "and"):
            self.take()
            a = ("and", a, self.p_not())
        return a

    def p_not(self):
        if self.peek() == ("op", "not"):
            self.take()
            return ("not", self.p_not())
        return self.p_cmp()

    def p_cmp(self):
        a = self.p_sum()
        t = self.peek()
        if t[0] == "op" and t[1] in (">", "<", ">=", "<=", "==", "!="):
            self.take()
            return ("cmp", t[1], a, self.p_sum())
        return a

    def p_sum(self):
        a = self.p_prod()
        while self.peek()[0] == "op" and self.peek()[1] in "+-":
            op = self.take()[1]
            a = ("bin", op, a, self.p_prod())
        return a

    def p_prod(self):
        a = self.p_unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            a = ("bin", op, a, self.p_unary())
        return a

    def p_unary(self):
        t = self.peek()
        if t == ("op", "-"):
            self.take()
            operand = self.p_unary()
            if operand[0] == "num":
                return ("num", -operand[1])
            return ("neg", operand)
        if t == ("op", "+"):
            self.take()
            return self.p_unary()
        return self.p_pow()

    def p_pow(self):
        a = self.p_atom()
        if self.peek() == ("op", "^"):
            self.take()
            return ("bin", "^", a, self.p_unary())
        return a

    def p_atom(self):
        kind, tok = self.take()
        if kind == "num":
            return ("num", float(tok))
        if kind == "name":
            if self.peek() == ("op", "("):
                self.take()
                args = []
                if self.peek() != ("op", ")"):
                    args.append(self.p_or())
                    while self.peek() == ("op", ","):
                        self.take()
                        args.append(self.p_or())
                self.expect(")")
                if tok not in FUNCTIONS:
                    raise ExpressionError(f"unknown function '{tok}' in '{self.text}'")
                if len(args) != _ARITY.get(tok, 1):
                    raise ExpressionError(f"function '{tok}' takes {_ARITY.get(tok, 1)} argument(s) in '{self.text}'")
                return ("call", tok, tuple(args))
            return ("name", tok)
        if (kind, tok) == ("op", "("):
            node = self.p_or()
            self.expect(")")
            return node
        raise ExpressionError(f"unexpected {tok!r} in '{self.text}'" if tok else f"incomplete expression '{self.text}'")


@lru_cache(maxsize=None)
def parse(text: str):
    """Parse a LEMS expression into an AST tuple (cached)."""
    if text is None or not str(text).strip():
        raise ExpressionError("empty expression")
    return _Parser(str(text)).parse()


def walk(node) -> Iterator[tuple]:
    yield node
    k = node[0]
    if k in ("bin", "cmp"):
        yield from walk(node[2])
        yield from walk(node[3])
    elif k in ("and", "or"):
        yield from walk(node[1])
        yield from walk(node[2])
    elif k in ("neg", "not"):
        yield from walk(node[1])
    elif k == "call":
        for a in node[2]:
            yield from walk(a)


def names(node) -> Set[str]:
    """The variable names an AST refers to."""
    return {n[1] for n in walk(node) if n[0] == "name"}


def rename(node, fn: Callable[[str], object]):
    """Return a copy of ``node`` with each ('name', x) replaced by ``fn(x)`` (a node or a str)."""
    k = node[0]
    if k == "name":
        r = fn(node[1])
        return ("name", r) if isinstance(r, str) else r
    if k == "num":
        return node
    if k in ("bin", "cmp"):
        return (k, node[1], rename(node[2], fn), rename(node[3], fn))
    if k in ("and", "or"):
        return (k, rename(node[1], fn), rename(node[2], fn))
    if k in ("neg", "not"):
        return (k, rename(node[1], fn))
    if k == "call":
        return ("call", node[1], tuple(rename(a, fn) for a in node[2]))
    raise ValueError(node)


def has_random(node) -> bool:
    return any(n[0] == "call" and n[1] == "random" for n in walk(node))


_PY_OP = {"+": "+", "-": "-", "*": "*", "/": "/", "^": "**"}


class _Dialect:
    """How one target spells logic, powers, selects and functions."""

    def __init__(self, functions, and_, or_, not_, power=None, select=None):
        self.functions, self.and_, self.or_, self.not_ = functions, and_, or_, not_
        self.power, self.select = power, select


def _reciprocal(code: str) -> Optional[str]:
    """1/c as a literal where ``code`` is a nonzero finite literal c with a finite reciprocal."""
    try:
        c = float(code)
    except ValueError:
        return None
    inv = 1.0 / c if c != 0.0 else math.inf
    return repr(inv) if math.isfinite(c) and math.isfinite(inv) and inv != 0.0 else None


def _emit(node, name_fn, d: _Dialect) -> str:
    k = node[0]

    def r(n):
        return _emit(n, name_fn, d)
    if k == "num":
        return repr(node[1])
    if k == "name":
        return name_fn(node[1])
    if k == "bin":
        if node[1] == "^" and d.power is not None:
            return d.power(r(node[2]), r(node[3]))
        right = r(node[3])
        if node[1] == "/":
            inv = _reciprocal(right)
            if inv is not None:  # x / c as x * (1/c): within an ulp, and a division costs ~10 products
                return f"({r(node[2])} * {inv})"
        return f"({r(node[2])} {_PY_OP[node[1]]} {right})"
    if k == "neg":
        return f"(-{r(node[1])})"
    if k == "cmp":
        return f"({r(node[2])} {node[1]} {r(node[3])})"
    if k == "and":
        return f"({r(node[1])} {d.and_} {r(node[2])})"
    if k == "or":
        return f"({r(node[1])} {d.or_} {r(node[2])})"
    if k == "not":
        return f"({d.not_}{r(node[1])})"
    if k == "call":
        if node[1] == "__select" and d.select is not None:
            c, a, b = node[2]
            return d.select(r(c), r(a), r(b))
        args = ", ".join(r(a) for a in node[2])
        return f"{d.functions[node[1]]}({args})"
    raise ValueError(node)


def to_numpy(node, name_fn: Callable[[str], str] = lambda s: s) -> str:
    """Generate NumPy source for an AST; ``name_fn`` maps variable names to code.

    Comparisons give boolean arrays, combined with ``&``/``|``/``~``.

    >>> to_numpy(parse("a .gt. 2 .and. b .lt. -1"))
    '((a > 2.0) & (b < -1.0))'
    """
    return _emit(node, name_fn, _NUMPY)


#: scalar (Python float) spelling of the LEMS functions, used for single-instance groups
PY_FUNCTIONS = {
    "exp": "_m.exp", "log": "_m.log", "ln": "_m.log", "log10": "_m.log10", "sqrt": "_m.sqrt",
    "sin": "_m.sin", "cos": "_m.cos", "tan": "_m.tan", "asin": "_m.asin", "acos": "_m.acos",
    "atan": "_m.atan", "sinh": "_m.sinh", "cosh": "_m.cosh", "tanh": "_m.tanh",
    "abs": "abs", "ceil": "_m.ceil", "floor": "_m.floor", "H": "_hs", "random": "_rand1",
    "factorial": "_fact1", "max": "max", "min": "min", "pow": "_m.pow", "sign": "_sign1",
    "__phi": "_phi1",
}

_NUMPY = _Dialect(FUNCTIONS, "&", "|", "~")
_PYTHON = _Dialect(PY_FUNCTIONS, "and", "or", "not ", power=lambda a, b: f"_m.pow({a}, {b})",
                   select=lambda c, a, b: f"({a} if {c} else {b})")


def to_python(node, name_fn: Callable[[str], str] = lambda s: s) -> str:
    """Generate scalar Python source (floats, ``math``) for an AST.

    Unlike :func:`to_numpy`, a division by zero or a domain error raises; callers fall
    back to the NumPy version of the code for that step.

    >>> to_python(parse("a .gt. 2 .and. b .lt. -1"))
    '((a > 2.0) and (b < -1.0))'
    """
    return _emit(node, name_fn, _PYTHON)


def _scalar_heaviside(x):
    return 1.0 if x > 0 else (0.5 if x == 0 else 0.0)


def _scalar_sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def python_namespace(random1: Callable[[float], float]) -> dict:
    """The names :func:`to_python` code needs; ``random1(x)`` draws uniformly in [0, x)."""
    import math
    return {"_m": math, "_hs": _scalar_heaviside, "_sign1": _scalar_sign,
            "_fact1": lambda x: math.gamma(x + 1.0), "_rand1": random1}


def evaluate(node, env: dict):
    """Evaluate an AST with plain Python/NumPy values (used for constants at load time)."""
    import numpy as np

    code = to_numpy(node, lambda s: f"_env[{s!r}]")
    try:
        return eval(code, {"_np": np, "_env": env, "_heaviside": heaviside,
                           "_factorial": _factorial_fn, "_random": _no_random})
    except KeyError as e:
        raise ModelError(f"unknown name {e.args[0]!r} in expression") from None


def heaviside(x):
    import numpy as np
    return np.heaviside(x, 0.5)


def _factorial_fn(x):
    import numpy as np
    from scipy.special import gamma
    return gamma(np.asarray(x, dtype=float) + 1.0)


def _no_random(x):
    raise ModelError("random() is not allowed in a constant expression")
