"""Exported models re-run by the reference tool (jNeuroML); skipped without pyNeuroML/Java."""
from pathlib import Path

import numpy as np
import pytest

from conftest import have_jnml, run_cli, run_jnml
from nmlsim.library import export

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_jnml(), reason="jnml (pyNeuroML + Java) not available")]


def _jnml(lems: Path):
    (lems.parent / "results").mkdir(exist_ok=True)
    p = run_jnml(lems)
    assert p.returncode == 0 and "Exception" not in p.stdout, p.stdout[-2000:]


@pytest.mark.parametrize("model", ["ei_hh", "coba_lif"])
def test_exported_network_runs_in_jnml(tmp_path, model):
    """A reduced network (100 cells, 200 ms) exported by nmlsim runs unchanged in jnml.

    Both integrate with forward Euler at the same step.  The networks are chaotic, so
    spikes match one to one only until the first recurrent spikes; what must agree is
    the membrane potential before any cell has fired (the initial kick and the intrinsic
    dynamics) and the population rates over the run.
    """
    export(model, tmp_path, size=100, seed=2, duration=0.2, step=2.5e-5)
    lems = tmp_path / f"LEMS_{model}.xml"
    _jnml(lems)
    p = run_cli(["run", lems.name, "--method", "euler", "--outdir", tmp_path / "ours", "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    ref_v = np.loadtxt(tmp_path / "results" / f"{model}_v.dat")
    our_v = np.loadtxt(tmp_path / "ours" / "results" / f"{model}_v.dat")
    spikes = {}
    for who, root in (("ref", tmp_path), ("ours", tmp_path / "ours")):
        for pop in ("E", "I"):
            f = root / "results" / f"{model}_{pop}.spikes"
            d = np.loadtxt(f, ndmin=2) if f.stat().st_size else np.zeros((0, 2))
            spikes[(who, pop)] = d
    first = min(spikes[("ref", "E")][:, 1].min(initial=1), spikes[("ref", "I")][:, 1].min(initial=1))
    before = ref_v[:, 0] < first - 1e-4
    rng = np.ptp(ref_v[:, 1:])
    assert before.sum() >= 2
    # the conformance corpus tolerance for traces: 5 % of the range
    assert np.max(np.abs(ref_v[before, 1:] - our_v[before, 1:])) < 0.05 * rng
    n_ref = sum(len(spikes[("ref", pop)]) for pop in ("E", "I"))
    n_our = sum(len(spikes[("ours", pop)]) for pop in ("E", "I"))
    assert n_ref > 50
    assert abs(n_our - n_ref) <= 0.25 * n_ref, (n_ref, n_our)


def test_sonata_nest_circuit_runs_in_jnml(tmp_path):
    """A SONATA circuit of NEST cells with virtual inputs, converted to NeuroML + LEMS (the
    NEST types travel in <net>.types.xml), runs in jnml with the spikes nmlsim gives the
    same files: equal counts, first spikes within one step, intervals within two (whether
    ``t > lastSpikeTime + t_ref`` holds on the step where the two are equal depends on
    rounding, and jLEMS accumulates t by adding dt while nmlsim computes k * dt)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from test_sonata_point import _event_times, make_circuit
    cfg = make_circuit(tmp_path / "son")
    p = run_cli(["convert", cfg, tmp_path / "nml", "--to", "neuroml"])
    assert p.returncode == 0, p.stderr
    lems = tmp_path / "nml" / "LEMS_sonata_network.xml"
    _jnml(lems)
    p = run_cli(["run", lems.name, "--method", "euler", "--outdir", tmp_path / "ours", "-q"], cwd=lems.parent)
    assert p.returncode == 0, p.stderr
    ref, ours = _event_times(lems.parent), _event_times(tmp_path / "ours")
    assert set(ref) == set(ours)
    total = 0
    for pop in ref:
        assert len(ref[pop]) == len(ours[pop])
        if len(ref[pop]):  # dt = 0.05 ms: first spikes within a step, intervals within two
            assert abs(ref[pop][0] - ours[pop][0]) <= 0.05e-3 + 1e-9
            assert np.max(np.abs(np.diff(ref[pop]) - np.diff(ours[pop]))) <= 0.1e-3 + 1e-9
        total += len(ref[pop])
    assert total > 10
