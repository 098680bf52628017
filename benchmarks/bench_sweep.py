#!/usr/bin/env python3
"""A parameter sweep on the compiled backend: does a changed value recompile?

Usage:
  python benchmarks/bench_sweep.py                       # COBAHH 4000 cells, 1 s, 5 values of g_E
  python benchmarks/bench_sweep.py --model coba_lif --values 4,5,6,7,8 --duration 0.2
  python benchmarks/bench_sweep.py --sizes 2000,3000,4000,5000,6000   # population size instead

Each run is a fresh process (what ``nmlsim sweep`` or a shell loop does), all sharing one
kernel cache that is emptied before the first run: run 1 compiles, and runs 2..n should
load that machine code (kernels are keyed by the model's structure; parameter values and
sizes are read from tables at run time).  Columns: wall = the whole process as seen from inside
Python (imports, building the network, code generation, compiling or loading kernels,
stepping), loop = stepping alone, peak = ru_maxrss, compiled = whether the run compiled.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

RUN = textwrap.dedent("""
    import json, resource, time, sys
    t0 = time.perf_counter()
    import nmlsim.backends.numba.kernels as nb
    compiled = []
    nb.COMPILE_NOTICE = lambda: compiled.append(1)
    from nmlsim.library import build
    from nmlsim.compile.build import build_groups, spiking_groups
    from nmlsim.engine.simulator import Simulator, observed_by
    from nmlsim.engine.record import SpikeRecorder
    name, n, T, value = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    net = build(name, size=n, seed=1)
    for proj in net.projections:
        if proj.synapse.id == "syn_e":
            proj.synapse.attrs["gbase"] = value + "nS"
    built = build_groups(net)
    rec = SpikeRecorder(spiking_groups(built))
    sim = Simulator(built, 1e-4, seed=1, backend="numba", observe=observed_by([rec]))
    t1 = time.perf_counter()
    sim.run(T, [rec])
    t2 = time.perf_counter()
    rates = {p: round(len(i) / net.populations[p].size / T, 2) for p, (i, _) in rec.result().items()}
    print(json.dumps(dict(wall=t2 - t0, loop=t2 - t1, rates=rates, compiled=bool(compiled),
                          peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
""")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ei_hh", help="library model (ei_hh = COBAHH, coba_lif)")
    ap.add_argument("--size", type=int, default=4000, help="cells")
    ap.add_argument("--duration", type=float, default=1.0, help="biological time per run, s")
    ap.add_argument("--values", default="4,5,6,7,8", help="excitatory conductances to sweep, nS")
    ap.add_argument("--sizes", default=None,
                    help="sweep the number of cells instead (comma list; g_E the first of --values)")
    a = ap.parse_args()
    runs = ([(int(n), a.values.split(",")[0]) for n in a.sizes.split(",")] if a.sizes
            else [(a.size, v) for v in a.values.split(",")])
    cache = tempfile.mkdtemp(prefix="nmlsim-sweep-cache-")
    env = dict(os.environ, NMLSIM_CACHE_DIR=cache)
    what = "sizes" if a.sizes else f"{a.size} cells"
    print(f"{a.model}, {what}, {a.duration} s, numba backend, kernel cache emptied first ({cache})")
    print("| run | cells | g_E nS | wall s | loop s | peak MB | compiled | rates Hz |")
    print("|---:|---:|---:|---:|---:|---:|---|---|")
    try:
        for k, (n, v) in enumerate(runs):
            out = subprocess.run([sys.executable, "-c", RUN, a.model, str(n), str(a.duration), v],
                                 capture_output=True, text=True, env=env)
            if out.returncode:
                sys.exit(out.stderr)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {k + 1} | {n} | {v} | {r['wall']:.2f} | {r['loop']:.2f} | {r['peak_mb']:.0f} | "
                  f"{'yes' if r['compiled'] else 'no'} | {r['rates']} |", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
