"""The public Python API: load a model, build a simulator, run it, write results."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .compile.build import build_groups
from .engine.paths import quantity_dimension, resolve_outputs, resolve_quantity
from .engine.record import EventRecorder, TraceRecorder
from .engine.simulator import Simulator, observed_by
from .errors import ModelError, UnsupportedFeature
from .lems.dimensions import check_model, user_types
from .graph.network import Network
from .io.lems_reader import load_model
from .io.lems_sim import SimulationSpec, read_simulation
from .io.neuroml import build_network
from .io.results import partial_name, write_dat, write_events, write_sonata_spikes
from .lems.model import LemsModel
from .results import Column, RunResult


#: key of ``RunResult.traces`` holding the extra quantities (the Display lines for --plot)
DISPLAY_TRACES = "__display__"


@dataclass
class Parameter:
    """A parameter of a component of the model: ``path`` (component ids and child names, then
    the parameter), its value as written, in SI, its LEMS dimension and SI unit."""
    path: str
    text: Optional[str]
    value: Optional[float]
    dimension: str
    unit: str


class Parameterised:
    """``parameters()`` and ``set()`` over the components of a loaded model, by path (component
    ids and child names, then the parameter). Subclasses give the model, the top-level
    components to walk and what a change must redo."""
    model: LemsModel
    path: Path
    overrides: Dict[str, str]

    def _roots(self):
        """(id, component) of the top-level components whose parameters can be set."""
        return self.model.components.items()

    def _changed(self) -> None:
        """Called after a parameter changed (rebuild what depends on it)."""

    def _walk(self):
        """(path, component) of every component below the top level, depth first."""
        def rec(prefix, comp):
            yield prefix, comp
            for ch in comp.children:
                if ch.tag in ("notes", "annotation", "property", "include"):
                    continue
                yield from rec(f"{prefix}/{ch.id or ch.tag}", ch)
        for cid, comp in self._roots():
            yield from rec(cid, comp)

    def parameters(self, prefix: str = "") -> List[Parameter]:
        """Every parameter of the model's components whose path starts with ``prefix``
        (``"pulseGen1"``, ``"hhpointcell/"``...), with its value and unit."""
        reg = self.model.units
        out = []
        for path, comp in self._walk():
            try:
                ct = self.model.resolved(self.model.type_of(comp))
            except ModelError:
                continue
            for name, dim in ct.parameters.items():
                full = f"{path}/{name}"
                if not full.startswith(prefix):
                    continue
                text = comp.attrs.get(name)
                try:
                    value = None if text is None else reg.parse(text, dim)
                except Exception:
                    value = None
                out.append(Parameter(full, text, value, dim, reg.symbol_for(dim) if dim != "none" else ""))
        return out

    def set(self, path: str, value):
        """Set a parameter: ``sim.set("pulseGen1/amplitude", "0.1 nA")`` (a string with units,
        checked against the parameter's dimension) or a number in SI units. Returns the
        simulation, for chaining."""
        from .errors import UnitError
        comp_path, _, name = path.rpartition("/")
        comp = dict(self._walk()).get(comp_path)
        if comp is None:
            raise ModelError(f"no component '{comp_path}' in {self.path.name} (see sim.parameters())")
        ct = self.model.resolved(self.model.type_of(comp))
        if name not in ct.parameters:
            raise ModelError(f"{comp_path} ({ct.name}) has no parameter '{name}' "
                             f"(it has: {', '.join(ct.parameters) or 'none'})")
        if isinstance(value, str):
            text = value.strip()
            try:
                self.model.units.parse(text, ct.parameters[name])
            except UnitError as e:
                raise UnitError(f"{path}: {e.message}") from None
        else:
            v = float(value)
            if not np.isfinite(v):
                raise ModelError(f"{path}: {value!r} is not a finite number")
            text = repr(v)  # a bare number is SI, as jLEMS reads it
        comp.attrs[name] = text
        self.overrides[path] = text
        self._changed()
        return self


@dataclass
class LoadedSimulation(Parameterised):
    """A LEMS simulation file, loaded: its model, its <Simulation> settings and the network it
    targets. ``parameters()`` lists what can be changed, ``set()`` changes it (the network is
    rebuilt, so sizes and structure follow), ``run()`` runs."""
    path: Path
    model: LemsModel
    spec: SimulationSpec
    network: Network
    include_root: Optional[Path] = None
    #: the values set with ``set()`` (path -> text), replayed by ``sweep`` in its workers
    overrides: Dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """The run's length (s) as the file gives it."""
        return self.spec.length

    def _roots(self):
        return [(cid, c) for cid, c in self.model.components.items() if c is not self.spec.component]

    def _changed(self) -> None:
        self.network = build_network(self.model, self.model.component(self.spec.target))

    def run(self, *, write: bool = False, **kw) -> "RunResult":
        """Run; see :func:`run` for the options. Files are written only with ``write=True``
        (or an ``outdir``); spikes of every population are recorded."""
        kw.setdefault("record_spikes", True)
        if kw.get("outdir") is not None:
            write = True
        return run(self, write=write, **kw)


def load(path, include_root=None, comm=None):
    """Read a LEMS simulation file (and everything it includes) into a
    :class:`LoadedSimulation`, or a SONATA simulation/circuit config (``.json``) into a
    :class:`nmlsim.sonata_sim.SonataSimulation`; both have ``parameters()``, ``set()`` and
    ``run()``. ``comm`` (MPI): read only the connections onto this rank's cells where the format
    allows it (SONATA edges, NeuroML HDF5 projections), to run with ``run(comm=comm)``."""
    path = Path(path)
    if path.suffix == ".json":
        from .sonata_sim import load_sonata
        return load_sonata(path, include_root=include_root, comm=comm)
    model = load_model(path, include_root=include_root, share=None if comm is None else (comm.rank, comm.size))
    dimension_errors = check_model(model, user_types(model))
    if dimension_errors:  # jLEMS refuses these at load time too
        raise dimension_errors[0]
    try:
        spec = read_simulation(model)
    except ModelError as e:
        raise e.located(file=path) from None
    target = model.component(spec.target, where=spec.component.where())
    net = build_network(model, target)
    return LoadedSimulation(path, model, spec, net, include_root=Path(include_root) if include_root else None)


def confine_outputs(paths, base: Path, source, allow: bool) -> None:
    """Refuse output paths a model file names outside ``base`` (the working directory or
    --outdir of a LEMS run, the config's folder of a SONATA run): a downloaded model must not
    overwrite the user's files. ``allow`` (--allow-outputs-anywhere) lifts this."""
    if allow:
        return
    from .errors import SecurityError
    root = Path(os.path.realpath(base))
    for p in paths:
        rp = Path(os.path.realpath(p))
        if rp != root and root not in rp.parents:
            raise SecurityError(f"output '{p}' lies outside '{root}' (a model's outputs stay in the run folder; "
                                "--outdir moves them, --allow-outputs-anywhere lifts this)", file=source)


def _check_run(duration: float, dt: float, seed) -> None:
    """The run's times and seed as given (file values are checked where they are read)."""
    from .units import check_run_times, check_seed
    bad = check_run_times(duration, dt) or check_seed(seed)
    if bad:
        raise ModelError(f"cannot run: {bad}")


def column_of(built, units, cid: str, q: str) -> Column:
    """The result column of quantity ``q``: its id, path, SI unit and LEMS dimension (None where
    its type declares none)."""
    try:
        dim = quantity_dimension(built, q)
    except ModelError:
        dim = None
    return Column(cid, q, units.symbol_for(dim) if dim and dim != "none" else "", dim)


def resolve_all(built, quantities, source, element: str) -> list:
    """The recorder columns of ``quantities``; a bad one is an error naming ``source`` and
    ``element`` (a format with the quantity, "record '{}'")."""
    cols = []
    for q in quantities:
        try:
            cols.append(resolve_quantity(built, q))
        except ModelError as e:
            raise e.located(file=source, element=element.format(q)) from None
    return cols


def record_output(built, units, record, source, result: RunResult) -> TraceRecorder:
    """``record=`` of a run: the quantities into the result's output ``"record"``."""
    cols = resolve_all(built, record, source, "record '{}'")
    result.columns["record"] = [column_of(built, units, q, q) for q in record]
    return TraceRecorder("record", cols, lambda n, d, c: result.traces.__setitem__(n, d))


def default_method(built, like_jnml: bool = False) -> str:
    """``neuron`` (NEURON's fixed step as jNeuroML's NEURON export runs it) for models with
    multi-compartment cells — NEURON is their reference simulator, jLEMS cannot run them —
    otherwise ``exp_euler``, or with ``like_jnml`` (``nmlsim LEMS_x.xml -nogui``) ``euler``,
    jLEMS's own scheme, so that the files written are jnml's."""
    if built.cables:
        return "neuron"
    return "euler" if like_jnml else "exp_euler"


def run(sim: LoadedSimulation, *, method: Optional[str] = None, dt: Optional[float] = None,
        duration: Optional[float] = None, seed: Optional[int] = None, outdir=None, write: bool = True,
        progress: Optional[Callable] = None, extra_quantities=(), merge_synapses: bool = True,
        sonata_spikes=None, backend: str = "numpy", crank_nicolson: bool = False,
        allow_outputs_anywhere: bool = False, like_jnml: bool = False, record_spikes: bool = False,
        record=(), comm=None) -> RunResult:
    """Simulate and write the OutputFiles/EventOutputFiles the LEMS file asks for.

    - ``method``: ``exp_euler`` (default), ``euler`` (jLEMS's scheme), ``rk4``, ``neuron``;
      ``backend``: ``numpy`` or ``numba``; ``dt``, ``duration`` (s) and ``seed`` override the file's;
    - ``write``: write the files (names resolve against ``outdir``, default the working directory,
      as jnml does); ``sonata_spikes``: also a SONATA spike file there;
    - ``record_spikes``: every spike of every population in ``result.spikes``; ``record``: more
      quantities (LEMS paths such as ``"pop[0]/v"``) recorded into the output ``"record"``;
    - ``like_jnml``: with no ``method``, step as jnml does (``euler``, jLEMS's order) where it can;
    - ``comm``: an MPI communicator (``mpi4py``): this process runs its rank's share of the
      network (nmlsim/parallel.py) and rank 0 writes the files and gets the whole result.

    Returns a :class:`nmlsim.results.RunResult`.
    """
    spec = sim.spec
    dt = float(dt) if dt else spec.step
    duration = float(duration) if duration is not None else spec.length
    seed = seed if seed is not None else spec.seed
    _check_run(duration, dt, seed)
    dist = None
    if comm is not None:
        from .graph.partition import single_compartment
        from .parallel import Distributed
        # gap junctions may join cells on two ranks (halo copies) where the peer's v enters
        # explicitly, as with exp_euler on point cells; otherwise coupled cells stay together
        split = method == "exp_euler" or (method is None and not like_jnml and single_compartment(sim.network))
        dist = Distributed(comm, sim.network, split_coupled=split)
        seed = dist.seed(seed)
    # jLEMS's scheme walks the populations one by one: none fused into one group
    euler = method == "euler" or (method is None and like_jnml)
    built = build_groups(sim.network if dist is None else dist.share, merge_synapses=merge_synapses,
                         fuse_populations=not euler)
    if method is None and dist is not None:  # (the whole network's cells decide, not one rank's)
        method = "neuron" if dist.any(built.cables) else default_method(built, like_jnml)
    method = method or default_method(built, like_jnml)
    result = RunResult()
    if dist is not None:
        result.notes += dist.notes
    base = Path(outdir) if outdir else Path.cwd()
    if dist is not None and dist.rank != 0:
        write = False  # (rank 0 writes what every rank recorded)
    if write:
        confine_outputs([base / o.file_name for o in spec.outputs + spec.event_outputs], base, sim.path,
                        allow_outputs_anywhere)

    def trace_sink(of, positions=None):
        def sink(name, data, complete):
            if dist is not None:
                data, complete = dist.traces(data, positions, len(of.columns), complete)
                if data is None:
                    return
            result.traces[name] = data
            result.complete &= complete
            if write:
                p = base / of.file_name
                write_dat(p, data, complete)
                result.files.append(str(p if complete else partial_name(p)))
        return sink

    def event_sink(ef):
        def sink(name, events, complete):
            if dist is not None:
                events, complete = dist.events(events, {sel.id: j for j, sel in enumerate(ef.selections)}, complete)
                if events is None:
                    return
            result.events[name] = events
            result.complete &= complete
            if write:
                p = base / ef.file_name
                write_events(p, events, ef.format, complete)
                result.files.append(str(p if complete else partial_name(p)))
        return sink

    traces, events = resolve_outputs(built, spec, sim.path, elsewhere=dist is not None)
    # (an MPI rank records the columns and events of its own cells: None marks another's)
    recorders = [TraceRecorder(of.id, [c for c in cols if c is not None],
                               trace_sink(of, [j for j, c in enumerate(cols) if c is not None]))
                 for of, cols in traces]
    events = [(ef, [x for x in sels if x is not None]) for ef, sels in events]
    reg = sim.model.units
    for of, _ in traces:
        result.columns[of.id] = [column_of(built, reg, c.id, c.quantity) for c in of.columns]
        if dist is not None:
            result.columns[of.id] = dist.columns(result.columns[of.id])
    if record and dist is not None:
        raise UnsupportedFeature("record= is not available in MPI runs yet (record with the file's OutputFiles)")
    if record:
        recorders.append(record_output(built, reg, record, sim.path, result))
    if record_spikes:
        from .compile.build import spiking_groups
        from .engine.record import SpikeRecorder

        def keep_spikes(spikes, complete):
            if dist is not None:
                spikes, complete = dist.spikes(spikes, complete)
                if spikes is None:
                    return
            result.spikes.update({p: (np.asarray(i, dtype=np.int64), np.asarray(t, dtype=float))
                                  for p, (i, t) in spikes.items()})
        recorders.append(SpikeRecorder(spiking_groups(built), sink=keep_spikes))
    result.parameters = dict(sim.overrides)
    result.sizes = {pid: p.size for pid, p in sim.network.populations.items()}
    recorders += [EventRecorder(ef.id, sels, event_sink(ef)) for ef, sels in events]
    if sonata_spikes:
        from .compile.build import spiking_groups
        from .engine.record import SpikeRecorder
        path_h5 = Path(sonata_spikes) if Path(sonata_spikes).is_absolute() else base / sonata_spikes

        def spikes_sink(spikes, complete):
            if dist is not None:
                spikes, complete = dist.spikes(spikes, complete)
                if spikes is None:
                    return
            if write:
                write_sonata_spikes(path_h5, spikes, complete)
                result.files.append(str(path_h5 if complete else partial_name(path_h5)))
        spike_rec = SpikeRecorder(spiking_groups(built), sink=spikes_sink, state_time=True)
        recorders.append(spike_rec)
    if extra_quantities and dist is not None:
        raise UnsupportedFeature("plots are not drawn in MPI runs (plot the files: nmlsim plot)")
    if extra_quantities:
        cols = resolve_all(built, extra_quantities, sim.path, "Line quantity='{}'")
        recorders.append(TraceRecorder(DISPLAY_TRACES, cols, lambda n, d, c: result.traces.__setitem__(n, d)))
    result.complete = True
    simulator = Simulator(built, dt, method=method, seed=seed, backend=backend, observe=observed_by(recorders),
                          crank_nicolson=crank_nicolson, exchange=None if dist is None else dist.exchange(built))
    result.simulator = simulator
    simulator.run(duration, recorders, progress=progress)
    return result




def simulate_network(net: Network, duration: float, dt: float, *, method: str = "exp_euler",
                     seed: Optional[int] = None, progress: Optional[Callable] = None,
                     merge_synapses: bool = True, spikes_sink: Optional[Callable] = None, backend: str = "numpy",
                     comm=None):
    """Simulate a graph built in Python and return the spikes of every population.

    Returns ``{population: (cell indices, spike times in s)}`` and the Simulator. With ``comm``
    (an MPI communicator) this process runs its rank's share; rank 0 gets every rank's spikes
    (the others None), ``spikes_sink`` is called on rank 0 only.
    """
    from .compile.build import spiking_groups
    from .engine.record import SpikeRecorder
    dist = None
    if comm is not None:
        from .parallel import Distributed
        dist = Distributed(comm, net)
        seed = dist.seed(seed)
    built = build_groups(net if dist is None else dist.share, merge_synapses=merge_synapses)
    gathered = {}

    def sink(spikes, complete):
        if dist is not None:
            spikes, complete = dist.spikes(spikes, complete)
            if spikes is None:
                return
        gathered["spikes"] = spikes
        if spikes_sink is not None:
            spikes_sink(spikes, complete)
    rec = SpikeRecorder(spiking_groups(built), sink=sink)
    simulator = Simulator(built, dt, method=method, seed=seed, backend=backend, observe=observed_by([rec]),
                          exchange=None if dist is None else dist.exchange(built))
    simulator.run(duration, [rec], progress=progress)
    return gathered.get("spikes"), simulator


def run_sonata(config, *, method: Optional[str] = None, dt: Optional[float] = None, duration: Optional[float] = None,
               seed: Optional[int] = None, include_root=None, progress: Optional[Callable] = None,
               output_dir=None, backend: str = "numpy", crank_nicolson: bool = False,
               allow_outputs_anywhere: bool = False, report_dtype: Optional[str] = None):
    """Simulate a SONATA simulation config and write its spike file and reports (what
    ``nmlsim run config.json`` does; :func:`load` gives the same run as an object to set
    parameters on). Spikes and reports use the SONATA population names and node ids.
    Returns (spikes {population: (node ids, times s)}, path of the spike file)."""
    from .sonata_sim import load_sonata
    sim = load_sonata(config, include_root=include_root)
    res = sim.run(write=True, method=method, dt=dt, duration=duration, seed=seed, outdir=output_dir,
                  progress=progress, backend=backend, crank_nicolson=crank_nicolson,
                  allow_outputs_anywhere=allow_outputs_anywhere, report_dtype=report_dtype)
    return res.spikes, sim.output_files(output_dir)[0]


def _sweep_one(args):
    path, include_root, overrides, param, value, kw = args
    sim = load(path, include_root=include_root)
    for k, v in overrides.items():
        sim.set(k, v)
    sim.set(param, value)
    outdir = kw.pop("outdir", None)
    res = sim.run(outdir=outdir, **kw)
    res.simulator = None  # (not sent back across processes)
    return res


def sweep(sim, param: str, values, *, processes: Optional[int] = None, outdirs=None, **run_kw) -> List[RunResult]:
    """Run ``sim`` (a loaded simulation, or a LEMS file or SONATA config) once per value of ``param``
    (``"pulseGen1/amplitude"``; values as for :meth:`LoadedSimulation.set`), in a pool of
    ``processes`` worker processes (default: one per CPU, at most one per value; 1: in this
    process). Each run starts from the file plus the values already set on ``sim``. With
    ``backend="numba"`` the compiled kernels are shared through their cache: parameters are
    runtime values, so only the first run compiles. ``outdirs``: a folder per value to write
    the run's files to. Returns the results in the order of ``values``."""
    if not isinstance(sim, Parameterised):
        sim = load(sim)
    values = list(values)
    if outdirs is not None and len(list(outdirs)) != len(values):
        raise ModelError("sweep: give one output folder per value")
    dirs = list(outdirs) if outdirs is not None else [None] * len(values)
    tasks = [(str(sim.path), sim.include_root, dict(sim.overrides), param, v, dict(run_kw, outdir=d))
             for v, d in zip(values, dirs)]
    if not any(p.path == param for p in sim.parameters(param)):  # once here, not in every worker
        raise ModelError(f"sweep: no parameter '{param}' in {sim.path.name} (see sim.parameters())")
    n = min(processes or os.cpu_count() or 1, len(values))
    if n <= 1:
        return [_sweep_one(t) for t in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    ctx = multiprocessing.get_context("spawn")  # no forked copies of compiled kernels or open files
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        return list(pool.map(_sweep_one, tasks))

