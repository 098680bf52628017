"""The two classic E-I benchmark networks (spec: ../shared/specs/ei_networks.md).

``cobahh``: 4000 single-compartment Hodgkin-Huxley cells (80 % E, 20 % I), Traub-Miles
Na/K with V_sh = -63 mV, conductance-based exponential synapses (6 nS / 67 nS,
5 ms / 10 ms), fixed out-degree 80 drawn with replacement over all cells (the seed's
``EventFixedProb``), threshold -20 mV, the reference leak g_L = 10 nS (the seed's
5 nS/cm² is a unit slip, see the spec).

``coba_lif``: the Vogels-Abbott network in the REF-consistent physical units of the spec
(B.2): C = 200 pF, g_L = 10 nS (tau 20 ms), E_L = V_reset = -60 mV, V_th = -50 mV,
5 ms refractory, w_e = 6 nS, w_i = 67 nS, constant drive 0.2 nA (= 20 mV through g_L).

NeuroML has no per-cell initial membrane potential, so the random initial V of the
benchmarks is produced by a 1 ms current kick at t = 0 whose per-cell weight (an
``inputW``) brings each cell from its resting start to its drawn initial V; the kick is
part of the model, so nmlsim and jnml see the same network.  Scaling ``n`` keeps the
out-degree fixed (80), hence the in-degree.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..graph.network import InputList, Network, Population, Projection
from ..io.lems_reader import core_model
from ..lems.model import Component

KICK_S = 1e-3  # duration of the initial-condition kick
KICK_A = 1e-9  # its nominal amplitude (A); per-cell weights scale it


def C(tag: str, id: Optional[str] = None, children=(), **attrs) -> Component:
    """A component as a NeuroML element would give it (attribute values are strings)."""
    type_attr = attrs.pop("type", None)
    return Component(tag=tag, id=id, type_attr=type_attr, attrs={k: str(v) for k, v in attrs.items()},
                     children=list(children), file="<nmlsim.library.ei>")


def traub_miles_channels():
    """Na and K_DR of Traub & Miles (1991) with V_sh = -63 mV, as NeuroML rate forms (spec A.2)."""
    na = C("ionChannelHH", "na_tm", conductance="10pS", species="na", children=[
        C("gateHHrates", "m", instances="3", children=[
            C("forwardRate", type="HHExpLinearRate", rate="1.28per_ms", midpoint="-50mV", scale="4mV"),
            C("reverseRate", type="HHExpLinearRate", rate="1.4per_ms", midpoint="-23mV", scale="-5mV")]),
        C("gateHHrates", "h", instances="1", children=[
            C("forwardRate", type="HHExpRate", rate="0.128per_ms", midpoint="-46mV", scale="-18mV"),
            C("reverseRate", type="HHSigmoidRate", rate="4per_ms", midpoint="-23mV", scale="5mV")])])
    k = C("ionChannelHH", "k_tm", conductance="10pS", species="k", children=[
        C("gateHHrates", "n", instances="4", children=[
            C("forwardRate", type="HHExpLinearRate", rate="0.16per_ms", midpoint="-48mV", scale="5mV"),
            C("reverseRate", type="HHExpRate", rate="0.5per_ms", midpoint="-53mV", scale="-40mV")])])
    leak = C("ionChannel", "leak", conductance="10pS", type="ionChannelPassive")
    return [na, k, leak]


def hh_cell(cid="hh_cell", v0="-70mV"):
    """Single compartment of 20000 µm² (cylinder, diameter = length = 79.788 µm)."""
    d = f"{np.sqrt(20000.0 / np.pi):.6f}"
    return C("cell", cid, children=[
        C("morphology", "morph", children=[
            C("segment", "0", name="soma", children=[
                C("proximal", x="0", y="0", z="0", diameter=d),
                C("distal", x=d, y="0", z="0", diameter=d)])]),
        C("biophysicalProperties", "bio", children=[
            C("membraneProperties", children=[
                C("channelDensity", "na", ionChannel="na_tm", condDensity="100mS_per_cm2", erev="50mV", ion="na"),
                C("channelDensity", "k", ionChannel="k_tm", condDensity="30mS_per_cm2", erev="-90mV", ion="k"),
                C("channelDensity", "leak", ionChannel="leak", condDensity="0.05mS_per_cm2", erev="-60mV",
                  ion="non_specific"),
                C("spikeThresh", value="-20mV"),
                C("specificCapacitance", value="1uF_per_cm2"),
                C("initMembPotential", value=v0)]),
            C("intracellularProperties", children=[C("resistivity", value="0.1kohm_cm")])])])


def _fixed_outdegree(rng, n_pre, n_total, k):
    """Each presynaptic cell gets exactly k targets, uniform over all cells, with replacement."""
    pre = np.repeat(np.arange(n_pre, dtype=np.int64), k)
    post = rng.integers(0, n_total, size=n_pre * k, dtype=np.int64)
    return pre, post


def _split_projections(net, rng, n_e, n_i, k, syn_e, syn_i):
    n = n_e + n_i
    for src, n_src, syn in (("E", n_e, syn_e), ("I", n_i, syn_i)):
        pre, post = _fixed_outdegree(rng, n_src, n, k)
        for dst, lo, hi in (("E", 0, n_e), ("I", n_e, n)):
            sel = (post >= lo) & (post < hi)
            net.projections.append(Projection(
                f"proj_{src}{dst}", src, dst, syn, pre[sel], post[sel] - lo, np.ones(int(sel.sum())),
                np.zeros(int(sel.sum()))))


def _kick(net, model, comp_id, pops, dv, capacitance_f):
    """inputW weights that move each cell by dv (V) in KICK_S, ignoring other currents."""
    kick = C("pulseGenerator", comp_id, delay="0ms", duration=f"{KICK_S * 1e3:g}ms", amplitude=f"{KICK_A * 1e9:g}nA")
    model.add_component(kick)
    start = 0
    for pid, size in pops:
        w = capacitance_f * dv[start:start + size] / (KICK_A * KICK_S)
        net.inputs.append(InputList(f"kick_{pid}", kick, pid, np.arange(size, dtype=np.int64), w))
        start += size


def build(name: str, n: int = 4000, seed: int = 0, k: int = 80) -> Network:
    """Build ``cobahh`` or ``coba_lif`` with ``n`` cells (80 % E) and out-degree ``k``."""
    if name not in ("cobahh", "coba_lif"):
        raise ValueError(f"unknown E-I model '{name}' (cobahh or coba_lif)")
    rng = np.random.default_rng(seed)
    n_e = int(round(0.8 * n))
    n_i = n - n_e
    model = core_model()
    if name == "cobahh":
        comps = traub_miles_channels() + [hh_cell("hh_cell", "-70mV")]
        cell_id, cap = "hh_cell", 200e-12
        v_start, v_init = -0.070, rng.uniform(-0.070, -0.060, n)
    else:
        comps = [C("iafRefCell", "lif_cell", leakReversal="-60mV", thresh="-50mV", reset="-60mV", C="200pF",
                   leakConductance="10nS", refract="5ms"),
                 C("pulseGenerator", "drive", delay="0ms", duration="1e9ms", amplitude="0.2nA")]
        cell_id, cap = "lif_cell", 200e-12
        v_start, v_init = -0.060, rng.normal(-0.055, 0.005, n)
    comps += [C("expOneSynapse", "syn_e", gbase="6nS", erev="0mV", tauDecay="5ms"),
              C("expOneSynapse", "syn_i", gbase="67nS", erev="-80mV", tauDecay="10ms")]
    for c in comps:
        model.add_component(c)
    netc = C("network", "net_" + name)
    model.add_component(netc)
    net = Network(id=netc.id, component=netc, model=model, root=netc, root_path=[])
    cell = model.components[cell_id]
    net.populations["E"] = Population("E", cell, n_e)
    net.populations["I"] = Population("I", cell, n_i)
    _split_projections(net, rng, n_e, n_i, k, model.components["syn_e"], model.components["syn_i"])
    if name == "coba_lif":
        drive = model.components["drive"]
        for pid, size in (("E", n_e), ("I", n_i)):
            net.inputs.append(InputList(f"drive_{pid}", drive, pid, np.arange(size), np.ones(size)))
    _kick(net, model, "init_kick", [("E", n_e), ("I", n_i)], v_init - v_start, cap)
    net.description = (f"{name}: {n} cells ({n_e} E, {n_i} I), out-degree {k}, seed {seed}; "
                       "built by nmlsim.library.ei")
    return net
