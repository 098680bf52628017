"""SONATA export of nmlsim networks, re-import, libsonata, and bad SONATA input."""
import json
import shutil

import h5py
import numpy as np
import pytest

from conftest import run_cli
from nmlsim.analysis import read_sonata_spikes
from nmlsim.library import export


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("son")
    export("coba_lif", d, size=200, seed=4, duration=0.08, to=("neuroml", "sonata"))
    return d


def test_sonata_reimport_gives_identical_spikes(exported, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(exported, d)
    p = run_cli(["run", "LEMS_coba_lif.xml", "--sonata-spikes", "results/spikes.h5", "-q"], cwd=d)
    assert p.returncode == 0, p.stderr
    p = run_cli(["run", d / "sonata" / "simulation_config.json", "-q"])
    assert p.returncode == 0, p.stderr
    a = read_sonata_spikes(d / "results" / "spikes.h5")
    b = read_sonata_spikes(d / "sonata" / "output" / "spikes.h5")
    assert set(a) == set(b) == {"E", "I"}
    for pop in a:
        assert len(a[pop][0]) > 0
        assert np.array_equal(a[pop][0], b[pop][0]) and np.array_equal(a[pop][1], b[pop][1])
    # the LEMS file's recorded potentials are the SONATA export's report (float32, mV)
    dat = np.loadtxt(d / "results" / "coba_lif_v.dat")
    with h5py.File(d / "sonata" / "output" / "coba_lif_v_E.h5") as f, \
            h5py.File(d / "sonata" / "output" / "coba_lif_v_I.h5") as g:
        assert list(f["report/E/mapping/node_ids"][()]) == list(g["report/I/mapping/node_ids"][()]) == [0, 1, 2]
        rep = np.hstack([f["report/E/data"][()], g["report/I/data"][()]])
    assert rep.dtype == np.float32 and rep.shape == (len(dat), 6)
    assert np.allclose(rep, dat[:, 1:] * 1e3, atol=1e-4)


def test_libsonata_opens_export(exported, tmp_path):
    libsonata = pytest.importorskip("libsonata")
    net = exported / "sonata" / "network"
    nodes = libsonata.NodeStorage(str(net / "nodes.h5"))
    assert nodes.population_names == {"E", "I"}
    assert nodes.open_population("E").size == 160
    edges = libsonata.EdgeStorage(str(net / "edges.h5"))
    ee = edges.open_population("proj_EE")
    assert ee.source == "E" and ee.target == "E" and {"syn_weight", "delay"} <= ee.attribute_names
    circuit = libsonata.CircuitConfig.from_file(str(exported / "sonata" / "circuit_config.json"))
    assert circuit.node_populations == {"E", "I"} and "proj_EE" in circuit.edge_populations
    assert circuit.node_population("E").size == 160 and circuit.edge_population("proj_EE").source == "E"
    sim = libsonata.SimulationConfig.from_file(str(exported / "sonata" / "simulation_config.json"))
    assert sim.run.random_seed == 4 and sim.run.tstop == pytest.approx(80.0)
    names = sim.list_input_names
    assert len(names) > 2  # the constant drive per population, the initial kicks
    node_sets = libsonata.NodeSets.from_file(str(exported / "sonata" / "node_sets.json"))
    for name in names:
        assert sim.input(name).node_set in node_sets.names
    d = tmp_path / "m"
    shutil.copytree(exported, d)
    run_cli(["run", d / "sonata" / "simulation_config.json", "-q"])
    spikes = libsonata.SpikeReader(str(d / "sonata" / "output" / "spikes.h5"))
    assert set(spikes.get_population_names()) == {"E", "I"} and spikes["E"].sorting == "by_time"
    assert set(sim.list_report_names) == {"coba_lif_v_E", "coba_lif_v_I"}
    for name, pop in (("coba_lif_v_E", "E"), ("coba_lif_v_I", "I")):
        assert sim.report(name).cells in node_sets.names and sim.report(name).variable_name == "v"
        rep = libsonata.ElementReportReader(str(d / "sonata" / "output" / f"{name}.h5"))[pop]
        assert rep.get_node_ids() == [0, 1, 2] and rep.get().data.shape == (801, 3)


def _break(d, what):
    net = d / "sonata" / "network"
    if what == "missing_dataset":
        with h5py.File(net / "nodes.h5", "a") as f:
            del f["nodes/E/node_type_id"]
        return "missing dataset /nodes/E/node_type_id"
    if what == "length_mismatch":
        with h5py.File(net / "edges.h5", "a") as f:
            g = f["edges/proj_EE"]
            t = g["target_node_id"][()]
            attrs = dict(g["target_node_id"].attrs)
            del g["target_node_id"]
            ds = g.create_dataset("target_node_id", data=t[:-3])
            for k, v in attrs.items():
                ds.attrs[k] = v
        return "expected"
    if what == "id_out_of_range":
        with h5py.File(net / "edges.h5", "a") as f:
            f["edges/proj_EE/target_node_id"][0] = 99999
        return "out of range"
    if what == "wrong_dtype":
        with h5py.File(net / "nodes.h5", "a") as f:
            t = f["nodes/E/node_type_id"][()]
            del f["nodes/E/node_type_id"]
            f["nodes/E"].create_dataset("node_type_id", data=t.astype(float))
        return "dtype"
    if what == "unknown_template":
        p = net / "node_types.csv"
        p.write_text(p.read_text().replace("nml:lif_cell.nml", "nest:iaf_psc_beta"))
        return "nest:iaf_psc_beta"
    if what == "outside_folder":
        p = d / "sonata" / "circuit_config.json"
        c = json.loads(p.read_text())
        c["networks"]["nodes"][0]["nodes_file"] = "/etc/passwd"
        p.write_text(json.dumps(c))
        return "outside the model folder"
    if what == "bad_json":
        (d / "sonata" / "circuit_config.json").write_text("{ not json")
        return "malformed JSON"
    raise ValueError(what)


@pytest.mark.parametrize("what", ["missing_dataset", "length_mismatch", "id_out_of_range", "wrong_dtype",
                                  "unknown_template", "outside_folder", "bad_json"])
def test_bad_sonata_input(exported, tmp_path, what):
    d = tmp_path / "m"
    shutil.copytree(exported, d)
    needle = _break(d, what)
    p = run_cli(["run", d / "sonata" / "simulation_config.json", "-q"])
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert needle in lines[0], lines[0]


def test_convert_both_ways(exported, tmp_path):
    p = run_cli(["convert", exported / "sonata" / "simulation_config.json", tmp_path / "nml", "--to", "neuroml"])
    assert p.returncode == 0, p.stderr
    p = run_cli(["run", "LEMS_sonata_network.xml", "-q"], cwd=tmp_path / "nml")
    assert p.returncode == 0, p.stderr
    p = run_cli(["info", exported / "sonata" / "simulation_config.json"])
    assert p.returncode == 0 and "population E: 160" in p.stdout, p.stdout + p.stderr
    p = run_cli(["convert", exported / "LEMS_coba_lif.xml", tmp_path / "son", "--to", "sonata"])
    assert p.returncode == 0, p.stderr
    p = run_cli(["run", tmp_path / "son" / "simulation_config.json", "-q"])
    assert p.returncode == 0, p.stderr
    n_nml = sum(len(f.read_text().splitlines()) for f in (tmp_path / "nml" / "results").glob("*.spikes"))
    spikes = read_sonata_spikes(tmp_path / "son" / "output" / "spikes.h5")
    assert n_nml == sum(len(i) for i, _ in spikes.values()) > 0
    # the recorded potentials came along both ways: SONATA report -> OutputFile -> SONATA report
    assert (tmp_path / "nml" / "results" / "coba_lif_v_E.dat").exists()
    assert {f.name for f in (tmp_path / "son" / "output").glob("*.h5")} == {
        "spikes.h5", "of0_E.h5", "of0_I.h5"}


def test_convert_names_recordings_sonata_cannot_hold(exported, tmp_path):
    lems = (exported / "LEMS_coba_lif.xml").read_text()
    (tmp_path / "LEMS_coba_lif.xml").write_text(lems.replace(
        '<OutputColumn id="c0" quantity="E[0]/v"/>',
        '<OutputColumn id="c0" quantity="E[0]/v"/><OutputColumn id="g" quantity="E[0]/syn_e/g"/>'))
    for f in exported.glob("*.nml"):
        shutil.copy(f, tmp_path)
    p = run_cli(["convert", tmp_path / "LEMS_coba_lif.xml", tmp_path / "son", "--to", "sonata"])
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == ("nmlsim: note: 1 recorded quantity other than a cell's membrane potential "
                                "(e.g. 'E[0]/syn_e/g') has no SONATA report form and is not converted")
    assert "of0_E" in json.loads((tmp_path / "son" / "simulation_config.json").read_text())["reports"]


def test_convert_refuses_what_sonata_cannot_hold(tmp_path):
    from conftest import CORPUS, have_shared
    if not have_shared():
        pytest.skip("no corpus")
    # a network inside a custom "tissue" component (temperature varying in space): no SONATA form
    d = CORPUS / "nml2_ex17_tissue"
    f = next(d.rglob("LEMS_*Tissue*.xml"))
    p = run_cli(["convert", f, tmp_path / "t", "--to", "sonata", "--include-root", d])
    assert p.returncode == 4 and "tissue" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_convert_gap_junction_network_to_neuroml_and_back(tmp_path):
    """A LEMS network with gap junctions and graded synapses written as NeuroML by nmlsim
    runs with the same traces as the original."""
    from conftest import CORPUS, have_shared
    if not have_shared():
        pytest.skip("no corpus")
    from nmlsim import api
    from nmlsim.io.neuroml_writer import write_lems_simulation, write_network_nml
    for case, lems in (("nml2_ex19_gapjunctions", "LEMS_NML2_Ex19_GapJunctions.xml"),
                       ("nml2_ex26_weights", "LEMS_NML2_Ex26_Weights.xml")):
        sim = api.load(CORPUS / case / "LEMSexamples" / lems)
        net = sim.network
        out = tmp_path / case
        nml = write_network_nml(net, out / "net.nml")
        q = [f"{pid}[0]/v" for pid in net.populations]
        write_lems_simulation(out / "LEMS_rt.xml", sim_id="rt", target=net.id, includes=[nml.name],
                              length_s=0.05, step_s=sim.spec.step, traces={"v.dat": q})
        a = api.run(sim, duration=0.05, write=False, extra_quantities=q).traces["__display__"]
        b = api.run(api.load(out / "LEMS_rt.xml"), write=False).traces["of0"]
        assert np.allclose(a, b, rtol=0, atol=1e-12), case


@pytest.mark.parametrize("case", ["nml2_ex19_gapjunctions", "nml2_ex20_analogsynapses", "osb_izh2007_fivecells",
                                  "nml2_ex16_inputs"])
def test_gap_junctions_graded_synapses_and_nml_inputs_round_trip(tmp_path, case):
    """NeuroML -> SONATA (is_gap_junction edges, post_model_template edges, "nml" inputs) ->
    nmlsim gives the spikes of the NeuroML run — with stochastic inputs too (ex16): one seed,
    and random streams keyed by group name, not build order."""
    from conftest import CORPUS, have_shared
    if not have_shared():
        pytest.skip("../shared not present")
    c = next(c for c in json.loads((CORPUS / "manifest.json").read_text())["cases"] if c["case"] == case)
    cdir = CORPUS / c["dir"]
    run_dir = cdir / c["run_dir"]
    import os
    rel = os.path.relpath(cdir / c["lems"], run_dir)
    p = run_cli(["convert", rel, tmp_path / "son", "--to", "sonata", "--include-root", cdir], cwd=run_dir)
    assert p.returncode == 0, p.stderr
    p = run_cli(["run", rel, "--outdir", tmp_path / "lems", "--include-root", cdir, "--seed", "3",
                 "--sonata-spikes", tmp_path / "a.h5", "-q"], cwd=run_dir)
    assert p.returncode == 0, p.stderr
    p = run_cli(["run", tmp_path / "son" / "simulation_config.json", "--outdir", tmp_path / "b", "--seed", "3", "-q"])
    assert p.returncode == 0, p.stderr
    a, b = read_sonata_spikes(tmp_path / "a.h5"), read_sonata_spikes(tmp_path / "b" / "spikes.h5")
    assert set(a) == set(b) and sum(len(v[0]) for v in a.values()) > 0
    for k in a:
        assert np.array_equal(a[k][0], b[k][0]) and np.allclose(a[k][1], b[k][1], atol=1e-12)
