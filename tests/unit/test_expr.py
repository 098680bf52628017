import math

import numpy as np
import pytest

from nmlsim.lems import expr as E


def ev(text, **env):
    return E.evaluate(E.parse(text), env)


def test_precedence_and_power():
    assert ev("2 + 3 * 4") == 14
    assert ev("2 ^ 3 ^ 2") == 2 ** 9  # right associative
    assert ev("-2 ^ 2") == -4  # unary minus binds looser than ^
    assert ev("(1 + 2) / 4") == 0.75
    assert ev("10 - 4 - 3") == 3
    assert ev("8 / 4 / 2") == 1


def test_comparisons_and_logic():
    assert bool(ev("a .gt. 1 .and. b .lt. 0", a=2, b=-1))
    assert not bool(ev("a .gt. 1 .and. b .lt. 0", a=2, b=1))
    assert bool(ev("a .geq. 2 .or. b .neq. 1", a=1, b=2))
    assert bool(ev(".not. (a .eq. 1)", a=2))
    assert bool(ev("a >= 2 && b <= 1", a=2, b=1))


def test_functions():
    assert ev("exp(0) + log(1) + sqrt(4)") == 3
    assert ev("abs(-3) + floor(2.7) + ceil(0.2)") == 6
    assert ev("H(1) + H(-1)") == 1
    assert ev("tanh(0) + sin(0) + cos(0)") == 1
    assert ev("factorial(4)") == pytest.approx(24)


def test_vectorised():
    x = np.array([-1.0, 0.0, 2.0])
    out = E.evaluate(E.parse("x * x + 1"), {"x": x})
    assert np.allclose(out, [2, 1, 5])


def test_names_and_rename():
    ast = E.parse("v - vmax * exp(x)")
    assert E.names(ast) == {"v", "vmax", "x"}  # by AST, not by substring
    renamed = E.rename(ast, lambda n: "p_" + n)
    assert E.names(renamed) == {"p_v", "p_vmax", "p_x"}


def test_python_and_numpy_agree():
    text = "rate * x / (1 - exp(0 - x)) + (a .gt. 0) * 2 ^ b"
    ast = E.parse(text)
    env = {"rate": 3.0, "x": 0.7, "a": 1.0, "b": 3.0}
    py = eval(E.to_python(ast, lambda n: f"env[{n!r}]"), {"_m": math, "env": env})
    npv = eval(E.to_numpy(ast, lambda n: f"env[{n!r}]"), {"_np": np, "env": env})
    assert py == pytest.approx(float(npv))


@pytest.mark.parametrize("bad", ["1 +", "(a", "a b", "foo(1)", "exp(1, 2)", "a .xx. b", "3 $ 4", "", ")"])
def test_bad_expressions(bad):
    with pytest.raises(E.ExpressionError):
        E.parse(bad)


try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    _alphabet = st.sampled_from(list("0123456789.eE+-*/^()., abvxt_") + [".gt.", ".and.", "exp(", "H(", " "])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(_alphabet, max_size=25).map("".join))
    def test_parser_never_crashes(text):
        try:
            ast = E.parse(text)
        except E.ExpressionError:
            return
        E.to_numpy(ast)
        E.to_python(ast)
