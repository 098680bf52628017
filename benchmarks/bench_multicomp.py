#!/usr/bin/env python3
"""Detailed-cell network: nmlsim (both backends) against NEURON running jNeuroML's export, one script.

Usage:
  python benchmarks/bench_multicomp.py                     # 100 cells, 1 s, dt 0.025 ms
  python benchmarks/bench_multicomp.py --cells 20 --duration 0.2 --backends numba

The network: N copies of ``TestCell`` (tests/data/multicomp/ca_cells.nml: spherical soma, a
tapered 5-node dendrite with an oblique branch, a 3-node axon; HH sodium and potassium, a
Nernst calcium channel with a decaying pool, non-uniform densities on path length; 13
compartments), each driven by a current pulse (one pulse generator, weighted 2–4 × 0.1 nA per
cell with ``inputW``, so the cells fire at different rates), and a ring of axon-to-dendrite synapses (cell i -> cell i+1, 3 ms).
Both simulators use the same fixed step (NEURON: backward Euler, ``secondorder=0``, one
thread; nmlsim: ``--method neuron``, which reproduces that export step for step).

NEURON's numbers: jNeuroML writes the model (``pynml LEMS.xml -neuron``, not timed), the mod
files are compiled (not timed), then ``python X_nrn.py -nogui`` runs in a fresh process:
"wall" is that process (NEURON import, model set-up, run, writing), "loop" is the time
NEURON's own script reports for ``h.run()``.  nmlsim: "wall" is the whole ``nmlsim run``
process (parse, lower, compile or load kernels, run, write), "loop" the time-stepping.
Every measurement is a fresh process so that peak memory (ru_maxrss) is its own.  The
spike counts of every run are printed next to the times: they must agree.
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
DATA = HERE / "tests" / "data" / "multicomp"


def network(n: int, duration_ms: float, dt_ms: float) -> str:
    cells = "".join(f'<instance id="{i}"><location x="{100 * i}" y="0" z="0"/></instance>' for i in range(n))
    # one pulse, weighted per cell (inputW): 0.2-0.4 nA
    pulses = f'<pulseGenerator id="pg" delay="20ms" duration="{duration_ms}ms" amplitude="0.1nA"/>'
    inputs = ('<inputList id="in" component="pg" population="pop">'
              + "".join(f'<inputW id="{i}" target="../pop/{i}/TestCell" segmentId="0" fractionAlong="0.5" '
                        f'destination="synapses" weight="{2 + 2 * i / max(n - 1, 1):.4f}"/>' for i in range(n))
              + '</inputList>')
    conns = "".join(f'<connectionWD id="{i}" preCellId="../pop/{i}/TestCell" postCellId="../pop/{(i + 1) % n}/TestCell" '
                    f'preSegmentId="5" preFractionAlong="0.9" postSegmentId="3" postFractionAlong="0.5" '
                    f'weight="1" delay="3ms"/>' for i in range(n))
    net = f"""<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="bench">
<include href="ca_cells.nml"/>{pulses}
<network id="benchNet" type="networkWithTemperature" temperature="35 degC">
<population id="pop" type="populationList" component="TestCell">{cells}</population>
<projection id="ring" presynapticPopulation="pop" postsynapticPopulation="pop" synapse="AMPA">{conns}</projection>
{inputs}</network></neuroml>"""
    return net


def lems(duration_ms: float, dt_ms: float) -> str:
    return f"""<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>
<Include file="Simulation.xml"/><Include file="bench.net.nml"/>
<Simulation id="sim" length="{duration_ms}ms" step="{dt_ms}ms" target="benchNet">
<EventOutputFile id="spk" fileName="bench_spikes.dat" format="TIME_ID">
{"".join(f'<EventSelection id="{i}" select="pop/{i}/TestCell" eventPort="spike"/>' for i in range(N_CELLS[0]))}
</EventOutputFile></Simulation></Lems>"""


N_CELLS = [0]


def prepare(root: Path, n: int, duration_ms: float, dt_ms: float) -> None:
    for f in ("ca_cells.nml", "NML2_SingleCompHHCell.nml"):
        shutil.copy(DATA / f, root / f)
    # the cells' own pulse is replaced by the network's pulses
    cell = (root / "ca_cells.nml").read_text()
    cell = re.sub(r'\s*<pulseGenerator id="pg"[^>]*/>', "", cell)
    cell = re.sub(r"\s*<network .*?</network>", "", cell, flags=re.S)
    (root / "ca_cells.nml").write_text(cell)
    N_CELLS[0] = n
    (root / "bench.net.nml").write_text(network(n, duration_ms, dt_ms))
    (root / "LEMS_bench.xml").write_text(lems(duration_ms, dt_ms))


def count_spikes(path: Path) -> int:
    if not path.exists():
        return -1
    return sum(1 for ln in path.read_text().splitlines() if ln.strip())


def timed(cmd, cwd, env=None):
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if r.returncode:
        raise SystemExit(f"{cmd[0]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall, (peak if peak > before else before) / 1024, r.stdout + r.stderr


def run_neuron(root: Path):
    if shutil.which("pynml") is None or shutil.which("nrnivmodl") is None:
        return None
    env = dict(os.environ, NEURON_HOME=str(Path(sys.executable).resolve().parents[1]))
    d = root / "neuron"
    shutil.copytree(root, d, ignore=shutil.ignore_patterns("neuron", "nmlsim_*"))
    subprocess.run(["pynml", "LEMS_bench.xml", "-neuron", "-nogui"], cwd=d, env=env, check=True, capture_output=True)
    subprocess.run(["nrnivmodl"], cwd=d, env=env, check=True, capture_output=True)
    # (the script ends with quit(): the numbers are printed at exit)
    wrapper = ("import atexit, json, resource, runpy, sys, time; t0 = time.perf_counter(); sys.argv = ['x', '-nogui']; "
               "atexit.register(lambda: print(json.dumps(dict(wall=time.perf_counter() - t0, "
               "peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)), flush=True)); "
               "runpy.run_path('LEMS_bench_nrn.py', run_name='__main__')")
    _, _, out = timed([sys.executable, "-c", wrapper], d, env)
    m = re.search(r"Finished NEURON simulation in ([0-9.]+) seconds", out)
    loop = float(m.group(1)) if m else float("nan")
    r = json.loads([ln for ln in out.splitlines() if ln.startswith('{"wall"')][-1])
    return dict(tool="NEURON 9 (jNeuroML export), fixed step", wall=r["wall"], loop=loop, peak_mb=r["peak_mb"],
                spikes=count_spikes(d / "bench_spikes.dat"))


NMLSIM = """
import json, resource, sys, time
t0 = time.perf_counter()
import nmlsim
from nmlsim.engine import simulator as S
orig, T = S.Simulator.run, {}
def timed_run(self, *a, **k):
    t = time.perf_counter()
    r = orig(self, *a, **k)
    T["loop"] = time.perf_counter() - t
    return r
S.Simulator.run = timed_run
res = nmlsim.run(nmlsim.load("LEMS_bench.xml"), backend=sys.argv[1])
print(json.dumps(dict(wall=time.perf_counter() - t0, loop=T["loop"], method=res.simulator.method,
                      peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def run_nmlsim(root: Path, backend: str, warm: bool):
    d = root / f"nmlsim_{backend}"
    if not d.exists():
        shutil.copytree(root, d, ignore=shutil.ignore_patterns("neuron", "nmlsim_*", "cache_*"))
    # its own kernel cache, empty for the cold run (what a user's first run of the model
    # meets), filled by it for the warm one
    env = dict(os.environ, NMLSIM_CACHE_DIR=str(root / f"cache_{backend}"))
    if not warm:
        shutil.rmtree(root / f"cache_{backend}", ignore_errors=True)
    _, _, out = timed([sys.executable, "-c", NMLSIM, backend], d, env)
    r = json.loads(out.strip().splitlines()[-1])
    return dict(tool=f"nmlsim {backend}, --method {r['method']} ({'warm' if warm else 'cold'})", wall=r["wall"],
                loop=r["loop"], peak_mb=r["peak_mb"], spikes=count_spikes(d / "bench_spikes.dat"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--duration", type=float, default=1.0, help="seconds")
    ap.add_argument("--dt", type=float, default=0.025, help="ms")
    ap.add_argument("--backends", default="numpy,numba")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare(root, args.cells, args.duration * 1000.0, args.dt)
        nrn = run_neuron(root)
        if nrn:
            rows.append(nrn)
        for b in [x for x in args.backends.split(",") if x]:
            rows.append(run_nmlsim(root, b, warm=False))
            rows.append(run_nmlsim(root, b, warm=True))
    print(f"{args.cells} cells x 13 compartments, {args.duration:g} s at {args.dt} ms")
    print("| tool | wall s | loop s | peak MB | spikes |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['wall']:.2f} | {r['loop']:.2f} | {r['peak_mb']:.0f} | {r['spikes']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
