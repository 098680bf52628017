"""Linear synapses merged per post cell give the same results as one instance per connection."""
import numpy as np

from nmlsim import api
from nmlsim.compile.build import build_groups

NET = """
<spikeGenerator id="gen" period="7ms"/>
<spikeGeneratorRegular id="unused" period="7ms"/>
<iafCell id="iaf" leakReversal="-65mV" thresh="-50mV" reset="-65mV" C="100pF" leakConductance="10nS"/>
<expOneSynapse id="e1" gbase="2nS" erev="0mV" tauDecay="3ms"/>
<expTwoSynapse id="e2" gbase="1nS" erev="-80mV" tauRise="1ms" tauDecay="8ms"/>
<blockingPlasticSynapse id="stp" gbase="2nS" erev="0mV" tauRise="1ms" tauDecay="5ms">
  <plasticityMechanism type="tsodyksMarkramDepMechanism" initReleaseProb="0.5" tauRec="120ms"/>
</blockingPlasticSynapse>
<network id="net">
  <population id="src" component="gen" size="1"/>
  <population id="src2" component="gen" size="1"/>
  <population id="post" component="iaf" size="3"/>
  <projection id="pe1" presynapticPopulation="src" postsynapticPopulation="post" synapse="e1">
    <connectionWD id="0" preCellId="../src/0/gen" postCellId="../post/0/iaf" weight="1.0" delay="1ms"/>
    <connectionWD id="1" preCellId="../src/0/gen" postCellId="../post/0/iaf" weight="2.5" delay="3ms"/>
    <connectionWD id="2" preCellId="../src/0/gen" postCellId="../post/1/iaf" weight="0.5" delay="0ms"/>
  </projection>
  <projection id="pe2" presynapticPopulation="src2" postsynapticPopulation="post" synapse="e2">
    <connectionWD id="0" preCellId="../src2/0/gen" postCellId="../post/1/iaf" weight="1.0" delay="2ms"/>
    <connectionWD id="1" preCellId="../src2/0/gen" postCellId="../post/1/iaf" weight="3.0" delay="2ms"/>
  </projection>
  <projection id="pstp" presynapticPopulation="src" postsynapticPopulation="post" synapse="stp">
    <connection id="0" preCellId="../src/0/gen" postCellId="../post/2/iaf"/>
    <connection id="1" preCellId="../src/0/gen" postCellId="../post/2/iaf"/>
  </projection>
</network>
"""
SIM = """<Simulation id="sim1" length="100ms" step="0.05ms" target="net">
  <OutputFile id="of" fileName="v.dat">
    <OutputColumn id="a" quantity="post[0]/v"/><OutputColumn id="b" quantity="post[1]/v"/>
    <OutputColumn id="c" quantity="post[2]/v"/>
  </OutputFile>
</Simulation>"""


def test_merge_decisions_and_equivalence(lems_file):
    sim = api.load(lems_file(NET.replace('<spikeGeneratorRegular id="unused" period="7ms"/>', ''), SIM))
    b = build_groups(sim.network)
    merged = {g.name: (g.merged, g.n) for g in b.groups}
    # one instance per cell of the host group carries the connections of every projection
    # using that synapse: here three connections (pe1) and two (pe2) onto a 3-cell group
    assert merged["e1@post"] == (True, 3)
    assert merged["e2@post"] == (True, 3)
    assert merged["pstp:stp"] == (False, 2)  # depression state is per connection
    for method in ("euler", "exp_euler"):
        a = api.run(sim, method=method, write=False).traces["of"]
        u = api.run(sim, method=method, write=False, merge_synapses=False).traces["of"]
        assert np.allclose(a, u, rtol=0, atol=1e-12), np.max(np.abs(a - u))
        assert np.ptp(a[:, 1]) > 1e-3 and np.ptp(a[:, 2]) > 1e-3  # the synapses did something
