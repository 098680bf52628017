import math

import pytest

from nmlsim.errors import UnitError
from nmlsim.units import UnitRegistry, default_registry


def test_core_units_to_si():
    r = default_registry()
    assert r.parse("-65mV") == pytest.approx(-0.065)
    assert r.parse("0.2 nA") == 2e-10
    assert r.parse("10pS") == pytest.approx(1e-11)
    assert r.parse("6.3 degC") == pytest.approx(279.45)
    assert r.parse("2.5 mS_per_cm2") == pytest.approx(25.0)
    assert r.parse("1 uF_per_cm2") == pytest.approx(0.01)
    assert r.parse("0.1per_ms") == pytest.approx(100.0)
    assert r.parse("1e-3") == 1e-3
    assert r.parse(".5 ms") == pytest.approx(5e-4)


def test_dimension_checked():
    r = default_registry()
    assert r.parse("5 ms", "time") == pytest.approx(0.005)
    with pytest.raises(UnitError, match="dimension voltage, expected time"):
        r.parse("5 mV", "time")
    # a bare number is SI for any dimension, as in jLEMS
    assert r.parse("0.005", "time") == 0.005


@pytest.mark.parametrize("bad", ["mV", "5 qV", "", "5 m V", "--5mV", "5mV3x", "1e+", "nan mV"])
def test_bad_quantities_raise(bad):
    with pytest.raises(UnitError):
        default_registry().parse(bad)


def test_user_units_and_dimensions():
    r = default_registry().copy()
    r.add_dimension("weird", m=1, t=-2)
    r.add_unit("wu", "weird", power=-3, scale=2.0)
    assert r.parse("3 wu", "weird") == pytest.approx(0.006)
    with pytest.raises(UnitError):
        r.add_unit("zz", "nodim")


def test_symbol_for():
    assert default_registry().symbol_for("voltage") == "V"
    assert UnitRegistry().symbol_for("voltage") == ""
    assert math.isclose(default_registry().parse("1 M"), 1000.0)


try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.sampled_from(list("0123456789.eE+- mVsAuSn_perdgC")), max_size=14))
    def test_unit_parser_never_crashes(text):
        try:
            v = default_registry().parse(text)
        except UnitError:
            return
        assert isinstance(v, float)
