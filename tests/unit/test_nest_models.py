"""NEST point neurons (schemas/nest) against the closed-form solutions NEST integrates exactly."""
import math

import numpy as np
import pytest

from nmlsim.api import simulate_network
from nmlsim.compile.build import build_groups
from nmlsim.engine.paths import resolve_quantity
from nmlsim.engine.record import TraceRecorder
from nmlsim.engine.simulator import Simulator
from nmlsim.errors import ModelError, UnsupportedFeature
from nmlsim.graph.network import Network, Population, Projection, SpikeSourcePopulation
from nmlsim.io import nest_models
from nmlsim.io.lems_reader import core_model
from nmlsim.lems.model import Component

W = {"file": "test"}


def _net(model_name, params, w=None, spike_ms=None, delay_ms=1.0, receptor=0):
    model = core_model()
    nest_models.register_types(model)
    cell = nest_models.cell_component(model_name, params, "c", W)
    model.add_component(cell.component)
    netc = Component(tag="network", id="n")
    net = Network("n", netc, model, root=netc)
    net.populations["p"] = Population("p", cell.component, 1)
    if w is not None:
        key, syn, use_abs = nest_models.synapse_for(cell, receptor, w < 0, W)
        model.add_component(syn)
        src = SpikeSourcePopulation("s", 1)
        src.set_spikes([0], [spike_ms * 1e-3])
        net.sources["s"] = src
        net.projections.append(Projection("pr", "s", "p", syn, np.array([0]), np.array([0]),
                                          np.array([abs(w) if use_abs else w]), np.array([delay_ms * 1e-3])))
    return net


def _trace(net, T, dt, method="rk4"):
    built = build_groups(net)
    sim = Simulator(built, dt, method=method)
    out = {}
    rec = TraceRecorder("v", [resolve_quantity(built, "p[0]/v")], lambda n, d, c: out.__setitem__("d", d))
    sim.run(T, [rec])
    return out["d"][:, 0], out["d"][:, 1]


def test_iaf_psc_delta_interspike_interval_is_analytic():
    p = {"I_e": 500.0}  # pA; NEST defaults C_m 250 pF, tau_m 10 ms, V_th -55, V_reset -70, t_ref 2
    spikes, _ = simulate_network(_net("iaf_psc_delta", p), 0.2, 1e-5)
    t = np.sort(spikes["p"][1]) * 1e3
    R, tau = 10.0 / 250.0, 10.0  # GOhm = ms / pF, ms
    vinf = -70.0 + R * 500.0
    first = tau * math.log((vinf - (-70.0)) / (vinf - (-55.0)))
    assert t[0] == pytest.approx(first, abs=0.02)
    assert np.diff(t) == pytest.approx(first + 2.0, abs=0.02)


def test_iaf_psc_delta_jump_arrives_after_the_delay():
    t, v = _trace(_net("iaf_psc_delta", {}, w=2.5, spike_ms=3.0, delay_ms=1.5), 0.01, 1e-5)
    ms = t * 1e3
    before, after = v[ms < 4.49], v[ms > 4.52]
    assert np.allclose(before, -0.070)
    # the jump of 2.5 mV, then the leak back to E_L with tau_m
    expect = -70.0 + 2.5 * np.exp(-(ms[ms > 4.52] - 4.5) / 10.0)
    assert np.allclose(after * 1e3, expect, atol=0.01)


def test_iaf_psc_alpha_psp_matches_the_exact_solution():
    w, tau_s, tau_m, C = 100.0, 2.0, 10.0, 250.0  # pA, ms, ms, pF
    t, v = _trace(_net("iaf_psc_alpha", {"tau_syn_ex": tau_s}, w=w, spike_ms=1.0, delay_ms=1.0), 0.03, 1e-5)
    s = t * 1e3 - 2.0  # the PSC starts at spike + delay
    m = s > 0
    # V(s) for I(s) = w e/tau_s s exp(-s/tau_s) into an RC membrane, exactly
    a, b = 1.0 / tau_s, 1.0 / tau_m
    k = w * math.e / tau_s / C
    exact = k * (np.exp(-a * s[m]) * (s[m] / (b - a) - 1.0 / (b - a) ** 2) + np.exp(-b * s[m]) / (b - a) ** 2)
    assert np.max(np.abs((v[m] * 1e3 + 70.0) - exact)) < 2e-3
    assert np.max(exact) > 0.5


def test_iaf_cond_exp_inhibition_uses_e_in():
    t, v = _trace(_net("iaf_cond_exp", {"E_L": -60.0, "V_m": -60.0}, w=-20.0, spike_ms=1.0), 0.02, 1e-5)
    assert v.min() < -0.0605  # hyperpolarised towards E_in = -85 mV
    assert v[-1] > v.min()


def test_glif_after_spike_currents_adapt():
    p = {"V_m": -70.0, "E_L": -70.0, "V_reset": -70.0, "V_th": -50.0, "g": 5.0, "C_m": 60.0, "t_ref": 2.0,
         "asc_init": [0.0, 0.0], "asc_decay": [0.003, 0.1], "asc_amps": [-10.0, -100.0], "asc_r": [1.0, 1.0],
         "tau_syn": [2.0], "after_spike_currents": True, "spike_dependent_threshold": False,
         "adapting_threshold": False}
    net = _net("glif_psc", p)
    model = net.model
    pulse = Component(tag="pulseGenerator", id="drive", type="pulseGenerator",
                      attrs={"amplitude": "200pA", "delay": "0ms", "duration": "1000ms"})
    model.add_component(pulse)
    from nmlsim.graph.network import InputList
    net.inputs.append(InputList("i", pulse, "p", np.array([0]), np.array([1.0])))
    spikes, _ = simulate_network(net, 0.3, 1e-5, method="rk4")
    isi = np.diff(np.sort(spikes["p"][1]))
    assert len(isi) > 3 and isi[-1] > isi[0] * 1.2  # the after-spike currents slow the cell down


def test_refused_and_bad_parameters():
    with pytest.raises(UnsupportedFeature, match="nest:iaf_psc_beta"):
        nest_models.cell_component("iaf_psc_beta", {}, "c", W)
    with pytest.raises(UnsupportedFeature, match="'foo'"):
        nest_models.cell_component("iaf_psc_alpha", {"foo": 1}, "c", W)
    with pytest.raises(ModelError, match="V_reset"):
        nest_models.cell_component("iaf_psc_alpha", {"V_reset": -40.0}, "c", W)
    with pytest.raises(UnsupportedFeature, match="GLIF 1"):
        nest_models.cell_component("glif_psc", {"adapting_threshold": True}, "c", W)
    cell = nest_models.cell_component("glif_psc", {"tau_syn": [2.0, 3.0]}, "c", W)
    with pytest.raises(ModelError, match="receptor_type 3"):
        nest_models.synapse_for(cell, 3, False, W)
