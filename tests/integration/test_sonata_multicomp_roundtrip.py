"""Multi-compartment NeuroML networks written as SONATA and read back run the same: connections,
gap junctions, graded synapses and inputs keep their points on the cells (nmlsim's
nml_*_segment_id / nml_*_fraction_along edge columns, segment_ids / fractions_along of its nml
inputs). Before, every one of them went to the soma on the way back."""
import shutil

import h5py
import numpy as np
import pytest

from conftest import REPO, run_cli

DATA = REPO / "tests" / "data" / "multicomp"


@pytest.mark.parametrize("lems,spikes,pop", [
    ("LEMS_mc.xml", "mc.spikes", "pop0"),             # pulse inside a dendritic cable
    ("LEMS_syn.xml", "syn.spikes", "pop0"),           # synapses from a dendritic threshold, sine/ramp inputs
    ("LEMS_gap.xml", "gap.spikes", "pop0"),           # gap junction and graded synapse between segments
    ("LEMS_ex25.xml", "ex25.spikes", "pop0"),         # AMPA/NMDA onto segments
])
def test_multicompartment_network_round_trips_through_sonata(tmp_path, lems, spikes, pop):
    for f in DATA.iterdir():
        shutil.copy(f, tmp_path)
    p = run_cli(["run", lems, "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    ref = np.loadtxt(tmp_path / "results" / spikes).reshape(-1, 2)
    p = run_cli(["convert", lems, "son", "--to", "sonata"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = run_cli(["run", "simulation_config.json", "--outdir", "out", "-q"], cwd=tmp_path / "son")
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "son" / "out" / "spikes.h5", "r") as f:
        g = f["spikes"][pop]
        ids, ts = g["node_ids"][()], g["timestamps"][()]
    assert len(ref) >= 4
    for n in np.unique(ref[:, 1]).astype(int):
        mine = np.sort(ts[ids == n]) * 1e-3
        theirs = np.sort(ref[ref[:, 1] == n, 0])
        assert len(mine) == len(theirs) and np.abs(mine - theirs).max() < 1e-9, (n, mine, theirs)
