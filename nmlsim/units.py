"""NeuroML unit strings <-> SI floats.

The dimension and unit tables are data: they are read from the core file
``NeuroMLCoreDimensions.xml`` (and extended by any ``<Dimension>``/``<Unit>`` a model
file declares).  Quantities are parsed strictly: a number, optional whitespace, then a
known unit symbol — nothing is guessed.

>>> reg = default_registry()
>>> reg.parse("-65mV")
-0.065
>>> reg.parse("0.2 nA", "current")
2e-10
>>> reg.parse("6.3 degC")
279.45
"""
from __future__ import annotations

import math

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .errors import ModelError, UnitError

_BASE = ("m", "l", "t", "i", "k", "n", "j")  # LEMS dimension exponent attributes

Dim = Tuple[int, ...]
DIMENSIONLESS: Dim = (0,) * len(_BASE)

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(r"^\s*(" + _NUMBER + r")\s*([A-Za-z_][A-Za-z0-9_]*)?\s*$")


@dataclass(frozen=True)
class Unit:
    symbol: str
    dimension: str
    power: int = 0
    scale: float = 1.0
    offset: float = 0.0

    def to_si(self, value: float) -> float:
        # divide by 10**-p rather than multiply by 10**p: "0.2 nA" gives exactly 2e-10
        v = value * 10.0 ** self.power if self.power >= 0 else value / 10.0 ** (-self.power)
        return v * self.scale + self.offset


class UnitRegistry:
    """Dimensions and units known to one model."""

    def __init__(self):
        self.dimensions: Dict[str, Dim] = {"none": DIMENSIONLESS}
        self.units: Dict[str, Unit] = {}

    def copy(self) -> "UnitRegistry":
        r = UnitRegistry()
        r.dimensions = dict(self.dimensions)
        r.units = dict(self.units)
        return r

    def add_dimension(self, name: str, **exps) -> None:
        self.dimensions[name] = tuple(int(exps.get(b, 0) or 0) for b in _BASE)

    def add_unit(self, symbol: str, dimension: str, power: float = 0, scale: float = 1.0,
                 offset: float = 0.0) -> None:
        if dimension not in self.dimensions:
            raise UnitError(f"unit '{symbol}' names unknown dimension '{dimension}'")
        if power != int(power):
            raise UnitError(f"unit '{symbol}' has a non-integer power {power}")
        self.units[symbol] = Unit(symbol, dimension, int(power), scale, offset)

    def dim(self, name: str) -> Dim:
        try:
            return self.dimensions[name]
        except KeyError:
            raise UnitError(f"unknown dimension '{name}'") from None

    def parse_with_dimension(self, text: str) -> Tuple[float, str]:
        """Parse ``text`` and return (SI value, dimension name)."""
        if not isinstance(text, str):
            raise UnitError(f"expected a quantity string, got {text!r}")
        m = _QUANTITY.match(text)
        if not m:
            raise UnitError(f"'{text}' is not a quantity (a number followed by a unit symbol)")
        value = float(m.group(1))
        sym = m.group(2)
        if sym is None:
            return value, "none"
        unit = self.units.get(sym)
        if unit is None:
            raise UnitError(f"unknown unit '{sym}' in '{text}'")
        return unit.to_si(value), unit.dimension

    def parse(self, text: str, dimension: Optional[str] = None) -> float:
        """Parse ``text`` into an SI float, checking its dimension if one is given.

        A bare number is accepted for any dimension (jLEMS reads it as SI).
        """
        value, dname = self.parse_with_dimension(text)
        if dimension is not None and dname != "none" and dimension != "*":
            want = self.dim(dimension)
            if self.dimensions[dname] != want:
                raise UnitError(f"'{text}' has dimension {dname}, expected {dimension}")
        return value

    def symbol_for(self, dimension: str) -> str:
        """An SI unit symbol for ``dimension`` (power 0, scale 1), or '' if none."""
        for u in self.units.values():
            if u.dimension == dimension and u.power == 0 and u.scale == 1.0 and u.offset == 0.0:
                return u.symbol
        return ""


_DEFAULT: Optional[UnitRegistry] = None


def load_dimensions_file(reg: UnitRegistry, path) -> None:
    """Add the <Dimension> and <Unit> elements of a trusted LEMS file (the shipped core)."""
    root = ET.parse(str(path)).getroot()
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "Dimension":
            reg.add_dimension(el.get("name"), **{b: el.get(b) for b in _BASE})
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "Unit":
            reg.add_unit(el.get("symbol"), el.get("dimension"), float(el.get("power", 0) or 0),
                         float(el.get("scale", 1) or 1), float(el.get("offset", 0) or 0))


def default_registry() -> UnitRegistry:
    """The registry of NeuroMLCoreDimensions.xml (a fresh copy each call is not needed)."""
    global _DEFAULT
    if _DEFAULT is None:
        from .coretypes import CORE_DIR
        reg = UnitRegistry()
        load_dimensions_file(reg, CORE_DIR / "NeuroMLCoreDimensions.xml")
        _DEFAULT = reg
    return _DEFAULT


def parse_quantity(text: str, dimension: Optional[str] = None) -> float:
    """Parse a NeuroML quantity string into an SI float with the core unit table."""
    return default_registry().parse(text, dimension)


#: more steps than this is a unit slip (a step of 1e-300 ms), not a simulation
MAX_STEPS = 10 ** 10


def check_run_times(length_s: float, step_s: float) -> Optional[str]:
    """What is wrong with a run of ``length_s`` seconds at steps of ``step_s`` (None: fine)."""
    if not (math.isfinite(step_s) and step_s > 0):
        return f"the time step must be a positive time (got {step_s!r} s)"
    if not (math.isfinite(length_s) and length_s > 0):
        return f"the simulated time must be positive (got {length_s!r} s)"
    if length_s / step_s > MAX_STEPS:
        return (f"{length_s:g} s in steps of {step_s:g} s is {length_s / step_s:.3g} steps "
                f"(more than {MAX_STEPS:.0e}: check the units of the length and step)")
    return None


def check_seed(raw) -> Optional[str]:
    """What is wrong with a seed value (None: absent, or an integer from 0 to 2**63 - 1)."""
    if raw is None:
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and re.fullmatch(r"\s*\d+\s*", raw):
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 2 ** 63:
        return f"seed {raw!r} is not an integer from 0 to 2^63 - 1"
    return None


def finite_number(raw, what: str, where: dict) -> float:
    """``raw`` (an attribute's text) as a finite float, or a one-line ModelError naming
    ``what`` (e.g. ``weight '1e999'``) at ``where`` (a component's ``where()``)."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise ModelError(f"{what} is not a number", **where) from None
    if not math.isfinite(v):
        raise ModelError(f"{what} is not finite", **where)
    return v
