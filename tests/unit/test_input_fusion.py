"""Input lists of one type on one host group are one group (per-instance parameters):
the same traces as one group per list, inputs still addressable by their ids, both backends."""
import numpy as np
import pytest

from nmlsim import api
from nmlsim.compile.build import build_groups
from nmlsim.engine.paths import resolve_quantity

# a pulse generator per cell (as NetPyNE's and nmlsim's SONATA exports write them), two lists
# on one cell, a sine input of another type, and a weighted list
NET = """
<iafCell id="iaf" leakReversal="-65mV" thresh="-50mV" reset="-65mV" C="100pF" leakConductance="10nS"/>
<pulseGenerator id="pg0" delay="5ms" duration="20ms" amplitude="0.1nA"/>
<pulseGenerator id="pg1" delay="10ms" duration="50ms" amplitude="0.2nA"/>
<pulseGenerator id="pg2" delay="15ms" duration="5ms" amplitude="0.35nA"/>
<sineGenerator id="sg" delay="0ms" phase="0" duration="80ms" amplitude="0.05nA" period="10ms"/>
<network id="net">
  <population id="p" component="iaf" size="3"/>
  <inputList id="l0" component="pg0" population="p"><input id="0" target="../p[0]" destination="synapses"/></inputList>
  <inputList id="l1" component="pg1" population="p"><input id="0" target="../p[1]" destination="synapses"/>
    <input id="1" target="../p[0]" destination="synapses"/></inputList>
  <inputList id="l2" component="pg2" population="p">
    <inputW id="0" target="../p[2]" destination="synapses" weight="0.5"/></inputList>
  <inputList id="ls" component="sg" population="p"><input id="0" target="../p[2]" destination="synapses"/></inputList>
</network>
"""
SIM = """<Simulation id="sim1" length="100ms" step="0.05ms" target="net">
  <OutputFile id="of" fileName="v.dat">
    <OutputColumn id="a" quantity="p[0]/v"/><OutputColumn id="b" quantity="p[1]/v"/>
    <OutputColumn id="c" quantity="p[2]/v"/><OutputColumn id="i1" quantity="p[0]/pg1/i"/>
    <OutputColumn id="i2" quantity="p[2]/pg2/i"/>
  </OutputFile>
</Simulation>"""


def test_inputs_of_one_type_are_one_group(lems_file):
    sim = api.load(lems_file(NET, SIM))
    b = build_groups(sim.network)
    pulses = [g for g in b.groups if g.root.tname == "pulseGenerator"]
    assert len(pulses) == 1 and pulses[0].n == 4
    assert {"amplitude", "delay", "duration", "weight"} <= set(pulses[0].per_instance)
    g, key, idx = resolve_quantity(b, "p[0]/pg1/i")
    assert g is pulses[0] and list(pulses[0].member_ids)[idx] == "pg1" and pulses[0].parent.idx[idx] == 0
    unfused = build_groups(sim.network, fuse_populations=False)
    assert len([g for g in unfused.groups if g.root.tname == "pulseGenerator"]) == 3


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("method", ["euler", "exp_euler", "rk4"])
def test_fused_inputs_give_the_unfused_traces(lems_file, monkeypatch, backend, method):
    if backend == "numba":
        pytest.importorskip("numba")
    import nmlsim.api as api_mod
    sim = api.load(lems_file(NET, SIM))
    fused = api.run(sim, method=method, write=False, backend=backend).traces["of"]
    real = api_mod.build_groups
    monkeypatch.setattr(api_mod, "build_groups", lambda net, **kw: real(net, **{**kw, "fuse_populations": False}))
    apart = api.run(sim, method=method, write=False, backend=backend).traces["of"]
    assert np.allclose(fused, apart, rtol=0, atol=1e-15)
    t = fused[:, 0]
    # pg1 on cell 0 acts from 10 to 60 ms; pg2 (weight 0.5) on cell 2 from 15 to 20 ms
    assert np.allclose(fused[(t > 0.0101) & (t < 0.0599), 4], 0.2e-9)
    assert np.allclose(fused[(t > 0.0151) & (t < 0.0199), 5], 0.5 * 0.35e-9)
    assert np.all(fused[t > 0.0201, 5] == 0)


def test_large_input_lists_keep_their_own_group():
    """Lists of FUSE_INPUT_LISTS_BELOW instances or more stay apart (their pulse timing then
    stays one literal test per step); the small ones on the same cells still fuse."""
    from nmlsim.compile.build import FUSE_INPUT_LISTS_BELOW
    from nmlsim.library import build
    net = build("coba_lif", size=5 * FUSE_INPUT_LISTS_BELOW, seed=1)  # 20 % I cells
    groups = [g for g in build_groups(net).groups if g.root.tname == "pulseGenerator"]
    assert all(g.member_ids is None and not set(g.per_instance) - {"weight"} for g in groups)
    small = build("coba_lif", size=20, seed=1)
    groups = [g for g in build_groups(small).groups if g.root.tname == "pulseGenerator"]
    assert len(groups) == 1 and groups[0].n == 40
