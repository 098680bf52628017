"""SONATA configs in the Python API: load, list and set parameters, run, results keyed by
SONATA populations and node ids, the same files as `nmlsim run`, sweeps, NWB."""
import h5py
import numpy as np
import pytest

import nmlsim
from conftest import run_cli
from nmlsim.errors import ModelError, UnitError
from test_sonata_point import make_circuit


def _spikes_h5(path):
    with h5py.File(path, "r") as f:
        g = f["spikes/net"]
        return np.asarray(g["node_ids"]), np.asarray(g["timestamps"])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_load_set_and_run_a_sonata_config(tmp_path, backend):
    if backend == "numba":
        pytest.importorskip("numba")
    cfg = make_circuit(tmp_path)
    sim = nmlsim.load(cfg)
    assert sim.duration == pytest.approx(0.06) and sim.sizes() == {"net": 6}
    paths = {p.path: p for p in sim.parameters()}
    # node types became components; so did the clamp, once per node type it reaches, per step
    assert paths["net_10/tau_m"].value == pytest.approx(0.010) and paths["net_10/tau_m"].unit == "s"
    assert paths["net_11/E_L"].value == pytest.approx(-0.065)
    assert "drive_net_11_0/amplitude" in paths
    res = sim.run(backend=backend)
    ids, t = res.spikes["net"]
    assert res.sizes == {"net": 6} and set(ids) <= {0, 1, 2, 3, 5} and len(t)
    # the report: SONATA node ids as column ids, SI units, time in s
    out = res.output("membrane_potential")
    assert [c.id for c in out.columns] == ["net/0", "net/1", "net/5"] and out.columns[0].unit == "V"
    assert out.time[0] == 0.0 and out.data[0, 0] == pytest.approx(-0.070)
    # a stronger clamp on the inhibitory type: more spikes there, the other cells as before
    before = {n: int(np.sum(ids == n)) for n in range(6)}
    sim.set("drive_net_11_0/amplitude", "3000 pA")
    res2 = sim.run(backend=backend)
    ids2, _ = res2.spikes["net"]
    after = {n: int(np.sum(ids2 == n)) for n in range(6)}
    assert after[3] > before[3] and after[5] > before[5]
    assert all(after[n] == before[n] for n in (0, 1, 2, 4))
    assert res2.parameters == {"drive_net_11_0/amplitude": "3000 pA"}


def test_set_checks_paths_and_units(tmp_path):
    sim = nmlsim.load(make_circuit(tmp_path))
    with pytest.raises(UnitError, match="net_10/tau_m"):
        sim.set("net_10/tau_m", "3 mV")
    with pytest.raises(ModelError, match="no parameter 'nothing'|has no parameter 'nothing'"):
        sim.set("net_10/nothing", "1 ms")
    with pytest.raises(ModelError, match="no component 'absent'"):
        sim.set("absent/tau_m", "1 ms")


def test_written_files_are_those_of_the_command_line(tmp_path):
    cfg = make_circuit(tmp_path)
    p = run_cli(["run", str(cfg), "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    cli_ids, cli_t = _spikes_h5(tmp_path / "out" / "spikes.h5")
    res = nmlsim.load(cfg).run(outdir=tmp_path / "api")
    ids, t = _spikes_h5(tmp_path / "api" / "spikes.h5")
    assert np.array_equal(ids, cli_ids) and np.array_equal(t, cli_t)
    assert str(tmp_path / "api" / "spikes.h5") in res.files
    with h5py.File(tmp_path / "api" / "membrane_potential.h5", "r") as f, \
            h5py.File(tmp_path / "out" / "membrane_potential.h5", "r") as g:
        assert np.array_equal(f["report/net/data"][()], g["report/net/data"][()])
    # the result's spikes are the file's, in ms there and s here
    order = np.lexsort((res.spikes["net"][0], res.spikes["net"][1]))
    assert np.allclose(np.sort(res.spikes["net"][1]) * 1e3, np.sort(t))
    assert len(order) == len(t)


def test_nothing_is_written_unless_asked(tmp_path):
    cfg = make_circuit(tmp_path)
    nmlsim.load(cfg).run()
    assert not (tmp_path / "out").exists()


def test_sweep_of_a_sonata_parameter(tmp_path):
    cfg = make_circuit(tmp_path)
    results = nmlsim.sweep(nmlsim.load(cfg), "drive_net_11_0/amplitude", ["0 pA", "1000 pA", "3000 pA"],
                           processes=1)
    counts = [int(np.isin(r.spikes["net"][0], [3, 5]).sum()) for r in results]
    assert counts[0] <= counts[1] < counts[2]
    assert [r.parameters["drive_net_11_0/amplitude"] for r in results] == ["0 pA", "1000 pA", "3000 pA"]


def test_cli_params_sweep_and_nwb_on_sonata(tmp_path):
    cfg = make_circuit(tmp_path)
    p = run_cli(["params", str(cfg), "net_11"], cwd=tmp_path)
    assert p.returncode == 0 and "net_11/tau_m" in p.stdout, p.stderr
    p = run_cli(["sweep", str(cfg), "--set", "drive_net_11_0/amplitude=1000pA,3000pA", "-j", "1",
                 "--outdir", str(tmp_path / "sw")], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "sw" / "drive_net_11_0.amplitude=3000pA" / "spikes.h5").exists()
    pytest.importorskip("pynwb")
    from pynwb import NWBHDF5IO
    p = run_cli(["run", str(cfg), "--nwb", "run.nwb", "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    ids, _ = _spikes_h5(tmp_path / "out" / "spikes.h5")
    with NWBHDF5IO(str(tmp_path / "run.nwb"), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        assert len(units) == 6  # every node a unit, silent ones too
        n = {int(r.cell): len(r.spike_times) for r in units.itertuples()}
        assert n == {k: int(np.sum(ids == k)) for k in range(6)}
        assert nwb.acquisition["membrane_potential.net_5"].unit == "V"
