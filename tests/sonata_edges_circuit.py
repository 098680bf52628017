"""A SONATA circuit with synapses on biophysical cells, built from the SONATA corpus case
sonata_5_cells_iclamp_nml (its 5 Allen cells, templates and SWC files): a virtual population of 12
nodes with a spike file drives the cells through exp2syn edges of two kinds — one edge population
with ``afferent_section_id``/``afferent_section_pos`` (preselected points inside sections), one with
``nsyns`` and edge types' ``target_sections``/``distance_range`` (bmtk draws the points) — and
inhibitory recurrent edges between the cells (drawn points); a current clamp from 300 ms.

``build(out, tstop)`` writes it (deterministic); ``scripts/bmtk_reference.py`` runs it in bmtk BioNet
(the reference in tests/data/sonata_edges was made so, bmtk 1.2.0 + NEURON 9.0.2, 150 ms)."""
import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np

CASE_NAME = "sonata_5_cells_iclamp_nml"
N_EXT = 12


def _nodes(path, pop, n, type_id):
    with h5py.File(path, "w") as f:
        g = f.create_group(f"nodes/{pop}")
        g["node_id"] = np.arange(n, dtype=np.uint64)
        g["node_type_id"] = np.full(n, type_id, dtype=np.uint64)
        g["node_group_id"] = np.zeros(n, dtype=np.uint32)
        g["node_group_index"] = np.arange(n, dtype=np.uint64)
        g.create_group("0")


def _edges(path, pop, src_pop, tgt_pop, src, tgt, etype, cols, sizes):
    order = np.lexsort((src, tgt))  # by target, then source (as bmtk's builder writes them)
    src, tgt, etype = src[order], tgt[order], etype[order]
    n = len(src)
    with h5py.File(path, "w") as f:
        g = f.create_group(f"edges/{pop}")
        g["source_node_id"] = src.astype(np.uint64)
        g["source_node_id"].attrs["node_population"] = src_pop
        g["target_node_id"] = tgt.astype(np.uint64)
        g["target_node_id"].attrs["node_population"] = tgt_pop
        g["edge_type_id"] = etype.astype(np.uint32)
        g["edge_group_id"] = np.zeros(n, dtype=np.uint32)
        g["edge_group_index"] = np.arange(n, dtype=np.uint64)
        g0 = g.create_group("0")
        for k, v in cols.items():
            g0[k] = np.asarray(v)[order]
        for direction, ids, size in (("target_to_source", tgt, sizes[1]), ("source_to_target", src, sizes[0])):
            ranges, n2r = [], np.zeros((size, 2), dtype=np.uint64)
            for node in range(size):
                start = len(ranges)
                for e in np.nonzero(ids == node)[0]:
                    if ranges and ranges[-1][1] == e and start < len(ranges):
                        ranges[-1][1] = e + 1
                    else:
                        ranges.append([e, e + 1])
                n2r[node] = [start, len(ranges)] if len(ranges) > start else [0, 0]
            ig = g.create_group(f"indices/{direction}")
            ig["node_id_to_ranges"] = n2r
            ig["node_id_to_range"] = n2r  # the name bmtk 1.2 reads
            ig["range_to_edge_id"] = np.array(ranges, dtype=np.uint64).reshape(-1, 2)


def build(out: Path, case: Path, tstop: float = 150.0) -> Path:
    """Write the circuit into ``out`` (replaced); returns its config.json."""
    from nmlsim.io import sonata_biophys as B
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(case, out, ignore=shutil.ignore_patterns("ref", "upstream_output", "output"))
    rng = np.random.default_rng(7)
    net = out / "network"
    types = {r["node_type_id"]: r for r in csv.DictReader(open(net / "biophysical_node_types.csv"), delimiter=" ")}
    with h5py.File(net / "biophysical_nodes.h5") as f:
        tids = f["nodes/biophysical/node_type_id"][()]
    nsec = []
    for tid in tids:
        m = types[str(tid)]["morphology"]
        nsec.append(len(B.load_swc_sections(out / "components" / "morphologies" / (m if m.endswith(".swc")
                                                                                 else m + ".swc"))))
    _nodes(net / "ext_nodes.h5", "ext", N_EXT, 900)
    (net / "ext_node_types.csv").write_text("node_type_id model_type\n900 virtual\n")
    src = np.concatenate([rng.choice(N_EXT, 4, replace=False) for _ in range(5)])
    tgt = np.repeat(np.arange(5), 4)
    sec = np.array([rng.integers(0, nsec[t]) for t in tgt], dtype=np.int64)
    # inside the sections: NEURON puts a point at x = 0 or 1 on a section's end node, which
    # nmlsim does not have (docs/features.md)
    pos = rng.choice([0.13, 0.31, 0.5, 0.77, 0.92], len(tgt))
    _edges(net / "ext_sel_edges.h5", "ext_to_bio_sel", "ext", "biophysical", src, tgt, np.full(len(src), 100),
           {"syn_weight": rng.uniform(0.002, 0.006, len(tgt)), "afferent_section_id": sec,
            "afferent_section_pos": pos}, (N_EXT, 5))
    src = np.concatenate([rng.choice(N_EXT, 6, replace=False) for _ in range(5)])
    tgt = np.repeat(np.arange(5), 6)
    _edges(net / "ext_rand_edges.h5", "ext_to_bio_rand", "ext", "biophysical", src, tgt,
           rng.choice([101, 102], len(src)),
           {"syn_weight": rng.uniform(0.001, 0.004, len(src)), "nsyns": rng.integers(1, 4, len(src))}, (N_EXT, 5))
    _edges(net / "bio_bio_edges.h5", "bio_to_bio", "biophysical", "biophysical", np.array([3, 4, 3, 0, 1]),
           np.arange(5), np.full(5, 103), {"syn_weight": np.full(5, 0.004), "nsyns": np.array([2, 1, 3, 2, 1])},
           (5, 5))
    (net / "edge_types.csv").write_text(
        "edge_type_id model_template dynamics_params delay target_sections distance_range\n"
        "100 exp2syn AMPA.json 2.0 NULL NULL\n"
        "101 exp2syn AMPA.json 1.5 \"['basal','apical']\" \"[0.0,150.0]\"\n"
        "102 exp2syn AMPA.json 1.0 \"['somatic','basal']\" \"[0.0,50.0]\"\n"
        "103 exp2syn GABA.json 2.5 \"['somatic','basal']\" \"[0.0,100.0]\"\n")
    syn = out / "components" / "synaptic_models"
    syn.mkdir(parents=True, exist_ok=True)
    (syn / "AMPA.json").write_text(json.dumps({"level_of_detail": "exp2syn", "tau1": 0.25, "tau2": 2.5, "erev": 0.0}))
    (syn / "GABA.json").write_text(json.dumps({"level_of_detail": "exp2syn", "tau1": 0.5, "tau2": 8.0,
                                               "erev": -75.0}))
    times, ids = [], []
    for i in range(N_EXT):
        # off the 0.1 ms grid and off its midpoints: NEURON delivers an event at the step
        # boundary nearest its time, and a time at a midpoint is decided by rounding
        t = np.unique(np.round(rng.uniform(50, 980, rng.integers(15, 30)), 1)) + 0.03
        t = t[t < tstop]
        times.append(t)
        ids.append(np.full(len(t), i))
    times, ids = np.concatenate(times), np.concatenate(ids)
    o = np.argsort(times, kind="stable")
    (out / "inputs").mkdir(exist_ok=True)
    with h5py.File(out / "inputs" / "ext_spikes.h5", "w") as f:
        g = f.create_group("spikes/ext")
        g["timestamps"] = times[o]
        g["node_ids"] = ids[o].astype(np.uint64)
        g.attrs["sorting"] = "by_time"
    circ = json.loads((out / "circuit_config.json").read_text())
    circ["components"]["synaptic_models_dir"] = "$COMPONENT_DIR/synaptic_models"
    circ["networks"]["nodes"].append({"nodes_file": "$NETWORK_DIR/ext_nodes.h5",
                                      "node_types_file": "$NETWORK_DIR/ext_node_types.csv"})
    circ["networks"]["edges"] = [{"edges_file": f"$NETWORK_DIR/{f}", "edge_types_file": "$NETWORK_DIR/edge_types.csv"}
                                 for f in ("ext_sel_edges.h5", "ext_rand_edges.h5", "bio_bio_edges.h5")]
    (out / "circuit_config.json").write_text(json.dumps(circ, indent=2))
    sim = json.loads((out / "simulation_config.json").read_text())
    sim["run"]["tstop"] = tstop
    sim["inputs"] = {"ext_spikes": {"input_type": "spikes", "module": "sonata", "node_set": "ext",
                                    "input_file": "$INPUT_DIR/ext_spikes.h5"},
                     "current_clamp_1": {"input_type": "current_clamp", "module": "IClamp",
                                         "node_set": "biophys_cells", "amp": 0.12, "delay": 300.0,
                                         "duration": 400.0}}
    sim["reports"].pop("calcium_concentration", None)
    (out / "simulation_config.json").write_text(json.dumps(sim, indent=2))
    for name in ("node_sets.json", "node_sets.bmtk_override.json"):
        ns = json.loads((out / name).read_text())
        ns["ext"] = {"population": "ext"}
        (out / name).write_text(json.dumps(ns, indent=2))
    return out / "config.json"
