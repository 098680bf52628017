#!/usr/bin/env python3
"""MPI scaling: the same seeded COBAHH network in one process and on K ranks (`mpirun -n K`).

Usage:
  python benchmarks/bench_mpi.py                          # N = 64000, 0.1 s, K = 1, 2; numpy
  python benchmarks/bench_mpi.py --sizes 4000,64000 --ranks 1,2 --backends numpy,numba
  python benchmarks/bench_mpi.py --sonata      # the same network exported as SONATA (written once to
                                               # a temporary folder): each rank reads only its edges

Every row is a fresh `mpirun` (or, for the reference row, a plain process running the same
model without MPI) so that peak memory (ru_maxrss) is that run's. Per run, over its ranks:
"graph" is building the whole network (every rank builds it: readers do not yet read only
their slice), "setup" the rank's share + its groups + code generation (+ compilation),
"loop" the time stepping with its spike exchanges, "exch" the time inside the exchange
(its all-gathers and the routing of what came back); peak MB is the largest rank's. The
spikes of every run must equal the reference's, bytes and all (checked: "same").
Needs mpi4py and an MPI library (`pip install mpi4py mpich`).
"""
import argparse
import json
import shutil
import subprocess
import sys
import textwrap

RUN = textwrap.dedent("""
    import hashlib, json, resource, sys, time
    t0 = time.perf_counter()
    import numpy as np
    from nmlsim import api
    from nmlsim.library import build
    name, n, T, backend, use_mpi = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
    comm = None
    if use_mpi:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    sonata = name.endswith(".json")  # a SONATA export: each rank reads only its edges
    if sonata:
        sim_s = api.load(name, comm=comm)
        net = sim_s.network
    else:
        net = build(name, size=n, seed=1)
    t1 = time.perf_counter()
    from nmlsim.engine import exchange as X, simulator as S
    spent = [0.0]
    if comm is not None:  # time inside the exchange
        step = X.SpikeExchange.step
        def timed(self, k, t):
            a = time.perf_counter()
            try:
                return step(self, k, t)
            finally:
                spent[0] += time.perf_counter() - a
        X.SpikeExchange.step = timed
    loop = [0.0]
    run = S.Simulator.run
    def run_timed(self, *a, **k):
        s = time.perf_counter()
        try:
            return run(self, *a, **k)
        finally:
            loop[0] = time.perf_counter() - s
    S.Simulator.run = run_timed
    if sonata:
        res = sim_s.run(duration=T, comm=comm, backend=backend, seed=1)
        spikes, sim = res.spikes, res.simulator
    else:
        spikes, sim = api.simulate_network(net, T, 1e-4, seed=1, backend=backend, comm=comm)
    t2 = time.perf_counter()
    row = dict(graph=t1 - t0, setup=t2 - t1 - loop[0], loop=loop[0], exch=spent[0],
               peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               window=getattr(sim.exchange, "window", 0), cells=sum(p.size for p in sim.built.net.populations.values()))
    rows = comm.gather(row, root=0) if comm is not None else [row]
    if comm is None or comm.rank == 0:
        h = hashlib.sha256()
        total = 0
        for pid in sorted(spikes):
            i, t = spikes[pid]
            h.update(pid.encode()); h.update(np.asarray(i, np.int64).tobytes()); h.update(np.asarray(t).tobytes())
            total += len(i)
        out = {k: max(r[k] for r in rows) for k in ("graph", "setup", "loop", "exch", "peak_mb")}
        out.update(ranks=len(rows), spikes=total, digest=h.hexdigest()[:16], window=rows[0]["window"],
                   cells_per_rank=[r["cells"] for r in rows])
        print("RESULT " + json.dumps(out))
""")


def launch(ranks, args):
    if ranks == 0:  # the reference: one process, no MPI at all
        cmd = [sys.executable, "-c", RUN] + args + ["0"]
    else:
        cmd = [shutil.which("mpirun") or "mpiexec", "-n", str(ranks), sys.executable, "-c", RUN] + args + ["1"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"run failed ({' '.join(cmd[:4])}...):\n{p.stderr[-2000:]}")
    return json.loads(line[7:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ei_hh")
    ap.add_argument("--sizes", default="64000")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--backends", default="numpy")
    ap.add_argument("--duration", type=float, default=0.1)
    ap.add_argument("--sonata", action="store_true", help="run the network's SONATA export instead")
    a = ap.parse_args()
    print("| backend | N | ranks | graph s | setup s | loop s | exchange s | loop ratio | peak MB/rank | spikes | same |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for be in a.backends.split(","):
        for n in map(int, a.sizes.split(",")):
            target = a.model
            if a.sonata:
                import tempfile
                folder = tempfile.mkdtemp(prefix="bench_mpi_")
                subprocess.run([sys.executable, "-m", "nmlsim", "export", a.model, folder, "--size", str(n),
                                "--to", "sonata", "--seed", "1"], check=True, capture_output=True)
                target = next(__import__("pathlib").Path(folder).rglob("simulation_config.json")).as_posix()
            args = [target, str(n), str(a.duration), be]
            if be == "numba":
                launch(0, args)  # (compile and cache the whole network's kernels first)
            ref = launch(0, args)
            rows = [("ref", ref)]
            for k in map(int, a.ranks.split(",")):
                if be == "numba":
                    launch(k, args)  # (each share compiles once; the row is the warm run)
                rows.append((k, launch(k, args)))
            for k, r in rows:
                same = "—" if k == "ref" else ("yes" if r["digest"] == ref["digest"] else "NO")
                print(f"| {be} | {n} | {'1 (no MPI)' if k == 'ref' else k} | {r['graph']:.2f} | {r['setup']:.2f} | "
                      f"{r['loop']:.2f} | {r['exch']:.2f} | {r['loop'] / ref['loop']:.2f} | {r['peak_mb']:.0f} | "
                      f"{r['spikes']} | {same} |", flush=True)


if __name__ == "__main__":
    main()
