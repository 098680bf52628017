"""NEST point-neuron templates (``nest:<model>`` in SONATA) as LEMS components.

The ComponentTypes live in ``schemas/nest/NestPointNeurons.xml``; this module knows NEST's
parameter names, units and defaults (NEST 3.x), builds one cell component per node type,
and the postsynaptic-current component a NEST ``static_synapse`` connection stands for.

Units follow NEST: mV, ms, pF, pA, nS; current-based weights are pA (alpha/exp PSCs) or mV
(delta), conductance-based weights nS.  Parameters NEST has but these models cannot honour
(``V_min``, ``refractory_input``, GLIF threshold mechanisms...) are refused by name rather
than ignored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Tuple

from ..errors import ModelError, UnsupportedFeature
from ..lems.model import Component, LemsModel

# NEST parameter -> (LEMS parameter, unit)
_IAF = {"C_m": ("C_m", "pF"), "tau_m": ("tau_m", "ms"), "t_ref": ("t_ref", "ms"), "E_L": ("E_L", "mV"),
        "V_th": ("V_th", "mV"), "V_reset": ("V_reset", "mV"), "I_e": ("I_e", "pA"), "V_m": ("V_init", "mV"),
        "tau_syn_ex": ("tau_syn_ex", "ms"), "tau_syn_in": ("tau_syn_in", "ms")}
_IAF_DEFAULTS = {"C_m": 250.0, "tau_m": 10.0, "t_ref": 2.0, "E_L": -70.0, "V_th": -55.0, "V_reset": -70.0,
                 "I_e": 0.0, "V_m": -70.0, "tau_syn_ex": 2.0, "tau_syn_in": 2.0}
_COND = {"C_m": ("C_m", "pF"), "g_L": ("g_L", "nS"), "t_ref": ("t_ref", "ms"), "E_L": ("E_L", "mV"),
         "V_th": ("V_th", "mV"), "V_reset": ("V_reset", "mV"), "I_e": ("I_e", "pA"), "V_m": ("V_init", "mV"),
         "E_ex": ("E_ex", "mV"), "E_in": ("E_in", "mV"), "tau_syn_ex": ("tau_syn_ex", "ms"),
         "tau_syn_in": ("tau_syn_in", "ms")}
_COND_DEFAULTS = {"C_m": 250.0, "g_L": 16.6667, "t_ref": 2.0, "E_L": -70.0, "V_th": -55.0, "V_reset": -60.0,
                  "I_e": 0.0, "V_m": -70.0, "E_ex": 0.0, "E_in": -85.0, "tau_syn_ex": 0.2, "tau_syn_in": 2.0}
_GLIF_DEFAULTS = {"g": 9.43, "E_L": -78.85, "V_th": -51.68, "C_m": 58.72, "t_ref": 3.75, "V_reset": -78.85,
                  "V_m": -78.85, "asc_init": [0.0, 0.0], "asc_decay": [0.003, 0.1], "asc_amps": [-9.18, -198.94],
                  "asc_r": [1.0, 1.0], "tau_syn": [2.0], "after_spike_currents": False,
                  "spike_dependent_threshold": False, "adapting_threshold": False}
#: GLIF parameters that only matter for the threshold mechanisms nmlsim does not model
_GLIF_THRESHOLD_ONLY = {"th_spike_add", "th_spike_decay", "voltage_reset_fraction", "voltage_reset_add",
                        "th_voltage_index", "th_voltage_decay"}
#: accepted everywhere, no effect on dynamics
_IGNORED = {"model", "receptor_type"}


@dataclass
class NestCell:
    """A NEST neuron: its LEMS component and what its synapses need."""
    model: str
    component: Component
    params: Dict[str, object] = field(default_factory=dict)  # NEST names, NEST units


def _num(v, key, where):
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ModelError(f"NEST parameter '{key}' must be a number, got {v!r}", **where) from None


def _fmt(x: float, unit: str) -> str:
    return f"{float(x)!r}{unit}"


def supported_models():
    return ("iaf_psc_alpha", "iaf_psc_exp", "iaf_psc_delta", "iaf_cond_exp", "glif_psc")


def cell_component(model_name: str, dynamics: dict, cid: str, where: dict) -> NestCell:
    """The component for NEST model ``model_name`` with ``dynamics`` over NEST's defaults."""
    dynamics = {k: v for k, v in (dynamics or {}).items() if v is not None and k not in _IGNORED}
    if model_name in ("iaf_psc_alpha", "iaf_psc_exp", "iaf_psc_delta"):
        table, defaults = _IAF, _IAF_DEFAULTS
        if model_name == "iaf_psc_delta":
            if dynamics.get("refractory_input"):
                raise UnsupportedFeature("iaf_psc_delta with refractory_input=True is not supported", **where)
            dynamics.pop("refractory_input", None)
            if "V_min" in dynamics and math.isfinite(_num(dynamics["V_min"], "V_min", where)):
                raise UnsupportedFeature("iaf_psc_delta with a finite V_min is not supported", **where)
            dynamics.pop("V_min", None)
        return _simple(model_name, table, defaults, dynamics, cid, where)
    if model_name == "iaf_cond_exp":
        return _simple(model_name, _COND, _COND_DEFAULTS, dynamics, cid, where)
    if model_name == "glif_psc":
        return _glif(dynamics, cid, where)
    raise UnsupportedFeature(f"model_template 'nest:{model_name}' is not supported (nmlsim has "
                             f"{', '.join(supported_models())})", **where)


def _simple(model_name, table, defaults, dynamics, cid, where) -> NestCell:
    unknown = sorted(set(dynamics) - set(table))
    if unknown:
        raise UnsupportedFeature(f"NEST {model_name} parameter '{unknown[0]}' is not supported", **where)
    params = dict(defaults)
    params.update({k: _num(v, k, where) for k, v in dynamics.items()})
    if params["V_reset"] >= params["V_th"]:
        raise ModelError(f"{model_name}: V_reset ({params['V_reset']}) must be below V_th ({params['V_th']})", **where)
    attrs = {table[k][0]: _fmt(v, table[k][1]) for k, v in params.items()}
    comp = Component(tag=f"nest_{model_name}", id=cid, type=f"nest_{model_name}", attrs=attrs,
                     file=where.get("file"))
    return NestCell(model_name, comp, params)


def _glif(dynamics, cid, where) -> NestCell:
    unknown = sorted(set(dynamics) - set(_GLIF_DEFAULTS) - _GLIF_THRESHOLD_ONLY)
    if unknown:
        raise UnsupportedFeature(f"NEST glif_psc parameter '{unknown[0]}' is not supported", **where)
    p = dict(_GLIF_DEFAULTS)
    if "E_L" in dynamics and "V_m" not in dynamics:
        p["V_m"] = _GLIF_DEFAULTS["V_m"]  # NEST keeps V_m where it was when E_L moves
    if "E_L" in dynamics:  # V_reset and V_th are stored relative to E_L
        shift = _num(dynamics["E_L"], "E_L", where) - _GLIF_DEFAULTS["E_L"]
        p["V_reset"] = _GLIF_DEFAULTS["V_reset"] + shift
        p["V_th"] = _GLIF_DEFAULTS["V_th"] + shift
    p.update(dynamics)
    if p["spike_dependent_threshold"] or p["adapting_threshold"]:
        raise UnsupportedFeature("glif_psc with spike_dependent_threshold or adapting_threshold (GLIF 2/4/5) is not "
                                 "supported; nmlsim models GLIF 1 (lif) and 3 (lif_asc)", **where)
    has_asc = bool(p["after_spike_currents"])
    lists = {}
    for key in ("asc_init", "asc_decay", "asc_amps", "asc_r"):
        v = p[key]
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise UnsupportedFeature(f"glif_psc '{key}' must list two after-spike currents, got {v!r}", **where)
        lists[key] = [_num(x, key, where) for x in v]
    taus = p["tau_syn"] if isinstance(p["tau_syn"], (list, tuple)) else [p["tau_syn"]]
    taus = [_num(x, "tau_syn", where) for x in taus]
    if not taus or min(taus) <= 0:
        raise ModelError("glif_psc tau_syn must list positive time constants", **where)
    p["tau_syn"] = taus
    num = {k: _num(p[k], k, where) for k in ("g", "E_L", "V_th", "C_m", "t_ref", "V_reset", "V_m")}
    if num["V_reset"] >= num["V_th"]:
        raise ModelError(f"glif_psc: V_reset ({num['V_reset']}) must be below V_th ({num['V_th']})", **where)
    attrs = {"g": _fmt(num["g"], "nS"), "E_L": _fmt(num["E_L"], "mV"), "V_th": _fmt(num["V_th"], "mV"),
             "C_m": _fmt(num["C_m"], "pF"), "t_ref": _fmt(num["t_ref"], "ms"),
             "V_reset": _fmt(num["V_reset"], "mV"), "V_init": _fmt(num["V_m"], "mV"),
             "has_asc": "1" if has_asc else "0"}
    for j in (0, 1):
        attrs[f"asc_init_{j + 1}"] = _fmt(lists["asc_init"][j], "pA")
        attrs[f"asc_decay_{j + 1}"] = _fmt(lists["asc_decay"][j], "per_ms")
        attrs[f"asc_amps_{j + 1}"] = _fmt(lists["asc_amps"][j], "pA")
        attrs[f"asc_r_{j + 1}"] = repr(lists["asc_r"][j])
    comp = Component(tag="nest_glif_psc", id=cid, type="nest_glif_psc", attrs=attrs, file=where.get("file"))
    p.update(num)
    return NestCell("glif_psc", comp, p)


def synapse_for(cell: NestCell, receptor: int, inhibitory: bool, where: dict) -> Tuple[str, Component, bool]:
    """(key, synapse component, use |weight|) for a static_synapse onto ``cell``.

    ``key`` names the component by its type and values, so that cells of different node
    types with equal time constants share one synapse group.
    """
    m, p, cid = cell.model, cell.params, cell.component.id
    if m == "glif_psc":
        taus = p["tau_syn"]
        if not 1 <= receptor <= len(taus):
            raise ModelError(f"receptor_type {receptor} is out of range for glif_psc '{cid}' "
                             f"(ports 1..{len(taus)})", **where)
        key = f"nest_alpha_psc_tau{_tag(taus[receptor - 1])}"
        return key, Component(tag="alphaCurrentSynapse", id=key, type="alphaCurrentSynapse",
                              attrs={"tau": _fmt(taus[receptor - 1], "ms"), "ibase": "1pA"}), False
    if receptor not in (0,):
        raise UnsupportedFeature(f"receptor_type {receptor} onto NEST {m} is not supported (port 0 only)", **where)
    side = "in" if inhibitory else "ex"
    tau = p[f"tau_syn_{side}"] if m != "iaf_psc_delta" else None
    if m == "iaf_psc_alpha":
        key = f"nest_alpha_psc_tau{_tag(tau)}"
        return key, Component(tag="alphaCurrentSynapse", id=key, type="alphaCurrentSynapse",
                              attrs={"tau": _fmt(tau, "ms"), "ibase": "1pA"}), False
    if m == "iaf_psc_exp":
        key = f"nest_exp_psc_tau{_tag(tau)}"
        return key, Component(tag="nestExpCurrentSynapse", id=key, type="nestExpCurrentSynapse",
                              attrs={"tau": _fmt(tau, "ms"), "ibase": "1pA"}), False
    if m == "iaf_psc_delta":
        key = "nest_delta_psc"
        return key, Component(tag="nestDeltaSynapse", id=key, type="nestDeltaSynapse",
                              attrs={"amplitude": "1mV"}), False
    if m == "iaf_cond_exp":
        erev = p["E_in"] if inhibitory else p["E_ex"]
        key = f"nest_cond_exp_tau{_tag(tau)}_erev{_tag(erev)}"
        return key, Component(tag="expOneSynapse", id=key, type="expOneSynapse",
                              attrs={"gbase": "1nS", "erev": _fmt(erev, "mV"), "tauDecay": _fmt(tau, "ms")}), True
    raise UnsupportedFeature(f"no synapse for NEST model {m}", **where)


def _tag(x: float) -> str:
    """A number as an NmToken-safe id fragment: 2.0 -> '2', -85.5 -> 'm85p5'."""
    return f"{float(x):g}".replace("-", "m").replace(".", "p").replace("+", "")


def current_unit(cell_template: str) -> str:
    """The unit bmtk's current clamps use on this template: NEST reads the number as pA."""
    return "pA" if cell_template.startswith("nest:") else "nA"


def register_types(model: LemsModel) -> None:
    """Load the NEST ComponentTypes into ``model`` (once)."""
    if model.has_type("nest_iaf_psc_alpha"):
        return
    from ..coretypes import NEST_TYPES_FILE
    from .lems_reader import LemsReader
    LemsReader(model=model, include_root=NEST_TYPES_FILE.parent).load(NEST_TYPES_FILE)
