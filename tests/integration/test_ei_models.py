"""The E-I benchmark models: builders, NeuroML export and re-import, SONATA spikes."""
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import run_cli
from nmlsim import api
from nmlsim.library import build, export


@pytest.mark.parametrize("name", ["ei_hh", "coba_lif"])
def test_builder_structure(name):
    net = build(name, size=500, seed=3)
    assert net.populations["E"].size == 400 and net.populations["I"].size == 100
    # fixed out-degree 80 over all cells, with replacement: every pre cell has exactly 80 targets
    for src in ("E", "I"):
        pre = np.concatenate([p.pre_idx for p in net.projections if p.pre == src])
        assert np.all(np.bincount(pre, minlength=net.populations[src].size) == 80)
    # the same seed gives the same network
    net2 = build(name, size=500, seed=3)
    for a, b in zip(net.projections, net2.projections):
        assert np.array_equal(a.post_idx, b.post_idx)


def test_export_reimport_same_spikes(tmp_path):
    """Build -> simulate, and build -> NeuroML -> load -> simulate give identical spikes."""
    net = build("coba_lif", size=200, seed=5)
    direct, _ = api.simulate_network(net, 0.1, 1e-4, method="exp_euler", seed=5)
    files = export("coba_lif", tmp_path, size=200, seed=5, duration=0.1)
    sim = api.load(files[1])
    res = api.run(sim, method="exp_euler", outdir=tmp_path / "out", sonata_spikes="spikes.h5")
    for pop in ("E", "I"):
        ev = [e for e in res.events.values() if e and any(True for _ in e)]
        ids, times = direct[pop]
        with h5py.File(tmp_path / "out" / "spikes.h5") as f:
            g = f["spikes"][pop]
            assert g.attrs["sorting"] == 2  # SONATA enum: by_time
            assert np.array_equal(np.sort(g["node_ids"][:]), np.sort(ids))
            # SONATA files carry the state time of the crossing, one step before jLEMS's event time
            assert np.allclose(np.sort(g["timestamps"][:]), np.sort(times) * 1e3 - 0.1)
    assert len(ev) == 2


def test_export_cli_and_validate(tmp_path):
    p = run_cli(["export", "ei_hh", tmp_path, "--size", "100", "--duration", "0.05"])
    assert p.returncode == 0, p.stderr
    p = run_cli(["validate", tmp_path / "ei_hh.net.nml"])
    assert p.returncode == 0, p.stdout + p.stderr
    p = run_cli(["run", "LEMS_ei_hh.xml", "--plot", "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "results" / "ei_hh_E.spikes").exists() and (tmp_path / "sim_ei_hh.png").exists()


@pytest.mark.slow
def test_rates_full_size():
    """COBAHH 4000 cells 1 s: E/I in 30-45 Hz, irregular; COBA LIF 15-30 Hz."""
    for name, lo, hi in (("ei_hh", 30, 45), ("coba_lif", 15, 30)):
        net = build(name, seed=1)
        spk, _ = api.simulate_network(net, 1.0, 1e-4, seed=1)
        for pop, (ids, t) in spk.items():
            rate = len(ids) / net.populations[pop].size
            assert lo <= rate <= hi, (name, pop, rate)


@pytest.mark.parametrize("model", ["ei_hh", "coba_lif"])
def test_shipped_sonata_text_files_are_the_exporters_output(tmp_path, model):
    """models/<model>/sonata is written by nmlsim (scripts/make_models.sh): its type CSVs and
    configs are what the exporter writes today."""
    shipped = Path(__file__).resolve().parents[2] / "models" / model / "sonata"
    if not shipped.exists():
        pytest.skip(f"models/{model} not in this checkout")
    export(model, tmp_path, to=["sonata"], seed=1)
    for f in sorted((tmp_path / "sonata").rglob("*")):
        if f.suffix in (".csv", ".json"):
            rel = f.relative_to(tmp_path / "sonata")
            assert f.read_bytes() == (shipped / rel).read_bytes(), rel
