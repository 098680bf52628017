"""The implicit voltage step sees the conductance of what is attached to a cell.

NEURON puts every point process's di/dv on its matrix diagonal. jNeuroML computes a gap junction's
current in BREAKPOINT (it has no states), so the coupling conductance is on the diagonal; a
synapse with states has its current computed in the DERIVATIVE block and so none. One step of two
passive cells coupled by a gap junction must then be the linearised backward-Euler step

    v' = v + dt [gL (EL - v) + gGJ (v_peer - v)] / (C + dt (gL + gGJ))

with the peer's voltage at the start of the step, on both backends.
"""
import numpy as np
import pytest

from conftest import BACKENDS

CELLS = """<neuroml xmlns="http://www.neuroml.org/schema/neuroml2">
<ionChannelHH id="pas" conductance="10pS"/>
<gapJunction id="gj" conductance="{ggj}nS"/>
""" + "".join(f"""<cell id="c{k}">
  <morphology id="m{k}"><segment id="0" name="soma"><proximal x="0" y="0" z="0" diameter="10"/>
    <distal x="10" y="0" z="0" diameter="10"/></segment></morphology>
  <biophysicalProperties id="b{k}"><membraneProperties>
    <channelDensity id="leak" ionChannel="pas" condDensity="3 S_per_m2" erev="-54.3mV" ion="non_specific"/>
    <specificCapacitance value="1 uF_per_cm2"/><initMembPotential value="{v0}mV"/>
  </membraneProperties><intracellularProperties><resistivity value="0.1 kohm_cm"/></intracellularProperties>
  </biophysicalProperties></cell>
""" for k, v0 in ((0, -65), (1, -80))) + """<network id="net">
  <population id="a" component="c0" size="1"/><population id="b" component="c1" size="1"/>
  <electricalProjection id="ep" presynapticPopulation="a" postsynapticPopulation="b">
    <electricalConnection id="0" preCell="0" postCell="0" synapse="gj"/></electricalProjection>
</network></neuroml>"""

LEMS = """<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>
<Include file="Simulation.xml"/><Include file="cells.nml"/>
<Simulation id="sim" length="0.1ms" step="0.025ms" target="net"><OutputFile id="of" fileName="v.dat">
<OutputColumn id="a" quantity="a/0/c0/v"/><OutputColumn id="b" quantity="b/0/c1/v"/>
</OutputFile></Simulation></Lems>"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_gap_junction_conductance_on_the_diagonal(tmp_path, backend):
    import nmlsim
    ggj = 2.0
    (tmp_path / "cells.nml").write_text(CELLS.replace("{ggj}", str(ggj)))
    (tmp_path / "LEMS_gj.xml").write_text(LEMS)
    res = nmlsim.run(nmlsim.load(str(tmp_path / "LEMS_gj.xml")), method="neuron", backend=backend, write=False)
    rows = np.asarray(res.traces["of"])
    area = np.pi * 10e-6 * 10e-6  # m2 (a cylinder's side, as NEURON's area)
    C, gL, EL, g, dt = 1e-2 * area, 3.0 * area, -54.3e-3, ggj * 1e-9, 25e-6
    v = np.array([-65e-3, -80e-3])
    for row in rows[1:]:
        v = v + dt * (gL * (EL - v) + g * (v[::-1] - v)) / (C + dt * (gL + g))
        np.testing.assert_allclose(row[1:], v, rtol=0, atol=1e-12)
