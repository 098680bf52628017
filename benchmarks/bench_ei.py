#!/usr/bin/env python3
"""E-I network benchmarks: nmlsim against Brian2 in one run (ratios), and scaling.

Usage:
  python benchmarks/bench_ei.py                 # COBAHH + COBA LIF, 4000 cells, 1 s, dt 0.1 ms
  python benchmarks/bench_ei.py --scaling       # COBAHH at N = 4000, 16000, 64000 (fixed in-degree 80)
  python benchmarks/bench_ei.py --brian2 numpy,cpp_standalone   # add Brian2 runs when installed
  python benchmarks/bench_ei.py --brian2 numpy --brian2-python /path/to/venv/bin/python
      (Brian2 2.9 needs numpy < 2.4: run it from its own environment)

Every measurement runs in a fresh subprocess so that peak memory (ru_maxrss) belongs to
that run alone.  "wall" is what a user waits for inside Python (build + code generation +
simulation), "loop" the time-stepping alone.  Brian2 runs the same models from its
documented COBAHH / COBA examples with this package's parameters (fixed out-degree is
replaced by Brian2's p = 0.02, the REF form).
"""
import argparse
import json
import subprocess
import sys
import textwrap

NMLSIM = textwrap.dedent("""
    import json, resource, time, sys
    t0 = time.perf_counter()
    from nmlsim.library import build
    from nmlsim.compile.build import build_groups
    from nmlsim.engine.simulator import Simulator, observed_by
    from nmlsim.engine.record import SpikeRecorder
    from nmlsim.compile.build import spiking_groups
    name, n, T, method, backend = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
    net = build(name, size=n, seed=1)
    built = build_groups(net)
    rec = SpikeRecorder(spiking_groups(built))
    sim = Simulator(built, 1e-4, method=method, seed=1, backend=backend, observe=observed_by([rec]))
    t1 = time.perf_counter()
    sim.run(T, [rec])
    t2 = time.perf_counter()
    spikes = rec.result()
    rates = {p: len(i) / net.populations[p].size / T for p, (i, _) in spikes.items()}
    print(json.dumps(dict(wall=t2 - t0, loop=t2 - t1, rates=rates,
                          peak_mb=max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)))
""")

BRIAN2 = textwrap.dedent("""
    import json, resource, time, sys
    t0 = time.perf_counter()
    from brian2 import *
    name, n, T, target = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    if target == "cpp_standalone":
        set_device("cpp_standalone", directory=None)
    else:
        prefs.codegen.target = "numpy"
    defaultclock.dt = 0.1 * ms
    if name == "ei_hh":
        area = 20000 * umetre ** 2
        Cm = 1 * ufarad * cm ** -2 * area; gl = 5e-5 * siemens * cm ** -2 * area
        El = -60 * mV; EK = -90 * mV; ENa = 50 * mV
        g_na = 100 * msiemens * cm ** -2 * area; g_kd = 30 * msiemens * cm ** -2 * area; VT = -63 * mV
        taue = 5 * ms; taui = 10 * ms; Ee = 0 * mV; Ei = -80 * mV; we = 6 * nS; wi = 67 * nS
        eqs = Equations('''
        dv/dt = (gl*(El-v)+ge*(Ee-v)+gi*(Ei-v)-g_na*(m*m*m)*h*(v-ENa)-g_kd*(n*n*n*n)*(v-EK))/Cm : volt
        dm/dt = alpha_m*(1-m)-beta_m*m : 1
        dn/dt = alpha_n*(1-n)-beta_n*n : 1
        dh/dt = alpha_h*(1-h)-beta_h*h : 1
        dge/dt = -ge*(1./taue) : siemens
        dgi/dt = -gi*(1./taui) : siemens
        alpha_m = 0.32*(mV**-1)*4*mV/exprel((13*mV-v+VT)/(4*mV))/ms : Hz
        beta_m = 0.28*(mV**-1)*5*mV/exprel((v-VT-40*mV)/(5*mV))/ms : Hz
        alpha_h = 0.128*exp((17*mV-v+VT)/(18*mV))/ms : Hz
        beta_h = 4./(1+exp((40*mV-v+VT)/(5*mV)))/ms : Hz
        alpha_n = 0.032*(mV**-1)*5*mV/exprel((15*mV-v+VT)/(5*mV))/ms : Hz
        beta_n = .5*exp((10*mV-v+VT)/(40*mV))/ms : Hz
        ''')
        P = NeuronGroup(n, model=eqs, threshold='v>-20*mV', refractory=3*ms, method='exponential_euler')
        P.v = 'El + (randn() * 5 - 5)*mV'
        P.ge = '(randn() * 1.5 + 4) * 10.*nS'
        P.gi = '(randn() * 12 + 20) * 10.*nS'
    else:
        taum = 20*ms; taue = 5*ms; taui = 10*ms; Vt = -50*mV; Vr = -60*mV; El = -60*mV
        Ee = 0*mV; Ei = -80*mV; we = 0.6; wi = 6.7
        eqs = '''dv/dt = (ge*(Ee-v)+gi*(Ei-v)-(v-El)+20*mV)/taum : volt (unless refractory)
                 dge/dt = -ge/taue : 1
                 dgi/dt = -gi/taui : 1'''
        P = NeuronGroup(n, eqs, threshold='v>Vt', reset='v = Vr', refractory=5*ms, method='euler')
        P.v = 'Vr + rand() * (Vt - Vr)'
    ne = int(0.8 * n)
    Ce = Synapses(P[:ne], P, on_pre='ge+=we'); Ce.connect(p=80.0 / n)
    Ci = Synapses(P[ne:], P, on_pre='gi+=wi'); Ci.connect(p=80.0 / n)
    M = SpikeMonitor(P)
    t1 = time.perf_counter()
    run(T * second, report=None)
    t2 = time.perf_counter()
    loop = t2 - t1
    if target == "cpp_standalone":
        loop = device._last_run_time if hasattr(device, "_last_run_time") else loop
    print(json.dumps(dict(wall=t2 - t0, loop=loop, rates={"all": M.num_spikes / n / T},
                          peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
""")


def run(code, *args, python=None, env=None, script=None):
    """One fresh process; its JSON line, with ``process``: the whole process's wall time
    (interpreter start and imports included)."""
    import time
    cmd = [python or sys.executable] + ([script] if script else ["-c", code]) + [str(x) for x in args]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    t = time.perf_counter() - t
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "failed"}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["process"] = t
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--method", default="exp_euler")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--backends", default="numpy", help="comma list of nmlsim backends: numpy,numba")
    ap.add_argument("--brian2", default="", help="comma list of Brian2 targets: numpy,cpp_standalone")
    ap.add_argument("--brian2-python", default=None, help="Python interpreter that has Brian2 installed")
    ap.add_argument("--cold", action="store_true",
                    help="numba rows twice: a first run with an empty kernel cache, then a warm one")
    ap.add_argument("--braincell-python", default=None,
                    help="Python interpreter that has braincell: COBAHH with braincell_cobahh.py as reference")
    a = ap.parse_args()
    rows = []
    if a.cold or a.braincell_python:
        return cold_and_reference(a)
    if a.scaling:
        for n in (4000, 16000, 64000):
            for be in a.backends.split(","):
                r = run(NMLSIM, "ei_hh", n, a.duration, a.method, be)
                rows.append((f"nmlsim-{be}", "ei_hh", n, r))
                print(rows[-1], flush=True)
    else:
        for model in ("ei_hh", "coba_lif"):
            first = None
            for be in a.backends.split(","):
                r = run(NMLSIM, model, 4000, a.duration, a.method, be)
                rows.append((f"nmlsim-{be}", model, 4000, r))
                print(rows[-1], flush=True)
                if first is None:
                    first = r
                elif "loop" in r and "loop" in first:
                    print(f"  ratio nmlsim-{be}/nmlsim-numpy: wall {r['wall'] / first['wall']:.2f}, "
                          f"loop {r['loop'] / first['loop']:.2f}", flush=True)
            for target in filter(None, a.brian2.split(",")):
                check = subprocess.run([a.brian2_python or sys.executable, "-c", "import brian2"],
                                       capture_output=True, text=True)
                if check.returncode != 0:
                    print("brian2 not importable here (pass --brian2-python): skipped")
                    break
                rb = run(BRIAN2, model, 4000, a.duration, target, python=a.brian2_python)
                rows.append((f"brian2-{target}", model, 4000, rb))
                print(rows[-1], flush=True)
                if "loop" in r and "loop" in rb:
                    print(f"  ratio nmlsim/brian2-{target}: wall {r['wall'] / rb['wall']:.2f}, "
                          f"loop {r['loop'] / rb['loop']:.2f}", flush=True)
    print("\n| tool | model | N | wall s | loop s | peak MB | rates Hz |")
    print("|---|---|---:|---:|---:|---:|---|")
    for tool, model, n, r in rows:
        if "error" in r:
            print(f"| {tool} | {model} | {n} | error: {r['error']} | | | |")
            continue
        rates = ", ".join(f"{k} {v:.1f}" for k, v in r["rates"].items())
        print(f"| {tool} | {model} | {n} | {r['wall']:.2f} | {r['loop']:.2f} | {r['peak_mb']:.0f} | {rates} |")


def cold_and_reference(a):
    """COBAHH, N = 4000: nmlsim-numba with an empty kernel cache (a user's first run), then
    warm, and braincell (JAX, float64) — whole-process wall times and their ratios."""
    import os
    import tempfile
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NMLSIM_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            r = run(NMLSIM, "ei_hh", 4000, a.duration, a.method, "numba", env=env)
            rows.append((f"nmlsim-numba ({label})", r))
            print(rows[-1], flush=True)
    if a.braincell_python:
        here = os.path.dirname(os.path.abspath(__file__))
        r = run(None, 4000, a.duration, python=a.braincell_python, script=os.path.join(here, "braincell_cobahh.py"))
        rows.append(("braincell (JAX float64)", r))
        print(rows[-1], flush=True)
        ref = r.get("process")
        if ref:
            for tool, x in rows[:2]:
                if "process" in x:
                    print(f"  ratio {tool}/braincell: process wall {x['process'] / ref:.2f}", flush=True)
    print("\n| tool | process wall s | wall s (in Python) | loop s | peak MB | rate Hz |")
    print("|---|---:|---:|---:|---:|---|")
    for tool, r in rows:
        if "error" in r:
            print(f"| {tool} | error: {r['error']} | | | | |")
            continue
        rates = ", ".join(f"{k} {v:.1f}" for k, v in r["rates"].items())
        print(f"| {tool} | {r['process']:.2f} | {r['wall']:.2f} | {r['loop']:.2f} | {r['peak_mb']:.0f} | {rates} |")


if __name__ == "__main__":
    main()
