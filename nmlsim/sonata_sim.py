"""A SONATA simulation, loaded for Python: the circuit read once, its parameters listed and
set by path, runs returning a :class:`nmlsim.results.RunResult` keyed by SONATA's own
population names and node ids, and the SONATA spike file and reports written on request.

``nmlsim.load("simulation_config.json")`` gives a :class:`SonataSimulation`; the command line's
``nmlsim run config.json`` is ``load_sonata(config).run(write=True)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from .api import Parameterised, _check_run, column_of, confine_outputs, default_method, record_output
from .compile.build import build_groups, spiking_groups
from .engine.paths import resolve_quantity
from .engine.record import SpikeRecorder, TraceRecorder
from .engine.simulator import Simulator, observed_by
from .errors import ModelError, UnsupportedFeature
from .graph.partition import NotHere
from .io.results import partial_name, write_sonata_report, write_sonata_spikes
from .io.sonata_reader import SonataRun, read_sonata_run
from .results import Column, RunResult


@dataclass
class SonataSimulation(Parameterised):
    """A SONATA simulation (or circuit) config, read: ``run_spec`` holds the network and the
    config's run settings, inputs, reports and output paths.

    Parameters are those of the components the circuit's node types, edge types and inputs
    became (``"cortex_100/tau_m"``: population ``cortex``, node type 100; ``"<input>_<pop>_<k>/
    amplitude"``); ``nmlsim params config.json`` lists them."""
    path: Path
    run_spec: SonataRun
    include_root: Optional[Path] = None
    overrides: Dict[str, str] = field(default_factory=dict)

    @property
    def model(self):
        return self.run_spec.network.model

    @property
    def network(self):
        return self.run_spec.network

    @property
    def duration(self) -> float:
        """The run's length (s): tstop - tstart of the config."""
        return self.run_spec.tstop_s

    def sizes(self) -> Dict[str, int]:
        """Nodes per SONATA population that is simulated (virtual populations left out)."""
        out: Dict[str, int] = {}
        for pid, p in self.network.populations.items():
            name = p.origin[0] if p.origin is not None else pid
            out[name] = out.get(name, 0) + p.size
        return out

    def _to_sonata(self, spikes):
        """{nmlsim population: (indices, times)} -> {SONATA population: (node ids, times)}."""
        merged: Dict[str, list] = {}
        for pid, (idx, times) in spikes.items():
            origin = self.network.populations[pid].origin
            name, ids = (origin[0], origin[1][np.asarray(idx, dtype=np.int64)]) if origin is not None else (pid, idx)
            merged.setdefault(name, []).append((np.asarray(ids, dtype=np.int64), np.asarray(times, dtype=float)))
        return {k: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for k, v in merged.items()}

    def output_files(self, outdir=None):
        """(spike file, {report: file}) of a run: the config's, or in ``outdir``."""
        r = self.run_spec

        def at(f: Path) -> Path:
            return f if outdir is None else Path(outdir) / f.name
        return at(r.spikes_file), {rep.name: at(rep.file) for rep in r.reports}

    def run(self, *, write: bool = False, method: Optional[str] = None, dt: Optional[float] = None,
            duration: Optional[float] = None, seed: Optional[int] = None, outdir=None,
            progress: Optional[Callable] = None, backend: str = "numpy", crank_nicolson: bool = False,
            allow_outputs_anywhere: bool = False, report_dtype: Optional[str] = None, record=(),
            comm=None) -> RunResult:
        """Simulate. ``spikes`` of the result: SONATA population -> (node ids, times s);
        every report of the config is an output of the result (``result.output(name)``: time
        and one column per node, ``"<population>/<node id>"``, SI units); ``record``: more
        quantities by nmlsim path (``"cortex_100[3]/v"``) into the output ``"record"``.

        With ``write=True`` (or an ``outdir``, which replaces the config's output_dir) the
        config's spike file and reports are written, as ``nmlsim run`` writes them.
        ``method`` defaults to the config's simulator's scheme (NEST cells: rk4; bmtk
        biophysical cells: neuron); ``report_dtype`` (float32/float64) overrides the reports';
        ``comm``: an MPI communicator: this process runs its rank's share (nmlsim/parallel.py),
        rank 0 writes the files and gets the whole result."""
        r = self.run_spec
        dt = float(dt) if dt else r.dt_s
        duration = float(duration) if duration is not None else r.tstop_s
        seed = seed if seed is not None else r.seed
        _check_run(duration, dt, seed)
        if outdir is not None:
            write = True
        if report_dtype is not None and report_dtype not in ("float32", "float64"):
            raise ModelError(f"report dtype '{report_dtype}' must be float32 or float64")
        spikes_file, report_files = self.output_files(outdir)
        if write and outdir is None:
            confine_outputs([spikes_file] + list(report_files.values()), self.path.resolve().parent, self.path,
                            allow_outputs_anywhere)
        dist = None
        if comm is not None:
            from .parallel import Distributed
            if record:
                raise UnsupportedFeature("record= is not available in MPI runs yet (record with the config's reports)")
            dist = Distributed(comm, self.network)
            seed = dist.seed(seed)
            write = write and dist.rank == 0  # (rank 0 writes what every rank recorded)
        built = build_groups(self.network if dist is None else dist.share)
        if method is None:  # the reader's choice (NEST cells: RK4; bmtk biophysical cells: NEURON's
            # step); otherwise what a LEMS run of the same cells defaults to (multi-compartment: neuron)
            cables = bool(built.cables) if dist is None else dist.any(built.cables)
            method = r.method if (r.nmodl or r.method != "exp_euler") else ("neuron" if cables else default_method(built))
        result = RunResult(parameters=dict(self.overrides), sizes=self.sizes(),
                           notes=list(dist.notes) if dist is not None else [])
        result.complete = True
        reg = self.model.units

        def keep_spikes(spikes, complete):
            if dist is not None:
                spikes, complete = dist.spikes(spikes, complete)
                if spikes is None:
                    return
            sp = self._to_sonata(spikes)
            result.spikes.update(sp)
            result.complete &= complete
            if write:
                write_sonata_spikes(spikes_file, sp, complete, sort=r.spikes_sort_order)
                result.files.append(str(spikes_file if complete else partial_name(spikes_file)))

        # written from the recorders' finalize, so an interrupted run still leaves its (marked) outputs
        recorders = [SpikeRecorder(spiking_groups(built), sink=keep_spikes, state_time=True)]
        for rep in r.reports:
            every = max(1, int(round(rep.dt_ms * 1e-3 / dt)))
            pops = list(rep.quantities)
            qs = [q for p in pops for q in rep.quantities[p]]
            cols = [_here(built, q, dist) for q in qs]  # (an MPI rank's own cells; None: another's)
            positions = [j for j, c in enumerate(cols) if c is not None]
            bounds = np.cumsum([0] + [len(rep.quantities[p]) for p in pops])
            # (one variable per report: its unit and dimension from the first node's)
            first = column_of(built, reg, "", qs[0]) if qs else None
            if dist is not None and qs:
                first = dist.columns([first])[0]
            result.columns[rep.name] = [Column(f"{p}/{int(n)}", q, first.unit, first.dimension)
                                        for p in pops for n, q in zip(rep.cells[p], rep.quantities[p])]

            def sink(name, data, complete, rep=rep, pops=pops, bounds=bounds, every=every, positions=positions,
                     ncols=len(qs)):
                if dist is not None:
                    data, complete = dist.traces(data, positions, ncols, complete)
                    if data is None:
                        return
                t = data[:, 0].copy()
                if r.nmodl:  # BioNet's rows: the state each step reaches, labelled with the step's start
                    t = t - every * dt
                rows = (t * 1e3 >= rep.start_ms - 1e-9) & (t * 1e3 <= rep.end_ms + 1e-9)
                kept = np.column_stack([t[rows], data[rows, 1:]])
                result.traces[rep.name] = kept
                result.complete &= complete
                if not write:
                    return
                t_ms = kept[:, 0] * 1e3
                t0 = float(t_ms[0]) if len(t_ms) else rep.start_ms
                step_ms = every * dt * 1e3
                t_end = t0 + len(t_ms) * step_ms  # SONATA's stop is open: one step past the last row
                f = report_files[rep.name]
                write_sonata_report(f, {
                    p: (rep.cells[p], kept[:, 1 + bounds[k]:1 + bounds[k + 1]] * rep.scale,
                        (t0, t_end, step_ms), rep.unit) for k, p in enumerate(pops)}, complete,
                    dtype=report_dtype or rep.dtype)
                result.files.append(str(f if complete else partial_name(f)))
            recorders.append(TraceRecorder(rep.name, [c for c in cols if c is not None], sink, every=every))
        if record:
            recorders.append(record_output(built, reg, record, self.path, result))
        simulator = Simulator(built, dt, method=method, seed=seed, backend=backend, observe=observed_by(recorders),
                              nmodl=r.nmodl, crank_nicolson=crank_nicolson,
                              exchange=None if dist is None else dist.exchange(built))
        result.simulator = simulator
        simulator.run(duration, recorders, progress=progress)
        return result


def _here(built, q: str, dist):
    """The recorder column of ``q``, or None where another MPI rank holds its cell."""
    try:
        return resolve_quantity(built, q)
    except NotHere:
        if dist is None:
            raise
        return None


def load_sonata(path, include_root=None, comm=None) -> SonataSimulation:
    """Read a SONATA simulation config (or a config naming circuit and simulation) and its circuit.
    ``comm``: an MPI communicator: this process reads only the edges onto its rank's cells
    (run it with ``run(comm=comm)``)."""
    path = Path(path)
    share = None if comm is None else (comm.rank, comm.size)
    return SonataSimulation(path, read_sonata_run(path, include_root=include_root, share=share),
                            include_root=Path(include_root) if include_root else None)
