"""Multi-compartment cells: NEURON's geometry, the implicit cable phase against analytic
passive-cable solutions (every backend and method that steps cables), convergence."""
import math

import numpy as np
import pytest

from nmlsim.graph.morphology import Morphology, cable_tree
from nmlsim.lems.model import Component

from conftest import BACKENDS


def _pt(tag, x, y, z, d):
    return Component(tag=tag, attrs={"x": str(x), "y": str(y), "z": str(z), "diameter": str(d)})


def _morph(segs, groups=()):
    kids = []
    for sid, parent, prox, dist in segs:
        ch = []
        if parent is not None:
            ch.append(Component(tag="parent", attrs={"segment": str(parent)}))
        if prox is not None:
            ch.append(_pt("proximal", *prox))
        ch.append(_pt("distal", *dist))
        kids.append(Component(tag="segment", id=str(sid), children=ch))
    return Morphology(Component(tag="morphology", id="m", children=kids + list(groups)))


def _cable(gid, members, nseg):
    ch = [Component(tag="property", attrs={"tag": "numberInternalDivisions", "value": str(nseg)})]
    ch += [Component(tag="member", attrs={"segment": str(s)}) for s in members]
    return Component(tag="segmentGroup", id=gid, attrs={"neuroLexId": "sao864921383"}, children=ch)


def test_cylinder_areas_and_axial_conductances():
    L, d, n, ra = 100.0, 2.0, 4, 1.0  # µm, µm, nodes, Ω·m
    m = _morph([(0, None, (0, 0, 0, d), (L, 0, 0, d))], [_cable("c", [0], n)])
    t = cable_tree(m, lambda k: ra)
    assert t.ncomp == n
    np.testing.assert_allclose(t.area, math.pi * d * L / n * 1e-12, rtol=1e-12)
    # between neighbouring centres: a length L/n cylinder
    g = math.pi * (d * 1e-6) ** 2 / (4 * ra * L / n * 1e-6)
    comp_nodes = np.nonzero(t.comp >= 0)[0]
    inner = [i for i in comp_nodes if t.parent[i] >= 0 and t.comp[t.parent[i]] >= 0]
    np.testing.assert_allclose(t.g[inner], g, rtol=1e-12)
    np.testing.assert_allclose(t.path_length * 1e6, (np.arange(n) + 0.5) * L / n)


def test_frustum_matches_neuron_formulas():
    # NEURON (treeset.cpp): lateral frustum area and the exact integral of 4 Ra / (pi d^2)
    m = _morph([(0, None, (0, 0, 0, 2), (10, 0, 0, 4)), (1, 0, None, (20, 0, 0, 1))], [_cable("c", [0, 1], 2)])
    t = cable_tree(m, lambda k: 1.0)
    a0 = math.pi * (1 + 2) * math.sqrt(1 + 100)
    assert t.area[0] == pytest.approx(a0 * 1e-12, rel=1e-12)
    # node 0 -> node 1: [5, 10] d 3->4 and [10, 15] d 4->2.5
    r = 4 * 5 / (math.pi * 3 * 4) + 4 * 5 / (math.pi * 4 * 2.5)
    nodes = np.nonzero(t.comp >= 0)[0]
    second = nodes[t.comp[nodes] == 1][0]
    assert 1.0 / t.g[second] == pytest.approx(r * 1e6, rel=1e-12)


def test_branch_hangs_on_parent_centre_node():
    m = _morph([(0, None, (0, 0, 0, 2), (90, 0, 0, 2)), (1, 0, (30, 0, 0, 1), (30, 50, 0, 1))],
               [_cable("a", [0], 3), _cable("b", [1], 1)])
    m.segments[1].fraction_along = 1.0 / 3.0
    t = cable_tree(m, lambda k: 1.0)
    # x = 1/3 of a 3-node section (float32: 0.33333334 -> node 1)
    child = np.nonzero(t.comp == 3)[0][0]
    assert t.comp[t.parent[child]] == 1


def test_point_at_a_branch_start_is_on_the_node_it_hangs_on():
    """NEURON: x = 0 of a section is the node it hangs on; for a branch off the middle of a
    section (a dendrite on the soma's centre) that is the parent's compartment there."""
    from nmlsim.graph.morphology import location
    m = _morph([(0, None, (0, 0, 0, 10), (10, 0, 0, 10)), (1, 0, (5, 0, 0, 1), (5, 50, 0, 1))],
               [_cable("soma", [0], 1), _cable("dend", [1], 5)])
    m.segments[1].fraction_along = 0.5
    t = cable_tree(m, lambda k: 1.0)
    assert location(t, m, 1, 0.0) == location(t, m, 0, 0.5)  # the soma's compartment
    assert location(t, m, 1, 0.05) != location(t, m, 0, 0.5)  # inside the branch: its own first


def _passive(cell: str) -> str:
    """The end of a passive test cell ``cell`` (after its segments): leak 1 S/m² at -65 mV,
    1 µF/cm², 100 Ω·cm, no spikes; one cell in population p, 0.1 nA into segment 0 at x = 0."""
    return f"""</morphology><biophysicalProperties id="bp"><membraneProperties>
  <channelDensity id="leak" ionChannel="pas" condDensity="1 S_per_m2" erev="-65mV" ion="non_specific"/>
  <spikeThresh value="100mV"/><specificCapacitance value="1 uF_per_cm2"/><initMembPotential value="-65mV"/>
</membraneProperties><intracellularProperties><resistivity value="100 ohm_cm"/></intracellularProperties>
</biophysicalProperties></cell>
<pulseGenerator id="stim" delay="0ms" duration="1000ms" amplitude="0.1nA"/>
<network id="net"><population id="p" component="{cell}" size="1" type="populationList"><instance id="0"><location x="0" y="0" z="0"/></instance></population>
<inputList id="il" population="p" component="stim"><input id="0" target="../p/0/{cell}" destination="synapses" segmentId="0" fractionAlong="0"/></inputList>
</network>"""


CABLE = """<ionChannelHH id="pas" conductance="10pS"/>
<cell id="cab"><morphology id="m">{segs}
  <segmentGroup id="cable" neuroLexId="sao864921383"><property tag="numberInternalDivisions" value="{nseg}"/>{members}</segmentGroup>
  <segmentGroup id="all_g"><include segmentGroup="cable"/></segmentGroup>
""" + _passive("cab")  # (no braces: safe under .format)


def _cable_lems(nseg=100, nsegs=10, length=1000.0, d=2.0, dt="0.025ms", duration="150ms"):
    step = length / nsegs
    segs = "".join(
        f'<segment id="{k}">' + (f'<parent segment="{k - 1}"/>' if k else
                                 f'<proximal x="0" y="0" z="0" diameter="{d}"/>')
        + f'<distal x="{(k + 1) * step}" y="0" z="0" diameter="{d}"/></segment>' for k in range(nsegs))
    members = "".join(f'<member segment="{k}"/>' for k in range(nsegs))
    cols = "".join(f'<OutputColumn id="v{k}" quantity="p/0/cab/{k}/v"/>' for k in range(nsegs))
    return f"""<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>
<Include file="Simulation.xml"/>{CABLE.format(segs=segs, members=members, nseg=nseg)}
<Simulation id="sim" length="{duration}" step="{dt}" target="net">
<OutputFile id="of" fileName="v.dat">{cols}</OutputFile></Simulation></Lems>"""


def _steady(tmp_path, backend, method, **kw):
    import nmlsim
    f = tmp_path / "LEMS_cable.xml"
    f.write_text(_cable_lems(**kw))
    sim = nmlsim.load(str(f))
    res = nmlsim.run(sim, method=method, backend=backend, write=False)
    return np.asarray(res.traces["of"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["exp_euler", "euler", "neuron"])
def test_finite_cable_steady_state(tmp_path, backend, method):
    """Sealed-end cable, current into one end: V(x) - E = I r_i lambda cosh((L-x)/lambda) / sinh(L/lambda)."""
    rows = _steady(tmp_path, backend, method)
    v = rows[-1, 1:] if rows.shape[1] == 11 else rows[-1]
    rm, ra, d, L, i = 1.0, 1.0, 2e-6, 1e-3, 0.1e-9  # Ω·m², Ω·m, m, m, A
    lam = math.sqrt(rm * d / (4 * ra))
    ri = 4 * ra / (math.pi * d * d)
    x = (np.arange(10) + 0.5) * 1e-4  # the middle of each 100 µm segment
    x0 = 5e-6  # the injection compartment's centre (x = 0 falls in the first of 100 nodes)
    # injection at x0 of a sealed cable: V(x) for x >= x0
    vx = i * ri * lam * np.cosh((L - x) / lam) * np.cosh(x0 / lam) / np.sinh(L / lam)
    np.testing.assert_allclose(v - (-0.065), vx, rtol=0.01)


def _analytic(nseg):
    rm, ra, d, L, i = 1.0, 1.0, 2e-6, 1e-3, 0.1e-9
    lam = math.sqrt(rm * d / (4 * ra))
    ri = 4 * ra / (math.pi * d * d)
    # the compartments recorded: the node holding each segment's middle (float32 x, as jNeuroML)
    xm = np.float32((np.arange(10) + 0.5) / 10).astype(float)
    x = (np.minimum(np.floor(xm * nseg), nseg - 1) + 0.5) * L / nseg
    x0 = L / (2 * nseg)
    return i * ri * lam * np.cosh((L - x) / lam) * np.cosh(x0 / lam) / np.sinh(L / lam)


def test_cable_converges_in_compartment_length(tmp_path):
    """The error against the analytic cable shrinks as compartments get shorter."""
    errs = []
    for nseg in (10, 20, 40):
        rows = _steady(tmp_path, "numpy", "exp_euler", nseg=nseg, duration="120ms", dt="0.05ms")
        v = rows[-1, 1:] if rows.shape[1] == 11 else rows[-1]
        errs.append(float(np.max(np.abs((v + 0.065) / _analytic(nseg) - 1))))
    assert errs[2] < errs[1] < errs[0], errs
    assert errs[2] < 0.005, errs


@pytest.mark.parametrize("method", ["exp_euler", "neuron"])
def test_cable_converges_in_dt(tmp_path, method):
    """Before steady state (t = 5 ms), halving dt brings the trace closer to a fine-step run."""
    ref = _steady(tmp_path, "numpy", method, duration="5ms", dt="0.0025ms")[-1]
    errs = [float(np.max(np.abs(_steady(tmp_path, "numpy", method, duration="5ms", dt=dt)[-1] - ref)))
            for dt in ("0.1ms", "0.05ms", "0.025ms")]
    assert errs[2] < errs[1] < errs[0], errs


def _cn_run(tmp_path, dt, cn, backend="numpy"):
    import nmlsim
    f = tmp_path / "LEMS_cable.xml"
    f.write_text(_cable_lems(duration="5ms", dt=dt))
    res = nmlsim.run(nmlsim.load(str(f)), method="neuron", backend=backend, write=False, crank_nicolson=cn)
    return np.asarray(res.traces["of"])[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_crank_nicolson_is_second_order(tmp_path, backend):
    """--crank-nicolson (NEURON's secondorder=2): halving dt divides the error of the passive cable
    at 5 ms by ~4 (backward Euler: by 2), and it is far closer at the same dt."""
    ref = _cn_run(tmp_path, "0.0025ms", True, backend)
    cn = [float(np.max(np.abs(_cn_run(tmp_path, dt, True, backend) - ref))) for dt in ("0.1ms", "0.05ms", "0.025ms")]
    be = [float(np.max(np.abs(_cn_run(tmp_path, dt, False, backend) - ref))) for dt in ("0.1ms", "0.05ms")]
    assert cn[0] / cn[1] > 3.0 and cn[1] / cn[2] > 3.0, cn
    assert 1.8 < be[0] / be[1] < 2.2, be
    assert cn[0] < be[0] / 50, (cn, be)


NONUNIFORM = """<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>
<Include file="Simulation.xml"/><ionChannelHH id="pas" conductance="10pS"/>
<cell id="nu"><morphology id="m">
  <segment id="0" name="soma"><proximal x="0" y="0" z="0" diameter="10"/><distal x="0" y="0" z="0" diameter="10"/></segment>
  <segment id="1" name="dend"><parent segment="0" fractionAlong="0.5"/><proximal x="0" y="5" z="0" diameter="2"/>
    <distal x="0" y="65" z="0" diameter="2"/></segment>
  <segmentGroup id="soma" neuroLexId="sao864921383"><member segment="0"/></segmentGroup>
  <segmentGroup id="dend" neuroLexId="sao864921383"><property tag="numberInternalDivisions" value="5"/><member segment="1"/></segmentGroup>
  <segmentGroup id="dendrite_group"><include segmentGroup="dend"/>
    <inhomogeneousParameter id="P" variable="p" metric="Path Length from root"/>
    <inhomogeneousParameter id="R" variable="r" metric="Path Length from root"><proximal translationStart="0"/><distal normalizationEnd="1"/></inhomogeneousParameter>
  </segmentGroup>
</morphology><biophysicalProperties id="bp"><membraneProperties>
  <channelDensityNonUniform id="byP" ionChannel="pas" erev="-65mV" ion="non_specific"><variableParameter parameter="condDensity" segmentGroup="dendrite_group"><inhomogeneousValue inhomogeneousParameter="P" value="p"/></variableParameter></channelDensityNonUniform>
  <channelDensityNonUniform id="byR" ionChannel="pas" erev="-65mV" ion="non_specific"><variableParameter parameter="condDensity" segmentGroup="dendrite_group"><inhomogeneousValue inhomogeneousParameter="R" value="r"/></variableParameter></channelDensityNonUniform>
  <spikeThresh value="0mV"/><specificCapacitance value="1 uF_per_cm2"/><initMembPotential value="-65mV"/>
</membraneProperties><intracellularProperties><resistivity value="100 ohm_cm"/></intracellularProperties></biophysicalProperties></cell>
<network id="net"><population id="p" component="nu" size="1"/></network>
<Simulation id="sim" length="1ms" step="0.025ms" target="net"/></Lems>"""


def test_inhomogeneous_parameters_as_neuron_computes_them(tmp_path):
    """p: NEURON's distance() from the root section's 0 end to each compartment centre, through
    the node a child hangs on (the soma cylinder's centre here: 5 µm); r: translated by the
    least and normalised by the greatest distance over the group's sections, ends included
    (NEURON's SubsetDomainIterator): r = (p - 5) / (65 - 5)."""
    import nmlsim
    from nmlsim.graph.multicompartment import lower_cell
    f = tmp_path / "LEMS_nu.xml"
    f.write_text(NONUNIFORM)
    model = nmlsim.load(str(f)).model
    lay = lower_cell(model, model.component("nu"))
    dens = {}
    for node in [lay.component] + [c for b in lay.component.children for m in b.children for c in m.children]:
        if id(node) in lay.values and "condDensity" in lay.values[id(node)]:
            dens[node.id] = lay.values[id(node)]["condDensity"]
    p = np.array([11.0, 23.0, 35.0, 47.0, 59.0])
    np.testing.assert_allclose(dens["byP"], np.concatenate([[0.0], p]), rtol=1e-12)
    np.testing.assert_allclose(dens["byR"], np.concatenate([[0.0], (p - 5.0) / 60.0]), rtol=1e-12)


RALL = """<ionChannelHH id="pas" conductance="10pS"/>
<cell id="tree"><morphology id="m">
  <segment id="0" name="trunk"><proximal x="0" y="0" z="0" diameter="{dp}"/><distal x="{l1}" y="0" z="0" diameter="{dp}"/></segment>
  <segment id="1" name="left"><parent segment="0"/><proximal x="{l1}" y="0" z="0" diameter="{dd}"/><distal x="{l1}" y="{l2}" z="0" diameter="{dd}"/></segment>
  <segment id="2" name="right"><parent segment="0"/><proximal x="{l1}" y="0" z="0" diameter="{dd}"/><distal x="{l1}" y="-{l2}" z="0" diameter="{dd}"/></segment>
  <segmentGroup id="trunk_c" neuroLexId="sao864921383"><property tag="numberInternalDivisions" value="{n1}"/><member segment="0"/></segmentGroup>
  <segmentGroup id="left_c" neuroLexId="sao864921383"><property tag="numberInternalDivisions" value="{n2}"/><member segment="1"/></segmentGroup>
  <segmentGroup id="right_c" neuroLexId="sao864921383"><property tag="numberInternalDivisions" value="{n2}"/><member segment="2"/></segmentGroup>
""" + _passive("tree")


@pytest.mark.parametrize("backend", BACKENDS)
def test_rall_equivalent_cylinder(tmp_path, backend):
    """A trunk with two equal daughters obeying d_p^3/2 = 2 d_d^3/2, the daughters equally long
    electrotonically: at steady state the trunk's voltage is that of one cylinder of the trunk's
    diameter and the summed electrotonic length (Rall 1959), sealed at both ends, current into
    its start: V(X) = I r_i λ cosh(L - X) cosh(X0) / sinh(L)."""
    import nmlsim
    rm, ra = 1.0, 1.0  # Ω·m², Ω·m
    dp = 2e-6
    dd = dp / 2 ** (2.0 / 3.0)
    lam_p, lam_d = math.sqrt(rm * dp / (4 * ra)), math.sqrt(rm * dd / (4 * ra))
    l1, L2 = 300e-6, 0.4  # trunk length (m); daughters' electrotonic length
    l2 = L2 * lam_d
    n1, n2 = 150, 150
    cell = RALL.format(dp=dp * 1e6, dd=dd * 1e6, l1=l1 * 1e6, l2=l2 * 1e6, n1=n1, n2=n2)
    lems = f"""<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>
<Include file="Simulation.xml"/>{cell}
<Simulation id="sim" length="150ms" step="0.05ms" target="net">
<OutputFile id="of" fileName="v.dat"><OutputColumn id="v0" quantity="p/0/tree/0/v"/></OutputFile></Simulation></Lems>"""
    f = tmp_path / "LEMS_rall.xml"
    f.write_text(lems)
    res = nmlsim.run(nmlsim.load(str(f)), backend=backend, write=False)
    rows = np.asarray(res.traces["of"])
    v0 = rows[-1, -1] + 0.065  # steady state: 150 ms is 15 membrane time constants
    L = l1 / lam_p + L2
    ri = 4 * ra / (math.pi * dp * dp)
    # injection into the first node (centre x0), recorded at the node holding the segment's middle
    x0 = l1 / (2 * n1)
    xr = (math.floor(0.5 * n1) + 0.5) * l1 / n1
    i = 0.1e-9
    expected = i * ri * lam_p * math.cosh(L - xr / lam_p) * math.cosh(x0 / lam_p) / math.sinh(L)
    assert v0 == pytest.approx(expected, rel=0.01)
