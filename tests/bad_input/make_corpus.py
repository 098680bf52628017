#!/usr/bin/env python3
"""Generate the bad-input corpus: every file is written by this script, no opaque blobs.

Usage: python tests/bad_input/make_corpus.py OUTDIR [--table]

OUTDIR/<case>/ holds one broken model (a LEMS file or a SONATA circuit) and
OUTDIR/cases.json lists, per case, the command arguments (relative to the case folder),
the exit code nmlsim must give and a phrase its one-line error must contain.
``--table`` prints the markdown table of docs/errors.md.
tests/integration/test_bad_corpus.py runs every case.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

LEMS_HEAD = """<Lems>
<Target component="sim1"/>
<Include file="Simulation.xml"/>
<Include file="Networks.xml"/>
<Include file="Cells.xml"/>
<Include file="Inputs.xml"/>
"""
GOOD_CELL = '<iafCell id="c" leakReversal="-70mV" thresh="-50mV" reset="-70mV" C="100pF" leakConductance="10nS"/>'
HH_CELL = ('<cell id="hh"><morphology id="m"><segment id="0"><proximal x="0" y="0" z="0" diameter="10"/>'
           '<distal x="0" y="0" z="0" diameter="10"/></segment></morphology><biophysicalProperties id="b">'
           '<membraneProperties><channelDensity id="d" ionChannel="ch" condDensity="1mS_per_cm2" erev="50mV" '
           'ion="na"/><spikeThresh value="0mV"/><specificCapacitance value="1uF_per_cm2"/>'
           '<initMembPotential value="-65mV"/></membraneProperties><intracellularProperties>'
           '<resistivity value="0.1kohm_cm"/></intracellularProperties></biophysicalProperties></cell>')
SIM = ('<Simulation id="sim1" length="10ms" step="0.1ms" target="net">'
       '<OutputFile id="of" fileName="v.dat"><OutputColumn id="v" quantity="p[0]/v"/></OutputFile></Simulation>')


def lems(body):
    return LEMS_HEAD + body + SIM + "\n</Lems>\n"


def net(comp="c"):
    return f'<network id="net"><population id="p" component="{comp}" size="1"/></network>'


#: name -> (LEMS text, phrase, exit code, what it exercises)
LEMS_CASES = {
    "malformed": (lems(GOOD_CELL + net()).replace("</network>", "</netwrk>"), "malformed XML", 2,
                  "mismatched tag"),
    "truncated": (lems(GOOD_CELL + net())[:300], "malformed XML", 2, "file cut short"),
    "neuroml_not_lems": ('<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="d">' + GOOD_CELL + "</neuroml>\n",
                         "run the LEMS file that includes it", 3, "a NeuroML document of cells run as a simulation"),
    "billion_laughs": ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
                       '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
                       '<Lems>&lol2;</Lems>\n', "entities are not allowed", 2, "entity expansion"),
    "xxe": ('<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<Lems>&x;</Lems>\n',
            "entities are not allowed", 2, "external entity"),
    "dtd_fetch": ('<?xml version="1.0"?>\n<!DOCTYPE Lems SYSTEM "http://example.com/lems.dtd">\n<Lems/>\n',
                  "not allowed", 2, "DTD fetching"),
    "include_escape": (lems('<Include file="../../../../../../../../etc/passwd"/>' + GOOD_CELL + net()),
                       "outside the model folder", 2, "include leaving the model folder"),
    "include_absolute": (lems('<Include file="/etc/passwd"/>' + GOOD_CELL + net()), "absolute include", 2,
                         "absolute include path"),
    "include_missing": (lems('<Include file="nothere.nml"/>' + GOOD_CELL + net()), "not found", 2,
                        "missing include"),
    "unknown_type": (lems('<fooCell id="c" a="1"/>' + net()), "unknown component type 'fooCell'", 3,
                     "unknown component type"),
    "unknown_type_attr": (lems('<ionChannelHH id="ch" conductance="10pS"><gateHHrates id="m" instances="1">'
                               '<forwardRate type="noSuchRate"/><reverseRate type="HHExpRate" rate="1per_ms" '
                               'midpoint="0mV" scale="10mV"/></gateHHrates></ionChannelHH>' + HH_CELL + net("hh")),
                          "unknown component type 'noSuchRate'", 3, "type= naming no ComponentType"),
    "bad_unit": (lems(GOOD_CELL.replace('C="100pF"', 'C="100 pFF"') + net()), "unknown unit 'pFF'", 3,
                 "unknown unit"),
    "wrong_dimension": (lems(GOOD_CELL.replace('C="100pF"', 'C="100mV"') + net()), "expected capacitance", 3,
                        "mismatched units"),
    "missing_reference": (lems(GOOD_CELL + net("nope")), "unknown component 'nope'", 3, "missing reference"),
    "bad_expression": (lems('<ComponentType name="bad" extends="baseCell"><Dynamics>'
                            '<StateVariable name="x" dimension="none"/>'
                            '<TimeDerivative variable="x" value="x +* 2"/></Dynamics></ComponentType>'
                            '<bad id="c"/>' + net()).replace("p[0]/v", "p[0]/x"), "x +* 2", 3,
                       "unparsable expression"),
    "circular_derived": (lems('<ComponentType name="circ" extends="baseCell"><Dynamics>'
                              '<DerivedVariable name="a" dimension="none" value="b + 1"/>'
                              '<DerivedVariable name="b" dimension="none" value="a * 2"/>'
                              '</Dynamics></ComponentType><circ id="c"/>' + net()).replace("p[0]/v", "p[0]/a"),
                         "circle", 3, "circular derived variables"),
    "bad_quantity_path": (lems(GOOD_CELL + net()).replace("p[0]/v", "p[0]/nosuch"), "no variable 'nosuch'", 3,
                          "recording a variable that does not exist"),
    "cell_out_of_range": (lems(GOOD_CELL + net()).replace("p[0]/v", "p[5]/v"), "out of range", 3,
                          "recording a cell that does not exist"),
    "absurd_size": (lems(GOOD_CELL + net().replace('size="1"', 'size="1e12"')), "outside 0..", 3,
                    "population of 10^12 cells (refused before allocating)"),
    "seed_negative": (lems(GOOD_CELL + net()).replace('target="net">', 'target="net" seed="-1">'),
                      "seed '-1' is not an integer", 3, "Simulation seed -1"),
    "seed_text": (lems(GOOD_CELL + net()).replace('target="net">', 'target="net" seed="abc">'),
                  "seed 'abc' is not an integer", 3, "Simulation seed that is not a number"),
    "step_absurd": (lems(GOOD_CELL + net()).replace('step="0.1ms"', 'step="1e-300ms"'),
                    "check the units of the length and step", 3, "10^298 steps (refused, not run forever)"),
    "length_zero": (lems(GOOD_CELL + net()).replace('length="10ms"', 'length="0ms"'),
                    "simulated time must be positive", 3, "Simulation of length 0"),
    "duplicate_output_file": (lems(GOOD_CELL + net()).replace(
        "</OutputFile>", '</OutputFile><OutputFile id="of2" fileName="v.dat"><OutputColumn id="v" '
        'quantity="p[0]/v"/></OutputFile>'), "two outputs write the file 'v.dat'", 3,
        "two OutputFiles of one file name (one would be lost)"),
    "output_not_a_file": (lems(GOOD_CELL + net()).replace('fileName="v.dat"', 'fileName="."'),
                          "does not name a file", 3, "OutputFile fileName '.'"),
    "empty_quantity": (lems(GOOD_CELL + net()).replace('quantity="p[0]/v"', 'quantity=""'),
                       "without a quantity", 3, "OutputColumn quantity ''"),
    "spaced_quantity": (lems(GOOD_CELL + net()).replace('quantity="p[0]/v"', 'quantity="p[ 0 ]/v"'),
                        "cannot record 'p[ 0 ]/v'", 3, "a quantity path run cannot resolve (validate rejects it too)"),
    "fractional_size": (lems(GOOD_CELL + net().replace('size="1"', 'size="1.5"')), "not a whole number", 3,
                        "population size 1.5"),
    "duplicate_projection": (lems(GOOD_CELL + '<expOneSynapse id="s" gbase="1nS" erev="0mV" tauDecay="2ms"/>'
                                  + net().replace("</network>", "".join(
                                      '<projection id="pr" presynapticPopulation="p" postsynapticPopulation="p" '
                                      'synapse="s"/>' for _ in range(2)) + "</network>")),
                             "two <projection> elements with the id 'pr'", 3, "two projections of one id"),
    "output_escape": (lems(GOOD_CELL + net()).replace('fileName="v.dat"', 'fileName="../../../escaped.dat"'),
                      "lies outside", 2, "OutputFile fileName leaving the run folder (not written)"),
    "output_absolute": (lems(GOOD_CELL + net()).replace('fileName="v.dat"', 'fileName="/tmp/nmlsim_escaped.dat"'),
                        "lies outside", 2, "OutputFile fileName absolute (not written)"),
    "not_xml": ("this is not xml at all", "not an XML file", 2, "not XML"),
    "wrong_root": ('<html><body/></html>', "neither <Lems> nor <neuroml>", 2, "wrong root element"),
}


def _types(path, header, rows):
    path.write_text(" ".join(header) + "\n" + "".join(" ".join(map(str, r)) + "\n" for r in rows))


def sonata_circuit(d: Path):
    """A small valid SONATA point circuit (3 NEST cells, 2 virtual inputs); returns the config."""
    (d / "network").mkdir(parents=True)
    (d / "models").mkdir()
    (d / "models" / "cell.json").write_text(json.dumps({"C_m": 250.0, "tau_m": 10.0}))
    (d / "models" / "syn.json").write_text("{}")
    _types(d / "network" / "cells_types.csv", ["node_type_id", "model_type", "model_template", "dynamics_params"],
           [[10, "point_neuron", "nest:iaf_psc_alpha", "cell.json"]])
    _types(d / "network" / "ext_types.csv", ["node_type_id", "model_type"], [[1, "virtual"]])
    _types(d / "network" / "edge_types.csv", ["edge_type_id", "model_template", "dynamics_params", "delay"],
           [[5, "static_synapse", "syn.json", 1.5]])
    import h5py
    with h5py.File(d / "network" / "cells_nodes.h5", "w") as f:
        g = f.create_group("nodes/cells")
        g["node_id"] = np.arange(3, dtype=np.uint64)
        g["node_type_id"] = np.full(3, 10, dtype=np.uint64)
        g["node_group_id"] = np.zeros(3, dtype=np.uint32)
        g["node_group_index"] = np.arange(3, dtype=np.uint64)
        g.create_group("0")
    with h5py.File(d / "network" / "ext_nodes.h5", "w") as f:
        g = f.create_group("nodes/ext")
        g["node_type_id"] = np.ones(2, dtype=np.uint64)
        g.create_group("0")
    with h5py.File(d / "network" / "edges.h5", "w") as f:
        g = f.create_group("edges/ext_to_cells")
        g["source_node_id"] = np.array([0, 1, 1], dtype=np.uint64)
        g["source_node_id"].attrs["node_population"] = "ext"
        g["target_node_id"] = np.array([0, 1, 2], dtype=np.uint64)
        g["target_node_id"].attrs["node_population"] = "cells"
        g["edge_type_id"] = np.full(3, 5, dtype=np.uint32)
        g["edge_group_id"] = np.zeros(3, dtype=np.uint16)
        g["edge_group_index"] = np.arange(3, dtype=np.uint32)
        g["0/syn_weight"] = np.full(3, 500.0)
    with h5py.File(d / "spikes_in.h5", "w") as f:
        f["spikes/ext/node_ids"] = np.array([0, 1], dtype=np.uint64)
        f["spikes/ext/timestamps"] = np.array([5.0, 7.0])
    circuit = {"manifest": {"$NET": "${configdir}/network"},
               "components": {"point_neuron_models_dir": "${configdir}/models",
                              "synaptic_models_dir": "${configdir}/models"},
               "networks": {"nodes": [{"nodes_file": "$NET/cells_nodes.h5", "node_types_file": "$NET/cells_types.csv"},
                                      {"nodes_file": "$NET/ext_nodes.h5", "node_types_file": "$NET/ext_types.csv"}],
                            "edges": [{"edges_file": "$NET/edges.h5", "edge_types_file": "$NET/edge_types.csv"}]}}
    sim = {"run": {"tstop": 20.0, "dt": 0.1}, "network": "circuit_config.json",
           "inputs": {"ext": {"input_type": "spikes", "module": "sonata", "input_file": "spikes_in.h5",
                              "node_set": "ext"}},
           "output": {"output_dir": "out", "spikes_file": "spikes.h5"}}
    (d / "circuit_config.json").write_text(json.dumps(circuit))
    (d / "simulation_config.json").write_text(json.dumps(sim))
    return d / "simulation_config.json"


def _h5_edit(path, fn):
    import h5py
    with h5py.File(path, "a") as f:
        fn(f)


def _replace_ds(g, name, data):
    attrs = dict(g[name].attrs)
    del g[name]
    ds = g.create_dataset(name, data=data)
    for k, v in attrs.items():
        ds.attrs[k] = v


def _json_edit(path, fn):
    c = json.loads(path.read_text())
    fn(c)
    path.write_text(json.dumps(c))


#: name -> (edit(case folder), phrase, exit code, what it exercises)
SONATA_CASES = {
    "sonata_missing_dataset": (lambda d: _h5_edit(d / "network" / "cells_nodes.h5",
                                                  lambda f: f["nodes/cells"].__delitem__("node_type_id")),
                               "missing dataset /nodes/cells/node_type_id", 2, "HDF5 dataset missing"),
    "sonata_length_mismatch": (lambda d: _h5_edit(d / "network" / "edges.h5", lambda f: _replace_ds(
        f["edges/ext_to_cells"], "target_node_id", np.array([0, 1], dtype=np.uint64))), "rows, expected 3", 2,
        "datasets of different lengths"),
    "sonata_wrong_dtype": (lambda d: _h5_edit(d / "network" / "cells_nodes.h5", lambda f: _replace_ds(
        f["nodes/cells"], "node_type_id", np.full(3, 10.0))), "has dtype float64", 2, "float where ids are due"),
    "sonata_id_out_of_range": (lambda d: _h5_edit(d / "network" / "edges.h5", lambda f: f[
        "edges/ext_to_cells/target_node_id"].__setitem__(0, 99)), "target node id 99 out of range", 2,
        "edge to a node that does not exist"),
    "sonata_spike_id_out_of_range": (lambda d: _h5_edit(d / "spikes_in.h5", lambda f: f[
        "spikes/ext/node_ids"].__setitem__(0, 7)), "node id 7, out of range", 2, "input spike for a missing node"),
    "sonata_unknown_template": (lambda d: (d / "network" / "cells_types.csv").write_text(
        (d / "network" / "cells_types.csv").read_text().replace("nest:iaf_psc_alpha", "nest:iaf_psc_beta")),
        "nest:iaf_psc_beta", 4, "unknown model_template"),
    "sonata_unknown_nest_parameter": (lambda d: (d / "models" / "cell.json").write_text('{"tau_x": 3}'),
                                      "parameter 'tau_x'", 4, "NEST parameter nmlsim does not model"),
    "sonata_path_outside": (lambda d: _json_edit(d / "circuit_config.json", lambda c: c["networks"]["nodes"][0]
                                                 .__setitem__("nodes_file", "/etc/passwd")),
                            "outside the model folder", 2, "config path leaving the folder"),
    "sonata_dynamics_outside": (lambda d: (d / "network" / "cells_types.csv").write_text(
        (d / "network" / "cells_types.csv").read_text().replace("cell.json", "../../../../../etc/hostname")),
        "outside the model folder", 2, "component path leaving the folder"),
    "sonata_bad_json": (lambda d: (d / "circuit_config.json").write_text("{ not json"), "malformed JSON", 2,
                        "malformed JSON"),
    "sonata_not_hdf5": (lambda d: (d / "network" / "edges.h5").write_text("plain text"), "cannot open as HDF5", 2,
                        "not an HDF5 file"),
    "sonata_unknown_node_set": (lambda d: _json_edit(d / "simulation_config.json", lambda c: c["inputs"]["ext"]
                                                     .__setitem__("node_set", "nobody")),
                                "unknown node set 'nobody'", 3, "node set that does not exist"),
    "sonata_bad_types_row": (lambda d: (d / "network" / "cells_types.csv").write_text(
        (d / "network" / "cells_types.csv").read_text() + "11 point_neuron\n"), "2 columns, header has 4", 2,
        "short row in a types CSV"),
    "sonata_weight_nan": (lambda d: _h5_edit(d / "network" / "edges.h5", lambda f: _replace_ds(
        f["edges/ext_to_cells/0"], "syn_weight", np.full(len(f["edges/ext_to_cells/0/syn_weight"]), np.nan))),
        "syn_weight of edge 0 is nan", 2, "NaN synaptic weights"),
    "sonata_delay_negative": (lambda d: (d / "network" / "edge_types.csv").write_text(
        (d / "network" / "edge_types.csv").read_text().replace(" 1.5", " -1.5")), "(negative)", 2,
        "a negative delay"),
    "sonata_types_not_utf8": (lambda d: (d / "network" / "cells_types.csv").write_bytes(
        (d / "network" / "cells_types.csv").read_bytes() + b"\xff\xfe\n"), "not a UTF-8 text file", 2,
        "a non-UTF-8 byte in a types CSV (names that file)"),
    "sonata_types_fifo": (lambda d: ((d / "network" / "cells_types.csv").unlink(),
                                     os.mkfifo(d / "network" / "cells_types.csv")),
                          "not a regular file", 2, "a FIFO as types file (would block forever)"),
    "sonata_types_folder": (lambda d: _json_edit(d / "circuit_config.json", lambda c: c["networks"]["nodes"][0]
                                                 .__setitem__("node_types_file", "${configdir")),
                            "is a folder, not a file", 2, "node_types_file '${configdir' (a folder)"),
    "sonata_spikes_file_bool": (lambda d: _json_edit(d / "simulation_config.json", lambda c: c["output"]
                                                     .__setitem__("spikes_file", True)),
                                "output.spikes_file: expected a path", 2, "spikes_file: true"),
    "sonata_output_dir_number": (lambda d: _json_edit(d / "simulation_config.json", lambda c: c["output"]
                                                      .__setitem__("output_dir", -1)),
                                 "output.output_dir: expected a path", 2, "output_dir: -1 (found by the fuzzer)"),
    "sonata_duplicate_edge_type": (lambda d: (d / "network" / "edge_types.csv").write_text(
        (d / "network" / "edge_types.csv").read_text() + "5 static_synapse syn.json 2.5\n"),
        "edge_type_id 5 is defined twice", 2, "two rows of one edge type"),
    "sonata_group_index_huge": (lambda d: _h5_edit(d / "network" / "cells_nodes.h5", lambda f: _replace_ds(
        f["nodes/cells"], "node_group_index", np.array([0, 1, 2 ** 40], dtype=np.uint64))),
        "node_group_index 1099511627776 out of range", 2, "node_group_index 2^40"),
    "sonata_output_outside": (lambda d: _json_edit(d / "simulation_config.json", lambda c: c["output"]
                                                   .__setitem__("spikes_file", "../../../escaped.h5")),
                              "lies outside", 2, "spikes_file leaving the config's folder (not written)"),
    "sonata_seed_negative": (lambda d: _json_edit(d / "simulation_config.json", lambda c: c["run"]
                                                  .__setitem__("seed", -1)),
                             "seed -1 is not an integer", 2, "run.seed -1"),
    "sonata_dt_absurd": (lambda d: _json_edit(d / "simulation_config.json", lambda c: c["run"]
                                              .__setitem__("dt", 1e-300)),
                         "check the units", 2, "run.dt 1e-300 ms (10^300 steps)"),
    "sonata_manifest_loop": (lambda d: _json_edit(d / "circuit_config.json", lambda c: c["manifest"].update(
        {"$A": "$B/x", "$B": "${A}/y"})), "in a loop: $A -> $B -> $A", 2,
        "manifest variables naming each other (was: out of memory)"),
    "sonata_delay_zero": (lambda d: (d / "network" / "edge_types.csv").write_text(
        (d / "network" / "edge_types.csv").read_text().replace(" 1.5", " 0")), "below the time step 0.1 ms", 2,
        "a zero delay onto NEST cells (NEST refuses it)"),
    "sonata_spike_time_negative": (lambda d: _h5_edit(d / "spikes_in.h5", lambda f: f[
        "spikes/ext/timestamps"].__setitem__(0, -5.0)), "a spike at -5 ms, before the run starts", 3,
        "an input spike before time 0"),
}


def generate(out: Path) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cases = {}
    for name, (text, phrase, code, what) in LEMS_CASES.items():
        d = out / name / "a" / "b" / "model"  # deep enough that ../../.. stays inside the tree
        d.mkdir(parents=True, exist_ok=True)
        (d / "LEMS_bad.xml").write_text(text)
        cases[name] = {"dir": f"{name}/a/b/model", "args": ["run", "LEMS_bad.xml", "--outdir", "out"],
                       "file": "LEMS_bad.xml", "code": code, "phrase": phrase, "what": what, "output": "out/v.dat"}
    for name, (edit, phrase, code, what) in SONATA_CASES.items():
        d = out / name
        sonata_circuit(d)
        edit(d)
        cases[name] = {"dir": name, "args": ["run", "simulation_config.json"], "file": "", "code": code,
                       "phrase": phrase, "what": what, "output": "out/spikes.h5"}
    (out / "cases.json").write_text(json.dumps(cases, indent=1))
    return cases


def table(cases: dict) -> str:
    rows = ["| case | what | exit | the error says |", "|---|---|---|---|"]
    for name, c in cases.items():
        rows.append(f"| `{name}` | {c['what']} | {c['code']} | {c['phrase']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cs = generate(Path(sys.argv[1]))
    if "--table" in sys.argv:
        print(table(cs))
    else:
        print(f"wrote {len(cs)} cases under {sys.argv[1]}")
