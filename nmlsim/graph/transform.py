"""Graph rewrites that keep behaviour but change form (for writers with fewer concepts)."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..lems.model import Component
from .network import Network, Population, Projection


def sources_as_spike_arrays(net: Network) -> Network:
    """A copy of ``net`` in which every spike-source node becomes a one-cell population of
    a NeuroML ``spikeArray`` (NeuroML has no population of cells with different spike
    trains), and projections from sources are split per source node."""
    if not net.sources:
        return net
    model = net.model
    out = dataclasses.replace(net, populations=dict(net.populations), projections=[], sources={})
    node_pop = {}
    for sid, src in net.sources.items():
        for i in range(src.size):
            times = src.times[src.ids == i]
            cid = _free_id(model, f"{sid}_{i}_spikes")
            comp = Component(tag="spikeArray", id=cid, type="spikeArray",
                             children=[Component(tag="spike", id=str(k), attrs={"time": f"{float(t) * 1e3!r}ms"})
                                       for k, t in enumerate(times)])
            model.add_component(comp)
            pid = f"{sid}_{i}"
            while pid in out.populations:
                pid += "_"
            out.populations[pid] = Population(pid, comp, 1)
            node_pop[(sid, i)] = pid
    for pr in net.projections:
        if pr.pre not in net.sources:
            out.projections.append(pr)
            continue
        for i in np.unique(pr.pre_idx):
            sel = pr.pre_idx == i
            out.projections.append(Projection(f"{pr.id}_from{int(i)}", node_pop[(pr.pre, int(i))], pr.post,
                                              pr.synapse, np.zeros(int(sel.sum()), dtype=np.int64),
                                              pr.post_idx[sel], pr.weight[sel], pr.delay[sel], pr.source_port))
    return out


def _free_id(model, base: str) -> str:
    cid, k = base, 1
    while cid in model.components:
        cid = f"{base}{k}"
        k += 1
    return cid

