"""--method neuron on abstract point cells, from NEURON's rules for jNeuroML's export of an IaF
cell (v a section voltage driven by the mod's current, its OnCondition a WATCH): expected
values computed here from those rules, not from nmlsim. (Against NEURON itself:
tests/validation/test_multicomp_neuron.py::test_abstract_point_cells_as_neuron.)"""
import numpy as np
import pytest

from nmlsim import api

CELL = """
<iafTauCell id="c" leakReversal="-50mV" thresh="-55mV" reset="-70mV" tau="30ms"/>
<network id="net"><population id="p" component="c" size="1"/></network>
"""
SIM = """<Simulation id="sim1" length="100ms" step="0.01ms" target="net">
  <OutputFile id="of" fileName="v.dat"><OutputColumn id="v" quantity="p[0]/v"/></OutputFile>
</Simulation>"""


def _neuron_rules(n, dt=1e-5, e=-0.05, thresh=-0.055, reset=-0.07, tau=0.03):
    """Row k is the state after k steps. Each step: a WATCH that fired on the last recorded row
    resets first; then v += dt·f/(1 - dt·∂f/∂v) with f = (e - v)/tau (backward Euler,
    linearised). The WATCH tests the state the step reached."""
    v = np.empty(n + 1)
    v[0] = e  # the initial state is recorded before any test
    fired = v[0] > thresh
    for k in range(n):
        x = reset if fired else v[k]
        x = x + dt * ((e - x) / tau) / (1.0 + dt / tau)
        v[k + 1] = x
        fired = x > thresh
    return v


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_iaf_steps_as_neuron(lems_file, backend):
    if backend == "numba":
        pytest.importorskip("numba")
    sim = api.load(lems_file(CELL, SIM))
    d = api.run(sim, method="neuron", backend=backend, write=False).traces["of"]
    want = _neuron_rules(len(d) - 1)
    np.testing.assert_allclose(d[:, 1], want, rtol=0, atol=1e-12)
    above = np.flatnonzero(want[1:] > -0.055) + 1
    assert len(above) >= 2  # a row above threshold is recorded, the next is the reset's step
    assert want[above[0] + 1] < -0.069
