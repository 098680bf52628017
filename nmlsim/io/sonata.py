"""SONATA circuits <-> :class:`nmlsim.graph.Network` (h5py).

Written layout (``write_sonata``)::

    OUT/circuit_config.json  simulation_config.json
    OUT/network/nodes.h5  node_types.csv  edges.h5  edge_types.csv
    OUT/components/nml/<component>.nml      (one NeuroML document per cell / synapse type)

Cells are ``nml:`` templates (``model_type`` ``point_neuron`` for abstract cells and
nmlsim's NEST neurons, whose LEMS types travel in the document; ``biophysical`` for
single-compartment ``cell``s); populations read from one SONATA population keep its name
and node ids; each edge population is one projection with ``model_template``
``nml:<synapse>.nml``; current inputs become ``current_clamp`` inputs (one per distinct
amplitude, with inline node sets); spike sources become ``virtual`` populations fed by
``inputs/<population>_spikes.h5``.

Reading is :mod:`nmlsim.io.sonata_reader` (``nml:`` and ``nest:`` templates, virtual
nodes, node sets, spike and current-clamp inputs, reports).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import ModelError
from ..graph.network import Network
from ..lems.model import Component, LemsModel
from .neuroml_writer import (referenced_components, schema_element, schema_valid_slots, user_type_xml,
                             write_lems_document, write_nml_document)
from .results import _atomic_h5, _atomic_write, write_sonata_spikes
from .sonata_reader import LOCATION_COLUMNS



# ------------------------------------------------------------------------------ writing
def _write_component_doc(model: LemsModel, comp: Component, comp_dir: Path) -> str:
    """``comp`` and what it references as an ``nml:`` template; returns the template's file
    name. The components the NeuroML schema has elements for go into ``<id>.nml``, schema-valid
    (jnml -validate passes it); when there are also components of LEMS types (a custom Ca pool,
    a kinetic synapse) or user ComponentTypes, the template is ``<id>.xml``, a LEMS file with
    those that includes ``<id>.nml`` (a NeuroML file may not include a LEMS file: jnml stops)."""
    comps = referenced_components(model, [comp])
    types = user_type_xml(model, comps)
    comps, slot_types = schema_valid_slots(model, comps)
    custom = [c for c in comps if not schema_element(c)]
    plain = [c for c in comps if schema_element(c)]
    if plain or slot_types:
        write_nml_document(comp_dir / f"{comp.id}.nml", comp.id, plain, type_xml=slot_types)
    if not (custom or types):
        return f"{comp.id}.nml"
    write_lems_document(comp_dir / f"{comp.id}.xml", custom, type_xml=types,
                        includes=[f"{comp.id}.nml"] if plain or slot_types else ())
    return f"{comp.id}.xml"


def _csv(path: Path, header: List[str], rows: List[List]) -> None:
    def w(fh):
        fh.write(" ".join(header) + "\n")
        for r in rows:
            fh.write(" ".join(str(x) for x in r) + "\n")
    _atomic_write(path, w)


def write_sonata(net: Network, outdir, *, tstop_s: float = 1.0, dt_s: float = 1e-4, seed: Optional[int] = None,
                 neuron_mechanisms: bool = False, reports: Optional[Dict[str, list]] = None) -> List[Path]:
    """Write ``net`` as a SONATA circuit plus a simulation config; returns the files written.

    ``reports``: name -> [(nmlsim population, cell index)...], membrane-potential reports of
    those cells (a LEMS file's recorded ``v`` columns), one SONATA report per name and SONATA
    population, written to ``<name>.h5`` in the output folder.

    ``neuron_mechanisms``: the cells' mechanisms stand for NEURON's own mod files (a bmtk BioNet
    circuit read from SONATA), recorded as ``"nmlsim": {"mechanisms": "nmodl"}`` in the
    simulation config so that reading it back steps them so again."""
    model = net.model
    out = Path(outdir)
    comp_dir = out / "components" / "nml"
    written: List[Path] = []
    # nmlsim populations that are node types of one SONATA population (Population.origin)
    # are written back as that population; spike sources become virtual populations
    spops: Dict[str, list] = {}
    for p in net.populations.values():
        name, ids = p.origin if p.origin is not None else (p.id, np.arange(p.size))
        spops.setdefault(name, []).append((p, np.asarray(ids, dtype=np.int64)))
    idmap = {p.id: (name, ids) for name, parts in spops.items() for p, ids in parts}
    for sid, src in net.sources.items():
        idmap[sid] = (sid, np.arange(src.size))
    types: Dict[str, int] = {}
    templates: Dict[str, str] = {}
    for p in net.populations.values():
        if p.component.id not in types:
            types[p.component.id] = len(types) + 100
            templates[p.component.id] = _write_component_doc(model, p.component, comp_dir)
    def model_type(comp):
        return "biophysical" if model.is_a(model.type_of(comp), "cell") else "point_neuron"
    node_rows = [[tid, model_type(model.components[cid]), f"nml:{templates[cid]}", cid] for cid, tid in types.items()]
    virtual_tid = 1
    if net.sources:
        node_rows.append([virtual_tid, "virtual", "NULL", "virtual"])
    _csv(out / "network" / "node_types.csv", ["node_type_id", "model_type", "model_template", "pop_name"], node_rows)

    def nodes(f):
        for name, parts in spops.items():
            n = sum(len(ids) for _, ids in parts)
            tids = np.zeros(n, dtype=np.uint64)
            for p, ids in parts:
                tids[ids] = types[p.component.id]
            g = f.create_group(f"nodes/{name}")
            g.create_dataset("node_id", data=np.arange(n, dtype=np.uint64))
            g.create_dataset("node_type_id", data=tids)
            g.create_dataset("node_group_id", data=np.zeros(n, dtype=np.uint32))
            g.create_dataset("node_group_index", data=np.arange(n, dtype=np.uint64))
            grp = g.create_group("0")
            if all(p.positions is not None for p, _ in parts):
                pos = np.zeros((n, 3))
                for p, ids in parts:
                    pos[ids] = p.positions
                for k, ax in enumerate("xyz"):
                    grp.create_dataset(ax, data=pos[:, k].astype(float))
        for sid, src in net.sources.items():
            g = f.create_group(f"nodes/{sid}")
            g.create_dataset("node_id", data=np.arange(src.size, dtype=np.uint64))
            g.create_dataset("node_type_id", data=np.full(src.size, virtual_tid, dtype=np.uint64))
            g.create_dataset("node_group_id", data=np.zeros(src.size, dtype=np.uint32))
            g.create_dataset("node_group_index", data=np.arange(src.size, dtype=np.uint64))
            g.create_group("0")
    _atomic_h5(out / "network" / "nodes.h5", nodes, "nodes")
    written.append(out / "network" / "nodes.h5")
    # edge populations: chemical projections, then gap junctions (bmtk's is_gap_junction
    # column) and graded synapses (nmlsim's post_model_template column: the post side's
    # component; the pre side's is model_template)
    edge_rows = []
    def doc(comp):
        if comp.id not in templates:
            templates[comp.id] = _write_component_doc(model, comp, comp_dir)
        return f"nml:{templates[comp.id]}"
    all_edges = []  # (edge pop name, pre, post, pre_idx, post_idx, weight, delay s)
    used_names = set()

    def name(base):
        nm, k = base, 1
        while nm in used_names:
            nm, k = f"{base}_{k}", k + 1
        used_names.add(nm)
        return nm
    def loc(pr):
        # where on multi-compartment cells (NeuroML segment ids and fractions along them, of the
        # cells' nml: templates): nmlsim's columns, as SONATA's afferent_section_* name NEURON's sections
        return {col: getattr(pr, attr) for col, attr in LOCATION_COLUMNS.items() if getattr(pr, attr) is not None}
    for pr in net.projections:
        edge_rows.append([len(edge_rows) + 1, doc(pr.synapse), pr.id, "False", "NONE"])
        all_edges.append((name(pr.id), pr.pre, pr.post, pr.pre_idx, pr.post_idx, pr.weight, pr.delay, loc(pr)))
    for ep in net.electrical:
        edge_rows.append([len(edge_rows) + 1, doc(ep.synapse), ep.id, "True", "NONE"])
        all_edges.append((name(ep.id), ep.pre, ep.post, ep.pre_idx, ep.post_idx, ep.weight, np.zeros(len(ep.pre_idx)),
                          loc(ep)))
    for cp in net.continuous:
        edge_rows.append([len(edge_rows) + 1, doc(cp.pre_component), cp.id, "False", doc(cp.post_component)])
        all_edges.append((name(cp.id), cp.pre, cp.post, cp.pre_idx, cp.post_idx, cp.weight, np.zeros(len(cp.pre_idx)),
                          loc(cp)))
    _csv(out / "network" / "edge_types.csv",
         ["edge_type_id", "model_template", "pop_name", "is_gap_junction", "post_model_template"], edge_rows)

    def edges(f):
        for k, (ename, pre_pop, post_pop, pre_idx, post_idx, weight, delay, where) in enumerate(all_edges):
            g = f.create_group(f"edges/{ename}")
            n = len(pre_idx)
            (pre, pre_ids), (post, post_ids) = idmap[pre_pop], idmap[post_pop]
            s = g.create_dataset("source_node_id", data=pre_ids[pre_idx].astype(np.uint64))
            s.attrs["node_population"] = pre
            t = g.create_dataset("target_node_id", data=post_ids[post_idx].astype(np.uint64))
            t.attrs["node_population"] = post
            g.create_dataset("edge_type_id", data=np.full(n, k + 1, dtype=np.uint32))
            g.create_dataset("edge_group_id", data=np.zeros(n, dtype=np.uint16))
            g.create_dataset("edge_group_index", data=np.arange(n, dtype=np.uint32))
            grp = g.create_group("0")
            grp.create_dataset("syn_weight", data=np.asarray(weight, dtype=float))
            grp.create_dataset("delay", data=np.asarray(delay, dtype=float) * 1e3)
            for col, a in where.items():
                grp.create_dataset(col, data=np.asarray(a, dtype=np.int64 if col.endswith("_id") else float))
    if all_edges:
        _atomic_h5(out / "network" / "edges.h5", edges, "edges")
        written.append(out / "network" / "edges.h5")
    # paths relative to the config's folder (libsonata does not expand ${configdir}), and the
    # populations listed with their types (libsonata's CircuitConfig finds them there)
    node_pops = {name: {"type": model_type(parts[0][0].component)} for name, parts in spops.items()}
    node_pops.update({sid: {"type": "virtual"} for sid in net.sources})
    edge_pops = {e[0]: {"type": "electrical" if k >= len(net.projections) and k < len(net.projections) +
                        len(net.electrical) else "chemical"} for k, e in enumerate(all_edges)}
    circuit = {
        "manifest": {"$NETWORK_DIR": "./network", "$COMPONENTS_DIR": "./components"},
        "components": {"point_neuron_models_dir": "$COMPONENTS_DIR/nml",
                       "biophysical_neuron_models_dir": "$COMPONENTS_DIR/nml",
                       "synaptic_models_dir": "$COMPONENTS_DIR/nml"},
        "networks": {"nodes": [{"nodes_file": "$NETWORK_DIR/nodes.h5", "node_types_file": "$NETWORK_DIR/node_types.csv",
                                "populations": node_pops}],
                     "edges": ([{"edges_file": "$NETWORK_DIR/edges.h5", "edge_types_file": "$NETWORK_DIR/edge_types.csv",
                                 "populations": edge_pops}] if all_edges else [])},
    }
    inputs = {}
    extra_inputs = {}  # nmlsim's own input type, kept apart from "inputs" (libsonata knows no "nml")
    node_sets = {}

    def node_set(pop, ids=None):
        """The name of a node set of ``ids`` of ``pop`` (all of it: None), added to node_sets.json."""
        spec = {"population": pop} if ids is None else {"population": pop, "node_id": [int(i) for i in ids]}
        for nm, have in node_sets.items():
            if have == spec:
                return nm
        nm = pop if ids is None else f"{pop}_{len(node_sets)}"
        node_sets[nm] = spec
        return nm
    for sid, src in net.sources.items():
        spath = out / "inputs" / f"{sid}_spikes.h5"
        write_sonata_spikes(spath, {sid: (src.ids, src.times)}, sort="none")
        written.append(spath)
        # libsonata's name for replaying a SONATA spike file (bmtk calls it "sonata")
        inputs[f"{sid}_spikes"] = {"input_type": "spikes", "module": "synapse_replay", "node_set": node_set(sid),
                                   "input_file": f"./inputs/{sid}_spikes.h5",  # bmtk's key, libsonata's next
                                   "spike_file": f"./inputs/{sid}_spikes.h5", "delay": 0.0, "duration": tstop_s * 1e3}
    for inp in net.inputs:
        comp = inp.component
        if model.type_of(comp) not in ("pulseGenerator", "nestStepCurrent") or inp.seg is not None:
            # no SONATA input type holds it (or its points on multi-compartment cells): nmlsim's
            # own ("input_type": "nml"), the component as an nml: document, targets, weights
            # (and segments, fractions along them) listed
            pop, node_ids = idmap[inp.population]
            key = inp.id if inp.id not in extra_inputs else f"{inp.id}_{len(extra_inputs)}"  # names its random stream
            extra_inputs[key] = {
                "input_type": "nml", "module": "nmlsim", "component": doc(comp),
                "node_set": {"population": pop, "node_id": [int(i) for i in node_ids[inp.target_idx]]},
                "weights": [float(w) for w in inp.weight]}
            if inp.seg is not None:
                extra_inputs[key]["segment_ids"] = [int(x) for x in inp.seg]
                extra_inputs[key]["fractions_along"] = [float(x) for x in (inp.frac if inp.frac is not None
                                                                            else np.full(len(inp.seg), 0.5))]
            continue
        missing = [a for a in ("amplitude", "delay", "duration") if a not in comp.attrs]
        if missing:
            raise ModelError(f"{comp.tag} '{comp.id}' has no {missing[0]}", **comp.where())
        amp = model.units.parse(comp.attrs["amplitude"], "current") * 1e9
        delay = model.units.parse(comp.attrs["delay"], "time") * 1e3
        dur = model.units.parse(comp.attrs["duration"], "time") * 1e3
        pop, node_ids = idmap[inp.population]
        for w in np.unique(inp.weight):
            ids = node_ids[inp.target_idx[inp.weight == w]]
            # libsonata's constant step ("linear" with amp_start); "amp" for bmtk's IClamp reader
            inputs[f"{inp.id}_{len(inputs)}"] = {
                "input_type": "current_clamp", "module": "linear", "amp_start": float(amp * w), "amp": float(amp * w),
                "delay": delay, "duration": dur,
                "node_set": node_set(pop, None if len(np.unique(ids)) == sum(len(x) for _, x in spops[pop])
                                     else ids)}
    # run.random_seed is required by libsonata: a model without a seed gets 0
    sim = {"manifest": {"$OUTPUT_DIR": "./output"},
           "run": {"tstop": tstop_s * 1e3, "dt": dt_s * 1e3, "random_seed": int(seed) if seed is not None else 0},
           "network": "circuit_config.json",
           "node_sets_file": "node_sets.json",
           "inputs": inputs,
           "output": {"output_dir": "$OUTPUT_DIR", "spikes_file": "spikes.h5", "spikes_sort_order": "by_time"}}
    if extra_inputs:
        sim.setdefault("nmlsim", {})["inputs"] = extra_inputs
    sim_reports = {}
    for rname, cells in (reports or {}).items():
        by_pop: Dict[str, List[int]] = {}
        for pid, i in cells:
            spop, ids = idmap[pid]
            by_pop.setdefault(spop, []).append(int(ids[i]))
        for spop, ids in by_pop.items():
            nm = rname if len(by_pop) == 1 else f"{rname}_{spop}"
            whole = sorted(set(ids)) == list(range(sum(len(x) for _, x in spops[spop])))
            # "type" for libsonata, "module" for bmtk
            sim_reports[nm] = {"cells": node_set(spop, None if whole else sorted(set(ids))), "variable_name": "v",
                               "type": "compartment", "module": "membrane_report", "sections": "soma",
                               "dt": dt_s * 1e3, "start_time": 0.0, "end_time": tstop_s * 1e3,
                               "file_name": f"{nm}.h5"}
    if sim_reports:
        sim["reports"] = sim_reports
    if neuron_mechanisms:
        sim.setdefault("nmlsim", {})["mechanisms"] = "nmodl"
    temp = net.component.attrs.get("temperature") if net.component is not None else None
    if temp:
        kelvin = model.units.parse(temp, "temperature")
        sim["conditions"] = {"celsius": round(kelvin - 273.15, 12)}
    for name, obj in (("circuit_config.json", circuit), ("node_sets.json", node_sets),
                      ("simulation_config.json", sim)):
        _atomic_write(out / name, lambda fh, obj=obj: json.dump(obj, fh, indent=1))
        written.append(out / name)
    return written


# ------------------------------------------------------------------------------ reading
def read_sonata(config_path, include_root=None):
    """Read a SONATA simulation (or circuit) config into (Network, run settings dict).

    The full reader is :mod:`nmlsim.io.sonata_reader`; this keeps the settings-dict form
    that ``convert`` uses.
    """
    from .sonata_reader import read_sonata_run
    r = read_sonata_run(config_path, include_root=include_root)
    settings = {"tstop_s": r.tstop_s, "dt_s": r.dt_s, "seed": r.seed, "output_dir": str(r.output_dir),
                "spikes_file": str(r.spikes_file), "run": r}
    return r.network, settings
