"""Synapses on SONATA biophysical cells against bmtk BioNet (tests/sonata_edges_circuit.py: exp2syn
edges from a virtual population at preselected points and at points bmtk draws, recurrent inhibitory
edges; the reference: scripts/bmtk_reference.py with bmtk 1.2.0 + NEURON 9.0.2, 150 ms, 20 spikes).
Placement, Exp2Syn, NetCon delays, VecStim delivery and the seeds of bmtk's draws must all agree for
the spikes to be the same step; the somatic voltages within 0.01 mV (0.004 at spike peaks)."""
import h5py
import numpy as np
import pytest

from conftest import BACKENDS, REPO, SHARED, run_cli

CASE = SHARED / "conformance" / "sonata" / "sonata_5_cells_iclamp_nml"
REF = REPO / "tests" / "data" / "sonata_edges"
pytestmark = pytest.mark.skipif(not (CASE / "config.json").exists(), reason="../shared SONATA corpus not present")


def _spikes(f):
    with h5py.File(f, "r") as h:
        g = h["spikes/biophysical"]
        return g["node_ids"][()], g["timestamps"][()]


def _report(f):
    with h5py.File(f, "r") as h:
        g = h["report/biophysical"]
        return list(g["mapping/node_ids"][()]), g["data"][()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_synapses_on_biophysical_cells_match_bionet(tmp_path, backend):
    from sonata_edges_circuit import build
    cfg = build(tmp_path / "circuit", CASE, 150.0)
    out = tmp_path / "out"
    p = run_cli(["run", cfg, "--outdir", out, "--backend", backend, "-q"], timeout=1800)
    assert p.returncode == 0, p.stderr
    ids, ts = _spikes(out / "spikes.h5")
    rids, rts = _spikes(REF / "spikes.h5")
    assert len(rts) == 20
    for n in range(5):
        mine, ref = np.sort(ts[ids == n]), np.sort(rts[rids == n])
        assert len(mine) == len(ref), (n, mine, ref)
        assert np.abs(mine - ref).max() < 1e-6, (n, mine, ref)
    cols, v = _report(out / "membrane_potential.h5")
    rcols, rv = _report(REF / "membrane_potential.h5")
    assert v.shape == rv.shape
    for n in range(5):
        assert np.abs(v[:, cols.index(n)] - rv[:, rcols.index(n)]).max() < 0.01, n


def test_bad_afferent_section_is_one_line(tmp_path):
    from sonata_edges_circuit import build
    cfg = build(tmp_path / "circuit", CASE, 10.0)
    with h5py.File(cfg.parent / "network" / "ext_sel_edges.h5", "r+") as f:
        f["edges/ext_to_bio_sel/0/afferent_section_id"][0] = 999
    p = run_cli(["run", cfg, "-q"])
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "afferent_section_id 999" in err and "ext_sel_edges.h5" in err


def test_edges_without_placement_are_refused(tmp_path):
    from sonata_edges_circuit import build
    cfg = build(tmp_path / "circuit", CASE, 10.0)
    with h5py.File(cfg.parent / "network" / "bio_bio_edges.h5", "r+") as f:
        del f["edges/bio_to_bio/0/nsyns"]
    p = run_cli(["run", cfg, "-q"])
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "afferent_section_id" in err and "nsyns" in err


def test_sonata_export_keeps_synapse_points_and_stepping(tmp_path):
    """`convert --to sonata` writes the synapses' points (nmlsim's nml_post_segment_id /
    nml_post_fraction_along columns on the exported nml: cells) and that the mechanisms are
    NEURON's own mods; read back, the circuit gives the same spikes as the original."""
    from sonata_edges_circuit import build
    cfg = build(tmp_path / "circuit", CASE, 150.0)
    p = run_cli(["convert", cfg, tmp_path / "conv", "--to", "sonata"])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "conv" / "network" / "edges.h5", "r") as f:
        pops = list(f["edges"])
        assert all("nml_post_segment_id" in f[f"edges/{e}/0"] for e in pops)
    p = run_cli(["run", tmp_path / "conv" / "simulation_config.json", "--outdir", tmp_path / "out", "-q"],
                timeout=1800)
    assert p.returncode == 0, p.stderr
    ids, ts = _spikes(tmp_path / "out" / "spikes.h5")
    rids, rts = _spikes(REF / "spikes.h5")
    for n in range(5):
        mine, ref = np.sort(ts[ids == n]), np.sort(rts[rids == n])
        assert len(mine) == len(ref) and np.abs(mine - ref).max() < 1e-6, (n, mine, ref)
