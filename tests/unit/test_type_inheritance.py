"""A ComponentType that extends another may define one of its base's names again, as another kind.

NeuroML's channelDensity holds ``<Constant name="vShift" value="0mV"/>`` so that gates whose rates
require vShift work on plain densities; channelDensityVShift extends it with ``<Parameter name="vShift"/>``.
The derived definition must win, or every channelDensityVShift runs with vShift = 0.
"""
import numpy as np
import pytest

from conftest import BACKENDS

CHANNEL = """<neuroml xmlns="http://www.neuroml.org/schema/neuroml2">
<ionChannel id="shiftable" conductance="10pS" type="ionChannelHH" species="na">
  <gate id="m" type="gateHHtauInf" instances="1">
    <timeCourse type="fixedTau"/>
    <steadyState type="shiftedSigmoid"/>
  </gate>
</ionChannel>
<ComponentType name="fixedTau" extends="baseVoltageDepTime">
  <Constant name="TAU" dimension="time" value="1ms"/>
  <Dynamics><DerivedVariable name="t" exposure="t" dimension="time" value="TAU"/></Dynamics>
</ComponentType>
<ComponentType name="shiftedSigmoid" extends="baseVoltageDepVariable">
  <Constant name="MV" dimension="voltage" value="1mV"/>
  <Requirement name="vShift" dimension="voltage"/>
  <Dynamics><DerivedVariable name="x" exposure="x" dimension="none"
      value="1 / (1 + exp(-((v - vShift)/MV + 40) / 5))"/></Dynamics>
</ComponentType>
<cell id="c">
  <morphology id="m"><segment id="0" name="soma"><proximal x="0" y="0" z="0" diameter="10"/>
    <distal x="10" y="0" z="0" diameter="10"/></segment></morphology>
  <biophysicalProperties id="biophys">
    <membraneProperties>
      <channelDensityVShift id="shifted" ionChannel="shiftable" condDensity="1e-3 S_per_m2" erev="50mV"
          ion="na" vShift="{vshift}"/>
      <specificCapacitance value="1 uF_per_cm2"/>
      <initMembPotential value="-50mV"/>
    </membraneProperties>
    <intracellularProperties><resistivity value="0.1 kohm_cm"/></intracellularProperties>
  </biophysicalProperties>
</cell>
<network id="net"><population id="p" component="c" size="1"/></network>
</neuroml>"""

LEMS = """<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>
<Include file="Simulation.xml"/><Include file="cell.nml"/>
<Simulation id="sim" length="1ms" step="0.01ms" target="net">
<OutputFile id="of" fileName="m.dat">
<OutputColumn id="m" quantity="p/0/c/biophys/membraneProperties/shifted/shiftable/m/inf"/>
<OutputColumn id="v" quantity="p/0/c/v"/></OutputFile></Simulation></Lems>"""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vshift", [0.0, 10.0, -7.5])
def test_channel_density_vshift_moves_the_gate(tmp_path, backend, vshift):
    import nmlsim
    (tmp_path / "cell.nml").write_text(CHANNEL.replace("{vshift}", f"{vshift}mV"))
    (tmp_path / "LEMS_v.xml").write_text(LEMS)
    sim = nmlsim.load(str(tmp_path / "LEMS_v.xml"))
    assert "vShift" in sim.model.resolved("channelDensityVShift").parameters
    assert "vShift" not in sim.model.resolved("channelDensityVShift").constants
    assert "vShift" in sim.model.resolved("channelDensity").constants
    res = nmlsim.run(sim, backend=backend, write=False)
    rows = np.asarray(res.traces["of"])
    m_inf, v = rows[:, 1], rows[:, 2] * 1000.0  # column 0 is time
    expected = 1.0 / (1.0 + np.exp(-((v - vshift) + 40.0) / 5.0))
    np.testing.assert_allclose(m_inf, expected, rtol=1e-9)
