"""NeuroML2 networks in HDF5 (the layout libNeuroML's NeuroMLHdf5Writer and jNeuroML use).

::

    /neuroml                       attrs id, notes
      network                      attrs id, notes, temperature
        population_<id>            attrs id, component, size[, type=populationList]
          <id>                     (size x 4) id, x, y, z            (populationList)
        projection_<id>            attrs id, type=projection, presynapticPopulation,
                                         postsynapticPopulation, synapse
          <id>                     (n x k): [id,] pre_cell_id, post_cell_id,
                                   [pre_segment_id, post_segment_id, pre/post_fraction_along],
                                   [weight, delay (ms)] — each column named by a column_<k> attribute
        inputList_<id>             attrs id, component, population
          <id>                     (n x 4|5): id, target_cell_id, segment_id, fraction_along[, weight]

Reading yields a ``<network>`` component whose population / projection / inputList
children carry their columns as arrays (``Component.data``), so that a network of millions
of connections never becomes millions of objects.  nmlsim writes float64 columns; files
from libNeuroML (float32) read the same way.  Columns are found by name, as libNeuroML does.
jNeuroML 0.14's reader is narrower: it takes population rows as (id, x, y, z) — which
nmlsim writes — but reads no weight or delay columns and takes input-list rows by
position, so weighted networks exported this way do not run the same in jnml (the XML
export does).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..errors import FormatError, UnsupportedFeature
from ..graph.network import MAX_CELLS, Network
from ..lems.model import Component
from .hdf5 import open_h5
from .results import _atomic_h5


def _s(v) -> str:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return _s(v.item()) if v.shape == () else str(v)
    return str(v)


def _columns(ds, path) -> Dict[str, np.ndarray]:
    a = ds[()]
    if a.ndim != 2:
        raise FormatError(f"dataset {ds.name} must be two-dimensional", file=path)
    cols = {}
    for k in range(a.shape[1]):
        name = ds.attrs.get(f"column_{k}")
        if name is None:
            raise FormatError(f"dataset {ds.name} has no name for column {k} (attribute column_{k})", file=path)
        cols[_s(name)] = a[:, k]
    return cols


#: projection rows read per block by an MPI rank's reader (which keeps those onto its own cells)
ROW_BLOCK = 1 << 20


def _column_index(ds, name: str, path) -> int:
    for k in range(ds.shape[1] if len(ds.shape) == 2 else 0):
        if _s(ds.attrs.get(f"column_{k}", "")) == name:
            return k
    raise FormatError(f"dataset {ds.name} has no column '{name}'", file=path)


def _index_of_ids(pop: Component):
    """Instance id -> array index of a population read here (None: ids are indices)."""
    ids = (pop.data or {}).get("ids")
    if ids is None:
        return None
    order = np.argsort(ids, kind="stable")
    return ids[order], order


def _to_index(lookup, ids: np.ndarray, size: int) -> np.ndarray:
    """Array indices of instance ids (-1 for ids the population does not have)."""
    ids = np.asarray(ids, dtype=np.int64)
    if lookup is None:
        return np.where((ids >= 0) & (ids < size), ids, -1)
    sorted_ids, order = lookup
    j = np.clip(np.searchsorted(sorted_ids, ids), 0, max(len(sorted_ids) - 1, 0))
    hit = len(sorted_ids) > 0
    return np.where(hit & (sorted_ids[j] == ids), order[j], -1) if hit else np.full(len(ids), -1)


def read_network_h5(path, share=None) -> Component:
    """The network in a NeuroML HDF5 file, as a component tree with array payloads.
    ``share=(rank, ranks)``: one MPI rank's read — every cell gets its rank first (in-degrees
    from a block-wise pass over the projections' post column) and only the connections onto
    this rank's cells are kept (the network component carries ``owner``/``read_for``, which
    the run cuts its share with; each kept connection's row is its identity)."""
    path = Path(path)
    with open_h5(path) as f:
        if "neuroml" not in f or "network" not in f["neuroml"]:
            raise FormatError("no /neuroml/network group (is this a NeuroML HDF5 network?)", file=path)
        root = f["neuroml"]
        if _s(root.attrs.get("neuroml_top_level", "")).count("<") > 2 and "<neuroml" in _s(
                root.attrs.get("neuroml_top_level", "")):
            inner = _s(root.attrs["neuroml_top_level"])
            body = inner[inner.find(">", inner.find("<neuroml")) + 1:inner.rfind("</neuroml>")]
            if body.strip():
                raise UnsupportedFeature("this HDF5 file embeds NeuroML components (neuroml_top_level); "
                                         "keep them in an XML file beside it", file=path)
        g = root["network"]
        attrs = {}
        if "temperature" in g.attrs:
            attrs["temperature"] = _s(g.attrs["temperature"])
        net = Component(tag="network", id=_s(g.attrs.get("id", "network")), attrs=attrs, file=str(path),
                        type_attr="networkWithTemperature" if "temperature" in attrs else None)
        items = list(g.items())
        # populations first: an MPI rank's read ranks their cells before it keeps any connection
        items.sort(key=lambda it: it[0].split("_", 1)[0] != "population")
        pops: Dict[str, Component] = {}
        mine = None
        for name, sub in items:
            kind = name.split("_", 1)[0]
            cid = _s(sub.attrs.get("id", name.split("_", 1)[-1]))
            if kind != "population" and mine is None and share is not None and share[1] > 1:
                mine = _rank_cells(g, items, pops, share, path, net)
            if kind == "population":
                size = int(sub.attrs.get("size", 0))
                if size < 0 or size > MAX_CELLS:
                    raise FormatError(f"population '{cid}' size {size} is outside 0..{MAX_CELLS}", file=path)
                c = Component(tag="population", id=cid, attrs={"component": _s(sub.attrs.get("component")),
                                                               "size": str(size)}, file=str(path))
                if cid in sub:
                    cols = _columns(sub[cid], path)
                    n = len(next(iter(cols.values()))) if cols else 0
                    pos = np.stack([cols.get(a, np.zeros(n)) for a in "xyz"], axis=1).astype(float)
                    ids = cols.get("id")
                    c.type_attr = "populationList"
                    c.data = {"positions": pos, "ids": None if ids is None else ids.astype(np.int64)}
                net.children.append(c)
                pops[cid] = c
            elif kind in ("projection", "electricalProjection", "continuousProjection"):
                if kind != "projection" or _s(sub.attrs.get("type", "projection")) != "projection":
                    raise UnsupportedFeature(f"'{name}': only chemical projections are read from HDF5", file=path)
                c = Component(tag="projection", id=cid, file=str(path), attrs={
                    k: _s(sub.attrs[k]) for k in ("presynapticPopulation", "postsynapticPopulation", "synapse")
                    if k in sub.attrs})
                post = c.attrs.get("postsynapticPopulation")
                if mine is not None and cid in sub and post in mine:
                    cols, rows = _rows_onto(sub[cid], mine[post], path)
                else:
                    cols = _columns(sub[cid], path) if cid in sub else {"pre_cell_id": np.zeros(0),
                                                                        "post_cell_id": np.zeros(0)}
                    rows = None
                c.data = {"pre": cols["pre_cell_id"], "post": cols["post_cell_id"],
                          "weight": cols.get("weight"), "delay_ms": cols.get("delay"), "rows": rows}
                net.children.append(c)
            elif kind == "inputList":
                c = Component(tag="inputList", id=cid, file=str(path), attrs={
                    "component": _s(sub.attrs.get("component")), "population": _s(sub.attrs.get("population"))})
                cols = _columns(sub[cid], path)
                c.data = {"target": cols["target_cell_id"], "weight": cols.get("weight")}
                net.children.append(c)
        return net


def _rank_cells(g, items, pops, share, path, net) -> Dict[str, object]:
    """Every cell's rank (graph/partition.assign_costs: a cell costs 1 and 0.1 per connection
    onto it); per population, (instance-id lookup, whether each cell is this rank's)."""
    from ..graph.partition import assign_costs
    rank, ranks = share
    sizes = {pid: int(c.attrs["size"]) for pid, c in pops.items()}
    lookups = {pid: _index_of_ids(c) for pid, c in pops.items()}
    indegree = {pid: np.zeros(n) for pid, n in sizes.items()}
    for name, sub in items:
        if name.split("_", 1)[0] != "projection":
            continue
        cid = _s(sub.attrs.get("id", name.split("_", 1)[-1]))
        post = _s(sub.attrs.get("postsynapticPopulation", ""))
        if cid not in sub or post not in sizes:
            continue
        ds = sub[cid]
        k = _column_index(ds, "post_cell_id", path)
        for a in range(0, ds.shape[0], ROW_BLOCK):
            idx = _to_index(lookups[post], ds[a:a + ROW_BLOCK, k], sizes[post])
            indegree[post] += np.bincount(idx[idx >= 0], minlength=sizes[post])
    cost = np.concatenate([1.0 + 0.1 * indegree[pid] for pid in sizes]) if sizes else np.zeros(0)
    owner = assign_costs(sizes, cost, [], ranks)
    net.owner, net.read_for = owner, (rank, ranks)
    return {pid: (lookups[pid], owner[pid] == rank, sizes[pid]) for pid in sizes}


def _rows_onto(ds, mine, path):
    """The columns of the rows of projection dataset ``ds`` whose post cell is this rank's,
    read in blocks, and those rows' numbers."""
    lookup, here, size = mine
    if len(ds.shape) != 2:
        raise FormatError(f"dataset {ds.name} must be two-dimensional", file=path)
    k = _column_index(ds, "post_cell_id", path)
    names = [_s(ds.attrs.get(f"column_{j}")) for j in range(ds.shape[1])]
    parts, rows = [], []
    for a in range(0, ds.shape[0], ROW_BLOCK):
        block = ds[a:a + ROW_BLOCK]
        idx = _to_index(lookup, block[:, k], size)
        if (idx < 0).any():
            j = int(np.nonzero(idx < 0)[0][0])
            raise FormatError(f"{ds.name} row {a + j}: post_cell_id {block[j, k]:g} is not a cell of its "
                              "postsynaptic population", file=path)
        keep = np.nonzero(here[idx])[0]
        parts.append(block[keep])
        rows.append(a + keep)
    data = np.concatenate(parts) if parts else np.zeros((0, len(names)))
    return {nm: data[:, j] for j, nm in enumerate(names)}, (np.concatenate(rows) if rows else np.zeros(0, np.int64))


def _instance_ids(net: Network, pid: str) -> np.ndarray:
    p = net.populations[pid]
    return p.instance_ids if p.instance_ids is not None else np.arange(p.size)


def write_network_h5(net: Network, path, doc_id: Optional[str] = None) -> Path:
    """The structure of ``net`` (populations, projections, input lists) in NeuroML HDF5.

    The components it refers to go into an XML document (see neuroml_writer.write_network).
    """
    if net.electrical or net.continuous:
        raise UnsupportedFeature("gap junctions and graded synapses are not written to NeuroML HDF5 yet")
    path = Path(path)

    def fill(f):
        root = f.create_group("neuroml")
        root.attrs["id"] = doc_id or net.id
        root.attrs["notes"] = net.description or ""
        root.attrs["GENERATED_BY"] = "nmlsim"
        g = root.create_group("network")
        g.attrs["id"] = net.id
        g.attrs["notes"] = ""
        temp = net.component.attrs.get("temperature") if net.component is not None else None
        if temp:
            g.attrs["temperature"] = temp
        for p in net.populations.values():
            pg = g.create_group(f"population_{p.id}")
            pg.attrs["id"] = p.id
            pg.attrs["component"] = p.component.id
            pg.attrs["size"] = p.size
            # always a populationList (jNeuroML addresses HDF5 cells as pop/i/component,
            # which needs instances); cells without positions sit at the origin
            pg.attrs["type"] = "populationList"
            pos = p.positions if p.positions is not None else np.zeros((p.size, 3))
            ids = p.instance_ids if p.instance_ids is not None else np.arange(p.size)
            # id first: jNeuroML reads rows as (id, x, y, z); libNeuroML goes by column names
            d = pg.create_dataset(p.id, data=np.column_stack([ids, np.asarray(pos, dtype=float)]))
            for k, a in enumerate(("id", "x", "y", "z")):
                d.attrs[f"column_{k}"] = a
        for pr in net.projections:
            qg = g.create_group(f"projection_{pr.id}")
            qg.attrs["id"] = pr.id
            qg.attrs["type"] = "projection"
            qg.attrs["presynapticPopulation"] = pr.pre
            qg.attrs["postsynapticPopulation"] = pr.post
            qg.attrs["synapse"] = pr.synapse.id
            pre_ids = _instance_ids(net, pr.pre)[pr.pre_idx]
            post_ids = _instance_ids(net, pr.post)[pr.post_idx]
            cols = [np.arange(len(pr.pre_idx)), pre_ids, post_ids, pr.weight, np.asarray(pr.delay) * 1e3]
            d = qg.create_dataset(pr.id, data=np.stack([np.asarray(c, dtype=float) for c in cols], axis=1),
                                  compression="gzip", compression_opts=4)
            for k, name in enumerate(("id", "pre_cell_id", "post_cell_id", "weight", "delay")):
                d.attrs[f"column_{k}"] = name
        used = set()
        for i in net.inputs:
            iid = i.id
            while iid in used:
                iid += "_"
            used.add(iid)
            ig = g.create_group(f"inputList_{iid}")
            ig.attrs["id"] = iid
            ig.attrs["component"] = i.component.id
            ig.attrs["population"] = i.population
            n = len(i.target_idx)
            tgt = _instance_ids(net, i.population)[i.target_idx]
            a = np.stack([np.arange(n), tgt, np.zeros(n), np.full(n, 0.5), i.weight], axis=1).astype(float)
            d = ig.create_dataset(iid, data=a)
            for k, name in enumerate(("id", "target_cell_id", "segment_id", "fraction_along", "weight")):
                d.attrs[f"column_{k}"] = name
    _atomic_h5(path, fill, "NeuroML HDF5 network", sonata=False)
    return path
