"""The thalamic network of Li, Henriquez & Froehlich (2017) in four states.

Spec: specs/thalamus.md (the seed's numbers; its software quirks are replaced by the physics,
see docs/models.md).  Four single-compartment cell types (HTC, RTC, IN, RE) on square grids,
Hodgkin-Huxley channels with calcium dynamics, kinetic AMPA / NMDA / GABA_A synapses driven
by transmitter pulses, gap junctions on a distance rule, 100 Hz Poisson noise per cell and a
4 Hz train of current pulses from 1 s to 2 s.  The states differ in the K leak of each cell
type and in the weight of the noise.

Standard NeuroML forms are used where they fit; what has none (piecewise and two-exponential
time courses, Ca-dependent rates and conductance factor, the rectified shell Ca pool, the
transmitter-pulse receptors) are LEMS ComponentTypes in ``ThalamusTypes.xml`` next to this
module.  Every channel is written to its own ``<id>.channel.nml``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..graph.network import ElectricalProjection, InputList, Network, Population, Projection
from ..lems.model import Component

TYPES_FILE = Path(__file__).with_name("ThalamusTypes.xml")

STATES = ("delta", "spindle", "alpha", "gamma")

#: grid side, membrane area (cm^2), initial V (mV) per population (spec §1)
POPULATIONS = {"HTC": (7, 2.9e-4, -80.0), "RTC": (12, 2.9e-4, -80.0),
               "IN": (8, 1.7e-4, -70.0), "RE": (10, 1.43e-4, -70.0)}

#: K leak (mS/cm^2) per cell type and Poisson weight (uS) per state (spec §9, §7.1)
K_LEAK = {"delta": {"HTC": 0.035, "RTC": 0.035, "RE": 0.03, "IN": 0.01},
          "spindle": {"HTC": 0.01, "RTC": 0.01, "RE": 0.02, "IN": 0.015},
          "alpha": {"HTC": 0.0, "RTC": 0.0, "RE": 0.01, "IN": 0.02},
          "gamma": {"HTC": 0.0, "RTC": 0.0, "RE": 0.01, "IN": 0.02}}
NOISE_W = {"delta": {"TC": 1e-4, "other": 1e-4}, "spindle": {"TC": 3e-4, "other": 3e-4},
           "alpha": {"TC": 1.5e-3, "other": 1.5e-3}, "gamma": {"TC": 1.7e-2, "other": 1.5e-3}}

PHI_P, PHI_Q, PHI_P_RE = 3.55 ** 1.2, 3.0 ** 1.2, 5.0 ** 1.2  # temperature factors (spec §3)

#: channel densities in mS/cm^2 per cell type (spec §3), K leak added per state
DENSITIES = {
    "HTC": {"Na": ("Na_Ba2002_vsh30", 90), "KDR": ("KDR_Ba2002_vsh30", 10), "CaL": ("CaL_IS2008", 0.5),
            "CAN": ("CAN_IS2008", 0.5), "CaT": ("CaT_HM1992", 2.1), "CaHT": ("CaHT_HM1992", 3.0),
            "AHP": ("AHP_De1994", 0.3), "Ih": ("Ih_HM1992", 0.01)},
    "RTC": {"Na": ("Na_Ba2002_vsh40", 90), "KDR": ("KDR_Ba2002_vsh40", 10), "CaL": ("CaL_IS2008", 0.3),
            "CAN": ("CAN_IS2008", 0.6), "CaT": ("CaT_HM1992", 2.1), "CaHT": ("CaHT_HM1992", 0.6),
            "AHP": ("AHP_De1994", 0.1), "Ih": ("Ih_HM1992", 0.01)},
    "IN": {"Na": ("Na_Ba2002_vsh30", 90), "KDR": ("KDR_Ba2002_vsh30", 10), "CAN": ("CAN_IS2008", 0.1),
           "CaHT": ("CaHT_HM1992", 2.5), "AHP": ("AHP_De1994", 0.2), "Ih": ("Ih_HM1992", 0.05)},
    "RE": {"Na": ("Na_Ba2002_vsh40", 90), "KDR": ("KDR_Ba2002_vsh40_phi1", 10), "CAN": ("CAN_IS2008", 0.2),
           "CaT": ("CaT_HP1992", 1.3), "AHP": ("AHP_De1994", 0.2)},
}
LEAK = {"HTC": -70.0, "RTC": -70.0, "IN": -60.0, "RE": -60.0}  # E_L (mV); g_L = 0.0075 mS/cm^2
REVERSAL = {"Na": 50.0, "KDR": -90.0, "CAN": 10.0, "AHP": -90.0, "Ih": -43.0}
CA_CHANNELS = ("CaL", "CaT", "CaHT")  # Nernst reversal from the pool
CA_POOL_TAU = {"HTC": 10.0, "RTC": 10.0, "IN": 10.0, "RE": 100.0}

#: receptors: alpha (1/(ms mM)), beta (1/ms), Tmax (mM), Tdur (ms) (spec §5.1)
RECEPTORS = {"AMPA": (0.94, 0.18, 0.5, 0.5), "NMDA": (1.0, 0.0067, 0.5, 0.5), "GABAA": (10.5, 0.166, 1.0, 1.0)}

#: chemical projections in the seed's construction order (spec §5.3):
#: (id, pre, post, p, afferent_ratio, weight uS, receptor, erev mV, delay ms)
CHEMICAL = [
    ("HTC_IN_AMPA", "HTC", "IN", 0.3, 1.0, 6e-3, "AMPA", 0.0, 0.0),
    ("HTC_IN_NMDA", "HTC", "IN", 0.3, 1.0, 3e-3, "NMDA", 0.0, 0.0),
    ("IN_RTC_GABAA", "IN", "RTC", 0.3, 1.0, 3e-3, "GABAA", -80.0, 2.0),
    ("HTC_RE_AMPA", "HTC", "RE", 0.2, 1.0, 4e-3, "AMPA", 0.0, 2.0),
    ("RTC_RE_AMPA", "RTC", "RE", 0.2, 1.0, 4e-3, "AMPA", 0.0, 2.0),
    ("HTC_RE_NMDA", "HTC", "RE", 0.2, 1.0, 2e-3, "NMDA", 0.0, 2.0),
    ("RTC_RE_NMDA", "RTC", "RE", 0.2, 1.0, 2e-3, "NMDA", 0.0, 2.0),
    ("RE_HTC_GABAA", "RE", "HTC", 0.2, 1.0, 3e-3, "GABAA", -80.0, 2.0),
    ("RE_RTC_GABAA", "RE", "RTC", 0.2, 1.0, 3e-3, "GABAA", -80.0, 2.0),
    ("RE_RE_GABAA", "RE", "RE", 0.2, 1.0, 1e-3, "GABAA", -70.0, 2.0),
    ("RE_IN_GABAA", "RE", "IN", 0.05, 0.1, 1e-3, "GABAA", -80.0, 2.0),
]

#: gap junctions (spec §6): (id, pre, post, max grid distance, probability, pre_ratio, conductance nS)
GAP = [("gj_HTC", "HTC", "HTC", 2.0, 0.3, 1.0, 10.0),
       ("gj_RTC2HTC", "RTC", "HTC", 2.0, 0.3, 0.2, 10.0 / 3.0),
       ("gj_RE", "RE", "RE", 2.0, 0.3, 0.2, 10.0 / 3.0)]

#: the rhythmic drive (spec §7.2): onsets (ms), width (ms), amplitude (nA), into every cell
PULSE_ONSETS, PULSE_WIDTH, PULSE_AMP = (1000.0, 1250.0, 1500.0, 1750.0), 10.0, 0.2

SOURCE = "<nmlsim.library.thalamus>"
COMPONENTS_COMMENT = "Components of the thalamic model's own ComponentTypes (ThalamusTypes.xml)"


def C(tag: str, id: Optional[str] = None, children=(), **attrs) -> Component:
    type_attr = attrs.pop("type", None)
    return Component(tag=tag, id=id, type_attr=type_attr, attrs={k: str(v) for k, v in attrs.items()},
                     children=list(children), file=SOURCE)


def _q10(phi: float) -> Component:
    return C("q10Settings", type="q10Fixed", fixedQ10=f"{phi:.6g}")


def _sigmoid(midpoint: float, scale: float) -> Component:
    return C("steadyState", type="HHSigmoidVariable", rate="1", midpoint=f"{midpoint:.6g}mV", scale=f"{scale:.6g}mV")


def _tau2(tau_min, tau_scale, m1, s1, m2, s2) -> Component:
    return C("timeCourse", type="tauTwoExpSum", tauMin=f"{tau_min:.6g}ms", tauScale=f"{tau_scale:.6g}ms",
             midpoint1=f"{m1:.8g}mV", scale1=f"{s1:.8g}mV", midpoint2=f"{m2:.8g}mV", scale2=f"{s2:.8g}mV")


def channels() -> Dict[str, Component]:
    """Every channel of the model (spec §3), keyed by id."""
    out: Dict[str, Component] = {}
    for vsh in (-30.0, -40.0):  # Na, Ba2002 (Traub-Miles form), v = V - V_sh
        out[f"Na_Ba2002_vsh{-vsh:g}"] = C("ionChannelHH", f"Na_Ba2002_vsh{-vsh:g}", conductance="10pS",
                                           species="na", children=[
            C("gateHHrates", "m", instances="3", children=[
                C("forwardRate", type="HHExpLinearRate", rate="1.28per_ms", midpoint=f"{vsh + 13:g}mV", scale="4mV"),
                C("reverseRate", type="HHExpLinearRate", rate="1.4per_ms", midpoint=f"{vsh + 40:g}mV", scale="-5mV")]),
            C("gateHHrates", "h", instances="1", children=[
                C("forwardRate", type="HHExpRate", rate="0.128per_ms", midpoint=f"{vsh + 17:g}mV", scale="-18mV"),
                C("reverseRate", type="HHSigmoidRate", rate="4per_ms", midpoint=f"{vsh + 40:g}mV", scale="5mV")])])
    for cid, vsh, phi in (("KDR_Ba2002_vsh30", -30.0, 0.25), ("KDR_Ba2002_vsh40", -40.0, 0.25),
                          ("KDR_Ba2002_vsh40_phi1", -40.0, 1.0)):
        gate = [C("gateHHrates", "n", instances="4", children=[
            C("forwardRate", type="HHExpLinearRate", rate="0.16per_ms", midpoint=f"{vsh + 15:g}mV", scale="5mV"),
            C("reverseRate", type="HHExpRate", rate="0.5per_ms", midpoint=f"{vsh + 10:g}mV", scale="-40mV")]
            + ([_q10(phi)] if phi != 1.0 else []))]
        out[cid] = C("ionChannelHH", cid, conductance="10pS", species="k", children=gate)
    out["CaL_IS2008"] = C("ionChannelHH", "CaL_IS2008", conductance="10pS", species="ca", children=[
        C("gateHHtauInf", "p", instances="2", children=[
            _tau2(0.4, 0.7, -5, -15, -5, 15), _sigmoid(-10, 4), _q10(PHI_P)]),
        C("gateHHtauInf", "q", instances="1", children=[
            _tau2(300, 100, -40, 9.5, -40, -9.5), _sigmoid(-25, -2), _q10(PHI_Q)])])
    for cid, vsh in (("CaT_HM1992", -3.0), ("CaHT_HM1992", 25.0)):  # v = V - V_sh
        out[cid] = C("ionChannelHH", cid, conductance="10pS", species="ca", children=[
            C("gateHHtauInf", "p", instances="2", children=[
                _tau2(0.612, 1, vsh - 132, -16.7, vsh - 16.8, 18.2), _sigmoid(vsh - 59, 6.2), _q10(PHI_P)]),
            C("gateHHtauInf", "q", instances="1", children=[
                C("timeCourse", type="tauCaTInactHM1992", vShift=f"{vsh:g}mV"), _sigmoid(vsh - 83, -4),
                _q10(PHI_Q)])])
    vsh = -3.0
    out["CaT_HP1992"] = C("ionChannelHH", "CaT_HP1992", conductance="10pS", species="ca", children=[
        C("gateHHtauInf", "p", instances="2", children=[
            _tau2(3, 1, vsh - 27, 10, vsh - 102, -15), _sigmoid(vsh - 52, 7.4), _q10(PHI_P_RE)]),
        C("gateHHtauInf", "q", instances="1", children=[
            _tau2(85, 1, vsh - 48, 4, vsh - 407, -50), _sigmoid(vsh - 80, -5), _q10(PHI_Q)])])
    # the calcium factor [Ca]/([Ca] + Kd) as an instantaneous gate (the schema has no place for a
    # custom conductance scaling in an ionChannelHH); the product of the gates is the same
    out["CAN_IS2008"] = C("ionChannelHH", "CAN_IS2008", conductance="10pS", species="ca", children=[
        C("gateHHtauInf", "p", instances="1", children=[_tau2(1.6, 2.7, -55, -15, -55, 15), _sigmoid(-43, 5.2)]),
        C("gateHHInstantaneous", "ca", instances="1", children=[
            C("steadyState", type="caSaturationVariable", kd="0.2mM")])])
    out["AHP_De1994"] = C("ionChannelHH", "AHP_De1994", conductance="10pS", species="k", children=[
        C("gateHHrates", "p", instances="2", children=[
            C("forwardRate", type="caSquareRate", rate="48per_ms"),
            C("reverseRate", type="constantRate", rate="0.09per_ms")])])
    # tau = 1 / (exp(-0.086 V - 14.59) + exp(0.0701 V - 1.87)) ms
    out["Ih_HM1992"] = C("ionChannelHH", "Ih_HM1992", conductance="10pS", children=[
        C("gateHHtauInf", "p", instances="1", children=[
            _tau2(0, 1, -14.59 / 0.086, -1 / 0.086, 1.87 / 0.0701, 1 / 0.0701), _sigmoid(-75, -5.5)])])
    out["KLeak"] = C("ionChannel", "KLeak", type="ionChannelPassive", conductance="10pS", species="k")
    out["Leak"] = C("ionChannel", "Leak", type="ionChannelPassive", conductance="10pS")
    return out


def _write_channel(outdir: Path, cid: str, ch: Component, model) -> Path:
    """``<cid>.channel.nml``, schema-valid: gate forms of ThalamusTypes.xml (known to ``model``,
    :func:`model_with_types`) whose parameters NeuroML's slots cannot carry get a copy of their
    type with those values as constants, defined in the same file."""
    from ..io.neuroml_writer import schema_valid_slots, write_nml_document
    (ch,), types = schema_valid_slots(model, [ch])
    return write_nml_document(outdir / f"{cid}.channel.nml", cid, [ch], type_xml=types,
                              notes=f"Channel {cid} of the thalamic model (nmlsim.library.thalamus); custom gate "
                                    f"forms are defined in {TYPES_FILE.name} (or below, with their values)")


def ca_pool(cell_type: str) -> Component:
    """The rectified shell pool (custom type; shell 0.5 um, rest 5e-5 mM)."""
    return C("Component", f"caPool_tau{CA_POOL_TAU[cell_type]:g}ms", type="shellCaPoolRectified", ion="ca",
             restingConc="5e-5mM", decayConstant=f"{CA_POOL_TAU[cell_type]:g}ms", shellThickness="0.5um")


def cell(cell_type: str, state: str, *, kinds: Optional[Sequence[str]] = None, k_leak: Optional[float] = None,
         cid: Optional[str] = None) -> Component:
    """One cell type as a single-compartment NeuroML cell (cylinder with diameter = length,
    side area = the spec's membrane area).  ``kinds`` keeps only those channels (and the
    leak); ``k_leak`` replaces the state's K leak density."""
    _, area_cm2, v0 = POPULATIONS[cell_type]
    d = f"{np.sqrt(area_cm2 * 1e8 / np.pi):.6f}"  # um
    dens = []
    for kind, (chan, g) in DENSITIES[cell_type].items():
        if kinds is not None and kind not in kinds:
            continue
        if kind in CA_CHANNELS:
            dens.append(C("channelDensityNernst", f"{kind}_all", ionChannel=chan, condDensity=f"{g:g}mS_per_cm2",
                          ion="ca"))
        else:
            # CAN and AHP sit on the Ca ion in the seed, so their currents feed the pool (spec §4)
            ion = "ca" if kind in ("CAN", "AHP") else {"Na": "na", "KDR": "k", "Ih": "non_specific"}[kind]
            dens.append(C("channelDensity", f"{kind}_all", ionChannel=chan, condDensity=f"{g:g}mS_per_cm2",
                          erev=f"{REVERSAL[kind]:g}mV", ion=ion))
    gkl = K_LEAK[state][cell_type] if k_leak is None else k_leak
    if gkl > 0 and (kinds is None or "KLeak" in kinds):
        dens.append(C("channelDensity", "KLeak_all", ionChannel="KLeak", condDensity=f"{gkl:g}mS_per_cm2",
                      erev="-90mV", ion="k"))
    dens.append(C("channelDensity", "Leak_all", ionChannel="Leak", condDensity="0.0075mS_per_cm2",
                  erev=f"{LEAK[cell_type]:g}mV", ion="non_specific"))
    # the schema's order: every channelDensity before the channelDensityNernsts (so the model
    # built here sums its currents in the order a reader of the written file does)
    dens.sort(key=lambda c: c.tag == "channelDensityNernst")
    return C("cell", cid or f"{cell_type}_{state}", children=[
        C("morphology", "morph", children=[
            C("segment", "0", name="soma", children=[
                C("proximal", x="0", y="0", z="0", diameter=d),
                C("distal", x=d, y="0", z="0", diameter=d)])]),
        C("biophysicalProperties", "bio", children=[
            C("membraneProperties", children=dens + [
                C("spikeThresh", value="20mV"),
                C("specificCapacitance", value="1uF_per_cm2"),
                C("initMembPotential", value=f"{v0:g}mV")]),
            C("intracellularProperties", children=[
                C("species", "ca", concentrationModel=ca_pool(cell_type).id, ion="ca",
                  initialConcentration="2.4e-4mM", initialExtConcentration="2mM"),
                C("resistivity", value="0.1kohm_cm")])])])


#: short-term depression of the original model (spec §5.2): U and recovery time
STD_U, STD_TAU_MS = 0.07, 700.0


def synapses(std: bool = False) -> Dict[str, Component]:
    """One receptor component per chemical projection (gbase = the seed's weight in uS).
    ``std``: release scaled by the original model's depressing efficacy (U 0.07, 700 ms);
    without it U = 0, the seed's behaviour (its depression state never reaches release)."""
    out = {}
    for pid, _pre, _post, _p, _ratio, w, rec, erev, _delay in CHEMICAL:
        a, b, tmax, tdur = RECEPTORS[rec]
        attrs = dict(gbase=f"{w * 1e3:g}nS", erev=f"{erev:g}mV", alpha=f"{a:g}per_ms", beta=f"{b:g}per_ms",
                     Tmax=f"{tmax:g}", Tdur=f"{tdur:g}ms", U=f"{STD_U if std else 0:g}",
                     tauRec=f"{STD_TAU_MS:g}ms")
        if rec == "NMDA":
            out[pid] = C("Component", f"syn_{pid}", type="kineticPulseSynapseMgBlock", blockMidpoint="-25mV",
                         blockScale="12.5mV", **attrs)
        else:
            out[pid] = C("Component", f"syn_{pid}", type="kineticPulseSynapse", **attrs)
    return out


def fixed_number(rng: np.random.Generator, n_pre: int, n_post: int, p: float, ratio: float):
    """FixedNumConn: every (selected) pre cell draws floor(n_post p) targets with replacement."""
    k = int(np.floor(n_post * p))
    pre = np.arange(n_pre, dtype=np.int64)
    if ratio < 1.0:
        pre = pre[rng.random(n_pre) < ratio]
    pre = np.repeat(pre, k)
    post = rng.integers(0, n_post, size=len(pre), dtype=np.int64)
    return pre, post


def prob_dist(rng: np.random.Generator, n_pre: int, n_post: int, dist: float, prob: float, pre_ratio: float,
              include_self: bool = False):
    """The seed's ProbDist rule (spec §6.2): raw grid coordinates of both grids."""
    side_pre, side_post = int(np.sqrt(n_pre)), int(np.sqrt(n_post))
    ii, jj = np.divmod(np.arange(side_post * side_post), side_post)
    pre_out, post_out = [], []
    for k in range(side_pre * side_pre):
        a, b = k % side_pre, k // side_pre
        if rng.random() >= pre_ratio:
            continue
        d = np.sqrt((a - ii) ** 2 + (b - jj) ** 2)
        cand = np.nonzero((d <= dist) & ((d > 0) | include_self))[0]
        hit = cand[rng.random(len(cand)) <= prob]
        pre_out.append(np.full(len(hit), a * side_pre + b, dtype=np.int64))
        post_out.append(hit.astype(np.int64))
    if not pre_out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(pre_out), np.concatenate(post_out)


def inputs(state: str) -> Dict[str, Component]:
    """The Poisson noise (per cell, 100 Hz, exponential conductance) and the pulse train."""
    out = {}
    for grp, w in NOISE_W[state].items():
        syn = C("expOneSynapse", f"syn_noise_{grp}_{state}", gbase=f"{w * 1e3:g}nS", erev="0mV", tauDecay="5ms")
        out[syn.id] = syn
        out[f"noise_{grp}"] = C("poissonFiringSynapse", f"noise_{grp}_{state}", averageRate="100Hz",
                                synapse=syn.id, spikeTarget=f"./{syn.id}")
    out["pulses"] = C("compoundInput", "pulses_4Hz", children=[
        C("pulseGenerator", f"pulse{k}", delay=f"{t:g}ms", duration=f"{PULSE_WIDTH:g}ms", amplitude=f"{PULSE_AMP:g}nA")
        for k, t in enumerate(PULSE_ONSETS)])
    return out


def model_with_types():
    """The NeuroML core model plus ThalamusTypes.xml."""
    from ..io.lems_reader import LemsReader, core_model
    model = core_model()
    LemsReader(model).load(TYPES_FILE)
    return model


def build(state: str = "alpha", seed: int = 1, tc_gap_junctions: bool = False, std: bool = False) -> Network:
    """The network in ``state`` (delta, spindle, alpha, gamma); ``seed`` draws the connectivity
    (the same for every state) and is the simulation seed of the export.

    ``tc_gap_junctions``: also couple HTC-HTC (10 nS) and RTC-HTC (3.3 nS), the original
    model's junctions.  They are drawn either way (same random stream, same edges), but by
    default only RE-RE acts, as in the seed, whose TC junction currents never reach dV/dt
    (spec §6.1 quirk 2) and whose measured rhythms (spec §11.1) are the targets; with them,
    gamma slows from ~28 Hz to ~20 Hz (docs/models.md).

    ``std``: short-term depression that scales release (the original model); by default
    none, as in the seed (spec §5.2)."""
    if state not in STATES:
        from ..errors import ModelError
        raise ModelError(f"unknown thalamus state '{state}' (choose from {', '.join(STATES)})")
    model = model_with_types()
    comps: List[Component] = list(channels().values())
    comps += [ca_pool(t) for t in ("HTC", "RE")]
    comps += [cell(t, state) for t in POPULATIONS]
    syns = synapses(std)
    comps += list(syns.values())
    gaps = {g: C("gapJunction", f"gj_{g:.4g}nS".replace(".", "p"), conductance=f"{g:.10g}nS")
            for g in sorted({x[-1] for x in GAP})}
    comps += list(gaps.values())
    ins = inputs(state)
    comps += list(ins.values())
    for c in comps:
        model.add_component(c)
    netc = C("network", f"thalamus_{state}", type="networkWithTemperature", temperature="36degC")
    model.add_component(netc)
    net = Network(id=netc.id, component=netc, model=model, root=netc, root_path=[])
    for pid, (side, _area, _v0) in POPULATIONS.items():
        n = side * side
        row, col = np.divmod(np.arange(n), side)
        pos = np.stack([col, row, np.zeros(n)], axis=1).astype(float)
        net.populations[pid] = Population(pid, model.components[f"{pid}_{state}"], n, positions=pos,
                                          instance_ids=np.arange(n, dtype=np.int64))
    rng = np.random.default_rng(seed)
    for pid, pre, post, p, ratio, _w, _rec, _erev, delay in CHEMICAL:
        i, j = fixed_number(rng, net.populations[pre].size, net.populations[post].size, p, ratio)
        net.projections.append(Projection(pid, pre, post, syns[pid], i, j, np.ones(len(i)),
                                          np.full(len(i), delay * 1e-3)))
    for gid, pre, post, dist, prob, ratio, g in GAP:
        i, j = prob_dist(rng, net.populations[pre].size, net.populations[post].size, dist, prob, ratio)
        if post == "HTC" and not tc_gap_junctions:
            continue
        net.electrical.append(ElectricalProjection(gid, pre, post, gaps[g], i, j, np.ones(len(i))))
    for pid, pop in net.populations.items():
        idx = np.arange(pop.size, dtype=np.int64)
        grp = "TC" if pid in ("HTC", "RTC") else "other"
        net.inputs.append(InputList(f"noise_{pid}", ins[f"noise_{grp}"], pid, idx, np.ones(pop.size)))
        net.inputs.append(InputList(f"pulses_{pid}", ins["pulses"], pid, idx, np.ones(pop.size)))
    net.description = (f"Thalamic network of Li, Henriquez & Froehlich (2017), {state} state; connectivity seed "
                       f"{seed}; gap junctions: {'HTC-HTC, RTC-HTC and RE-RE' if tc_gap_junctions else 'RE-RE only, as in the seed'}; "
                       f"short-term depression: {'U 0.07, 700 ms (original model)' if std else 'none, as in the seed'}; "
                       f"built by nmlsim.library.thalamus (spec: specs/thalamus.md)")
    return net


def export(outdir, *, states: Sequence[str] = STATES, seed: int = 1, to: Sequence[str] = ("neuroml", "sonata"),
           duration: float = 3.0, step: float = 1e-4, traces_per_population: int = 10,
           tc_gap_junctions: bool = False, std: bool = False) -> List[Path]:
    """Write the model into ``outdir``: ThalamusTypes.xml, one ``.channel.nml`` per channel,
    ``Thalamus_components.xml`` (Ca pools, receptors), per state ``thalamus_<state>.cells.nml``,
    ``thalamus_<state>.net.nml`` and ``LEMS_thalamus_<state>.xml``; with "sonata" also
    ``sonata/<state>/``.  Returns the paths written."""
    import shutil
    from ..io.neuroml_writer import write_lems_document, write_lems_simulation, write_network_nml, write_nml_document
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    chans = channels()
    custom = [ca_pool(t) for t in ("HTC", "RE")] + list(synapses(std).values())
    if "neuroml" in to:
        shutil.copyfile(TYPES_FILE, outdir / TYPES_FILE.name)
        written.append(outdir / TYPES_FILE.name)
        types_model = model_with_types()
        for cid, ch in chans.items():
            written.append(_write_channel(outdir, cid, ch, types_model))
        written.append(write_lems_document(outdir / "Thalamus_components.xml", custom, comment=COMPONENTS_COMMENT))
    for state in states:
        net = build(state, seed, tc_gap_junctions=tc_gap_junctions, std=std)
        if "neuroml" in to:
            cells = [net.populations[p].component for p in POPULATIONS]
            used = sorted({d.attrs["ionChannel"] for c in cells for d in _densities(c)})
            cfile = write_nml_document(outdir / f"thalamus_{state}.cells.nml", f"thalamus_{state}_cells", cells,
                                       includes=[f"{c}.channel.nml" for c in used],
                                       notes=f"The four cell types in the {state} state (K leak of spec section 9)")
            skip = {id(c) for c in cells} | {id(net.model.components[c]) for c in chans}
            skip |= {id(net.model.components[c.id]) for c in custom}
            nfile = write_network_nml(net, outdir / f"thalamus_{state}.net.nml", skip=skip,
                                      includes=[cfile.name])  # (LEMS files in a NeuroML include stop jnml)
            events = {f"results/thalamus_{state}_{pid}.spikes": [f"{pid}/{i}/{p.component.id}" for i in range(p.size)]
                      for pid, p in net.populations.items()}
            traces = {f"results/thalamus_{state}_{pid}_v.dat":
                      [f"{pid}/{i}/{p.component.id}/v" for i in range(min(traces_per_population, p.size))]
                      for pid, p in net.populations.items()}
            lems = write_lems_simulation(outdir / f"LEMS_thalamus_{state}.xml", sim_id=f"sim_thalamus_{state}",
                                         target=net.id, includes=[TYPES_FILE.name, "Thalamus_components.xml",
                                                                  cfile.name, nfile.name],
                                         length_s=duration, step_s=step, seed=seed, event_outputs=events,
                                         traces=traces)
            written += [cfile, nfile, lems]
        if "sonata" in to:
            from ..io.sonata import write_sonata
            # the cells whose potential the LEMS files record, one report per population
            written += write_sonata(net, outdir / "sonata" / state, tstop_s=duration, dt_s=step, seed=seed,
                                    reports={f"thalamus_{state}_{pid}_v": [(pid, i) for i in range(
                                        min(traces_per_population, p.size))] for pid, p in net.populations.items()})
    return written


def _densities(cell_comp: Component):
    for ch in cell_comp.children:
        if ch.tag == "biophysicalProperties":
            for mp in ch.children:
                if mp.tag == "membraneProperties":
                    yield from (d for d in mp.children if "ionChannel" in d.attrs)


#: the cell type whose density a channel's single-cell test uses
def _test_density(channel_id: str):
    for t in ("HTC", "RTC", "IN", "RE"):
        for kind, (chan, g) in DENSITIES[t].items():
            if chan == channel_id:
                return t, kind, g
    return "HTC", channel_id, 0.03  # KLeak (at the delta state's TC density) and Leak


def channel_test(channel_id: str, outdir, *, length_ms: float = 300.0, step_ms: float = 0.01) -> Path:
    """A single-cell current-clamp LEMS test of one channel file: a cell of the type that uses
    the channel, with only that channel, the leak and the Ca pool, driven by a hyperpolarising
    (-70 nA/cm^2, 20-120 ms) and two depolarising steps (+300 nA/cm^2, 150-200 ms;
    +1000 nA/cm^2, 220-270 ms) that take a leaky membrane to about -30 and +60 mV.  Writes the channel
    file, ``ThalamusTypes.xml``, ``Thalamus_components.xml`` and ``LEMS_<channel>_test.xml``;
    records v and [Ca] to ``<channel>_test.dat``.  Returns the LEMS path."""
    import shutil
    from ..io.neuroml_writer import write_lems_document, write_lems_simulation, write_nml_document
    chans = channels()
    if channel_id not in chans:
        from ..errors import ModelError
        raise ModelError(f"unknown thalamic channel '{channel_id}' (choose from {', '.join(chans)})")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cell_type, kind, g = _test_density(channel_id)
    base = cell(cell_type, "alpha", kinds=[kind], k_leak=g if kind == "KLeak" else 0.0, cid=f"test_{channel_id}")
    types_model = model_with_types()
    files = [_write_channel(outdir, channel_id, chans[channel_id], types_model)]
    if channel_id != "Leak":
        files.append(_write_channel(outdir, "Leak", chans["Leak"], types_model))
    shutil.copyfile(TYPES_FILE, outdir / TYPES_FILE.name)
    write_lems_document(outdir / "Thalamus_components.xml", [ca_pool(t) for t in ("HTC", "RE")],
                        comment=COMPONENTS_COMMENT)
    area = POPULATIONS[cell_type][1]
    stims = [C("pulseGenerator", "hyper", delay="20ms", duration="100ms", amplitude=f"{-70 * area:.6g}nA"),
             C("pulseGenerator", "depol", delay="150ms", duration="50ms", amplitude=f"{300 * area:.6g}nA"),
             C("pulseGenerator", "strong", delay="220ms", duration="50ms", amplitude=f"{1000 * area:.6g}nA")]
    netc = C("network", "net", type="networkWithTemperature", temperature="36degC", children=[
        C("population", "pop", component=base.id, size="1"),
        *[C("explicitInput", target="pop[0]", input=s.id) for s in stims]])
    cfile = write_nml_document(outdir / f"test_{channel_id}.net.nml", f"test_{channel_id}", [base, *stims, netc],
                               includes=[f.name for f in files])
    return write_lems_simulation(outdir / f"LEMS_{channel_id}_test.xml", sim_id=f"sim_{channel_id}", target="net",
                                 includes=[TYPES_FILE.name, "Thalamus_components.xml", cfile.name],
                                 length_s=length_ms * 1e-3, step_s=step_ms * 1e-3,
                                 traces={f"{channel_id}_test.dat": ["pop[0]/v", "pop[0]/caConc"]})
