"""Networks built from Python, written as NeuroML2 + LEMS and run.

>>> b = NetworkBuilder("net")
>>> cell = b.component("izhikevich2007Cell", "rs", C="100pF", v0="-60mV", k="0.7nS_per_mV", vr="-60mV",
...                    vt="-40mV", vpeak="35mV", a="0.03per_ms", b="-2nS", c="-50mV", d="100pA")
>>> _ = b.population("exc", cell, 20)

Cells, synapses and inputs are NeuroML elements (``b.component(tag, id, **attributes)``, values
with units as in a NeuroML file) or components of LEMS types added with :meth:`add_types` (a
``<ComponentType>`` text, e.g. :meth:`nmlsim.equations.NeuronModel.component_type_xml`).
:meth:`write` gives the files (what jnml and nmlsim run); :meth:`run` writes them to a temporary
folder and runs them, so what runs is exactly what is written.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from .errors import ModelError
from .graph.network import ElectricalProjection, InputList, Network, Population, Projection
from .lems.model import Component


class NetworkBuilder:
    """A network under construction: ``component``, ``population``, ``connect``,
    ``gap_junctions``, ``input``; then ``write`` or ``run``."""

    def __init__(self, id: str = "net", temperature: Optional[str] = None):
        from .io.lems_reader import core_model
        self.model = core_model()
        attrs = {"temperature": temperature} if temperature else {}
        self._netc = Component(tag="network", id=id, type_attr="networkWithTemperature" if temperature else None,
                               attrs=attrs, children=[], file="<nmlsim.builder>")
        self.model.add_component(self._netc)
        self.net = Network(id=id, component=self._netc, model=self.model, root=self._netc, root_path=[])
        self._types = []

    # ------------------------------------------------------------------ parts
    def component(self, tag: str, id: str, children: Sequence[Component] = (), **attrs) -> Component:
        """A component as a NeuroML element gives it: ``component("expOneSynapse", "ampa",
        gbase="1nS", erev="0mV", tauDecay="2ms")``; ``type="..."`` for a generic component."""
        type_attr = attrs.pop("type", None)
        c = Component(tag=tag, id=id, type_attr=type_attr, attrs={k: str(v) for k, v in attrs.items()},
                      children=list(children), file="<nmlsim.builder>")
        if id is not None:
            if id in self.model.components:
                raise ModelError(f"a component '{id}' exists already")
            self.model.add_component(c)
        return c

    def add_types(self, xml: str) -> None:
        """LEMS ``<ComponentType>`` (and ``<Dimension>``/``<Unit>``) definitions, as text."""
        from .io.lems_reader import LemsReader
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "types.xml"
            p.write_text(f"<Lems>\n{xml}\n</Lems>\n")
            LemsReader(self.model).load(p)
        self._types.append(xml)

    def population(self, id: str, cell: Component, size: int) -> Population:
        if id in self.net.populations:
            raise ModelError(f"population '{id}' exists already")
        p = Population(id, cell, int(size))
        self.net.populations[id] = p
        return p

    def _cells(self, pop: str, idx, what: str) -> np.ndarray:
        p = self.net.population(pop)
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= p.size):
            raise ModelError(f"{what}: cell indices must lie in 0..{p.size - 1} of population '{pop}'")
        return idx

    def connect(self, id: str, pre: str, post: str, synapse: Component, pre_idx, post_idx, *,
                weight=1.0, delay=0.0) -> Projection:
        """Spiking connections ``pre_idx[k] -> post_idx[k]`` through ``synapse`` (weights, and
        delays in seconds: scalars or one per connection)."""
        a, b = self._cells(pre, pre_idx, id), self._cells(post, post_idx, id)
        if len(a) != len(b):
            raise ModelError(f"{id}: {len(a)} presynaptic and {len(b)} postsynaptic cells")
        w = np.broadcast_to(np.asarray(weight, dtype=float), a.shape).copy()
        d = np.broadcast_to(np.asarray(delay, dtype=float), a.shape).copy()
        if np.any(d < 0) or not np.all(np.isfinite(d)) or not np.all(np.isfinite(w)):
            raise ModelError(f"{id}: delays must be finite and >= 0, weights finite")
        pr = Projection(id, pre, post, synapse, a, b, w, d)
        self.net.projections.append(pr)
        return pr

    def gap_junctions(self, id: str, pre: str, post: str, junction: Component, pre_idx, post_idx,
                      weight=1.0) -> ElectricalProjection:
        a, b = self._cells(pre, pre_idx, id), self._cells(post, post_idx, id)
        w = np.broadcast_to(np.asarray(weight, dtype=float), a.shape).copy()
        e = ElectricalProjection(id, pre, post, junction, a, b, w)
        self.net.electrical.append(e)
        return e

    def input(self, id: str, component: Component, population: str, cells, weight=1.0) -> InputList:
        """``component`` (a pulseGenerator, poissonFiringSynapse...) on each of ``cells``."""
        idx = self._cells(population, cells, id)
        w = np.broadcast_to(np.asarray(weight, dtype=float), idx.shape).copy()
        il = InputList(id, component, population, idx, w)
        self.net.inputs.append(il)
        return il

    # ----------------------------------------------------------------- output
    def write(self, folder, *, duration: float, dt: float, record: Sequence[str] = (), spikes: bool = True,
              seed: Optional[int] = None, name: Optional[str] = None) -> Path:
        """``<name>.net.nml`` (and ``<name>.types.xml`` for LEMS types) plus ``LEMS_<name>.xml``
        recording ``record`` (``"exc[0]/v"``...) to ``results/<name>.dat`` and, with ``spikes``,
        every cell's spikes to ``results/<name>_<population>.spikes``. Returns the LEMS file."""
        from .io.neuroml_writer import write_lems_simulation, write_network
        name = name or self.net.id
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results").mkdir(exist_ok=True)
        files = write_network(self.net, folder / f"{name}.net.nml", doc_id=name)
        events: Dict[str, list] = {}
        if spikes:
            events = {f"results/{name}_{pid}.spikes": [f"{pid}[{i}]" for i in range(p.size)]
                      for pid, p in self.net.populations.items()
                      if self.model.is_a(self.model.type_of(p.component), "baseSpikingCell")}
        traces = {f"results/{name}.dat": list(record)} if record else {}
        return write_lems_simulation(folder / f"LEMS_{name}.xml", sim_id=f"sim_{name}", target=self.net.id,
                                     includes=[f.name for f in files], length_s=float(duration), step_s=float(dt),
                                     seed=seed, event_outputs=events, traces=traces)

    def run(self, *, duration: float, dt: float, record: Sequence[str] = (), seed: Optional[int] = None,
            method: Optional[str] = None, backend: str = "numpy"):
        """Write the network (:meth:`write`) to a temporary folder and run it; returns a
        :class:`nmlsim.results.RunResult` (spikes of every population, ``record`` in its output)."""
        from . import api
        with tempfile.TemporaryDirectory() as tmp:
            lems = self.write(tmp, duration=duration, dt=dt, record=(), spikes=False, seed=seed)
            sim = api.load(lems)
            res = sim.run(method=method, backend=backend, record=list(record))
        res.simulator = None
        return res
