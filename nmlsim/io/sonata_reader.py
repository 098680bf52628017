"""SONATA circuit + simulation config -> :class:`nmlsim.graph.Network` and run settings.

What is read (details and the real tools' deviations: docs/features.md, SONATA table):

* configs: ``manifest`` variables (``$VAR``, ``${configdir}``), a top-level ``config.json``
  with ``network``/``simulation``, a simulation config naming its circuit in ``network``;
* nodes: populations with several node groups and node types; attributes from the h5
  groups and the node types CSV; per-node ``dynamics_params`` overrides; ``virtual``
  nodes become spike sources;
* cell templates ``nml:`` (NeuroML point / single-compartment cells) and ``nest:``
  (:mod:`nmlsim.io.nest_models`);
* edges: edge groups, ``syn_weight`` x ``nsyns`` (h5 over CSV), ``delay`` (h5 over CSV,
  1 ms when absent: NEST's default), ``receptor_type`` from the synapse JSON;
* node sets (file and inline): id lists, attribute queries over h5 and CSV attributes,
  compound sets, the implicit set per population;
* inputs: spike files (``/spikes/<pop>`` and the legacy ``/spikes/{gids,timestamps}``;
  modules sonata / h5 / csv), ``current_clamp`` with scalar or list amp/delay/duration and
  the csv form; reports of the membrane potential.

A node-type population is one nmlsim :class:`Population` per node type (and per distinct
per-node parameter set); ``Population.origin`` keeps the SONATA name and node ids so that
outputs use them.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import FormatError, ModelError, NmlsimError, UnsupportedFeature
from ..graph.network import (ContinuousProjection, ElectricalProjection, InputList, Network, Population,
                             Projection, SpikeSourcePopulation)
from ..lems.model import Component
from ..units import check_run_times, check_seed
from . import nest_models
from .hdf5 import open_h5
from .xmlsafe import confined

#: NEST's static_synapse delay when neither the h5 file nor the CSV gives one
DEFAULT_DELAY_MS = 1.0
_NULL = {"", "NULL", "NONE", "None", "null"}
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


# ------------------------------------------------------------------------------ configs
def read_text(path: Path, what: str = "file") -> str:
    """A text file's contents; a missing file, a folder, a FIFO or device (which would block or
    never end), or bytes that are not UTF-8 are one-line errors naming the file."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{what} not found", file=path)
    if path.is_dir():
        raise FormatError(f"{what} is a folder, not a file", file=path)
    if not path.is_file():
        raise FormatError(f"{what} is not a regular file (a pipe or device?)", file=path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not a UTF-8 text file (byte {e.object[e.start]:#04x} at offset {e.start})",
                          file=path) from None
    except OSError as e:
        raise FormatError(f"cannot read {what}: {e.strerror}", file=path) from None


def load_json(path: Path) -> dict:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"malformed JSON: {e.msg}", file=path, line=e.lineno) from None


def _resolve_manifest(raw: Dict[str, str], path: Path) -> Dict[str, str]:
    """Manifest variables with the variables they name substituted, each once (a variable that
    names itself through others, ``$A -> $B -> $A``, is an error naming the loop)."""
    done: Dict[str, str] = {}

    def value(name: str, chain: List[str]) -> str:
        if name in done:
            return done[name]
        if name in chain:
            loop = " -> ".join("$" + n for n in chain[chain.index(name):] + [name])
            raise FormatError(f"manifest variables refer to each other in a loop: {loop}", file=path)
        done[name] = _VAR.sub(lambda m: value(m.group(1), chain + [name]) if m.group(1) in raw else m.group(0),
                              raw[name])
        return done[name]
    for k in raw:
        value(k, [])
    return done


def _expand(obj, variables: Dict[str, str]):
    if isinstance(obj, str):
        return _VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), obj)
    if isinstance(obj, dict):
        return {k: _expand(v, variables) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_expand(v, variables) for v in obj]
    return obj


#: the sections of circuit and simulation configs and what each must be (absent or null: empty)
_SHAPE = {"manifest": dict, "components": dict, "networks": dict, "run": dict, "conditions": dict,
          "output": dict, "inputs": dict, "reports": dict, "node_sets": dict, "nmlsim": dict,
          "network": str, "node_sets_file": str, "target_simulator": str}
_KIND = {dict: "an object", list: "a list", str: "a string"}


def expect_shape(cfg: dict, path: Path) -> None:
    """Each known section of a config has the JSON kind the spec gives it (a string where an
    object belongs is a one-line error here, not an internal error later)."""
    def bad(where, want, got):
        raise FormatError(f"'{where}' must be {_KIND[want]}, not {json.dumps(got)[:40]}", file=path)
    for key, kind in _SHAPE.items():
        v = cfg.get(key)
        if v is not None and not isinstance(v, kind):
            bad(key, kind, v)
    for k, v in (cfg.get("components") or {}).items():
        if v is not None and not isinstance(v, str):
            bad(f"components.{k}", str, v)
    for k, v in (cfg.get("manifest") or {}).items():
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            bad(f"manifest.{k}", str, v)
    for part in ("nodes", "edges"):
        entries = (cfg.get("networks") or {}).get(part)
        if entries is None:
            continue
        if not isinstance(entries, list):
            bad(f"networks.{part}", list, entries)
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                bad(f"networks.{part}.{i}", dict, e)


def load_config(path: Path) -> dict:
    """A config with its manifest variables substituted (repeatedly, until stable)."""
    cfg = load_json(path)
    if not isinstance(cfg, dict):
        raise FormatError("a SONATA config must be a JSON object", file=path)
    expect_shape(cfg, path)
    variables = {"configdir": str(path.parent)}
    for k, v in (cfg.get("manifest") or {}).items():
        variables[k.lstrip("$")] = str(v)
    return _expand(cfg, _resolve_manifest(variables, path))


class Paths:
    """Resolves config paths against their config's folder, confined to ``root``."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, p, base: Path, what: str, cfg_path: Path) -> Path:
        if not isinstance(p, str) or not p:
            raise FormatError(f"{what}: expected a path, got {p!r}", file=cfg_path)
        q = Path(p)
        if not q.is_absolute():
            q = base / q
        return confined(q, self.root, file=cfg_path, what=what)


def read_types(path: Path) -> Dict[int, dict]:
    """node_types.csv / edge_types.csv: space separated, quoted, first line header."""
    text = read_text(path, "types file")
    if "\x00" in text:
        raise FormatError("types file holds a NUL byte", file=path, line=text[:text.index("\x00")].count("\n") + 1)
    rows = list(csv.reader(text.splitlines(), delimiter=" ", skipinitialspace=True))
    rows = [[c for c in r if c != ""] for r in rows]
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
        d = {k: (None if v in _NULL else v) for k, v in zip(header, r)}
        try:
            tid = int(d[key])
        except (TypeError, ValueError):
            raise FormatError(f"{key} '{d[key]}' is not an integer", file=path, line=ln) from None
        if tid in out:
            raise FormatError(f"{key} {tid} is defined twice", file=path, line=ln)
        out[tid] = d
    return out


def dataset(g, name, path, kinds="iu", length=None, rows: Optional[slice] = None):
    """A one-dimensional numeric dataset (``rows``: only those, a slice), checked."""
    if name not in g:
        raise FormatError(f"missing dataset {g.name}/{name}", file=path)
    d = g[name]
    if not hasattr(d, "dtype"):
        raise FormatError(f"{g.name}/{name} is a group, expected a dataset", file=path)
    if d.dtype.kind not in kinds:
        what = "integers" if kinds == "iu" else "numbers"
        raise FormatError(f"dataset {g.name}/{name} has dtype {d.dtype}, expected {what}", file=path)
    if len(d.shape) != 1:
        raise FormatError(f"dataset {g.name}/{name} must be one-dimensional", file=path)
    if length is not None and d.shape[0] != length:
        raise FormatError(f"dataset {g.name}/{name} has {d.shape[0]} rows, expected {length}", file=path)
    return d[()] if rows is None else d[rows]


#: nmlsim's edge columns for points on multi-compartment NeuroML cells (segment ids and fractions
#: along them, of the cells' nml: templates) -> projection attributes; SONATA's afferent_section_*
#: name NEURON's sections, which a NeuroML cell does not have
#: edges read per block by an MPI rank's reader (which keeps those onto its own cells)
EDGE_BLOCK = 1 << 20

LOCATION_COLUMNS = {"nml_pre_segment_id": "pre_seg", "nml_pre_fraction_along": "pre_frac",
                    "nml_post_segment_id": "post_seg", "nml_post_fraction_along": "post_frac"}


def _attr_str(obj, name):
    v = obj.attrs.get(name)
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    return v


# ------------------------------------------------------------------------------ nodes
@dataclass
class Part:
    """One nmlsim population inside a SONATA node population."""
    pop_id: str
    node_ids: np.ndarray
    template: str
    nest: Optional[nest_models.NestCell] = None
    component: Optional[Component] = None


@dataclass
class NodePopulation:
    name: str
    file: Path
    n: int
    type_ids: np.ndarray  # by node id
    types: Dict[int, dict]
    attrs: Dict[str, np.ndarray] = field(default_factory=dict)  # h5 attributes by node id (NaN/None gaps)
    dyn: Dict[str, np.ndarray] = field(default_factory=dict)  # per-node dynamics_params
    virtual: bool = False
    parts: List[Part] = field(default_factory=list)
    part_of: Optional[np.ndarray] = None  # node id -> index into parts
    index_in_part: Optional[np.ndarray] = None

    def column(self, key: str) -> Optional[np.ndarray]:
        """Attribute ``key`` of every node: h5 value, else the node type's CSV value."""
        if key == "node_type_id":
            return self.type_ids
        if key in self.attrs:
            return self.attrs[key]
        if any(key in t for t in self.types.values()):
            return np.array([self.types[int(t)].get(key) for t in self.type_ids], dtype=object)
        return None


def _read_node_population(name, g, nfile, types) -> NodePopulation:
    tids = dataset(g, "node_type_id", nfile)
    n = len(tids)
    ids = dataset(g, "node_id", nfile, length=n) if "node_id" in g else np.arange(n)
    if n and not np.array_equal(np.sort(ids), np.arange(n)):
        raise FormatError(f"node ids of population '{name}' are not 0..{n - 1}", file=nfile)
    order = np.empty(n, dtype=np.int64)
    order[np.asarray(ids, dtype=np.int64)] = np.arange(n)  # node id -> row
    missing = sorted({int(t) for t in np.unique(tids)} - set(types))
    if missing:
        raise FormatError(f"node_type_id {missing[0]} of population '{name}' is not in the types file", file=nfile)
    np_ = NodePopulation(name, nfile, n, np.asarray(tids, dtype=np.int64)[order], types)
    groups = [k for k in g.keys() if k.isdigit()]
    if "node_group_id" in g:
        gid = dataset(g, "node_group_id", nfile, length=n)
        gidx = dataset(g, "node_group_index", nfile, length=n) if "node_group_index" in g else None
    else:
        if len(groups) > 1:
            raise FormatError(f"population '{name}' has {len(groups)} node groups but no node_group_id", file=nfile)
        gid = np.full(n, int(groups[0]) if groups else 0)
        gidx = None
    for grp_name in groups:
        rows = np.nonzero(gid == int(grp_name))[0]
        if not len(rows):
            continue
        grp = g[grp_name]
        index = gidx[rows] if gidx is not None else np.arange(len(rows))
        # rows of a group without datasets: one per node of the group, as bmtk and libsonata read it
        if not any(hasattr(o, "dtype") for o in grp.values()) and len(index) and (
                int(index.max()) >= len(rows) or int(index.min()) < 0):
            raise FormatError(f"node_group_index {int(index.max())} out of range for group {grp_name} of "
                              f"population '{name}' ({len(rows)} nodes)", file=nfile)
        for col, obj in grp.items():
            if col == "dynamics_params" and hasattr(obj, "keys"):
                for p, d in obj.items():
                    _fill(np_.dyn, p, d, rows, index, order, n, nfile, grp_name)
            elif hasattr(obj, "dtype") and not col.startswith("@"):
                _fill(np_.attrs, col, obj, rows, index, order, n, nfile, grp_name)
    unknown_groups = sorted({int(x) for x in np.unique(gid)} - {int(x) for x in groups})
    if unknown_groups:
        raise FormatError(f"population '{name}': node_group_id {unknown_groups[0]} has no group", file=nfile)
    return np_


def _fill(table, col, d, rows, index, order, n, nfile, grp_name):
    a = d[()]
    if np.ndim(a) != 1:
        return
    if len(index) and (index.max() >= len(a) or index.min() < 0):
        raise FormatError(f"node_group_index out of range for group {grp_name}/{col} ({len(a)} rows)", file=nfile)
    vals = a[np.asarray(index, dtype=np.int64)]
    if col not in table:
        table[col] = np.full(n, np.nan) if vals.dtype.kind in "iuf" else np.full(n, None, dtype=object)
    if vals.dtype.kind == "S":
        vals = np.array([v.decode() for v in vals], dtype=object)
    # rows are file rows; store by node id
    node_ids_of_rows = np.argsort(order)[rows]
    table[col][node_ids_of_rows] = vals


# ------------------------------------------------------------------------------ reader
@dataclass
class ReportSpec:
    name: str
    file: Path
    variable: str
    unit: str
    scale: float  # SI -> unit
    start_ms: float
    end_ms: float
    dt_ms: float
    cells: Dict[str, np.ndarray]  # SONATA population -> node ids
    quantities: Dict[str, List[str]]  # SONATA population -> nmlsim quantity path per node
    dtype: str = "float32"


@dataclass
class SonataRun:
    network: Network
    tstop_s: float
    dt_s: float
    tstart_s: float
    seed: Optional[int]
    output_dir: Path
    spikes_file: Path
    spikes_sort_order: str
    reports: List[ReportSpec]
    node_populations: Dict[str, NodePopulation]
    #: the integrator runs use unless told otherwise: NEST integrates its models exactly,
    #: which RK4 matches to rounding at NEST's usual steps; exponential Euler otherwise
    method: str = "exp_euler"
    #: the cells' mechanisms are NEURON mod files (bmtk): --method neuron steps them as NEURON
    #: steps mods (cnexp gates, no one-update lag), not as jNeuroML's generated mods
    nmodl: bool = False


class SonataReader:
    def __init__(self, config_path, include_root=None):
        from .lems_reader import LemsReader, core_model
        self.cfg_path = Path(config_path).resolve()
        self.root = Path(include_root).resolve() if include_root else self.cfg_path.parent
        self.path = Paths(self.root)
        self.model = core_model()
        self.lems = LemsReader(model=self.model, include_root=self.root)
        self.loaded: Dict[str, Component] = {}
        self.pops: Dict[str, NodePopulation] = {}
        self.json_cache: Dict[Path, dict] = {}
        #: biophysical cell id -> its sections as bmtk numbers and samples them (synapse placement)
        self.sections_of: Dict[str, object] = {}
        self._swc_sections: Dict[tuple, object] = {}
        #: bmtk's per-cell random streams for synapse placement, RandomState(gid), by gid
        self._placement_rngs: Dict[int, np.random.RandomState] = {}
        #: an MPI rank's read: per node population, whether each node is this rank's (by node id);
        #: only edges onto those are kept (set by :func:`read_sonata_run` with ``share``)
        self.owner: Optional[Dict[str, np.ndarray]] = None
        self.share: Optional[Tuple[int, int]] = None
        self._abs_weight: Dict[str, bool] = {}
        self._projections_made = 0  # (projections a whole read makes: their names)

    # ------------------------------------------------------------- configs
    def _configs(self):
        cfg = load_config(self.cfg_path)
        sim_path, sim, circ_path, circuit = self.cfg_path, cfg, self.cfg_path, cfg
        if isinstance(cfg.get("network"), str) and isinstance(cfg.get("simulation"), str):
            circ_path = self.path(cfg["network"], self.cfg_path.parent, "circuit config", self.cfg_path)
            sim_path = self.path(cfg["simulation"], self.cfg_path.parent, "simulation config", self.cfg_path)
            circuit, sim = load_config(circ_path), load_config(sim_path)
        elif isinstance(cfg.get("network"), str):
            circ_path = self.path(cfg["network"], self.cfg_path.parent, "circuit config", self.cfg_path)
            circuit = load_config(circ_path)
        if not circuit.get("networks"):
            raise FormatError("no 'networks' section (is this a SONATA circuit/simulation config?)", file=circ_path)
        # bmtk merges the two: a simulation config may carry components, a circuit may carry run
        for k in ("components",):
            if k not in circuit and k in sim:
                circuit[k] = sim[k]
        return sim_path, sim, circ_path, circuit

    def _json(self, path: Path) -> dict:
        if path not in self.json_cache:
            d = load_json(path)
            if not isinstance(d, dict):
                raise FormatError("expected a JSON object", file=path)
            self.json_cache[path] = d
        return self.json_cache[path]

    def _component_file(self, rel: str, dirs, where: Path, what: str) -> Path:
        for d in dirs:
            if d:
                cand = Path(d) / rel
                if cand.exists():
                    return self.path(rel, Path(d), what, where)
        for d in dirs:  # name the escape, if that is what it is
            if d:
                self.path(rel, Path(d), what, where)
        raise FormatError(f"{what} '{rel}' not found in the components folders", file=where)

    # ------------------------------------------------------------- read
    def read(self) -> SonataRun:
        sim_path, sim, circ_path, circuit = self._configs()
        comps = dict(circuit.get("components") or {})
        for k, v in comps.items():  # component folders are relative to their config's folder
            if isinstance(v, str) and v and not Path(v).is_absolute():
                comps[k] = str(circ_path.parent / v)
        self.comps = comps
        netc = Component(tag="network", id="sonata_network", file=str(circ_path))
        celsius = (sim.get("conditions") or {}).get("celsius")
        if celsius is not None:  # what temperature-dependent NeuroML cells (q10) read
            try:
                netc.attrs["temperature"] = f"{float(celsius)!r}degC"
            except (TypeError, ValueError):
                raise FormatError(f"conditions.celsius {celsius!r} is not a number", file=sim_path) from None
            netc.type_attr = "networkWithTemperature"
        net = Network(id="sonata_network", component=netc, model=self.model, root=netc)
        self.net = net
        run = sim.get("run") or {}
        try:
            tstop = float(run["tstop"])
            dt = float(run.get("dt", 0.1))
            tstart = float(run.get("tstart", 0.0))
        except (KeyError, TypeError, ValueError):
            raise FormatError("'run' needs numeric tstop (and dt) in ms", file=sim_path) from None
        bad = check_run_times((tstop - tstart) * 1e-3, dt * 1e-3) if tstart >= 0 else "tstart is negative"
        if bad:
            raise FormatError(f"run: {bad} (tstop {tstop} ms, tstart {tstart} ms, dt {dt} ms)", file=sim_path)
        self.dt_ms = dt
        self.circ_path = circ_path
        self.morphologies: Dict[tuple, Component] = {}
        self.biophysical = False
        cond = sim.get("conditions") or {}
        try:  # bmtk BioNet's defaults where the config is silent: NEURON's v_init, bmtk's threshold
            self.v_init_mv = float(cond.get("v_init", -65.0))
            self.spike_threshold_mv = float(run.get("spike_threshold", -15.0))
            self.dl = None if run.get("dL") is None else float(run["dL"])
        except (TypeError, ValueError):
            raise FormatError("conditions.v_init, run.spike_threshold and run.dL must be numbers",
                              file=sim_path) from None
        if self.dl is not None and not self.dl > 0:
            raise FormatError(f"run.dL {self.dl} must be positive", file=sim_path)
        networks = circuit["networks"]
        for spec in networks.get("nodes") or []:
            nfile = self.path(spec.get("nodes_file"), circ_path.parent, "nodes file", circ_path)
            types = read_types(self.path(spec.get("node_types_file"), circ_path.parent, "node types file", circ_path))
            with open_h5(nfile) as f:
                if "nodes" not in f:
                    raise FormatError("no /nodes group", file=nfile)
                for pop, g in f["nodes"].items():
                    if pop in self.pops:
                        raise FormatError(f"node population '{pop}' is defined twice", file=nfile)
                    self.pops[pop] = _read_node_population(pop, g, nfile, types)
        for np_ in self.pops.values():
            self._make_cells(np_)
        # bmtk's gids (its synapse-placement seeds): node populations in file order, each
        # offset by the sizes of those before it
        acc = 0
        self.gid_offset: Dict[str, int] = {}
        for name, np_ in self.pops.items():
            self.gid_offset[name] = acc
            acc += np_.n
        # bmtk places synapses edge population by edge population, those between cells first and
        # those from virtual nodes after (as it builds them): the placement draws follow that order
        epops = []
        for spec in networks.get("edges") or []:
            if spec.get("enabled", True) is False:
                continue
            efile = self.path(spec.get("edges_file"), circ_path.parent, "edges file", circ_path)
            etypes = read_types(self.path(spec.get("edge_types_file"), circ_path.parent, "edge types file", circ_path))
            with open_h5(efile) as f:
                for epop, g in (f["edges"].items() if "edges" in f else ()):
                    src_pop = self.pops.get(_attr_str(g["source_node_id"], "node_population")) \
                        if "source_node_id" in g else None
                    epops.append((bool(src_pop is not None and src_pop.virtual), efile, epop, etypes))
        if self.share is not None and self.share[1] > 1:
            self.owner = self._owners(epops)
        for _, efile, epop, etypes in sorted(epops, key=lambda e: e[0]):
            with open_h5(efile) as f:
                self._edges(epop, f["edges"][epop], efile, etypes)
        self.node_sets = dict(self._node_sets_file(sim, sim_path, circuit, circ_path))
        self.node_sets.update(sim.get("node_sets") or {})
        self.sim_path, self.tstop_ms, self.dt_ms = sim_path, tstop, dt
        ext = sim.get("nmlsim") if isinstance(sim.get("nmlsim"), dict) else {}
        # nmlsim's own inputs (input_type "nml") live under "nmlsim" where libsonata does not look
        for name, inp in list((sim.get("inputs") or {}).items()) + list((ext.get("inputs") or {}).items()):
            if not isinstance(inp, dict) or inp.get("enabled", True) is False:
                continue
            try:
                self._input(name, inp)
            except NmlsimError as e:
                raise e.located(file=sim_path, element=f"input '{name}'")
        out = sim.get("output") or {}
        for key in ("output_dir", "spikes_file"):
            if out.get(key) is not None and not (isinstance(out[key], str) and out[key]):
                raise FormatError(f"output.{key}: expected a path, got {out[key]!r}", file=sim_path)
        out_dir = Path(out.get("output_dir") or (sim_path.parent / "output"))
        if not out_dir.is_absolute():
            out_dir = sim_path.parent / out_dir
        spikes_file = Path(out.get("spikes_file") or "spikes.h5")
        if not spikes_file.is_absolute():
            spikes_file = out_dir / spikes_file
        reports = []
        for name, rep in (sim.get("reports") or {}).items():
            if not isinstance(rep, dict) or rep.get("enabled", True) is False:
                continue
            try:
                reports.append(self._report(name, rep, out_dir, dt, tstart, tstop))
            except NmlsimError as e:
                raise e.located(file=sim_path, element=f"report '{name}'")
        seed = run.get("random_seed", run.get("seed", sim.get("seed")))
        if check_seed(seed):
            raise FormatError(f"run: {check_seed(seed)}", file=sim_path)
        seed = None if seed is None else int(seed)
        flavour = (sim.get("nmlsim") or {}).get("mechanisms")
        if flavour not in (None, "nmodl", "lems"):
            raise FormatError(f"nmlsim.mechanisms '{flavour}' must be 'nmodl' (NEURON's own mod files, as bmtk "
                              "BioNet runs them) or 'lems'", file=sim_path)
        if flavour == "nmodl":  # written by nmlsim for a converted bmtk BioNet circuit
            self.biophysical = True
        nest = any(self.model.type_of(pop.component).startswith("nest_") for pop in net.populations.values())
        return SonataRun(net, tstop * 1e-3, dt * 1e-3, tstart * 1e-3, seed, out_dir, spikes_file,
                         str(out.get("spikes_sort_order") or "time"), reports, self.pops,
                         method="rk4" if nest else "neuron" if self.biophysical else "exp_euler",
                         nmodl=self.biophysical)

    # ------------------------------------------------------------- cells
    def _make_cells(self, np_: NodePopulation) -> None:
        mtypes = np_.column("model_type")
        if mtypes is None:
            raise FormatError(f"population '{np_.name}': no model_type for its nodes", file=np_.file)
        is_virtual = np.array([m == "virtual" for m in mtypes], dtype=bool)
        if is_virtual.all():
            np_.virtual = True
            self.net.sources[np_.name] = SpikeSourcePopulation(np_.name, np_.n)
            np_.parts = [Part(np_.name, np.arange(np_.n), "virtual")]
            np_.part_of = np.zeros(np_.n, dtype=np.int64)
            np_.index_in_part = np.arange(np_.n)
            return
        if is_virtual.any():
            raise UnsupportedFeature(f"population '{np_.name}' mixes virtual and simulated nodes", file=np_.file)
        templates = np_.column("model_template")
        dyn_files = np_.column("dynamics_params")
        # one part per node type and per distinct per-node parameter set
        keys = [np_.type_ids]
        dyn_names = sorted(np_.dyn)
        for p in dyn_names:
            col = np_.dyn[p]
            keys.append(np.unique(col.astype(str), return_inverse=True)[1])
        combo = np.stack(keys, axis=1) if len(keys) > 1 else keys[0][:, None]
        uniq, inv = np.unique(combo, axis=0, return_inverse=True)
        inv = np.asarray(inv).reshape(-1)
        np_.part_of = inv.astype(np.int64)
        np_.index_in_part = np.zeros(np_.n, dtype=np.int64)
        for k in range(len(uniq)):
            nodes = np.nonzero(inv == k)[0]
            np_.index_in_part[nodes] = np.arange(len(nodes))
            first = int(nodes[0])
            tid = int(np_.type_ids[first])
            template = templates[first] if templates is not None else None
            if not template:
                raise FormatError(f"node type {tid} of population '{np_.name}' has no model_template",
                                  file=np_.file)
            pid = np_.name if len(uniq) == 1 else f"{np_.name}_{tid}" + (f"_{k}" if dyn_names else "")
            overrides = {p: _py(np_.dyn[p][first]) for p in dyn_names}
            dfile = dyn_files[first] if dyn_files is not None else None
            part = Part(pid, nodes, template)
            morph = np_.column("morphology")
            morph = morph[first] if morph is not None else None
            if morph in ("", "None") or (isinstance(morph, float) and np.isnan(morph)):
                morph = None
            self._cell_component(np_, part, tid, dfile, overrides, mtypes[first])
            if morph is not None:
                self._on_morphology(np_, part, tid, str(morph), mtypes[first])
            np_.parts.append(part)
            pos = None
            if all(a in np_.attrs for a in "xyz"):
                pos = np.stack([np_.attrs[a][nodes] for a in "xyz"], axis=1).astype(float)
            self.net.populations[pid] = Population(pid, part.component, len(nodes), pos, None,
                                                   origin=(np_.name, nodes.astype(np.int64)))

    def _cell_component(self, np_, part: Part, tid, dfile, overrides, mtype) -> None:
        where = {"file": str(np_.file), "element": f"node type {tid} of population '{np_.name}'"}
        template = part.template
        if ":" not in template:
            raise UnsupportedFeature(f"model_template '{template}' has no schema prefix (nml:, nest:...)", **where)
        schema, resource = template.split(":", 1)
        dirs = [self.comps.get("point_neuron_models_dir"), self.comps.get("biophysical_neuron_models_dir")]
        if schema == "nest":
            params = {}
            if dfile:
                params.update(self._json(self._component_file(dfile, dirs, np_.file, "dynamics_params file")))
            params.update(overrides)
            nest_models.register_types(self.model)
            cid = f"{np_.name}_{tid}" if part.pop_id == np_.name or not overrides else part.pop_id
            try:
                cell = nest_models.cell_component(resource, params, cid, where)
            except NmlsimError as e:
                raise e.located(**where)
            self.model.add_component(cell.component)
            part.nest, part.component = cell, cell.component
            return
        if schema == "nml":
            if overrides:
                raise UnsupportedFeature("per-node dynamics_params on nml: templates are not supported", **where)
            part.component = self._nml(resource, dirs, np_.file)
            return
        raise UnsupportedFeature(f"model_template '{template}' is not supported (nmlsim reads nml: NeuroML cells "
                                 f"and nest: {', '.join(nest_models.supported_models())})", **where)

    def _on_morphology(self, np_, part: Part, tid, morph: str, mtype) -> None:
        """A ``biophysical`` node type: its nml: template's biophysics on its SWC morphology,
        as bmtk's BioNet builds it (:mod:`nmlsim.io.sonata_biophys`)."""
        from . import sonata_biophys as B
        where = {"file": str(np_.file), "element": f"node type {tid} of population '{np_.name}'"}
        if mtype != "biophysical" or part.nest is not None or not part.template.startswith("nml:"):
            raise UnsupportedFeature(f"a {mtype} cell with model_template '{part.template}' on morphology "
                                     f"'{morph}' (nmlsim runs biophysical cells with nml: templates)", **where)
        mdir = self.comps.get("morphologies_dir")
        if not mdir:
            raise FormatError(f"node type {tid} names morphology '{morph}' but the circuit config has no "
                              "components.morphologies_dir", file=self.circ_path)
        rel = morph if Path(morph).suffix else morph + ".swc"
        if Path(rel).suffix.lower() != ".swc":
            raise UnsupportedFeature(f"morphology '{morph}': only SWC files are read (not {Path(rel).suffix})",
                                     **where)
        swc = self._component_file(rel, [mdir], np_.file, "morphology")
        key = (str(swc), self.dl)
        mcomp = self.morphologies.get(key)
        if mcomp is None:
            secs = B.load_swc_sections(swc)
            mcomp = self.morphologies[key] = B.morphology_component(secs, dl=self.dl, file=str(swc),
                                                                    mid=f"morphology_{Path(swc).stem}")
            self._swc_sections[key] = B.BmtkSections(secs, self.dl, str(swc))
        template = part.component
        if not self.model.is_a(self.model.type_of(template), "cell"):
            raise ModelError(f"model template '{part.template}' is a {self.model.type_of(template)}, not a "
                             "NeuroML <cell> (a biophysical node needs one)", **where)
        # a NeuroML id (NmlId: a letter or _ first), so that exports of the circuit stay valid
        # (the Allen templates' ids are numbers; NEURON's hoc templates refuse those too)
        cid = re.sub(r"\W", "_", f"{template.id}__{Path(rel).stem}")
        if not re.match(r"[A-Za-z_]", cid):
            cid = "cell_" + cid
        cell = self.model.components.get(cid)
        if cell is None:
            cell = B.biophysical_cell(template, mcomp, cid, spike_threshold_mv=self.spike_threshold_mv,
                                      v_init_mv=self.v_init_mv)
            self._load_mechanisms(cell, where)
            self.model.add_component(cell)
        self.sections_of[cid] = self._swc_sections[key]
        part.component = cell
        self.biophysical = True

    def _load_mechanisms(self, cell: Component, where) -> None:
        """Channels and concentration models the template names but does not define: from the
        shipped translations of the Allen Cell Types mechanisms (what NEURON's mechanisms_dir holds)."""
        from . import sonata_biophys as B
        for name, ref in B.missing_mechanisms(self.model, cell):
            f = B.library_file(name)
            if f is None:
                raise ModelError(f"'{name}' is not defined in the template and is not one of the mechanisms "
                                 f"nmlsim knows ({', '.join(B.library_types())})", **ref.where())
            self.lems.load(f)

    def _report_var(self, part: Part, var: str) -> str:
        if var in ("V_m", "v"):
            return "v"
        path = _species_path(part.component, "ca")
        if path is None:
            raise ModelError(f"report variable '{var}': cells of '{part.pop_id}' have no Ca2+ species")
        return path

    def _nml(self, rel: str, dirs, where: Path) -> Component:
        if rel in self.loaded:
            return self.loaded[rel]
        f = self._component_file(rel, dirs, where, "model template")
        before = dict(self.model.components)
        self.lems.load(f)
        comps = self.model.components
        mine = {cid: c for cid, c in comps.items() if before.get(cid) is not c}  # new, or redefined
        stem = Path(rel).name.split(".")[0]
        # each template is its own namespace (bmtk parses every file apart): an id another
        # template already used (every Allen cell file has its <concentrationModel id="CaDynamics">)
        # is renamed in this file, with the references to it
        clashes = {cid: f"{stem}__{cid}" for cid in mine if cid in before}
        for cid, new_id in clashes.items():
            c = mine.pop(cid)
            comps[cid] = before[cid]
            c.id = new_id
            comps[new_id] = mine[new_id] = c
        if clashes:
            for c in mine.values():
                _rename_refs(c, clashes)
        comp = comps.get(stem) if stem in mine else None
        if comp is None:
            cells = [c for c in mine.values() if self._is_cell(c)]
            comp = cells[-1] if cells else (list(mine.values())[-1] if mine else None)
        if comp is None:
            raise ModelError(f"'{rel}' defines no component", file=f)
        self.loaded[rel] = comp
        return comp

    def _is_cell(self, c: Component) -> bool:
        try:
            return self.model.is_a(self.model.type_of(c), "baseCell")
        except NmlsimError:
            return False

    # ------------------------------------------------------------- edges
    def _edges(self, epop, g, efile, etypes) -> None:
        """One edge population, in blocks of :data:`EDGE_BLOCK` rows: an MPI rank's reader keeps
        only the edges onto its own cells (``self.owner``), so no rank holds the whole
        connectivity; a block's projections are joined in the order one whole read gives them."""
        if "source_node_id" not in g:
            raise FormatError(f"missing dataset {g.name}/source_node_id", file=efile)
        n = int(g["source_node_id"].shape[0]) if hasattr(g["source_node_id"], "shape") else 0
        pieces: Dict[Tuple[int, int, str], list] = {}
        keys: Dict[tuple, Tuple[int, int, str]] = {}  # (part, part, type, inhibitory) -> projection key
        syns: Dict[str, Component] = {}
        step = n if self.owner is None else EDGE_BLOCK
        for a in range(0, max(n, 1), max(step, 1)):
            self._edge_block(epop, g, efile, etypes, a, min(n, a + max(step, 1)), n, pieces, keys, syns)
        spop, tpop = self.pops[_attr_str(g["source_node_id"], "node_population")], \
            self.pops[_attr_str(g["target_node_id"], "node_population")]
        order = []  # projection keys in the order of the sorted combinations, as one read makes them
        for combo in sorted(keys):
            if keys[combo] not in order:
                order.append(keys[combo])
        for key in order:
            sp, tp, skey = key
            pid = f"{epop}" if len(order) == 1 else f"{epop}_{self._projections_made}"
            self._projections_made += 1
            got = pieces.get(key)
            if not got:
                continue  # (an MPI rank without any of these edges onto its cells)
            cat = {f: np.concatenate([pc[f] for pc in got]) for f in got[0]}
            loc = {k: cat[k] for k in ("pre_seg", "pre_frac", "post_seg", "post_frac") if k in cat}
            self.net.projections.append(Projection(
                pid, spop.parts[sp].pop_id, tpop.parts[tp].pop_id, syns[skey], cat["src"], cat["tgt"],
                cat["w"], cat["d"] * 1e-3, **loc, full_index=cat["ids"], stream_name=epop))

    def _owners(self, epops) -> Optional[Dict[str, np.ndarray]]:
        """An MPI rank's read (``self.share``): every cell's rank, decided before any edge is
        kept (in-degrees from the edges' target columns, read in blocks); per node population,
        whether each node is this rank's. None (read everything) when some edge type couples
        cells every step (gap junctions, graded synapses): the partition must see those first."""
        from ..graph.partition import assign
        rank, ranks = self.share
        indegree = {pid: np.zeros(p.size) for pid, p in self.net.populations.items()}
        for _, efile, epop, etypes in epops:
            if any(str(et.get("is_gap_junction") or "").strip().lower() in ("true", "1", "yes")
                   or et.get("post_model_template") for et in etypes.values()):
                return None
            with open_h5(efile) as f:
                g = f["edges"][epop]
                tpop = self.pops.get(_attr_str(g["target_node_id"], "node_population")) \
                    if "target_node_id" in g else None
                if tpop is None or tpop.virtual:
                    continue  # (the edges' own reading names the problem)
                n = int(g["target_node_id"].shape[0])
                for a in range(0, n, EDGE_BLOCK):
                    tgt = dataset(g, "target_node_id", efile, rows=slice(a, min(n, a + EDGE_BLOCK))).astype(np.int64)
                    tgt = tgt[(tgt >= 0) & (tgt < tpop.n)]
                    for k, part in enumerate(tpop.parts):
                        on = tgt[tpop.part_of[tgt] == k]
                        indegree[part.pop_id] += np.bincount(tpop.index_in_part[on], minlength=len(part.node_ids))
        owner = assign(self.net, ranks, indegree=indegree)
        self.net.owner, self.net.read_for = owner, (rank, ranks)
        mine = {}
        for name, np_ in self.pops.items():
            m = np.zeros(np_.n, dtype=bool)
            if not np_.virtual:
                for part in np_.parts:
                    m[part.node_ids] = owner[part.pop_id] == rank
            mine[name] = m
        return mine

    def _edge_block(self, epop, g, efile, etypes, a, b, n_all, pieces, keys, syns) -> None:
        """Rows ``a:b`` of an edge population (see :meth:`_edges`)."""
        rows = slice(a, b)
        src = dataset(g, "source_node_id", efile, rows=rows).astype(np.int64)
        n = len(src)
        tgt = dataset(g, "target_node_id", efile, length=n_all, rows=rows).astype(np.int64)
        etid = dataset(g, "edge_type_id", efile, length=n_all, rows=rows).astype(np.int64)
        pre = _attr_str(g["source_node_id"], "node_population")
        post = _attr_str(g["target_node_id"], "node_population")
        ends = []
        for name, pp, ix in (("source", pre, src), ("target", post, tgt)):
            if pp not in self.pops:
                raise FormatError(f"edges '{epop}': {name} population '{pp}' is unknown", file=efile)
            size = self.pops[pp].n
            if n and (ix.min() < 0 or ix.max() >= size):
                bad = int(ix.max() if ix.max() >= size else ix.min())
                raise FormatError(f"edges '{epop}': {name} node id {bad} out of range "
                                  f"(population '{pp}' has {size} nodes)", file=efile)
            ends.append(self.pops[pp])
        spop, tpop = ends
        if tpop.virtual:
            raise ModelError(f"edges '{epop}' end on virtual population '{post}'", file=efile)
        missing = sorted({int(t) for t in np.unique(etid)} - set(etypes))
        if missing:
            raise FormatError(f"edge_type_id {missing[0]} is not in the edge types file", file=efile)
        cols = self._edge_columns(g, efile, n_all, rows=rows)
        csv_num = {}
        types, at = np.unique(etid, return_inverse=True)  # (a value per edge type, looked up per edge)
        for key in ("syn_weight", "delay", "nsyns"):
            per_type = np.array([_float(etypes[int(t)].get(key), key, efile) for t in types], dtype=float)
            csv_num[key] = per_type[np.asarray(at).reshape(-1)] if n else np.zeros(0)
        for key in ("syn_weight", "delay", "nsyns"):
            # a value the edges file gives must be a number; NaN in the types CSV means "not set"
            vals = cols.get(key)
            bad = ~np.isfinite(vals) if vals is not None else np.isinf(csv_num[key])
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                val = (vals if vals is not None else csv_num[key])[i]
                raise FormatError(f"edges '{epop}': {key} of edge {a + i} is {val} (not a finite number)", file=efile)
        weight = cols.get("syn_weight", csv_num["syn_weight"])
        weight = np.where(np.isnan(weight), 1.0, weight)
        nsyns = cols.get("nsyns", csv_num["nsyns"])
        biophys_tgt = np.array([tpop.parts[k].component is not None and tpop.parts[k].component.id in self.sections_of
                                for k in range(len(tpop.parts))], dtype=bool)
        on_biophys = biophys_tgt[tpop.part_of[tgt]] if n else np.zeros(0, dtype=bool)
        # onto point neurons nsyns scales the weight (NEST: one connection); onto a biophysical cell
        # bmtk makes nsyns synapses, each placed on its own (see _place_on_sections)
        weight = weight * np.where(np.isnan(nsyns) | on_biophys, 1.0, nsyns)
        delay = cols.get("delay", csv_num["delay"])
        delay = np.where(np.isnan(delay), DEFAULT_DELAY_MS, delay)
        if (delay < 0).any():
            i = int(np.nonzero(delay < 0)[0][0])
            raise FormatError(f"edges '{epop}': delay of edge {a + i} is {delay[i]} ms (negative)", file=efile)
        # NEST refuses delays below its resolution; onto NEST models so does nmlsim (a NEURON
        # NetCon of delay 0 is allowed: it arrives within the step, as in NEURON)
        nest_tgt = np.array([getattr(p, "nest", None) is not None for p in tpop.parts], dtype=bool)
        short = (delay < self.dt_ms * (1 - 1e-9)) & (nest_tgt[tpop.part_of[tgt]] if n else False)
        if short.any():
            i = int(np.nonzero(short)[0][0])
            raise FormatError(f"edges '{epop}': delay of edge {a + i} is {delay[i]:g} ms, below the time step "
                              f"{self.dt_ms:g} ms (NEST's smallest delay)", file=efile)
        for t in np.unique(etid):
            wf = etypes[int(t)].get("weight_function")
            if wf:
                raise UnsupportedFeature(f"edge type {int(t)} uses weight_function '{wf}' (a Python function "
                                         "registered with bmtk); nmlsim cannot run it", file=efile)
        where = {"file": str(efile), "element": f"edges '{epop}'"}
        # receptor per edge type (NEST synapse JSON), template per edge type (nml:)
        receptor = {}
        for t in np.unique(etid):
            et = etypes[int(t)]
            d = {}
            if et.get("dynamics_params"):
                d = self._json(self._component_file(et["dynamics_params"], [self.comps.get("synaptic_models_dir")],
                                                    efile, "synapse dynamics_params file"))
            r = d.get("receptor_type", 0)
            try:
                receptor[int(t)] = int(r)
            except (TypeError, ValueError):
                raise ModelError(f"edge type {int(t)}: receptor_type {r!r} is not an integer", **where) from None
        # points on multi-compartment NeuroML cells, as nmlsim writes them
        where_cols = {attr: cols[col] for col, attr in LOCATION_COLUMNS.items() if col in cols}
        for end in ("pre", "post"):  # a segment without a fraction: its middle (NeuroML's default)
            if f"{end}_seg" in where_cols and f"{end}_frac" not in where_cols:
                where_cols[f"{end}_frac"] = np.full(n, 0.5)
        ids = np.arange(a, b, dtype=np.int64)  # each edge's row: its identity (its synapse's random stream)
        special = self._special_edges(epop, etypes, etid, src, tgt, weight, spop, tpop, efile, where_cols)
        if special is not None:  # gap junctions / graded synapses leave the chemical path
            if on_biophys[special].any() or (on_biophys.any() and not special.all()):
                raise UnsupportedFeature(f"edges '{epop}': gap junctions and graded synapses onto biophysical "
                                         "cells are not supported", file=efile)
            src, tgt, etid, weight, delay, nsyns, on_biophys, ids = (
                v[special] for v in (src, tgt, etid, weight, delay, nsyns, on_biophys, ids))
            n = len(src)
        where_cols = {k: (v[special] if special is not None else v) for k, v in where_cols.items()}
        # the combinations (source part, target part, edge type, inhibitory) of every edge of the
        # block — also those onto another rank's cells: they decide the projections' names and order
        # (one integer per combination, ordered as the tuples are: 1-D sorting, not rows of four)
        src_part, tgt_part = spop.part_of[src], tpop.part_of[tgt]
        tvals, tix = np.unique(etid, return_inverse=True)
        nt = max(len(tvals), 1)
        combo = ((src_part * len(tpop.parts) + tgt_part) * nt + np.asarray(tix).reshape(-1)) * 2 + (weight < 0)

        def decode(c):
            c = int(c)
            neg, c = c % 2, c // 2
            t, c = int(tvals[c % nt]), c // nt
            return (c // len(tpop.parts), c % len(tpop.parts), t, neg)
        for code in np.unique(combo):
            ck = decode(code)
            if ck not in keys:
                keys[ck] = self._synapse_key(ck, tpop, etypes, receptor, where, efile, syns,
                                             post_located="post_seg" in where_cols or on_biophys.any())
        if self.owner is not None:  # an MPI rank: the edges onto its own cells
            mine = self.owner[tpop.name][tgt] if n else np.zeros(0, dtype=bool)
            src, tgt, etid, weight, delay, nsyns, on_biophys, ids, combo = (
                v[mine] for v in (src, tgt, etid, weight, delay, nsyns, on_biophys, ids, combo))
            where_cols = {k: v[mine] for k, v in where_cols.items()}
            n = len(src)
        post_seg = post_frac = None
        if "post_seg" in where_cols or "pre_seg" in where_cols:
            loc_all = {k: (v.astype(np.int64) if k.endswith("_seg") else v) for k, v in where_cols.items()}
            post_seg, post_frac = loc_all.get("post_seg"), loc_all.get("post_frac")
        elif on_biophys.any():
            if not on_biophys.all():
                raise UnsupportedFeature(f"edges '{epop}' end on biophysical and point cells of one population",
                                         file=efile)
            kept = ids - a  # (rows of this block the placement reads its columns at)
            rows_p, post_seg, post_frac = self._place_on_sections(g, efile, epop, etypes, etid, tgt, nsyns, tpop, n,
                                                                  block=rows, kept=kept)
            # a synapse's identity: its edge's row and its number among that edge's synapses
            first = np.searchsorted(rows_p, rows_p, side="left")
            syn_ids = (ids[rows_p] << 16) | (np.arange(len(rows_p)) - first)
            src, tgt, etid, weight, delay, combo = (v[rows_p] for v in (src, tgt, etid, weight, delay, combo))
            ids = syn_ids
            n = len(src)
        src_idx, tgt_idx = spop.index_in_part[src], tpop.index_in_part[tgt]
        by_key: Dict[Tuple[int, int, str], list] = {}
        codes, inv = np.unique(combo, return_inverse=True)
        inv = np.asarray(inv).reshape(-1)
        order = np.argsort(inv, kind="stable")
        bounds = np.searchsorted(inv[order], np.arange(len(codes) + 1))
        for j, code in enumerate(codes):
            by_key.setdefault(keys[decode(code)], []).append(order[bounds[j]:bounds[j + 1]])
        for key, sels in by_key.items():  # (edge types of one synapse: one projection, in row order)
            sel = np.sort(np.concatenate(sels))
            skey = key[2]
            w = np.abs(weight[sel]) if self._abs_weight[skey] else weight[sel]
            d = np.asarray(delay[sel], float)
            if syns[skey].type == "nestDeltaSynapse":
                # the cell applies a delta synapse's jump one step after it arrives (it reads
                # the synapse through a derived variable); NEST applies it at spike + delay
                d = np.maximum(d - self.dt_ms, 0.0)
            pc = {"src": src_idx[sel].astype(np.int64), "tgt": tgt_idx[sel].astype(np.int64),
                  "w": np.asarray(w, float), "d": d, "ids": ids[sel]}
            if post_seg is not None:
                pc["post_seg"], pc["post_frac"] = post_seg[sel], post_frac[sel]
            for k in ("pre_seg", "pre_frac"):
                if k in where_cols:
                    pc[k] = where_cols[k][sel].astype(np.int64 if k == "pre_seg" else float)
            pieces.setdefault(key, []).append(pc)

    def _synapse_key(self, ck, tpop, etypes, receptor, where, efile, syns, post_located) -> Tuple[int, int, str]:
        """The projection an edge combination (source part, target part, type, inhibitory) joins."""
        sp, tp, t, neg = ck
        part = tpop.parts[tp]
        tmpl = etypes[t].get("model_template") or ""
        if part.nest is not None:
            key, syn, use_abs = nest_models.synapse_for(part.nest, receptor[t], bool(neg), where)
        elif post_located and tmpl.lower() == "exp2syn":
            syn = self._exp2syn(etypes[t], efile, where)
            key, use_abs = syn.id, False
        else:
            if not tmpl.startswith("nml:"):
                raise UnsupportedFeature(f"edge type {t} onto NeuroML cells needs an nml: synapse template, "
                                         f"got '{tmpl}'", **where)
            syn = self._nml(tmpl[4:], [self.comps.get("synaptic_models_dir")], efile)
            key, use_abs = syn.id, False
        if key not in self.model.components:
            self.model.add_component(syn)
        syns[key] = self.model.components[key]
        self._abs_weight[key] = use_abs
        return (sp, tp, key)

    def _exp2syn(self, etype, efile, where) -> Component:
        """NEURON's Exp2Syn (bmtk's ``exp2syn`` model template) with the edge type's
        dynamics_params (tau1, tau2, erev): an expTwoSynapse of gbase 1 µS, the edge weight in µS
        as the NetCon's. Exp2Syn keeps tau1 below tau2 (at most 0.9999 of it), as here."""
        dp = etype.get("dynamics_params")
        if not dp:
            raise ModelError("an exp2syn edge type needs dynamics_params (tau1, tau2, erev)", **where)
        f = self._component_file(dp, [self.comps.get("synaptic_models_dir")], efile, "synapse dynamics_params file")
        d = self._json(f)
        try:
            tau1, tau2, erev = (float(d[k]) for k in ("tau1", "tau2", "erev"))
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{f.name}: exp2syn needs numbers tau1, tau2 (ms) and erev (mV)", file=f) from None
        if not (tau1 > 0 and tau2 > 0):
            raise ModelError(f"{f.name}: exp2syn tau1 and tau2 must be positive", file=f)
        tau1 = min(tau1, 0.9999 * tau2) if tau1 / tau2 > 0.9999 else max(tau1, 1e-9 * tau2)
        cid = re.sub(r"\W", "_", f"exp2syn__{Path(dp).stem}")
        if cid not in self.model.components:
            self.model.add_component(Component(
                tag="expTwoSynapse", id=cid, type="expTwoSynapse", file=str(f),
                attrs={"gbase": "1uS", "erev": f"{erev!r}mV", "tauRise": f"{tau1!r}ms", "tauDecay": f"{tau2!r}ms"}))
        return self.model.components[cid]

    def _place_on_sections(self, g, efile, epop, etypes, etid, tgt, nsyns, tpop, n, block=None, kept=None):
        """Where bmtk puts each edge's synapses on a biophysical target: at ``afferent_section_id``
        / ``afferent_section_pos`` (one synapse), or ``nsyns`` synapses drawn as bmtk draws them
        (:class:`sonata_biophys.BmtkSections`) from the edge type's ``target_sections`` and
        ``distance_range``, with the target's stream ``RandomState(gid)``, edge by edge in file
        order. Returns the edge row of each synapse, its NeuroML segment and fraction along.
        ``block``, ``kept``: the rows read (a slice of the file) and those of them placed."""
        import ast as _ast
        cols = self._edge_location_columns(g, efile, g["source_node_id"].shape[0], rows=block)
        if kept is not None:
            cols = {k: v[kept] for k, v in cols.items()}
        at = 0 if block is None else block.start  # (edge numbers in messages: the file's)
        comp_of = [p.component.id for p in tpop.parts]
        if "afferent_section_id" in cols:
            if "afferent_section_pos" not in cols:
                raise FormatError(f"edges '{epop}' have afferent_section_id but no afferent_section_pos", file=efile)
            sec, pos = cols["afferent_section_id"], cols["afferent_section_pos"]
            seg, frac = np.zeros(n, dtype=np.int64), np.zeros(n)
            for k in np.unique(tpop.part_of[tgt]):
                rows = np.nonzero(tpop.part_of[tgt] == k)[0]
                bs = self.sections_of[comp_of[k]]
                bad = rows[(sec[rows] < 0) | (sec[rows] >= bs.n_sections) | np.isnan(sec[rows])]
                if len(bad):
                    raise FormatError(f"edges '{epop}': afferent_section_id {sec[bad[0]]:g} of edge "
                                      f"{at + int(kept[bad[0]] if kept is not None else bad[0])} is "
                                      f"not a section of its target (0..{bs.n_sections - 1})", file=efile)
                if np.any(np.isnan(pos[rows]) | (pos[rows] < 0) | (pos[rows] > 1)):
                    raise FormatError(f"edges '{epop}': afferent_section_pos must be in [0, 1]", file=efile)
                seg[rows], frac[rows] = bs.locate(sec[rows].astype(np.int64), pos[rows])
            return np.arange(n), seg, frac
        if np.all(np.isnan(nsyns)):
            raise FormatError(f"edges '{epop}' onto biophysical cells need afferent_section_id/afferent_section_pos "
                              "or nsyns with the edge types' target_sections and distance_range", file=efile)
        spec = {}
        for t in np.unique(etid):
            et = etypes[int(t)]
            names, drange = et.get("target_sections"), et.get("distance_range")
            try:
                names = _ast.literal_eval(names) if isinstance(names, str) else names
                if isinstance(drange, str):
                    drange = _ast.literal_eval(drange)
                drange = [0.0, float(drange)] if isinstance(drange, (int, float)) else [float(x) for x in drange]
            except (ValueError, SyntaxError, TypeError):
                raise FormatError(f"edge type {int(t)}: target_sections {et.get('target_sections')!r} / "
                                  f"distance_range {et.get('distance_range')!r} do not parse", file=efile) from None
            if not names or len(drange) != 2:
                raise FormatError(f"edge type {int(t)} needs target_sections and distance_range to place synapses "
                                  "on biophysical cells", file=efile)
            spec[int(t)] = ([str(x) for x in names], drange)
        rows_out, segs_out, fracs_out = [], [], []
        for i in np.argsort(tgt, kind="stable"):
            k = int(tpop.part_of[tgt[i]])
            bs = self.sections_of[comp_of[k]]
            gid = self.gid_offset[tpop.name] + int(tgt[i])
            rng = self._placement_rngs.get(gid)
            if rng is None:
                rng = self._placement_rngs[gid] = np.random.RandomState(gid)
            m = 1 if np.isnan(nsyns[i]) else int(nsyns[i])
            if m < 1:
                continue
            ix, p = bs.targets(*spec[int(etid[i])])
            if not len(ix):  # bmtk warns and makes no synapse (nor draws)
                continue
            segs = rng.choice(ix, m, p=p)
            seg, frac = bs.locate(bs.seg_sec[segs], bs.seg_x[segs])
            rows_out.append(np.full(m, i))
            segs_out.append(seg)
            fracs_out.append(frac)
        if not rows_out:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        rows = np.concatenate(rows_out)
        order = np.argsort(rows, kind="stable")  # back in file order
        return rows[order], np.concatenate(segs_out)[order], np.concatenate(fracs_out)[order]

    def _edge_location_columns(self, g, efile, n, rows=None) -> Dict[str, np.ndarray]:
        """afferent_section_id / afferent_section_pos (or bmtk's older sec_id / sec_x) per edge."""
        return self._edge_columns(g, efile, n, (("afferent_section_id", "sec_id"), ("afferent_section_pos", "sec_x")),
                                  rows=rows)

    def _special_edges(self, epop, etypes, etid, src, tgt, weight, spop, tpop, efile, where_cols=None):
        """Edges of gap-junction types (``is_gap_junction``, bmtk's column) and of graded
        synapses (``post_model_template``, nmlsim's: the post side's component) become
        electrical / continuous projections; returns the mask of the other edges, or None."""
        flagged = {}
        for t in np.unique(etid):
            et = etypes[int(t)]
            gj = str(et.get("is_gap_junction") or "").strip().lower() in ("true", "1", "yes")
            post_t = et.get("post_model_template")
            if gj or post_t:
                flagged[int(t)] = (gj, post_t, et.get("model_template") or "")
        if not flagged:
            return None
        syn_dir = [self.comps.get("synaptic_models_dir")]
        for t, (gj, post_t, tmpl) in flagged.items():
            if not tmpl.startswith("nml:") or (post_t and not post_t.startswith("nml:")):
                raise UnsupportedFeature(f"edge type {t}: gap junctions and graded synapses need nml: templates",
                                         file=efile)
            rows = np.nonzero(etid == t)[0]
            sp_, tp_ = spop.part_of[src[rows]], tpop.part_of[tgt[rows]]
            for a, b in sorted({(int(x), int(y)) for x, y in zip(sp_, tp_)}):
                sel = rows[(sp_ == a) & (tp_ == b)]
                pre, post = spop.parts[a].pop_id, tpop.parts[b].pop_id
                pi = spop.index_in_part[src[sel]].astype(np.int64)
                qi = tpop.index_in_part[tgt[sel]].astype(np.int64)
                w = np.asarray(weight[sel], float)
                loc = {k: (v[sel].astype(np.int64) if k.endswith("_seg") else v[sel])
                       for k, v in (where_cols or {}).items()}
                if gj:
                    comp = self._nml(tmpl[4:], syn_dir, efile)
                    self.net.electrical.append(ElectricalProjection(epop, pre, post, comp, pi, qi, w, **loc))
                else:
                    pc, qc = self._nml(tmpl[4:], syn_dir, efile), self._nml(post_t[4:], syn_dir, efile)
                    self.net.continuous.append(ContinuousProjection(epop, pre, post, pc, qc, pi, qi, w, **loc))
        return ~np.isin(etid, list(flagged))

    def _edge_columns(self, g, efile, n, columns=None, rows: Optional[slice] = None) -> Dict[str, np.ndarray]:
        """Numeric columns of the edge groups, one value per edge (NaN where a group lacks one),
        of the ``n`` edges or of the slice ``rows`` of them (a block: only its part of each column
        is read). ``columns``: (name, older name or None) pairs; default syn_weight, delay, nsyns
        and nmlsim's location columns."""
        if columns is None:
            columns = [(c, None) for c in ("syn_weight", "delay", "nsyns", *LOCATION_COLUMNS)]
        groups = [k for k in g.keys() if k.isdigit()]
        if not groups:
            return {}
        rows = rows or slice(0, n)
        m = len(range(*rows.indices(n)))
        if "edge_group_id" in g:
            gid = dataset(g, "edge_group_id", efile, length=n, rows=rows)
            gidx = dataset(g, "edge_group_index", efile, length=n, rows=rows) if "edge_group_index" in g else None
        else:
            gid, gidx = np.full(m, int(groups[0])), None
        out: Dict[str, np.ndarray] = {}
        for grp_name in groups:
            mine = np.nonzero(gid == int(grp_name))[0]
            if not len(mine):
                continue
            grp = g[grp_name]
            if gidx is not None:
                index = gidx[mine].astype(np.int64)
            else:  # a group's k-th edge is its row k: count its edges before the block
                start = rows.start or 0
                before = start if "edge_group_id" not in g else int(np.count_nonzero(
                    dataset(g, "edge_group_id", efile, length=n, rows=slice(0, start)) == int(grp_name)))
                index = before + np.arange(len(mine))
            lo, hi = int(index.min()), int(index.max())
            for col, alias in columns:
                name = col if col in grp else alias if alias and alias in grp else None
                if name is None:
                    continue
                d = grp[name]
                size = d.shape[0] if hasattr(d, "shape") and len(d.shape) == 1 else None
                if size is not None and (hi >= size or lo < 0):
                    raise FormatError(f"edge_group_index out of range for {grp.name}/{name} ({size} rows)",
                                      file=efile)
                a = dataset(grp, name, efile, kinds="iuf", rows=slice(lo, hi + 1))
                out.setdefault(col, np.full(m, np.nan))[mine] = a[index - lo]
        return out

    # ------------------------------------------------------------- node sets
    def _node_sets_file(self, sim, sim_path, circuit, circ_path):
        for cfg, p in ((circuit, circ_path), (sim, sim_path)):
            f = cfg.get("node_sets_file")
            if f:
                d = load_json(self.path(f, p.parent, "node sets file", p))
                if not isinstance(d, dict):
                    raise FormatError("node sets file must hold a JSON object", file=p)
                yield from d.items()

    def resolve_node_set(self, spec, _depth=0) -> Dict[str, np.ndarray]:
        """A node set (name, basic dict or compound list) -> {population: sorted node ids}."""
        if _depth > 20:
            raise ModelError("node sets refer to each other in a cycle")
        if isinstance(spec, str):
            if spec in self.node_sets:
                return self.resolve_node_set(self.node_sets[spec], _depth + 1)
            if spec in self.pops:  # bmtk's implicit set per population
                return {spec: np.arange(self.pops[spec].n)}
            raise ModelError(f"unknown node set '{spec}'")
        if isinstance(spec, list):
            out: Dict[str, np.ndarray] = {}
            for s in spec:
                for pop, ids in self.resolve_node_set(s, _depth + 1).items():
                    out[pop] = np.union1d(out.get(pop, np.zeros(0, dtype=np.int64)), ids)
            return out
        if not isinstance(spec, dict):
            raise ModelError(f"a node set must be a name, an object or a list, got {spec!r}")
        pops = spec.get("population")
        if pops is None:
            names = list(self.pops)
        else:
            names = pops if isinstance(pops, list) else [pops]
            for p in names:
                if p not in self.pops:
                    raise ModelError(f"node set names unknown population '{p}'")
        out = {}
        for name in names:
            np_ = self.pops[name]
            mask = np.ones(np_.n, dtype=bool)
            for key, want in spec.items():
                if key == "population":
                    continue
                wants = want if isinstance(want, list) else [want]
                if key == "node_id":
                    ids = np.asarray(wants, dtype=np.int64)
                    if len(ids) and (ids.min() < 0 or ids.max() >= np_.n):
                        raise ModelError(f"node set: node id {int(ids.max())} out of range for population "
                                         f"'{name}' ({np_.n} nodes)")
                    m = np.zeros(np_.n, dtype=bool)
                    m[ids] = True
                    mask &= m
                    continue
                col = np_.column(key)
                if col is None:
                    mask[:] = False
                    continue
                mask &= _matches(col, wants)
            if mask.any() or pops is not None:
                out[name] = np.nonzero(mask)[0]
        return out

    # ------------------------------------------------------------- inputs
    def _input(self, name, inp) -> None:
        itype, module = inp.get("input_type"), inp.get("module")
        if itype == "spikes":
            self._spike_input(name, inp, module)
        elif itype == "current_clamp" or (itype == "csv" and module == "IClamp"):
            self._clamp_input(name, inp)
        elif itype == "nml":
            self._nml_input(name, inp)
        else:
            raise UnsupportedFeature(f"input_type '{itype}' (module '{module}') is not supported")

    def _spike_input(self, name, inp, module) -> None:
        target = self.resolve_node_set(inp.get("node_set"))
        src_pops = [p for p in target if p in self.net.sources]
        if not src_pops:
            raise ModelError(f"spike input node set '{inp.get('node_set')}' holds no virtual nodes")
        # bmtk names it input_file, libsonata (synapse_replay) spike_file
        f = self.path(inp.get("input_file", inp.get("spike_file")), self.sim_path.parent, "spike input file",
                      self.sim_path)
        spikes: Dict[Optional[str], Tuple[np.ndarray, np.ndarray]] = {}
        if module in ("sonata", "h5", "hdf5", "synapse_replay"):  # (synapse_replay: libsonata's name)
            with open_h5(f) as h:
                if "spikes" not in h:
                    raise FormatError("no /spikes group", file=f)
                sg = h["spikes"]
                if "timestamps" in sg and hasattr(sg["timestamps"], "dtype"):
                    ids_name = "gids" if "gids" in sg else "node_ids"
                    t = dataset(sg, "timestamps", f, kinds="iuf")
                    spikes[None] = (dataset(sg, ids_name, f, length=len(t)), t)
                for pop, pg in sg.items():
                    if hasattr(pg, "keys"):
                        t = dataset(pg, "timestamps", f, kinds="iuf")
                        spikes[pop] = (dataset(pg, "node_ids", f, length=len(t)), t)
        elif module == "csv":
            spikes = _spikes_csv(f)
        else:
            raise UnsupportedFeature(f"spike input module '{module}' is not supported (sonata, h5, csv)")
        for pop in src_pops:
            ids, t = spikes.get(pop, spikes.get(None, (None, None)))
            if ids is None:
                raise FormatError(f"no spikes for population '{pop}' (nor a population-free /spikes layout)", file=f)
            ids = np.asarray(ids, dtype=np.int64)
            n = self.pops[pop].n
            if len(ids) and (ids.min() < 0 or ids.max() >= n):
                bad = int(ids.max() if ids.max() >= n else ids.min())
                raise FormatError(f"spike for node id {bad}, out of range for population '{pop}' ({n} nodes)",
                                  file=f)
            keep = np.isin(ids, target[pop])
            try:
                self.net.sources[pop].set_spikes(ids[keep], np.asarray(t, float)[keep] * 1e-3)
            except ModelError as e:
                raise e.located(file=f)

    def _nml_input(self, name, inp) -> None:
        """nmlsim's input type for NeuroML inputs SONATA has no form for (sine, ramp,
        dimensionless pulses, inputs onto a point of a multi-compartment cell): ``component``
        (an nml: document), ``node_set`` (one population, an id list), optional ``weights``,
        ``segment_ids`` and ``fractions_along`` (one per listed node; a node may be listed
        more than once)."""
        tmpl = inp.get("component") or ""
        if not tmpl.startswith("nml:"):
            raise FormatError(f"input '{name}': an nml input needs component 'nml:<file>'", file=self.sim_path)
        comp = self._nml(tmpl[4:], [self.comps.get("synaptic_models_dir"), self.comps.get("point_neuron_models_dir"),
                                    str(self.sim_path.parent)], self.sim_path)
        ns = inp.get("node_set")
        target = self.resolve_node_set(ns)
        per_node = {k: inp.get(k) for k in ("weights", "segment_ids", "fractions_along") if inp.get(k) is not None}
        for pop, ids in target.items():
            np_ = self.pops[pop]
            if np_.virtual:
                raise ModelError(f"input '{name}' targets virtual population '{pop}'")
            # the ids as listed (resolve_node_set sorts them and drops repeats), the lists paired with them
            listed = np.asarray(ns["node_id"], dtype=np.int64) if isinstance(ns, dict) and "node_id" in ns else ids
            for k, v in per_node.items():
                if len(v) != len(listed):
                    raise ModelError(f"input '{name}': {len(v)} {k} for {len(listed)} nodes")
            w = np.asarray(per_node.get("weights", np.ones(len(listed))), dtype=float)
            seg = np.asarray(per_node["segment_ids"], dtype=np.int64) if "segment_ids" in per_node else None
            frac = np.asarray(per_node.get("fractions_along", np.full(len(listed), 0.5)), dtype=float)
            for part_i, part in enumerate(np_.parts):
                sel = np.nonzero(np_.part_of[listed] == part_i)[0]
                if len(sel):
                    loc = {} if seg is None else {"seg": seg[sel], "frac": frac[sel]}
                    self.net.inputs.append(InputList(name, comp, part.pop_id,
                                                     np_.index_in_part[listed[sel]].astype(np.int64), w[sel], **loc))

    def _clamp_input(self, name, inp) -> None:
        target = self.resolve_node_set(inp.get("node_set"))
        if inp.get("input_type") == "csv" or "file" in inp:
            f = self.path(inp.get("file"), self.sim_path.parent, "current clamp file", self.sim_path)
            steps = _clamp_csv(f)
            amps = [a for _, a in steps]
            delays = [t for t, _ in steps]
            durs = [(steps[i + 1][0] if i + 1 < len(steps) else max(self.tstop_ms, t) + 1.0) - t
                    for i, (t, _) in enumerate(steps)]
        else:
            if inp.get("module") == "linear" and "amp" not in inp:  # libsonata's constant (or ramp) step
                if inp.get("amp_end", inp.get("amp_start")) != inp.get("amp_start"):
                    raise UnsupportedFeature("a current_clamp 'linear' ramp (amp_end differs from amp_start)")
                inp = dict(inp, amp=inp.get("amp_start"))
            amps, delays, durs = (inp.get(k) for k in ("amp", "delay", "duration"))
            lists = [isinstance(x, list) for x in (amps, delays, durs)]
            if any(lists):
                amps, delays, durs = ([x] if not isinstance(x, list) else x for x in (amps, delays, durs))
                m = max(len(amps), len(delays), len(durs))
                amps, delays, durs = ((x * m if len(x) == 1 else x) for x in (amps, delays, durs))
                if not len(amps) == len(delays) == len(durs):
                    raise ModelError("current_clamp amp, delay and duration lists differ in length")
            else:
                amps, delays, durs = [amps], [delays], [durs]
            try:
                amps, delays, durs = ([float(x) for x in v] for v in (amps, delays, durs))
            except (TypeError, ValueError):
                raise ModelError("current_clamp needs numeric amp, delay and duration") from None
        for pop, ids in target.items():
            np_ = self.pops[pop]
            if np_.virtual:
                raise ModelError(f"current clamp on virtual population '{pop}'")
            for k, (amp, delay, dur) in enumerate(zip(amps, delays, durs)):
                if dur <= 0:
                    continue
                for part_i, part in enumerate(np_.parts):
                    sel = ids[np_.part_of[ids] == part_i]
                    if not len(sel):
                        continue
                    unit = nest_models.current_unit(part.template)
                    # NEST's step current reaches the membrane one step after its start time
                    # and nmlsim's pulse (jLEMS timing) acts from the step ending at it
                    start = delay + (2 * self.dt_ms if part.nest is not None else 0.0)
                    cid = f"{name}_{part.pop_id}_{k}"
                    # on NEST cells a step current that also offers the delta synapses' 'jump'
                    tag = "nestStepCurrent" if part.nest is not None else "pulseGenerator"
                    comp = Component(tag=tag, id=cid, type=tag, file=str(self.sim_path),
                                     attrs={"amplitude": f"{amp!r}{unit}", "delay": f"{start!r}ms",
                                            "duration": f"{dur!r}ms"})
                    self.model.add_component(comp)
                    self.net.inputs.append(InputList(cid, comp, part.pop_id, np_.index_in_part[sel].astype(np.int64),
                                                     np.ones(len(sel))))

    # ------------------------------------------------------------- reports
    def _report(self, name, rep, out_dir, dt, tstart, tstop) -> ReportSpec:
        var = rep.get("variable_name")
        if var not in ("V_m", "v", "cai"):
            raise UnsupportedFeature(f"report variable '{var}' is not supported (V_m / v, the membrane potential; "
                                     "cai, the soma's Ca2+ concentration of a biophysical cell)")
        # 'sections' places the probe on a morphology; point neurons have none (bmtk's PointNet
        # configs say "multimeter_report" there and PointNet ignores it)
        sections = rep.get("sections", "soma")
        cells = self.resolve_node_set(rep.get("cells", list(self.pops)))
        quantities, kept = {}, {}
        for pop, ids in cells.items():
            np_ = self.pops[pop]
            if np_.virtual or not len(ids):
                continue
            if sections not in ("soma", "origin", None) and any(
                    _has_morphology(np_.parts[k].component) for k in set(np_.part_of[np.asarray(ids)].tolist())):
                raise UnsupportedFeature(f"report sections '{sections}' of '{pop}' (nmlsim reports the soma "
                                         "of a cell with a morphology)")
            kept[pop] = ids
            quantities[pop] = [f"{np_.parts[np_.part_of[i]].pop_id}[{int(np_.index_in_part[i])}]/"
                               + self._report_var(np_.parts[np_.part_of[i]], var) for i in ids]
        fname = rep.get("file_name") or f"{name}.h5"
        f = Path(fname) if Path(fname).is_absolute() else out_dir / fname
        rdt = float(rep.get("dt", dt))
        dtype = str(rep.get("dtype", "float32"))  # libsonata reads float32 only
        if dtype not in ("float64", "float32"):
            raise ModelError(f"report dtype '{dtype}' must be float64 or float32")
        unit, scale = ("mM", 1.0) if var == "cai" else ("mV", 1e3)
        return ReportSpec(name, f, var, unit, scale, float(rep.get("start_time", tstart)),
                          float(rep.get("end_time", tstop)), max(rdt, dt), kept, quantities, dtype)


#: attributes of NeuroML elements that name another component by id
_REF_ATTRS = ("ionChannel", "concentrationModel", "synapse", "component", "cell", "morphology",
              "biophysicalProperties", "input", "spikeTarget")


def _has_morphology(c: Optional[Component]) -> bool:
    return c is not None and c.find_child("morphology") is not None


def _rename_refs(c: Component, ren: Dict[str, str]) -> None:
    for a in _REF_ATTRS:
        v = c.attrs.get(a)
        if v in ren:
            c.attrs[a] = ren[v]
    for a, v in c.attrs.items():  # paths to a referenced component (spikeTarget="./ampa")
        if isinstance(v, str) and v.startswith("./") and v[2:] in ren:
            c.attrs[a] = "./" + ren[v[2:]]
    for ch in c.children:
        _rename_refs(ch, ren)


def _species_path(cell: Component, ion: str) -> Optional[str]:
    """Path (below the cell) of the concentration of the cell's species of ``ion``."""
    for bio in cell.children:
        if bio.tag != "biophysicalProperties":
            continue
        for ip in bio.children:
            if ip.tag != "intracellularProperties":
                continue
            for sp in ip.children:
                if sp.tag == "species" and sp.attrs.get("ion", sp.id) == ion:
                    return f"{bio.id}/intracellularProperties/{sp.id}/concentration"
    return None


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def _float(v, key, where):
    if v is None:
        return np.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        raise FormatError(f"{key} '{v}' is not a number", file=where) from None


def _matches(col: np.ndarray, wants) -> np.ndarray:
    m = np.zeros(len(col), dtype=bool)
    numeric = col.dtype.kind in "iuf"
    for w in wants:
        if numeric:
            try:
                m |= col == float(w)
            except (TypeError, ValueError):
                continue
        else:
            sw = str(w)
            hit = np.array([c is not None and (str(c) == sw or _num_eq(c, w)) for c in col], dtype=bool)
            m |= hit
    return m


def _num_eq(a, b) -> bool:
    try:
        return not isinstance(b, (str, bool)) and float(a) == float(b)
    except (TypeError, ValueError):
        return False


def _spikes_csv(f: Path):
    """bmtk's spike CSV: space-separated ``timestamps population node_ids`` with a header."""
    rows = list(csv.reader(read_text(f).splitlines(), delimiter=" ", skipinitialspace=True))
    if not rows:
        raise FormatError("empty spike file", file=f)
    head = rows[0]
    for need in ("timestamps", "node_ids"):
        if need not in head:
            raise FormatError(f"no '{need}' column", file=f, line=1)
    out: Dict[Optional[str], Tuple[list, list]] = {}
    for ln, r in enumerate(rows[1:], start=2):
        if not r:
            continue
        d = dict(zip(head, r))
        try:
            t, i = float(d["timestamps"]), int(d["node_ids"])
        except (KeyError, ValueError):
            raise FormatError("bad spike row", file=f, line=ln) from None
        ids, ts = out.setdefault(d.get("population"), ([], []))
        ids.append(i)
        ts.append(t)
    return {k: (np.array(v[0]), np.array(v[1])) for k, v in out.items()}


def _clamp_csv(f: Path):
    """``timestamps amps`` table: the amplitude steps to each value at each time."""
    rows = list(csv.reader(read_text(f).splitlines(), delimiter=" ", skipinitialspace=True))
    rows = [[c for c in r if c] for r in rows if r]
    if not rows or "timestamps" not in rows[0] or "amps" not in rows[0]:
        raise FormatError("a current clamp table needs 'timestamps' and 'amps' columns", file=f, line=1)
    it, ia = rows[0].index("timestamps"), rows[0].index("amps")
    steps = []
    for ln, r in enumerate(rows[1:], start=2):
        try:
            steps.append((float(r[it]), float(r[ia])))
        except (IndexError, ValueError):
            raise FormatError("bad row", file=f, line=ln) from None
    steps.sort()
    return steps


def read_sonata_run(config_path, include_root=None, share: Optional[Tuple[int, int]] = None) -> SonataRun:
    """Read a SONATA run. ``share=(rank, ranks)``: one MPI rank's read — the cells are given
    their ranks before the edges are read (graph/partition.py, in-degrees from a first pass over
    the edges' targets) and only the edges onto this rank's cells are kept
    (``Network.owner`` records the ranks for the run); circuits with gap junctions or graded
    synapses are read whole (their coupled cells must be placed together first)."""
    r = SonataReader(config_path, include_root)
    r.share = share
    return r.read()
