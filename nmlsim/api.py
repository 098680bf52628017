"""The public Python API: load a model, build a simulator, run it, write results."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .compile.build import Built, build_groups
from .engine.paths import resolve_cell, resolve_quantity, _split
from .engine.record import EventRecorder, TraceRecorder
from .engine.simulator import Simulator
from .errors import ModelError
from .graph.network import Network
from .io.lems_reader import load_model
from .io.lems_sim import SimulationSpec, read_simulation
from .io.neuroml import build_network
from .io.results import write_dat, write_events, write_sonata_spikes
from .lems.model import LemsModel


#: key of ``RunResult.traces`` holding the extra quantities (the Display lines for --plot)
DISPLAY_TRACES = "__display__"


@dataclass
class LoadedSimulation:
    path: Path
    model: LemsModel
    spec: SimulationSpec
    network: Network


def load(path, include_root=None) -> LoadedSimulation:
    """Read a LEMS simulation file (and everything it includes)."""
    path = Path(path)
    model = load_model(path, include_root=include_root)
    spec = read_simulation(model)
    target = model.component(spec.target, where=spec.component.where())
    net = build_network(model, target)
    return LoadedSimulation(path, model, spec, net)


@dataclass
class RunResult:
    traces: Dict[str, np.ndarray] = field(default_factory=dict)
    events: Dict[str, list] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)
    complete: bool = True
    simulator: Optional[Simulator] = None


def run(sim: LoadedSimulation, *, method: str = "exp_euler", dt: Optional[float] = None,
        duration: Optional[float] = None, seed: Optional[int] = None, outdir=None, write: bool = True,
        progress: Optional[Callable] = None, extra_quantities=(), merge_synapses: bool = True,
        sonata_spikes=None) -> RunResult:
    """Simulate and write the OutputFiles/EventOutputFiles the LEMS file asks for.

    File names resolve against ``outdir`` (default: the working directory, as jnml does).
    """
    spec = sim.spec
    dt = float(dt) if dt else spec.step
    duration = float(duration) if duration is not None else spec.length
    seed = seed if seed is not None else spec.seed
    built = build_groups(sim.network, merge_synapses=merge_synapses)
    simulator = Simulator(built, dt, method=method, seed=seed)
    result = RunResult(simulator=simulator)
    base = Path(outdir) if outdir else Path.cwd()

    def trace_sink(of):
        def sink(name, data, complete):
            result.traces[name] = data
            result.complete &= complete
            if write:
                p = base / of.file_name
                write_dat(p, data, complete)
                result.files.append(str(p))
        return sink

    def event_sink(ef):
        def sink(name, events, complete):
            result.events[name] = events
            result.complete &= complete
            if write:
                p = base / ef.file_name
                write_events(p, events, ef.format, complete)
                result.files.append(str(p))
        return sink

    recorders = []
    for of in spec.outputs:
        cols = []
        for c in of.columns:
            try:
                cols.append(resolve_quantity(built, c.quantity))
            except ModelError as e:
                raise e.located(file=sim.path, element=f"OutputColumn id='{c.id}'") from None
        recorders.append(TraceRecorder(of.id, cols, trace_sink(of)))
    for ef in spec.event_outputs:
        sels = []
        for s in ef.selections:
            g, idx, rest = resolve_cell(built, _split(s.select), s.select)
            if rest:
                raise ModelError(f"EventSelection '{s.select}' must name a cell", file=sim.path)
            sels.append((s.id, g, s.port, idx))
        recorders.append(EventRecorder(ef.id, sels, event_sink(ef)))
    if sonata_spikes:
        from .compile.build import spiking_groups
        from .engine.record import SpikeRecorder
        path_h5 = Path(sonata_spikes) if Path(sonata_spikes).is_absolute() else base / sonata_spikes

        def spikes_sink(spikes, complete):
            if write:
                write_sonata_spikes(path_h5, spikes, complete)
                result.files.append(str(path_h5))
        spike_rec = SpikeRecorder(spiking_groups(built), sink=spikes_sink)
        recorders.append(spike_rec)
    if extra_quantities:
        cols = []
        for q in extra_quantities:
            try:
                cols.append(resolve_quantity(built, q))
            except ModelError as e:
                raise e.located(file=sim.path, element=f"Line quantity='{q}'") from None
        recorders.append(TraceRecorder(DISPLAY_TRACES, cols, lambda n, d, c: result.traces.__setitem__(n, d)))
    result.complete = True
    simulator.run(duration, recorders, progress=progress)
    return result




def simulate_network(net: Network, duration: float, dt: float, *, method: str = "exp_euler",
                     seed: Optional[int] = None, progress: Optional[Callable] = None,
                     merge_synapses: bool = True, spikes_sink: Optional[Callable] = None):
    """Simulate a graph built in Python and return the spikes of every population.

    Returns ``{population: (cell indices, spike times in s)}`` and the Simulator.
    """
    from .compile.build import spiking_groups
    from .engine.record import SpikeRecorder
    built = build_groups(net, merge_synapses=merge_synapses)
    simulator = Simulator(built, dt, method=method, seed=seed)
    rec = SpikeRecorder(spiking_groups(built), sink=spikes_sink)
    simulator.run(duration, [rec], progress=progress)
    return rec.result(), simulator


def run_sonata(config, *, method: str = "exp_euler", dt: Optional[float] = None, duration: Optional[float] = None,
               seed: Optional[int] = None, include_root=None, progress: Optional[Callable] = None):
    """Simulate a SONATA simulation config; writes the SONATA spike file it names.

    Returns (spikes {population: (node ids, times s)}, path of the spike file).
    """
    from .io.sonata import read_sonata
    net, settings = read_sonata(config, include_root=include_root)
    dt = dt or settings["dt_s"]
    duration = duration if duration is not None else settings["tstop_s"]
    seed = seed if seed is not None else settings["seed"]
    out = Path(settings["output_dir"]) / settings["spikes_file"]
    # written from the recorder's finalize, so an interrupted run still leaves its (marked) spikes
    spikes, _ = simulate_network(net, duration, dt, method=method, seed=seed, progress=progress,
                                 spikes_sink=lambda sp, complete: write_sonata_spikes(out, sp, complete))
    return spikes, out
