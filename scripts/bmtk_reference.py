#!/usr/bin/env python
"""Run a SONATA circuit of biophysical cells in bmtk BioNet (the reference for nmlsim's SONATA reader).

    python scripts/bmtk_reference.py CIRCUIT_DIR MECHANISMS_DIR [--node-sets FILE]

CIRCUIT_DIR holds config.json, circuit_config.json and simulation_config.json; MECHANISMS_DIR is a
folder with the circuit's NEURON mod files compiled (``nrnivmodl`` there: the Allen Cell Types mods of
AllenInstitute/sonata examples/shared_components/mechanisms plus bmtk's vecevent.mod for virtual
inputs). Writes config_bmtk.json etc. beside the originals (mechanisms_dir replaced, output into
output_bmtk/) and runs it. Needs bmtk and NEURON.
"""
import argparse
import json
import os
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("circuit_dir")
    ap.add_argument("mechanisms_dir")
    ap.add_argument("--node-sets", help="node sets file for bmtk (bmtk 1.2 cannot select by a node type "
                                        "attribute: sonata_5_cells_iclamp_nml ships node_sets.bmtk_override.json)")
    a = ap.parse_args()
    case = Path(a.circuit_dir).resolve()
    circ = json.loads((case / "circuit_config.json").read_text())
    circ["components"]["mechanisms_dir"] = str(Path(a.mechanisms_dir).resolve())
    (case / "circuit_config_bmtk.json").write_text(json.dumps(circ, indent=2))
    sim = json.loads((case / "simulation_config.json").read_text())
    sim["network"] = "$BASE_DIR/circuit_config_bmtk.json"
    if a.node_sets:
        sim["node_sets_file"] = str(Path(a.node_sets).resolve())
    sim.setdefault("manifest", {})["$OUTPUT_DIR"] = "$BASE_DIR/output_bmtk"
    (case / "simulation_config_bmtk.json").write_text(json.dumps(sim, indent=2))
    (case / "config_bmtk.json").write_text(json.dumps({"network": "./circuit_config_bmtk.json",
                                                       "simulation": "./simulation_config_bmtk.json"}))
    from bmtk.simulator import bionet
    os.chdir(case)  # the configs' $BASE_DIR is "."
    conf = bionet.Config.from_json(str(case / "config_bmtk.json"), validate=True)
    conf.build_env()
    net = bionet.BioNetwork.from_config(conf)
    bionet.BioSimulator.from_config(conf, network=net).run()


if __name__ == "__main__":
    main()
