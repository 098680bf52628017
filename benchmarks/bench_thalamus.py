#!/usr/bin/env python3
"""Thalamic network benchmark: 3 s of a state from the shipped LEMS file, per backend.

Usage:
  python benchmarks/bench_thalamus.py                       # alpha, 3 s, numpy backend
  python benchmarks/bench_thalamus.py --states alpha,gamma --backends numpy,numba --duration 1

Each measurement runs in a fresh subprocess (peak memory = ru_maxrss of that run).  "wall" is
what a user of `nmlsim run models/thalamus/LEMS_thalamus_<state>.xml` waits for inside Python
(reading the files, building, code generation, simulation; not interpreter start-up), "loop"
the time stepping alone.  Also printed: population rates and the dominant frequency of
population activity (Welch peak of all spikes in 1 ms bins, 2-100 Hz).
"""
import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

RUN = textwrap.dedent("""
    import json, resource, time, sys
    import numpy as np
    t0 = time.perf_counter()
    from nmlsim import api
    from nmlsim.analysis import dominant_frequency
    from nmlsim.compile.build import build_groups, spiking_groups
    from nmlsim.engine.simulator import Simulator, observed_by
    from nmlsim.engine.record import SpikeRecorder
    lems, T, method, backend = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    sim = api.load(lems)
    built = build_groups(sim.network)
    rec = SpikeRecorder(spiking_groups(built))
    s = Simulator(built, sim.spec.step, method=method, seed=sim.spec.seed, backend=backend,
                  observe=observed_by([rec]))
    t1 = time.perf_counter()
    s.run(T, [rec])
    t2 = time.perf_counter()
    spikes = rec.result()
    net = sim.network
    rates = {p: round(len(i) / net.populations[p].size / T, 2) for p, (i, _) in spikes.items()}
    times = np.concatenate([t for _, t in spikes.values()])
    print(json.dumps(dict(wall=t2 - t0, loop=t2 - t1, rates=rates, peak_hz=dominant_frequency(times, T),
                          peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
""")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--states", default="alpha")
    ap.add_argument("--backends", default="numpy")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--method", default="exp_euler")
    ap.add_argument("--models", default=str(Path(__file__).resolve().parents[1] / "models" / "thalamus"))
    args = ap.parse_args(argv)
    print("| state | backend | simulated s | wall s | loop s | peak MB | peak Hz | rates Hz (HTC, RTC, IN, RE) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for state in args.states.split(","):
        lems = Path(args.models) / f"LEMS_thalamus_{state}.xml"
        for backend in args.backends.split(","):
            p = subprocess.run([sys.executable, "-c", RUN, str(lems), str(args.duration), args.method, backend],
                               capture_output=True, text=True)
            if p.returncode != 0:
                print(f"| {state} | {backend} | failed: {p.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            rates = ", ".join(f"{r['rates'][k]:.1f}" for k in ("HTC", "RTC", "IN", "RE"))
            print(f"| {state} | {backend} | {args.duration:g} | {r['wall']:.1f} | {r['loop']:.1f} | "
                  f"{r['peak_mb']:.0f} | {r['peak_hz']:.1f} | {rates} |", flush=True)


if __name__ == "__main__":
    main()
