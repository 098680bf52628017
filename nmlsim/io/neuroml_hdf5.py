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


def read_network_h5(path) -> Component:
    """The network in a NeuroML HDF5 file, as a component tree with array payloads."""
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
        for name, sub in g.items():
            kind = name.split("_", 1)[0]
            cid = _s(sub.attrs.get("id", name.split("_", 1)[-1]))
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
            elif kind in ("projection", "electricalProjection", "continuousProjection"):
                if kind != "projection" or _s(sub.attrs.get("type", "projection")) != "projection":
                    raise UnsupportedFeature(f"'{name}': only chemical projections are read from HDF5", file=path)
                c = Component(tag="projection", id=cid, file=str(path), attrs={
                    k: _s(sub.attrs[k]) for k in ("presynapticPopulation", "postsynapticPopulation", "synapse")
                    if k in sub.attrs})
                cols = _columns(sub[cid], path) if cid in sub else {"pre_cell_id": np.zeros(0),
                                                                    "post_cell_id": np.zeros(0)}
                c.data = {"pre": cols["pre_cell_id"], "post": cols["post_cell_id"],
                          "weight": cols.get("weight"), "delay_ms": cols.get("delay")}
                net.children.append(c)
            elif kind == "inputList":
                c = Component(tag="inputList", id=cid, file=str(path), attrs={
                    "component": _s(sub.attrs.get("component")), "population": _s(sub.attrs.get("population"))})
                cols = _columns(sub[cid], path)
                c.data = {"target": cols["target_cell_id"], "weight": cols.get("weight")}
                net.children.append(c)
        return net


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
