"""Multi-compartment cells against NEURON: the model exported by jNeuroML (``pynml LEMS.xml
-neuron``) and run by NEURON gives the reference traces and spikes.  Slow; skipped without
pyNeuroML, NEURON and Java."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parents[1] / "data" / "multicomp"

pytestmark = [pytest.mark.slow, pytest.mark.needs_jnml]


def _neuron_reference(tmp: Path, lems: str = "LEMS_mc.xml") -> Path:
    if shutil.which("pynml") is None or shutil.which("java") is None or shutil.which("nrnivmodl") is None:
        pytest.skip("needs pyNeuroML (pynml), Java and NEURON (nrnivmodl)")
    ref = tmp / "nrn"
    ref.mkdir()
    for f in HERE.iterdir():
        shutil.copy(f, ref)
    (ref / "results").mkdir()
    env = dict(os.environ, NEURON_HOME=str(Path(sys.executable).resolve().parents[1]))
    subprocess.run(["pynml", lems, "-neuron", "-nogui"], cwd=ref, env=env, check=True,
                   capture_output=True, timeout=600)
    subprocess.run(["nrnivmodl"], cwd=ref, env=env, check=True, capture_output=True, timeout=600)
    subprocess.run([sys.executable, lems.replace(".xml", "_nrn.py"), "-nogui"], cwd=ref, env=env, check=True,
                   capture_output=True, timeout=600)
    return ref / "results"


_REFS = {}


def _reference(tmp_path_factory, lems: str) -> Path:
    """NEURON's results folder for ``lems``, made once per test session."""
    if lems not in _REFS:
        _REFS[lems] = _neuron_reference(tmp_path_factory.mktemp(lems.replace(".", "_")), lems)
    return _REFS[lems]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return _reference(tmp_path_factory, "LEMS_mc.xml")


@pytest.mark.parametrize("method,spike_tol", [("exp_euler", 0.5e-3), ("euler", 0.1e-3), ("neuron", 1e-9)])
def test_branched_cell_matches_neuron(tmp_path, reference, method, spike_tol):
    """Soma with HH channels, a tapered 3-segment cable (6 nodes) and a branch (3 nodes),
    two capacitances, current into the soma and into the cable: passive phases within
    0.15 mV at every recorded node, spike times within ``spike_tol``."""
    import nmlsim
    for f in HERE.iterdir():
        shutil.copy(f, tmp_path)
    sim = nmlsim.load(str(tmp_path / "LEMS_mc.xml"))
    nmlsim.run(sim, method=method, outdir=str(tmp_path / "out"))
    ours = np.loadtxt(tmp_path / "out" / "results" / "mc_v.dat")
    ref = np.loadtxt(reference / "mc_v.dat")
    assert ours.shape == ref.shape
    t = ref[:, 0]
    passive = (t < 0.02) | (t > 0.145)
    assert np.max(np.abs(ours[passive, 1:] - ref[passive, 1:])) < 0.15e-3
    s_ours = np.loadtxt(tmp_path / "out" / "results" / "mc.spikes")[:, 0]
    s_ref = np.loadtxt(reference / "mc.spikes")[:, 0]
    assert len(s_ours) == len(s_ref)
    assert np.max(np.abs(s_ours - s_ref)) < spike_tol


def test_neuron_method_reproduces_jneuroml_neuron_step_for_step(tmp_path, reference):
    """--method neuron is NEURON's fixed step with jNeuroML's mod files (gates by forward Euler
    at the new voltage, gated conductances one update late): every recorded value equal to
    the 7 digits NEURON's files hold, spikes included."""
    import nmlsim
    for f in HERE.iterdir():
        shutil.copy(f, tmp_path)
    sim = nmlsim.load(str(tmp_path / "LEMS_mc.xml"))
    nmlsim.run(sim, method="neuron", outdir=str(tmp_path / "out"))
    ours = np.loadtxt(tmp_path / "out" / "results" / "mc_v.dat")
    ref = np.loadtxt(reference / "mc_v.dat")
    np.testing.assert_allclose(ours[:, 1:], ref[:, 1:], rtol=0, atol=1e-7)  # V: 0.1 µV


@pytest.fixture(scope="module")
def stim_reference(tmp_path_factory):
    return _reference(tmp_path_factory, "LEMS_stim.xml")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_event_inputs_on_segments_as_neuron(tmp_path, stim_reference, backend):
    """A spikeArray population (jNeuroML makes it WATCH (t > time) on NEURON's accumulated
    clock), a timedSynapticInput (NetStims), weighted and delayed connections onto dendritic
    segments and a soma-to-soma connection, two cells: every value within 1 µV of NEURON's,
    the same spikes."""
    if backend == "numba":
        pytest.importorskip("numba")
    import nmlsim
    for f in HERE.iterdir():
        shutil.copy(f, tmp_path)
    sim = nmlsim.load(str(tmp_path / "LEMS_stim.xml"))
    nmlsim.run(sim, outdir=str(tmp_path / "out"), backend=backend)  # multi-compartment: method neuron
    ours = np.loadtxt(tmp_path / "out" / "results" / "stim_v.dat")
    ref = np.loadtxt(stim_reference / "stim_v.dat")
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours[:, 1:], ref[:, 1:], rtol=0, atol=1e-6)

    def spikes(v):
        return np.flatnonzero((v[:-1] <= 0) & (v[1:] > 0))
    for c in range(1, ref.shape[1]):
        assert np.array_equal(spikes(ours[:, c]), spikes(ref[:, c]))
    assert len(spikes(ref[:, 1])) >= 2 and len(spikes(ref[:, 3])) >= 3  # the inputs make both cells fire


#: LEMS file -> what it exercises (each run by NEURON once, compared file by file)
CASES = {
    "LEMS_mc.xml": "branched HH cell, tapered cable, two capacitances, two pulses",
    "LEMS_stim.xml": "spikeArray, timedSynapticInput, delays and weights onto segments",
    "LEMS_ca.xml": "spherical soma, mid-cable branch, non-uniform densities, Nernst Ca + pool, 35 degC",
    "LEMS_ks.xml": "the branched cell with a kinetic-scheme (gateKS) K channel on its soma group",
    "LEMS_ex25.xml": "NeuroML2 example 25: AMPA and Mg-blocked NMDA synapses between segments of 3 cells",
    "LEMS_pyr4.xml": "ACnet2 pyramidal cell (NeuroML2 repository): Traub channels, Ca pool, Kahp, 9 sections",
    "LEMS_gap.xml": "gap junction and graded synapse between segments of two cells",
    "LEMS_ghk.xml": "GHK calcium current, a shifted Na channel, Ca pools on every compartment, 32 degC",
    "LEMS_syn.xml": "STP synapse from a dendritic threshold, alpha/exp synapses from a spikeGenerator, "
                    "sine and ramp inputs",
    "LEMS_tau.xml": "a neuroConstruct-style channel: custom time course reading the gate's alpha/beta "
                    "(jNeuroML's mod reads the previous step's), fixed Q10, 34 degC",
}
#: voltage tolerance (V) where a case differs from NEURON by more than 1 uV, and why
VTOL = {
    # up to 5 uV on the receiving cell's spike upstroke around the first synaptic events (22-27 ms),
    # 5e-8 V elsewhere; spike times equal
    "LEMS_ex25.xml": 1e-5,
}
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("lems", sorted(CASES))
def test_outputs_equal_neuron(tmp_path_factory, tmp_path, lems, backend):
    """Every OutputFile and EventOutputFile of the case as NEURON writes them (7 digits): voltages
    within ~1 µV, concentrations within 1e-5 relative, spike times equal."""
    if backend == "numba":
        pytest.importorskip("numba")
    ref = _reference(tmp_path_factory, lems)
    import nmlsim
    for f in HERE.iterdir():
        shutil.copy(f, tmp_path)
    nmlsim.run(nmlsim.load(str(tmp_path / lems)), outdir=str(tmp_path / "out"), backend=backend)
    outs = sorted((tmp_path / "out" / "results").iterdir())
    assert outs
    for mine in outs:
        theirs = np.loadtxt(ref / mine.name)
        ours = np.loadtxt(mine)
        assert ours.shape == theirs.shape, mine.name
        if mine.name.endswith("spikes.dat") or mine.suffix == ".spikes":
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9, err_msg=mine.name)
            continue
        np.testing.assert_allclose(ours[:, 0], theirs[:, 0], rtol=0, atol=1e-12)
        # volts within ~1 µV, concentrations (mM) within 1e-5 relative
        np.testing.assert_allclose(ours[:, 1:], theirs[:, 1:], rtol=1e-5, atol=VTOL.get(lems, 1e-6),
                                   err_msg=mine.name)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("lems,out,fires", [("LEMS_points.xml", "points_v.dat", 4),
                                            ("LEMS_points2.xml", "points2_v.dat", 1)])
def test_abstract_point_cells_as_neuron(tmp_path_factory, tmp_path, backend, lems, out, fires):
    """Abstract point cells with --method neuron as jNeuroML's NEURON export runs them: every value
    within 0.01 µV of NEURON's. LEMS_points.xml: IaF cells (with and without refractoriness, tau
    and conductance forms, a pulse input): v by NEURON's linearised backward Euler, the WATCH'd
    reset acting at the start of the next step (the row above threshold is recorded), the
    refractory exit on NEURON's clock. LEMS_points2.xml: cells whose mod integrates states besides
    v (Izhikevich 2007 with a pulse and an expOneSynapse from a spike array; AdEx with its
    refractory regime): v moved by the rate the last state update stored (from the new v and the
    states before their update, the attachments left out; 0 after a reset, INITIAL's at -65 mV
    with the states at 0), the synapse's current as computed at the voltage the solve reached
    before the reset."""
    if backend == "numba":
        pytest.importorskip("numba")
    import nmlsim
    ref = _reference(tmp_path_factory, lems)
    for f in HERE.iterdir():
        shutil.copy(f, tmp_path)
    nmlsim.run(nmlsim.load(str(tmp_path / lems)), method="neuron", backend=backend,
               outdir=str(tmp_path / "out"))
    ours = np.loadtxt(tmp_path / "out" / "results" / out)
    theirs = np.loadtxt(ref / out)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours[:, 1:], theirs[:, 1:], rtol=0, atol=1e-8)
    # (the inputs make the cells fire: resets are exercised)
    assert np.sum(np.diff(theirs[:, fires]) < -5e-3) >= 3
