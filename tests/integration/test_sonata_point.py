"""SONATA point-neuron circuits: NEST templates, node groups/types, virtual inputs, node sets, reports."""
import json

import h5py
import numpy as np
import pytest

from conftest import SHARED, run_cli
from nmlsim.io.sonata_reader import SonataReader


def _types(path, header, rows):
    path.write_text(" ".join(header) + "\n" + "".join(" ".join(map(str, r)) + "\n" for r in rows))


def make_circuit(d, *, legacy_spikes=True, extra_sim=None):
    """6 NEST cells in one population (two node types, two node groups) driven by 2 virtual nodes."""
    (d / "network").mkdir(parents=True)
    (d / "models").mkdir()
    (d / "models" / "exc.json").write_text(json.dumps({"C_m": 250.0, "tau_m": 10.0, "V_th": -55.0}))
    (d / "models" / "inh.json").write_text(json.dumps({"C_m": 100.0, "tau_m": 8.0, "E_L": -65.0}))
    (d / "models" / "syn.json").write_text("{}")
    _types(d / "network" / "net_types.csv", ["node_type_id", "model_type", "model_template", "dynamics_params", "ei"],
           [[10, "point_neuron", "nest:iaf_psc_alpha", "exc.json", "e"],
            [11, "point_neuron", "nest:iaf_psc_alpha", "inh.json", "i"]])
    _types(d / "network" / "ext_types.csv", ["node_type_id", "model_type"], [[1, "virtual"]])
    _types(d / "network" / "edge_types.csv", ["edge_type_id", "model_template", "dynamics_params"],
           [[5, "static_synapse", "syn.json"]])
    with h5py.File(d / "network" / "nodes.h5", "w") as f:
        g = f.create_group("nodes/net")
        g["node_id"] = np.arange(6, dtype=np.uint64)
        g["node_type_id"] = np.array([10, 10, 10, 11, 10, 11], dtype=np.uint64)
        g["node_group_id"] = np.array([0, 0, 0, 0, 1, 1], dtype=np.uint32)
        g["node_group_index"] = np.array([0, 1, 2, 3, 0, 1], dtype=np.uint64)
        g["0/x"] = np.arange(4.0)
        g["1/layer"] = np.array([5.0, 6.0])
    with h5py.File(d / "network" / "ext_nodes.h5", "w") as f:
        e = f.create_group("nodes/ext")
        e["node_type_id"] = np.ones(2, dtype=np.uint64)
        e["node_group_id"] = np.zeros(2, dtype=np.uint32)
        e["node_group_index"] = np.arange(2, dtype=np.uint64)
        e.create_group("0")
    with h5py.File(d / "network" / "edges.h5", "w") as f:
        g = f.create_group("edges/ext_to_net")
        g["source_node_id"] = np.array([0, 0, 1], dtype=np.uint64)
        g["source_node_id"].attrs["node_population"] = "ext"
        g["target_node_id"] = np.array([0, 1, 2], dtype=np.uint64)
        g["target_node_id"].attrs["node_population"] = "net"
        g["edge_type_id"] = np.full(3, 5, dtype=np.uint32)
        g["edge_group_id"] = np.zeros(3, dtype=np.uint16)
        g["edge_group_index"] = np.arange(3, dtype=np.uint32)
        g["0/syn_weight"] = np.array([300.0, 300.0, 300.0])
        g["0/nsyns"] = np.array([1, 2, 1], dtype=np.uint32)
    with h5py.File(d / "spikes_in.h5", "w") as f:
        if legacy_spikes:
            f["spikes/gids"] = np.array([0, 1], dtype=np.uint64)
            f["spikes/timestamps"] = np.array([5.0, 7.0])
        else:
            f["spikes/ext/node_ids"] = np.array([0, 1], dtype=np.uint64)
            f["spikes/ext/timestamps"] = np.array([5.0, 7.0])
    (d / "node_sets.json").write_text(json.dumps({"inh": {"ei": "i"}, "rec": {"population": "net",
                                                                               "node_id": [0, 1, 5]},
                                                  "both": ["inh", "rec"], "layer6": {"layer": 6}}))
    circuit = {"manifest": {"$NET": "${configdir}/network"},
               "components": {"point_neuron_models_dir": "${configdir}/models",
                              "synaptic_models_dir": "${configdir}/models"},
               "networks": {"nodes": [{"nodes_file": "$NET/nodes.h5", "node_types_file": "$NET/net_types.csv"},
                                      {"nodes_file": "$NET/ext_nodes.h5", "node_types_file": "$NET/ext_types.csv"}],
                            "edges": [{"edges_file": "$NET/edges.h5", "edge_types_file": "$NET/edge_types.csv"}]}}
    sim = {"run": {"tstop": 60.0, "dt": 0.05}, "network": "circuit_config.json", "node_sets_file": "node_sets.json",
           "inputs": {"ext": {"input_type": "spikes", "module": "h5", "input_file": "spikes_in.h5", "node_set": "ext"},
                      "drive": {"input_type": "current_clamp", "module": "IClamp", "node_set": "inh",
                                "amp": [1000.0, 1500.0], "delay": [10.0, 35.0], "duration": [20.0, 20.0]}},
           "output": {"output_dir": "out", "spikes_file": "spikes.h5"},
           "reports": {"membrane_potential": {"cells": "rec", "variable_name": "V_m",
                                              "module": "membrane_report",
                                              # what bmtk's PointNet configs say (and PointNet ignores)
                                              "sections": "multimeter_report"}}}
    sim.update(extra_sim or {})
    (d / "circuit_config.json").write_text(json.dumps(circuit))
    (d / "simulation_config.json").write_text(json.dumps(sim))
    return d / "simulation_config.json"


def test_reader_splits_node_types_and_resolves_node_sets(tmp_path):
    cfg = make_circuit(tmp_path)
    rd = SonataReader(cfg)
    run = rd.read()
    net = run.network
    assert set(net.populations) == {"net_10", "net_11"} and set(net.sources) == {"ext"}
    assert net.populations["net_11"].origin[0] == "net"
    assert list(net.populations["net_11"].origin[1]) == [3, 5]
    assert list(rd.resolve_node_set("inh")["net"]) == [3, 5]  # a CSV attribute
    assert list(rd.resolve_node_set("layer6")["net"]) == [5]  # an h5 attribute of group 1 only
    assert list(rd.resolve_node_set("both")["net"]) == [0, 1, 3, 5]
    assert list(rd.resolve_node_set({"population": "net", "ei": ["e", "i"], "node_id": [2, 3]})["net"]) == [2, 3]
    # weight = syn_weight * nsyns; no delay anywhere -> NEST's 1 ms
    pr = [p for p in net.projections if p.pre == "ext"]
    w = np.concatenate([p.weight for p in pr])
    assert sorted(w) == [300.0, 300.0, 600.0]
    assert all(np.allclose(p.delay, 1e-3) for p in pr)
    # the inhibitory type's parameters came from its JSON over NEST's defaults
    attrs = net.populations["net_11"].component.attrs
    assert attrs["C_m"] == "100.0pF" and attrs["E_L"] == "-65.0mV" and attrs["V_init"] == "-70.0mV"
    assert run.method == "rk4"


@pytest.mark.parametrize("legacy", [True, False])
def test_run_writes_sonata_spikes_and_reports(tmp_path, legacy):
    cfg = make_circuit(tmp_path, legacy_spikes=legacy)
    p = run_cli(["run", cfg, "-q"])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "out" / "spikes.h5") as f:
        assert list(f["spikes"]) == ["net"]  # virtual nodes are not written
        ids = f["spikes/net/node_ids"][()]
        ts = f["spikes/net/timestamps"][()]
    # the clamp (pA, as NEST reads it) drives the inhibitory nodes 3 and 5 only
    assert set(ids.tolist()) == {3, 5}
    assert ts.min() > 10.0
    with h5py.File(tmp_path / "out" / "membrane_potential.h5") as f:
        m = f["report/net/mapping"]
        assert list(m["node_ids"][()]) == [0, 1, 5]
        assert list(m["index_pointers"][()]) == [0, 1, 2, 3]
        t0, t1, dt = m["time"][()]
        data = f["report/net/data"][()]
        assert f["report/net/data"].attrs["units"] == "mV"
    assert dt == pytest.approx(0.05) and data.shape[1] == 3
    t = t0 + dt * np.arange(len(data))
    assert data[0, 0] == pytest.approx(-70.0)
    # node 1 gets twice node 0's weight (nsyns 2); both see their input 1 ms after the 5 ms spike
    quiet = t < 6.0
    assert np.allclose(data[quiet, 0], -70.0) and np.allclose(data[quiet, 1], -70.0)
    d0, d1 = data[:, 0] + 70.0, data[:, 1] + 70.0
    assert d0.max() > 0.1 and d1.max() == pytest.approx(2 * d0.max(), rel=1e-6)


@pytest.mark.parametrize("what,needle", [
    ("unknown_set", "unknown node set 'nobody'"),
    ("spike_id", "out of range"),
    ("weight_function", "weight_function"),
    ("bad_receptor", "receptor_type 7"),
])
def test_bad_point_circuits(tmp_path, what, needle):
    extra = {}
    if what == "unknown_set":
        extra = {"reports": {"r": {"cells": "nobody", "variable_name": "V_m"}}}
    cfg = make_circuit(tmp_path, extra_sim=extra)
    if what == "spike_id":
        with h5py.File(tmp_path / "spikes_in.h5", "a") as f:
            f["spikes/gids"][0] = 9
    if what == "weight_function":
        _types(tmp_path / "network" / "edge_types.csv", ["edge_type_id", "model_template", "weight_function"],
               [[5, "static_synapse", "gaussian"]])
    if what == "bad_receptor":
        (tmp_path / "models" / "syn.json").write_text('{"receptor_type": 7}')
    p = run_cli(["run", cfg, "-q"])
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert needle in lines[0], lines[0]
    assert not (tmp_path / "out" / "spikes.h5").exists()


CASES = SHARED / "conformance" / "sonata"


@pytest.mark.skipif(not (CASES / "manifest.json").exists(), reason="../shared SONATA corpus not present")
def test_bmtk_120cells_first_100ms_match_nest(tmp_path):
    """iaf_psc_delta + virtual thalamic spikes: every spike of the first 100 ms within 0.05 ms of NEST's."""
    p = run_cli(["run", "config.simulation.json", "--duration", "0.1", "--outdir", tmp_path, "-q"],
                cwd=CASES / "bmtk_point_120cells")
    assert p.returncode == 0, p.stderr
    with h5py.File(CASES / "bmtk_point_120cells" / "ref" / "spikes.h5") as f:
        rid, rt = f["spikes/cortex/node_ids"][()], f["spikes/cortex/timestamps"][()]
    with h5py.File(tmp_path / "spikes.h5") as f:
        cid, ct = f["spikes/cortex/node_ids"][()], f["spikes/cortex/timestamps"][()]
    keep = rt < 99.0
    rid, rt = rid[keep], rt[keep]
    keep = ct < 99.0
    cid, ct = cid[keep], ct[keep]
    assert len(rt) > 50 and len(ct) == len(rt)
    for n in np.unique(rid):
        a, b = np.sort(rt[rid == n]), np.sort(ct[cid == n])
        assert len(a) == len(b) and np.max(np.abs(a - b)) < 0.05


def _event_times(folder):
    out = {}
    for f in sorted((folder / "results").glob("*.spikes")):
        d = np.loadtxt(f, ndmin=2) if f.stat().st_size else np.zeros((0, 2))
        out[f.stem] = np.sort(d[:, 1]) if d.size else np.zeros(0)
    return out


def test_nest_circuit_converts_to_neuroml_and_runs_the_same(tmp_path):
    """SONATA (NEST cells, virtual inputs) -> NeuroML + LEMS (NEST types embedded, inputs as
    spikeArrays) -> nmlsim: the same spikes, one step apart (jLEMS event time vs state time)."""
    cfg = make_circuit(tmp_path / "son")
    p = run_cli(["run", cfg, "--method", "euler", "-q"])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "son" / "out" / "spikes.h5") as f:
        ts = f["spikes/net/timestamps"][()]
    p = run_cli(["convert", cfg, tmp_path / "nml", "--to", "neuroml"])
    assert p.returncode == 0, p.stderr
    p = run_cli(["validate", tmp_path / "nml" / "sonata_network.net.nml"])
    assert p.returncode == 0, p.stdout + p.stderr  # XSD-valid: NEST components sit in sonata_network.types.xml
    p = run_cli(["run", "LEMS_sonata_network.xml", "--method", "euler", "-q"], cwd=tmp_path / "nml")
    assert p.returncode == 0, p.stderr
    ev = _event_times(tmp_path / "nml")
    assert set(ev) >= {"net_10", "net_11"}
    got = np.sort(np.concatenate([ev["net_10"], ev["net_11"]])) * 1e3
    assert len(got) == len(ts) > 0
    assert np.allclose(got, np.sort(ts) + 0.05, atol=1e-6)
    # the SONATA report is an OutputFile of the LEMS file: its nodes' potentials, in V
    dat = np.loadtxt(tmp_path / "nml" / "results" / "membrane_potential.dat")
    with h5py.File(tmp_path / "son" / "out" / "membrane_potential.h5") as f:
        rep = f["report/net/data"][()]
    assert dat.shape[1] == 1 + rep.shape[1] == 4
    assert np.allclose(dat[0, 1:] * 1e3, rep[0], atol=1e-4)


def test_nest_circuit_sonata_round_trip(tmp_path):
    """SONATA (NEST cells, node types, virtual inputs) -> nmlsim -> SONATA -> nmlsim: same spikes,
    same population names and node ids."""
    cfg = make_circuit(tmp_path / "a")
    p = run_cli(["run", cfg, "-q"])
    assert p.returncode == 0, p.stderr
    p = run_cli(["convert", cfg, tmp_path / "b", "--to", "sonata"])
    assert p.returncode == 0, p.stderr
    p = run_cli(["run", tmp_path / "b" / "simulation_config.json", "--outdir", tmp_path / "b" / "out", "-q"])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "a" / "out" / "spikes.h5") as f, h5py.File(tmp_path / "b" / "out" / "spikes.h5") as g:
        assert list(f["spikes"]) == list(g["spikes"]) == ["net"]
        assert np.array_equal(f["spikes/net/node_ids"][()], g["spikes/net/node_ids"][()])
        assert np.array_equal(f["spikes/net/timestamps"][()], g["spikes/net/timestamps"][()])
        assert len(f["spikes/net/node_ids"][()]) > 0
    with h5py.File(tmp_path / "b" / "network" / "nodes.h5") as f:
        assert set(f["nodes"]) == {"net", "ext"} and len(f["nodes/net/node_id"]) == 6
    libsonata = pytest.importorskip("libsonata")
    # what nmlsim wrote opens in libsonata: the virtual nodes' spike file, configs, the report
    inp = libsonata.SpikeReader(str(tmp_path / "b" / "inputs" / "ext_spikes.h5"))
    assert inp.get_population_names() == ["ext"] and len(inp["ext"].get()) > 0
    sim = libsonata.SimulationConfig.from_file(str(tmp_path / "b" / "simulation_config.json"))
    assert sim.list_report_names == {"membrane_potential"} and sim.input("ext_spikes").module.name == "synapse_replay"
    circuit = libsonata.CircuitConfig.from_file(str(tmp_path / "b" / "circuit_config.json"))
    assert circuit.node_populations == {"net", "ext"}
    rep = libsonata.ElementReportReader(str(tmp_path / "b" / "out" / "membrane_potential.h5"))["net"]
    assert rep.get_node_ids() == [0, 1, 5]
    # the report travels too: same node ids, same potentials
    with h5py.File(tmp_path / "a" / "out" / "membrane_potential.h5") as f, \
            h5py.File(tmp_path / "b" / "out" / "membrane_potential.h5") as g:
        assert np.array_equal(f["report/net/mapping/node_ids"][()], g["report/net/mapping/node_ids"][()])
        assert np.array_equal(f["report/net/data"][()], g["report/net/data"][()])


def test_libsonata_reads_spikes_and_report(tmp_path):
    """A report written by default is float32, the only kind libsonata's report reader opens."""
    libsonata = pytest.importorskip("libsonata")
    cfg = make_circuit(tmp_path)
    p = run_cli(["run", cfg, "-q"])
    assert p.returncode == 0, p.stderr
    spikes = libsonata.SpikeReader(str(tmp_path / "out" / "spikes.h5"))
    assert spikes.get_population_names() == ["net"] and len(spikes["net"].get()) > 0
    rep = libsonata.ElementReportReader(str(tmp_path / "out" / "membrane_potential.h5"))["net"]
    assert rep.get_node_ids() == [0, 1, 5] and rep.time_units == "ms" and rep.data_units == "mV"
    frame = rep.get()
    assert frame.data.shape == (1201, 3) and frame.times[-1] == pytest.approx(60.0)


def test_report_float64_on_request(tmp_path):
    """``"dtype": "float64"`` keeps bmtk's precision (libsonata cannot read it; h5py and bmtk can)."""
    cfg = make_circuit(tmp_path)
    c = json.loads(cfg.read_text())
    c["reports"]["membrane_potential"]["dtype"] = "float64"
    cfg.write_text(json.dumps(c))
    p = run_cli(["run", cfg, "-q"])
    assert p.returncode == 0, p.stderr
    with h5py.File(tmp_path / "out" / "membrane_potential.h5") as f:
        assert f["report/net/data"].dtype == np.float64 and f["report/net/data"].shape == (1201, 3)
