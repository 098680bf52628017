"""SONATA circuits <-> :class:`nmlsim.graph.Network` (h5py).

Written layout (``write_sonata``)::

    OUT/circuit_config.json  simulation_config.json
    OUT/network/nodes.h5  node_types.csv  edges.h5  edge_types.csv
    OUT/components/nml/<component>.nml      (one NeuroML document per cell / synapse type)

Cells are ``nml:`` templates (``model_type`` ``point_neuron`` for abstract cells,
``biophysical`` for single-compartment ``cell``s); each edge population is one
projection with ``model_template`` ``nml:<synapse>.nml``; current inputs become
``current_clamp`` inputs (one per distinct amplitude, with inline node sets).

``read_sonata`` reads circuits that use ``nml:`` templates (those nmlsim writes, and
NeuroML point cells from other tools); other templates (``nest:``, ``nrn:``...) are named
in an :class:`UnsupportedFeature` error.
"""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import FormatError, ModelError, UnsupportedFeature
from ..graph.network import InputList, Network, Population, Projection
from ..lems.model import Component, LemsModel
from .neuroml_writer import NEUROML_HEAD, component_xml, referenced_components, schema_order
from .results import _atomic_write
from .xmlsafe import confined

SONATA_MAGIC = 0x0A7A


# ------------------------------------------------------------------------------ writing
def _write_component_doc(model: LemsModel, comp: Component, path: Path) -> None:
    comps = schema_order(referenced_components(model, [comp]))

    def w(fh):
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        fh.write(NEUROML_HEAD.format(id=f'"{comp.id}"'))
        for c in comps:
            fh.write(component_xml(c))
        fh.write("</neuroml>\n")
    _atomic_write(path, w)


def _h5_write(path: Path, fill) -> None:
    import h5py
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["magic"] = np.uint32(SONATA_MAGIC)
        f.attrs["version"] = np.array([0, 1], dtype=np.uint32)
        fill(f)
    os.replace(tmp, path)


def _csv(path: Path, header: List[str], rows: List[List]) -> None:
    def w(fh):
        fh.write(" ".join(header) + "\n")
        for r in rows:
            fh.write(" ".join(str(x) for x in r) + "\n")
    _atomic_write(path, w)


def write_sonata(net: Network, outdir, *, tstop_s: float = 1.0, dt_s: float = 1e-4, seed: Optional[int] = None
                 ) -> List[Path]:
    """Write ``net`` as a SONATA circuit plus a simulation config; returns the files written."""
    model = net.model
    if net.electrical or net.continuous:
        kind = "gap junctions (electricalProjection)" if net.electrical else "graded synapses (continuousProjection)"
        raise UnsupportedFeature(f"network '{net.id}' has {kind}, which nmlsim cannot write as SONATA yet")
    out = Path(outdir)
    comp_dir = out / "components" / "nml"
    written: List[Path] = []
    types: Dict[str, int] = {}
    for p in net.populations.values():
        if p.component.id not in types:
            types[p.component.id] = len(types) + 100
            _write_component_doc(model, p.component, comp_dir / f"{p.component.id}.nml")
    node_rows = []
    for cid, tid in types.items():
        comp = model.components[cid]
        mtype = "biophysical" if model.is_a(model.type_of(comp), "cell") else "point_neuron"
        node_rows.append([tid, mtype, f"nml:{cid}.nml", cid])
    _csv(out / "network" / "node_types.csv", ["node_type_id", "model_type", "model_template", "pop_name"], node_rows)

    def nodes(f):
        for p in net.populations.values():
            g = f.create_group(f"nodes/{p.id}")
            g.create_dataset("node_id", data=np.arange(p.size, dtype=np.uint64))
            g.create_dataset("node_type_id", data=np.full(p.size, types[p.component.id], dtype=np.uint64))
            g.create_dataset("node_group_id", data=np.zeros(p.size, dtype=np.uint32))
            g.create_dataset("node_group_index", data=np.arange(p.size, dtype=np.uint64))
            grp = g.create_group("0")
            if p.positions is not None:
                for k, ax in enumerate("xyz"):
                    grp.create_dataset(ax, data=p.positions[:, k].astype(float))
    _h5_write(out / "network" / "nodes.h5", nodes)
    edge_rows = []
    syn_ids: Dict[str, str] = {}
    for k, pr in enumerate(net.projections):
        if pr.synapse.id not in syn_ids:
            syn_ids[pr.synapse.id] = pr.synapse.id
            _write_component_doc(model, pr.synapse, comp_dir / f"{pr.synapse.id}.nml")
        edge_rows.append([k + 1, f"nml:{pr.synapse.id}.nml", pr.id])
    _csv(out / "network" / "edge_types.csv", ["edge_type_id", "model_template", "pop_name"], edge_rows)

    def edges(f):
        for k, pr in enumerate(net.projections):
            g = f.create_group(f"edges/{pr.id}")
            n = len(pr.pre_idx)
            s = g.create_dataset("source_node_id", data=pr.pre_idx.astype(np.uint64))
            s.attrs["node_population"] = pr.pre
            t = g.create_dataset("target_node_id", data=pr.post_idx.astype(np.uint64))
            t.attrs["node_population"] = pr.post
            g.create_dataset("edge_type_id", data=np.full(n, k + 1, dtype=np.uint32))
            g.create_dataset("edge_group_id", data=np.zeros(n, dtype=np.uint16))
            g.create_dataset("edge_group_index", data=np.arange(n, dtype=np.uint32))
            grp = g.create_group("0")
            grp.create_dataset("syn_weight", data=pr.weight.astype(float))
            grp.create_dataset("delay", data=pr.delay.astype(float) * 1e3)
    if net.projections:
        _h5_write(out / "network" / "edges.h5", edges)
    circuit = {
        "manifest": {"$NETWORK_DIR": "${configdir}/network", "$COMPONENTS_DIR": "${configdir}/components"},
        "components": {"point_neuron_models_dir": "$COMPONENTS_DIR/nml",
                       "biophysical_neuron_models_dir": "$COMPONENTS_DIR/nml",
                       "synaptic_models_dir": "$COMPONENTS_DIR/nml"},
        "networks": {"nodes": [{"nodes_file": "$NETWORK_DIR/nodes.h5", "node_types_file": "$NETWORK_DIR/node_types.csv"}],
                     "edges": ([{"edges_file": "$NETWORK_DIR/edges.h5", "edge_types_file": "$NETWORK_DIR/edge_types.csv"}]
                               if net.projections else [])},
    }
    inputs = {}
    for inp in net.inputs:
        comp = inp.component
        if model.type_of(comp) != "pulseGenerator":
            raise UnsupportedFeature(f"input '{comp.id}' ({model.type_of(comp)}) has no SONATA form yet; "
                                     "pulseGenerator inputs are written as current_clamp")
        amp = model.units.parse(comp.attrs["amplitude"], "current") * 1e9
        delay = model.units.parse(comp.attrs["delay"], "time") * 1e3
        dur = model.units.parse(comp.attrs["duration"], "time") * 1e3
        for w in np.unique(inp.weight):
            ids = inp.target_idx[inp.weight == w]
            inputs[f"{inp.id}_{len(inputs)}"] = {
                "input_type": "current_clamp", "module": "IClamp", "amp": float(amp * w), "delay": delay,
                "duration": dur, "node_set": {"population": inp.population, "node_id": [int(i) for i in ids]}}
    sim = {"manifest": {"$OUTPUT_DIR": "${configdir}/output"},
           "run": {"tstop": tstop_s * 1e3, "dt": dt_s * 1e3},
           "target_simulator": "nmlsim",
           "network": "circuit_config.json",
           "inputs": inputs,
           "output": {"output_dir": "$OUTPUT_DIR", "spikes_file": "spikes.h5", "spikes_sort_order": "time"}}
    if seed is not None:
        sim["run"]["seed"] = seed
    for name, obj in (("circuit_config.json", circuit), ("simulation_config.json", sim)):
        _atomic_write(out / name, lambda fh, obj=obj: json.dump(obj, fh, indent=1))
        written.append(out / name)
    return written


# ------------------------------------------------------------------------------ reading
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatError("file not found", file=path) from None
    except json.JSONDecodeError as e:
        raise FormatError(f"malformed JSON: {e.msg}", file=path, line=e.lineno) from None


def _expand(obj, variables: Dict[str, str]):
    if isinstance(obj, str):
        for _ in range(10):
            new = _VAR.sub(lambda m: variables.get(m.group(1), variables.get("$" + m.group(1), m.group(0))), obj)
            if new == obj:
                break
            obj = new
        return obj
    if isinstance(obj, dict):
        return {k: _expand(v, variables) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_expand(v, variables) for v in obj]
    return obj


def _config(path: Path, root: Path) -> dict:
    cfg = _load_json(path)
    variables = {"configdir": str(path.parent)}
    for k, v in (cfg.get("manifest") or {}).items():
        variables[k.lstrip("$")] = v
    for _ in range(10):
        variables = {k: _expand(v, variables) for k, v in variables.items()}
    cfg = _expand(cfg, variables)
    return cfg


def _path(p: str, base: Path, root: Path, what: str, cfg_path: Path) -> Path:
    q = Path(p)
    if not q.is_absolute():
        q = base / q
    return confined(q, root, file=cfg_path, what=what)


def _read_types(path: Path) -> Dict[int, dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FormatError("types file not found", file=path) from None
    rows = list(csv.reader(text.splitlines(), delimiter=" ", skipinitialspace=True))
    if not rows:
        raise FormatError("empty types file", file=path)
    header = rows[0]
    key = "node_type_id" if "node_type_id" in header else "edge_type_id"
    if key not in header:
        raise FormatError("no node_type_id/edge_type_id column", file=path, line=1)
    out = {}
    for ln, r in enumerate(rows[1:], start=2):
        if not r:
            continue
        if len(r) != len(header):
            raise FormatError(f"{len(r)} columns, header has {len(header)}", file=path, line=ln)
        d = dict(zip(header, r))
        out[int(d[key])] = d
    return out


def _dataset(g, name, path, dtype_kind="iu", length=None):
    if name not in g:
        raise FormatError(f"missing dataset {g.name}/{name}", file=path)
    d = g[name]
    if d.dtype.kind not in dtype_kind:
        raise FormatError(f"dataset {g.name}/{name} has dtype {d.dtype}, expected {'integers' if dtype_kind == 'iu' else 'numbers'}",
                          file=path)
    a = d[()]
    if length is not None and len(a) != length:
        raise FormatError(f"dataset {g.name}/{name} has {len(a)} rows, expected {length}", file=path)
    return a


def read_sonata(config_path, include_root=None):
    """Read a SONATA simulation (or circuit) config into (Network, run settings dict)."""
    import h5py

    from .lems_reader import LemsReader, core_model
    cfg_path = Path(config_path).resolve()
    root = Path(include_root).resolve() if include_root else cfg_path.parent
    cfg = _config(cfg_path, root)
    circuit = cfg
    if "network" in cfg and isinstance(cfg["network"], str):
        cpath = _path(cfg["network"], cfg_path.parent, root, "circuit config", cfg_path)
        circuit = _config(cpath, root)
    if "networks" not in circuit:
        raise FormatError("no 'networks' section (is this a SONATA circuit/simulation config?)", file=cfg_path)
    model = core_model()
    reader = LemsReader(model=model, include_root=root)
    comps = circuit.get("components", {})
    netc = Component(tag="network", id="sonata_network", file=str(cfg_path))
    net = Network(id="sonata_network", component=netc, model=model, root=netc)
    loaded: Dict[str, Component] = {}

    def nml_component(template: str, dirs: List[str], where: Path) -> Component:
        if not template.startswith("nml:"):
            raise UnsupportedFeature(f"model_template '{template}' is not supported yet (nmlsim reads nml: "
                                     "templates; NEST/NEURON templates arrive with the SONATA issue)", file=where)
        rel = template[4:]
        if rel in loaded:
            return loaded[rel]
        for d in dirs:
            if d and (Path(d) / rel).exists():
                f = _path(rel, Path(d), root, "model template", where)
                before = set(model.components)
                reader.load(f)
                new = [model.components[c] for c in model.components if c not in before]
                stem = Path(rel).stem.split(".")[0]
                comp = model.components.get(stem) or (new[-1] if new else None)
                if comp is None:
                    raise ModelError(f"'{rel}' defines no component", file=f)
                loaded[rel] = comp
                return comp
        raise FormatError(f"model template file '{rel}' not found in the components folders", file=where)

    cell_dirs = [comps.get("point_neuron_models_dir"), comps.get("biophysical_neuron_models_dir")]
    for spec in circuit["networks"].get("nodes", []):
        nfile = _path(spec["nodes_file"], cfg_path.parent, root, "nodes file", cfg_path)
        types = _read_types(_path(spec["node_types_file"], cfg_path.parent, root, "node types file", cfg_path))
        with h5py.File(nfile, "r") as f:
            if "nodes" not in f:
                raise FormatError("no /nodes group", file=nfile)
            for pop, g in f["nodes"].items():
                tids = _dataset(g, "node_type_id", nfile)
                n = len(tids)
                ids = _dataset(g, "node_id", nfile, length=n) if "node_id" in g else np.arange(n)
                if not np.array_equal(np.sort(ids), np.arange(n)):
                    raise FormatError(f"node ids of population '{pop}' are not 0..{n - 1}", file=nfile)
                utypes = np.unique(tids)
                missing = [int(t) for t in utypes if int(t) not in types]
                if missing:
                    raise FormatError(f"node_type_id {missing[0]} of population '{pop}' is not in the types file",
                                      file=nfile)
                if len(utypes) != 1:
                    raise UnsupportedFeature(f"population '{pop}' mixes {len(utypes)} node types; nmlsim reads one "
                                             "type per population so far", file=nfile)
                t = types[int(utypes[0])]
                if t.get("model_type") == "virtual":
                    raise UnsupportedFeature(f"virtual population '{pop}' (spike inputs) is not supported yet",
                                             file=nfile)
                comp = nml_component(t.get("model_template", ""), cell_dirs, nfile)
                pos = None
                if "0" in g and all(a in g["0"] for a in "xyz"):
                    pos = np.stack([g["0"][a][()] for a in "xyz"], axis=1)
                net.populations[pop] = Population(pop, comp, n, pos, None)
    for spec in circuit["networks"].get("edges", []):
        if spec.get("enabled", True) is False:
            continue
        efile = _path(spec["edges_file"], cfg_path.parent, root, "edges file", cfg_path)
        etypes = _read_types(_path(spec["edge_types_file"], cfg_path.parent, root, "edge types file", cfg_path))
        with h5py.File(efile, "r") as f:
            for epop, g in f.get("edges", {}).items():
                src = _dataset(g, "source_node_id", efile)
                n = len(src)
                tgt = _dataset(g, "target_node_id", efile, length=n)
                etid = _dataset(g, "edge_type_id", efile, length=n)
                pre = g["source_node_id"].attrs.get("node_population")
                post = g["target_node_id"].attrs.get("node_population")
                pre = pre.decode() if isinstance(pre, bytes) else pre
                post = post.decode() if isinstance(post, bytes) else post
                for name, pp, ix in (("source", pre, src), ("target", post, tgt)):
                    if pp not in net.populations:
                        raise FormatError(f"edges '{epop}': {name} population '{pp}' is unknown", file=efile)
                    if n and (ix.min() < 0 or ix.max() >= net.populations[pp].size):
                        raise FormatError(f"edges '{epop}': {name} node id {int(ix.max())} out of range "
                                          f"(population '{pp}' has {net.populations[pp].size} nodes)", file=efile)
                grp = g.get("0")
                w = grp["syn_weight"][()] if grp is not None and "syn_weight" in grp else np.ones(n)
                d = grp["delay"][()] * 1e-3 if grp is not None and "delay" in grp else np.full(n, 1e-3)
                for tid in np.unique(etid):
                    if int(tid) not in etypes:
                        raise FormatError(f"edge_type_id {int(tid)} is not in the edge types file", file=efile)
                    sel = etid == tid
                    syn = nml_component(etypes[int(tid)].get("model_template", ""), [comps.get("synaptic_models_dir")],
                                        efile)
                    net.projections.append(Projection(f"{epop}" if len(np.unique(etid)) == 1 else f"{epop}_{int(tid)}",
                                                      pre, post, syn, src[sel].astype(np.int64),
                                                      tgt[sel].astype(np.int64), np.asarray(w, float)[sel],
                                                      np.asarray(d, float)[sel]))
    run = cfg.get("run", {})
    # current clamps with the same timing on one population become one pulseGenerator
    # with per-node weights (what nmlsim writes: one clamp per distinct amplitude)
    clamps: Dict[Tuple[str, float, float], Dict[int, float]] = {}
    for name, inp in (cfg.get("inputs") or {}).items():
        if inp.get("input_type") != "current_clamp":
            raise UnsupportedFeature(f"input '{name}' of type '{inp.get('input_type')}' is not supported yet",
                                     file=cfg_path)
        ns = inp.get("node_set")
        if isinstance(ns, str):
            ns = (cfg.get("node_sets") or {}).get(ns, {"population": ns})
        pop = ns.get("population")
        if pop not in net.populations:
            raise ModelError(f"input '{name}': node set population '{pop}' is unknown", file=cfg_path)
        ids = np.asarray(ns.get("node_id", np.arange(net.populations[pop].size)), dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= net.populations[pop].size):
            raise ModelError(f"input '{name}': node id out of range for population '{pop}'", file=cfg_path)
        try:
            amp, delay, dur = float(inp["amp"]), float(inp["delay"]), float(inp["duration"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"input '{name}': current_clamp needs scalar amp, delay and duration "
                             "(lists are not supported yet)", file=cfg_path) from None
        acc = clamps.setdefault((pop, delay, dur), {})
        for i in ids:
            acc[int(i)] = acc.get(int(i), 0.0) + amp
    for k, ((pop, delay, dur), amps) in enumerate(clamps.items()):
        comp = Component(tag="pulseGenerator", id=f"sonata_clamp{k}", file=str(cfg_path),
                         attrs={"amplitude": "1nA", "delay": f"{delay!r}ms", "duration": f"{dur!r}ms"})
        model.add_component(comp)
        ids = np.array(sorted(amps), dtype=np.int64)
        net.inputs.append(InputList(f"clamp{k}", comp, pop, ids, np.array([amps[i] for i in ids])))
    settings = {"tstop_s": float(run.get("tstop", 0.0)) * 1e-3, "dt_s": float(run.get("dt", 0.1)) * 1e-3,
                "seed": run.get("seed"),
                "output_dir": (cfg.get("output") or {}).get("output_dir", str(cfg_path.parent / "output")),
                "spikes_file": (cfg.get("output") or {}).get("spikes_file", "spikes.h5")}
    return net, settings
