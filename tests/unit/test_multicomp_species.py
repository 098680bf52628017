"""Species on segment groups of a multi-compartment cell: each pool lives on its own compartments.

Hay et al.'s L5 cell puts species ``ca`` on the soma with one pool (decay 460 ms) and species ``ca``
on the apical dendrites with another (decay 122 ms). NEURON inserts each pool only in its own
sections, so each compartment has one calcium concentration. The intracellular properties
sum the concentrations of their species per ion, so without the group masks every compartment
got both pools, twice the concentration.
"""
import numpy as np
import pytest

from conftest import BACKENDS

CELL = """<neuroml xmlns="http://www.neuroml.org/schema/neuroml2">
<decayingPoolConcentrationModel id="fastPool" restingConc="1e-4 mM" decayConstant="20 ms" shellThickness="0.1um" ion="ca"/>
<decayingPoolConcentrationModel id="slowPool" restingConc="3e-4 mM" decayConstant="50 ms" shellThickness="0.1um" ion="ca"/>
<ionChannel id="leak" conductance="10pS" type="ionChannelPassive"/>
<cell id="c">
  <morphology id="m">
    <segment id="0" name="soma"><proximal x="0" y="0" z="0" diameter="10"/><distal x="10" y="0" z="0" diameter="10"/></segment>
    <segment id="1" name="dend"><parent segment="0"/><distal x="110" y="0" z="0" diameter="2"/></segment>
    <segment id="2" name="axon"><parent segment="0" fractionAlong="0"/><distal x="-50" y="0" z="0" diameter="1"/></segment>
    <segmentGroup id="soma_group"><member segment="0"/></segmentGroup>
    <segmentGroup id="dend_group"><member segment="1"/></segmentGroup>
  </morphology>
  <biophysicalProperties id="biophys">
    <membraneProperties>
      <channelDensity id="leak_all" ionChannel="leak" condDensity="3 S_per_m2" erev="-65mV" ion="non_specific"/>
      <specificCapacitance value="1 uF_per_cm2"/>
      <initMembPotential value="-65mV"/>
    </membraneProperties>
    <intracellularProperties>
      <species id="ca" ion="ca" concentrationModel="fastPool" segmentGroup="soma_group"
          initialConcentration="5e-5 mM" initialExtConcentration="2 mM"/>
      <species id="ca" ion="ca" concentrationModel="slowPool" segmentGroup="dend_group"
          initialConcentration="6e-5 mM" initialExtConcentration="3 mM"/>
      <resistivity value="0.1 kohm_cm"/>
    </intracellularProperties>
  </biophysicalProperties>
</cell>
<network id="net"><population id="p" component="c" size="2"/></network>
</neuroml>"""

LEMS = """<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>
<Include file="Simulation.xml"/><Include file="cell.nml"/>
<Simulation id="sim" length="100ms" step="0.01ms" target="net">
<OutputFile id="of" fileName="ca.dat">
<OutputColumn id="soma" quantity="p/1/c/0/caConc"/>
<OutputColumn id="dend" quantity="p/1/c/1/caConc"/>
<OutputColumn id="axon" quantity="p/1/c/2/caConc"/>
<OutputColumn id="axon_ext" quantity="p/1/c/2/caConcExt"/>
</OutputFile></Simulation></Lems>"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_pool_on_its_own_group(tmp_path, backend):
    import nmlsim
    (tmp_path / "cell.nml").write_text(CELL)
    (tmp_path / "LEMS_ca.xml").write_text(LEMS)
    res = nmlsim.run(nmlsim.load(str(tmp_path / "LEMS_ca.xml")), backend=backend, write=False)
    rows = np.asarray(res.traces["of"])
    t = rows[:, 0]
    # no calcium current: each pool relaxes from its initial value to its resting value (mol/m3 = mM)
    soma = 1e-4 + (5e-5 - 1e-4) * np.exp(-t / 0.020)
    dend = 3e-4 + (6e-5 - 3e-4) * np.exp(-t / 0.050)
    np.testing.assert_allclose(rows[:, 1], soma, rtol=2e-3)
    np.testing.assert_allclose(rows[:, 2], dend, rtol=2e-3)
    # the axon has no pool: its concentrations stay at NEURON's cai0/cao0, which jNeuroML sets
    # from each species in turn (the last one stays)
    np.testing.assert_allclose(rows[:, 3], 6e-5, rtol=1e-12)
    np.testing.assert_allclose(rows[:, 4], 3.0, rtol=1e-12)


def test_later_specific_capacitance_overrides_earlier(tmp_path):
    """``specificCapacitance`` on "all" then on a dendrite group: the dendrite gets the second value,
    not the sum (NEURON's `forsec all cm = 1` then `forsec dendrite_group cm = 2`)."""
    import nmlsim
    from nmlsim.graph.multicompartment import lower_cell
    cell = CELL.replace('<specificCapacitance value="1 uF_per_cm2"/>',
                        '<specificCapacitance value="1 uF_per_cm2"/>'
                        '<specificCapacitance segmentGroup="dend_group" value="2 uF_per_cm2"/>')
    (tmp_path / "cell.nml").write_text(cell)
    (tmp_path / "LEMS_ca.xml").write_text(LEMS)
    sim = nmlsim.load(str(tmp_path / "LEMS_ca.xml"))
    lay = lower_cell(sim.model, sim.model.component("c"))
    area = lay.tree.area
    spec = lay.capacitance / area  # F/m2
    dend = lay.compartment(1, 0.5)
    soma = lay.compartment(0, 0.5)
    assert spec[dend] == pytest.approx(0.02, rel=1e-12)
    assert spec[soma] == pytest.approx(0.01, rel=1e-12)
