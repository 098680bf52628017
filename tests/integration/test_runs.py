"""Reproducibility and interrupted runs."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CORPUS, needs_shared, run_cli
from nmlsim.library import export


@needs_shared
def test_seeded_stochastic_runs_are_identical(tmp_path):
    """Ex16 has Poisson and random spike generators: one seed, the same bytes."""
    d = CORPUS / "nml2_ex16_inputs" / "LEMSexamples"
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        p = run_cli(["run", "LEMS_NML2_Ex16_Inputs.xml", "--seed", "42", "--duration", "0.05", "--outdir", out, "-q"],
                    cwd=d)
        assert p.returncode == 0, p.stderr
        outs.append((out / "results" / "ex16_v.dat").read_bytes())
    assert outs[0] == outs[1]
    p = run_cli(["run", "LEMS_NML2_Ex16_Inputs.xml", "--seed", "43", "--duration", "0.05", "--outdir",
                 tmp_path / "other", "-q"], cwd=d)
    assert (tmp_path / "other" / "results" / "ex16_v.dat").read_bytes() != outs[0]


@pytest.mark.parametrize("model", ["coba_lif", "ei_hh"])
def test_seeded_network_spikes_identical(tmp_path, model):
    """Two runs of a seeded E-I network (random connectivity and initial kicks from the
    seed): byte-identical spike files, jnml-style and SONATA."""
    export(model, tmp_path, size=200, seed=3, duration=0.05)
    data = []
    for k in range(2):
        p = run_cli(["run", f"LEMS_{model}.xml", "--outdir", tmp_path / f"o{k}", "-q",
                     "--sonata-spikes", "spikes.h5"], cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        data.append(((tmp_path / f"o{k}" / "results" / f"{model}_E.spikes").read_bytes(),
                     (tmp_path / f"o{k}" / "spikes.h5").read_bytes()))
    assert data[0] == data[1] and len(data[0][0]) > 0


def test_interrupted_run_leaves_marked_partial_outputs(tmp_path):
    export("coba_lif", tmp_path, size=400, seed=3, duration=30.0)
    proc = subprocess.Popen([sys.executable, "-m", "nmlsim.cli", "run", "LEMS_coba_lif.xml", "-q"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # loading takes about 1 s; the 30 s run takes over a minute
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    v = tmp_path / "results" / "coba_lif_v.dat.partial"  # the data under a name that says it is partial
    assert v.exists() and not (tmp_path / "results" / "coba_lif_v.dat").exists()
    rows = [line.split() for line in v.read_text().splitlines()]
    assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows)  # complete rows only
    assert float(rows[-1][0]) < 30.0
    assert "partial" in err
    assert not list(tmp_path.joinpath("results").glob(".*.tmp"))


def test_interrupted_sonata_run_keeps_marked_spikes(tmp_path):
    export("coba_lif", tmp_path, size=400, seed=3, duration=30.0, to=("sonata",))
    cfg = tmp_path / "sonata" / "simulation_config.json"
    proc = subprocess.Popen([sys.executable, "-m", "nmlsim.cli", "run", str(cfg), "-q"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # loading takes about 1 s; the 30 s run takes over a minute
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    spikes = tmp_path / "sonata" / "output" / "spikes.h5.partial"
    assert spikes.exists() and not (tmp_path / "sonata" / "output" / "spikes.h5").exists()
    import h5py
    with h5py.File(spikes) as f:
        assert len(f["spikes/E/timestamps"]) > 0


def test_a_simulator_runs_again_from_the_same_start(tmp_path):
    """Simulator.run twice gives the same trace: --method neuron's lagged gate copies start at 0
    on every run (jNeuroML's INITIAL), not at the previous run's last states."""
    import shutil

    import numpy as np

    import nmlsim
    from nmlsim.engine.paths import resolve_quantity
    from nmlsim.engine.record import TraceRecorder
    data = Path(__file__).resolve().parents[1] / "data" / "multicomp"
    for f in ("LEMS_mc.xml", "mc.cell.nml"):
        shutil.copy(data / f, tmp_path)
    r = nmlsim.run(nmlsim.load(str(tmp_path / "LEMS_mc.xml")), write=False, duration=0.03)  # method neuron
    first = np.asarray(r.traces["of0"])[:, 1]
    out = {}
    col = resolve_quantity(r.simulator.built, "pop0/0/mccell/0/v")
    r.simulator.run(0.03, [TraceRecorder("again", [col], lambda n, d, c: out.__setitem__(n, d))])
    np.testing.assert_array_equal(np.asarray(out["again"])[:, 1], first)
