"""The command line: ``nmlsim run | info | validate | plot | convert``.

``nmlsim LEMS_x.xml -nogui`` (jnml's spelling) is accepted as ``nmlsim run LEMS_x.xml``, stepping
as jnml does (``--method euler``) unless told otherwise.

Exit codes: 0 success; 1 any other nmlsim error; 2 bad input file (format); 3 model
error; 4 unsupported feature; 5 simulation failed; 130 interrupted (partial outputs
written and marked).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from .errors import ModelError, NmlsimError, UnsupportedFeature
from .backends import BACKENDS

EXIT_INTERRUPTED = 130


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    start = time.time()
    state = {"last": 0.0}

    def cb(k, n):
        now = time.time()
        if now - state["last"] < 0.5 and k < n:
            return
        state["last"] = now
        frac = k / max(n, 1)
        el = now - start
        eta = el / frac - el if frac > 0 else 0
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  {el:6.1f}s elapsed, {eta:6.1f}s left")
        sys.stderr.flush()
        if k >= n:
            sys.stderr.write("\n")
    return cb


def _time_arg(text: str) -> float:
    """--duration / --dt: seconds, or a time with its unit (``100ms``, ``0.025ms``, ``2s``)."""
    from .units import parse_quantity
    from .errors import UnitError
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_quantity(text.replace(" ", ""), "time")
        except UnitError as e:
            raise argparse.ArgumentTypeError(f"{e.message} (a time: 0.1, 100ms, 2s)") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive time")
    return value


def _note_bare_seconds(args) -> None:
    """jnml and LEMS files speak milliseconds: a bare --duration of 10 or more is most likely
    meant as ms, so say how it is read."""
    raw = getattr(args, "duration_text", None)
    if raw is not None and not args.quiet and args.duration >= 10:
        print(f"nmlsim: note: --duration {raw} is read as {args.duration:g} s of biological time "
              f"(write {raw}ms for milliseconds)", file=sys.stderr)


def _write_nwb(res, args, description: str) -> None:
    """``--nwb FILE`` (relative to --outdir): the run's spikes and traces as NWB."""
    nwb = Path(args.nwb) if Path(args.nwb).is_absolute() else Path(args.outdir or ".") / args.nwb
    res.to_nwb(nwb, session_description=description)
    res.files.append(str(nwb))


def cmd_run(args) -> int:
    from .parallel import one_failure_ends_all, world
    comm = world()  # (started by mpirun: this process is one rank; nmlsim/parallel.py)
    if comm is None:
        return _run(args, None)
    if comm.rank != 0:
        args.quiet = True  # (rank 0 speaks and writes for all)
    with one_failure_ends_all(comm):
        if args.plot:
            raise _every_rank(UnsupportedFeature("--plot is not available under mpirun (plot the written files: "
                                                 "nmlsim plot)"), comm)
        return _run(args, comm)


def _every_rank(e: NmlsimError, comm) -> NmlsimError:
    """An error every MPI rank meets alike: rank 0 alone reports it, the others end with the same
    exit code, and no rank aborts the others (parallel.one_failure_ends_all)."""
    if comm is not None:
        e.quiet = comm.rank != 0
    return e


def _load(api, path, args, comm):
    """The model, read by every MPI rank alike (an error in it is every rank's)."""
    try:
        # (SONATA edges, NeuroML HDF5 projections: each rank reads only those onto its own cells)
        return api.load(path, include_root=args.include_root, comm=comm)
    except NmlsimError as e:
        raise _every_rank(e, comm)


def _run(args, comm) -> int:
    from . import api
    from .engine import simulator
    t0 = time.time()
    if not args.plot and not args.nwb:  # (with those, the command's work goes on after the run)
        simulator.ON_OUTPUTS_COMPLETE = _finished
    path = Path(args.file)
    _note_bare_seconds(args)
    if args.backend == "numba" and not args.quiet:
        from .backends.numba import kernels as numba_backend
        from .parallel import launched_by_mpi
        jobs = 1 if launched_by_mpi() else numba_backend.compile_processes()
        numba_backend.COMPILE_NOTICE = lambda: print(
            "nmlsim: compiling this model's kernels" + (f" in {jobs} processes" if jobs > 1 else "")
            + " (its first run on the numba backend; later runs load them from the cache)...",
            file=sys.stderr, flush=True)
    if path.suffix == ".json":
        sim = _load(api, path, args, comm)
        try:
            show = not args.quiet and sys.stderr.isatty()
            res = sim.run(write=True, method=args.method, dt=args.dt, duration=args.duration, seed=args.seed,
                          outdir=args.outdir, progress=_progress_bar(show), backend=args.backend,
                          crank_nicolson=args.crank_nicolson, allow_outputs_anywhere=args.allow_outputs_anywhere,
                          report_dtype=args.report_dtype, comm=comm)
        except KeyboardInterrupt:
            print("nmlsim: interrupted; what was recorded is in the outputs' *.partial files", file=sys.stderr)
            return EXIT_INTERRUPTED
        if args.nwb and (comm is None or comm.rank == 0):
            _write_nwb(res, args, f"nmlsim run of {path.name} (SONATA)")
        _finished()
        if not args.quiet:
            for note in res.notes:
                print(f"nmlsim: note: {note}", file=sys.stderr)
            n = sum(len(t) for _, t in res.spikes.values())
            for f in res.files:
                print(f"wrote {f}")
            print(f"simulated {args.duration if args.duration is not None else sim.duration:g} s "
                  f"({n} spikes) in {time.time() - t0:.2f} s ({res.simulator.method})")
        return 0
    sim = _load(api, path, args, comm)
    nsteps = (args.duration or sim.spec.length) / (args.dt or sim.spec.step)
    show = not args.quiet and sys.stderr.isatty() and nsteps > 20000
    try:
        displays = sim.spec.display_quantities if args.plot else ()
        res = api.run(sim, method=args.method, dt=args.dt, duration=args.duration, seed=args.seed,
                      extra_quantities=displays, like_jnml=bool(getattr(args, "nogui", False)),
                      outdir=args.outdir, progress=_progress_bar(show), sonata_spikes=args.sonata_spikes,
                      record_spikes=bool(args.nwb),
                      backend=args.backend, crank_nicolson=args.crank_nicolson,
                      allow_outputs_anywhere=args.allow_outputs_anywhere, comm=comm)
    except KeyboardInterrupt:
        if not args.quiet or comm is None:
            print("nmlsim: interrupted; what was recorded is in the outputs' *.partial files", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.nwb and (comm is None or comm.rank == 0):
        _write_nwb(res, args, f"nmlsim run of {path.name} ({sim.spec.id})")
    if not args.plot:
        _finished()
    if not args.quiet:
        for n in res.notes:
            print(f"nmlsim: note: {n}", file=sys.stderr)
        for f in res.files:
            print(f"wrote {f}")
        print(f"simulated {sim.spec.length if args.duration is None else args.duration:g} s "
              f"in {time.time() - t0:.2f} s ({res.simulator.method})")
    if args.plot:
        from .plot import plot_result
        out = plot_result(sim, res, Path(args.outdir or "."), duration=args.duration)
        if not args.quiet:
            print(f"wrote {out}")
    return 0


def cmd_info(args) -> int:
    from .api import load
    if str(args.file).endswith(".json"):
        from .io.sonata import read_sonata
        net, settings = read_sonata(args.file, include_root=args.include_root)
        print(f"SONATA simulation: {settings['tstop_s']:g} s, step {settings['dt_s']:g} s")
        sim = None
    else:
        sim = load(args.file, include_root=args.include_root)
        net = sim.network
        print(f"Simulation '{sim.spec.id}': {sim.spec.length:g} s, step {sim.spec.step:g} s, "
              f"target '{sim.spec.target}'")
    print(f"Network '{net.id}': {len(net.populations)} populations, {net.n_cells} cells")
    for p in net.populations.values():
        print(f"  population {p.id}: {p.size} x {p.component.id} ({net.model.type_of(p.component)})")
    for pr in net.projections:
        print(f"  projection {pr.id}: {pr.pre} -> {pr.post} via {pr.synapse.id}, {len(pr.pre_idx)} connections")
    for e in net.electrical:
        print(f"  electricalProjection {e.id}: {e.pre} <-> {e.post} via {e.synapse.id}, {len(e.pre_idx)} connections")
    for c in net.continuous:
        print(f"  continuousProjection {c.id}: {c.pre} -> {c.post} via {c.pre_component.id}/{c.post_component.id},"
              f" {len(c.pre_idx)} connections")
    for i in net.inputs:
        print(f"  inputs {i.id}: {i.component.id} -> {i.population}, {len(i.target_idx)} targets")
    for of in (sim.spec.outputs if sim else []):
        print(f"  output {of.file_name}: {len(of.columns)} columns")
    for ef in (sim.spec.event_outputs if sim else []):
        print(f"  event output {ef.file_name}: {len(ef.selections)} selections")
    return 0


def cmd_validate(args) -> int:
    """Each file: its problems, one line each, then a summary line with the schema's verdict
    and the model's apart (as jnml reports "Valid against schema" and its tests apart)."""
    from .io.validate import validate
    bad = 0
    for f in args.files:
        v = validate(f, include_root=args.include_root, includes=args.includes)
        for p in v.schema + v.model + v.warnings:
            print(p)
        if v.ok:
            print(f"{f}: valid")
            continue
        bad += 1
        schema = f"schema: {_verdict(v.schema)}; " if not str(f).endswith(".json") else (
            f"schema (templates): {_verdict(v.schema)}; " if v.schema else "")
        print(f"{f}: {schema}model: {_verdict(v.model) if v.model_checked else 'not checked'}")
    if len(args.files) > 1:
        print(f"validated {len(args.files)} files: {len(args.files) - bad} valid, {bad} not")
    return 3 if bad else 0


def _verdict(problems) -> str:
    return "valid" if not problems else f"{len(problems)} problem{'s' * (len(problems) > 1)}"


def cmd_plot(args) -> int:
    from .plot import plot_files
    out = plot_files([Path(f) for f in args.files], Path(args.output))
    print(f"wrote {out}")
    return 0


def cmd_convert(args) -> int:
    from .convert import convert
    notes: list = []
    for p in convert(args.input, args.outdir, to=args.to, include_root=args.include_root, notes=notes):
        print(f"wrote {p}")
    for n in notes:
        print(f"nmlsim: note: {n}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from .library import export
    for p in export(args.model, args.outdir, to=args.to.split(","), size=args.size, seed=args.seed,
                    duration=args.duration, step=args.dt, tc_gap_junctions=args.tc_gap_junctions, std=args.std):
        print(f"wrote {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nmlsim", description="NeuroML2/LEMS and SONATA simulator and converter")
    p.add_argument("--version", action="version", version="nmlsim " + __import__("nmlsim").__version__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="simulate a LEMS file (writing its OutputFiles like jnml) or a SONATA simulation config")
    r.add_argument("file", help="LEMS simulation file (LEMS_*.xml) or SONATA simulation config (.json)")
    r.add_argument("--method", default=None, choices=("euler", "exp_euler", "rk4", "neuron"),
                   help="integrator (default: neuron for models with multi-compartment cells, otherwise "
                        "exp_euler; euler is what jLEMS does; neuron is NEURON's fixed step as jNeuroML's "
                        "NEURON export runs it: voltage by backward Euler, then every other state by forward "
                        "Euler with the new voltage, gated conductances one update late)")
    r.add_argument("--crank-nicolson", action="store_true",
                   help="multi-compartment cells: the cable's voltage by Crank-Nicolson (NEURON's secondorder=2, "
                        "second order in dt) instead of backward Euler; the other states as --method moves them")
    r.add_argument("--backend", default="numpy", choices=tuple(BACKENDS),
                   help="numpy (default) or numba: the whole time loop compiled by Numba (needs the numba "
                        "package; compiled kernels are cached in ~/.cache/nmlsim/numba)")
    r.add_argument("--dt", type=_time_arg, default=None,
                   help="time step: seconds, or with a unit (0.01ms) (default: the Simulation's step)")
    r.add_argument("--duration", type=_time_arg, default=None,
                   help="simulated time: seconds, or with a unit (300ms) (default: the Simulation's length)")
    r.add_argument("--seed", type=int, default=None, help="seed for every random element")
    r.add_argument("--outdir", default=None, help="resolve output file names here (default: working directory)")
    r.add_argument("--include-root", default=None,
                   help="folder that includes may not leave (default: three levels above the file)")
    r.add_argument("--allow-outputs-anywhere", action="store_true",
                   help="let the model's output file names point outside the run folder (absolute paths, '..'); "
                        "by default they must stay in the working directory / --outdir (LEMS) or the config's "
                        "folder (SONATA), so that a downloaded model cannot overwrite other files")
    r.add_argument("--report-dtype", default=None, choices=("float32", "float64"),
                   help="SONATA reports: float32 (the default, what libsonata reads) or float64 (bmtk's "
                        "precision); overrides a report's own \"dtype\"")
    r.add_argument("--plot", action="store_true", help="also draw the recorded traces and spikes to a PNG")
    r.add_argument("--nwb", default=None, metavar="FILE",
                   help="also write every population's spikes (NWB Units) and the recorded traces (OutputFiles or "
                        "SONATA reports; TimeSeries, SI units) to an NWB file (relative to --outdir; needs pynwb)")
    r.add_argument("--sonata-spikes", default=None, metavar="FILE",
                   help="also write every population's spikes to a SONATA spikes.h5 (relative to --outdir)")
    r.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing but errors (no progress bar, compile notice or list of written files)")
    r.add_argument("-nogui", action="store_true", help=argparse.SUPPRESS)
    r.set_defaults(fn=cmd_run)
    i = sub.add_parser("info", help="summarise a model: populations, sizes, types, connections")
    i.add_argument("file", help="LEMS simulation file or SONATA simulation config (.json)")
    i.add_argument("--include-root", default=None, help="folder that includes may not leave (default: three levels above the file)")
    i.set_defaults(fn=cmd_info)
    v = sub.add_parser("validate", help="check NeuroML/LEMS files (or SONATA configs) against the XSD and "
                                         "as a model, reported apart")
    v.add_argument("files", nargs="+", metavar="file",
                   help="NeuroML (.nml), LEMS (.xml) or SONATA (.json) files; the schema checks the named "
                        "file, the model check takes in everything it includes")
    v.add_argument("--includes", action="store_true",
                   help="check the NeuroML files it includes against the schema too (jnml does not: included "
                        "files may use LEMS-extended elements)")
    v.add_argument("--include-root", default=None, help="folder that includes may not leave (default: three levels above the file)")
    v.set_defaults(fn=cmd_validate)
    cv = sub.add_parser("convert", help="convert a LEMS/NeuroML network to SONATA, or a SONATA circuit to NeuroML+LEMS")
    cv.add_argument("input", help="LEMS simulation file, or SONATA simulation/circuit config (.json)")
    cv.add_argument("outdir", help="folder to write the converted model into (created if missing)")
    cv.add_argument("--to", required=True, choices=("sonata", "neuroml", "neuroml-h5"),
                    help="target format: sonata (circuit + simulation configs, nodes/edges HDF5), neuroml "
                         "(NeuroML2 + LEMS XML), neuroml-h5 (the network structure in NeuroML HDF5)")
    cv.add_argument("--include-root", default=None, help="folder that includes may not leave (default: three levels above the file)")
    cv.set_defaults(fn=cmd_convert)
    ex = sub.add_parser("export", help="write a shipped model (ei_hh, coba_lif, thalamus: all four states, noisy_hh) as NeuroML2 + LEMS and/or SONATA")
    ex.add_argument("model", choices=("ei_hh", "coba_lif", "thalamus", "noisy_hh"),
                    help="ei_hh (COBAHH), coba_lif (Vogels-Abbott COBA), thalamus (Li et al. 2017, four states) "
                         "or noisy_hh (HH cells on a gap-junction ring with white-noise currents)")
    ex.add_argument("outdir", help="folder to write the model into (created if missing)")
    ex.add_argument("--to", default="neuroml", help="comma-separated formats: neuroml, neuroml-h5 (network structure in NeuroML HDF5), sonata")
    ex.add_argument("--size", type=int, default=None, help="number of cells (default 4000; in-degree kept)")
    ex.add_argument("--seed", type=int, default=1, help="seed of the connectivity and initial conditions")
    ex.add_argument("--duration", type=float, default=None, help="simulated time in the LEMS file, seconds")
    ex.add_argument("--dt", type=float, default=None, help="time step in the LEMS file, seconds (default 1e-4)")
    ex.add_argument("--tc-gap-junctions", action="store_true",
                    help="thalamus: also couple HTC-HTC and RTC-HTC (the original model; inert in the seed)")
    ex.add_argument("--std", action="store_true",
                    help="thalamus: short-term depression scales release (the original model; a no-op in the seed)")
    ex.set_defaults(fn=cmd_export)
    sw = sub.add_parser("sweep", help="run a LEMS simulation or SONATA config once per value of a parameter, in parallel")
    sw.add_argument("file", help="LEMS simulation file or SONATA config (.json)")
    sw.add_argument("--set", required=True, metavar="PATH=V1,V2,...", dest="assign",
                    help="the parameter (as `nmlsim sweep FILE --list` shows it) and its values, with units "
                         "(pulseGen1/amplitude=0.05nA,0.1nA,0.2nA)")
    sw.add_argument("--outdir", default="sweep", help="one folder per value in here (default: ./sweep)")
    sw.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: one per CPU)")
    sw.add_argument("--method", default=None, choices=("euler", "exp_euler", "rk4", "neuron"),
                    help="integrator, as for run (default: exp_euler)")
    sw.add_argument("--backend", default="numpy", choices=tuple(BACKENDS),
                    help="numba: compiled once (the first run), reused by the others")
    sw.add_argument("--duration", type=_time_arg, default=None, help="simulated time (default: the Simulation's)")
    sw.add_argument("--dt", type=_time_arg, default=None, help="time step (default: the Simulation's)")
    sw.add_argument("--seed", type=int, default=None, help="seed of every run (default: the Simulation's)")
    sw.add_argument("--include-root", default=None, help="folder that includes may not leave")
    sw.set_defaults(fn=cmd_sweep)
    pa = sub.add_parser("params", help="list a LEMS model's or SONATA circuit's parameters (paths for --set and sim.set) with values")
    pa.add_argument("file", help="LEMS simulation file or SONATA config (.json)")
    pa.add_argument("prefix", nargs="?", default="", help="only paths starting with this (a component id)")
    pa.add_argument("--include-root", default=None, help="folder that includes may not leave")
    pa.set_defaults(fn=cmd_params)
    pl = sub.add_parser("plot", help="plot result files (traces, spikes; jnml or SONATA) to a PNG")
    pl.add_argument("files", nargs="+",
                    help="result files: jnml .dat traces (time, then one column per quantity), jnml event "
                         "files (.spikes: a raster), SONATA spike files and reports (.h5)")
    pl.add_argument("-o", "--output", default="nmlsim_plot.png", help="PNG to write")
    pl.set_defaults(fn=cmd_plot)
    return p


def cmd_params(args) -> int:
    from . import api
    sim = api.load(Path(args.file), include_root=args.include_root)
    ps = sim.parameters(args.prefix)
    if not ps:
        print(f"no parameters{' under ' + repr(args.prefix) if args.prefix else ''}")
        return 0
    w = max(len(p.path) for p in ps)
    for p in ps:
        si = "" if p.value is None else f"{p.value:g} {p.unit}".rstrip()
        print(f"{p.path:<{w}}  {p.text if p.text is not None else '(unset)':<14} {si}")
    return 0


def cmd_sweep(args) -> int:
    from . import api
    param, eq, vals = args.assign.partition("=")
    values = [v.strip() for v in vals.split(",") if v.strip()]
    if not eq or not param or not values:
        raise ModelError(f"--set '{args.assign}': write PATH=V1,V2,... (e.g. pulseGen1/amplitude=0.05nA,0.1nA)")
    sim = api.load(Path(args.file), include_root=args.include_root)
    out = Path(args.outdir)
    leaf = param.replace("/", ".")
    dirs = [out / f"{leaf}={v.replace('/', '_').replace(' ', '')}" for v in values]
    t0 = time.time()
    results = api.sweep(sim, param, values, processes=args.jobs, outdirs=dirs, method=args.method,
                        backend=args.backend, duration=args.duration, dt=args.dt, seed=args.seed)
    _finished()
    pops = sorted({p for r in results for p in r.spikes})
    length = args.duration or sim.duration
    print(f"{param:<24} " + " ".join(f"{p + ' (Hz/cell)':>18}" for p in pops) + "  folder")
    for v, r, d in zip(values, results, dirs):
        rates = []
        for p in pops:
            idx, t = r.spikes.get(p, ((), ()))
            n = r.sizes.get(p) or max(len(set(idx)), 1)
            rates.append(len(t) / max(n, 1) / length)
        print(f"{v:<24} " + " ".join(f"{x:>18.3f}" for x in rates) + f"  {d}")
    print(f"{len(values)} runs in {time.time() - t0:.2f} s")
    return 0


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


#: set by the program's SIGINT handler (``entry``): an error seen after a Ctrl-C is that Ctrl-C
#: (NumPy, interrupted while importing, reports an ImportError)
_INTERRUPTED = False
#: set when the command has finished: a Ctrl-C arriving then cannot undo it
_FINISHED = False


def _on_sigint(signum, frame):
    global _INTERRUPTED
    if _FINISHED:
        return
    _INTERRUPTED = True
    raise KeyboardInterrupt


def _finished() -> None:
    """The command's work is done (its outputs complete): a Ctrl-C from now on is ignored."""
    global _FINISHED
    _FINISHED = True


def entry() -> None:
    """The program (``nmlsim``, ``python -m nmlsim``): :func:`main` with Ctrl-C handled at every
    moment after start-up: during a run it ends the run (partial outputs kept, exit 130), and
    once the command has finished it is ignored (a finished run exits 0, not killed by the
    signal). ``main`` itself leaves signal handling to its caller."""
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        code = main()
        _finished()
    except KeyboardInterrupt:
        _finished()
        print("nmlsim: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    # ignored from here on at the C level too: the interpreter's shutdown resets Python-level
    # handlers, and a Ctrl-C then would kill the finished process by the signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # jnml compatibility: `nmlsim LEMS_x.xml -nogui`
    if argv and argv[0] not in ("run", "info", "validate", "plot", "convert", "export", "sweep", "params", "-h", "--help", "--version") \
            and argv[0].endswith((".xml", ".json")):
        argv = ["run"] + argv
    if argv and argv[0] == "-validate":  # jnml -validate f1.nml f2.nml ...
        if len(argv) == 1:
            print("nmlsim: error: -validate needs the files to check", file=sys.stderr)
            return 2
        argv = ["validate"] + argv[1:]
    args = build_parser().parse_args(argv)
    if getattr(args, "duration", None) is not None and args.command == "run":
        raw = argv[argv.index("--duration") + 1] if "--duration" in argv else None
        args.duration_text = raw if raw is not None and _is_number(raw) else None
    try:
        return args.fn(args)
    except NmlsimError as e:
        if not getattr(e, "quiet", False):  # (an MPI rank other than 0 whose error rank 0 reports)
            print(f"nmlsim: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("nmlsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("nmlsim: error: out of memory (the model is too large for this machine)", file=sys.stderr)
        return 1
    except RecursionError:
        print("nmlsim: error: the model is nested too deeply", file=sys.stderr)
        return 1
    except Exception as e:  # a bug in nmlsim: still one line, traceback on request
        if _INTERRUPTED:
            print("nmlsim: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        if os.environ.get("NMLSIM_DEBUG"):
            raise
        where = getattr(args, "file", None) or " ".join(map(str, getattr(args, "files", ())))
        print(f"nmlsim: internal error while processing {where}: {type(e).__name__}: {e} "
              f"(set NMLSIM_DEBUG=1 for a traceback, and please report it)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    entry()
