#!/usr/bin/env python3
"""Time `nmlsim run` against `jnml` on corpus cases, in the same script (wall-clock ratio).

Usage: python benchmarks/bench_jnml.py [--shared ../shared] [--cases a,b,c] [--repeat 2]

Both tools run as a user runs them: a fresh process in the case's run_dir, start-up,
model loading and output writing included. jnml is pyNeuroML's jar run with java
directly (skipped with a note when pyNeuroML or java is missing). The minimum over
--repeat runs is reported.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = "nml2_ex1_hh,nml2_ex5_detcell,nml2_ex19_gapjunctions,osb_pospischil_lts"


def jnml_cmd():
    if shutil.which("java") is None:
        return None
    try:
        import pyneuroml
    except ImportError:
        return None
    jar = next((Path(pyneuroml.__file__).parent / "lib").glob("jNeuroML-*-jar-with-dependencies.jar"), None)
    return None if jar is None else ["java", "-Xmx4G", "-Djava.awt.headless=true", "-jar", str(jar)]


def timed(cmd, cwd):
    """(wall s, peak MB) of one process: its own rusage, read with wait4."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        dt = time.perf_counter() - t
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed: {err.read()[-300:].decode(errors='replace')}")
    return dt, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    ap.add_argument("--cases", default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--method", default="exp_euler")
    a = ap.parse_args()
    corpus = Path(a.shared) / "conformance" / "neuroml"
    manifest = json.loads((corpus / "manifest.json").read_text())
    jn = jnml_cmd()
    print(f"{'case':28s} {'steps':>8s} {'nmlsim s':>9s} {'nmlsim MB':>9s} {'jnml s':>8s} {'jnml MB':>8s} "
          f"{'ratio':>6s}")
    for name in a.cases.split(","):
        c = next(x for x in manifest["cases"] if x["case"] == name)
        steps = int(round(c["sim"]["length_s"] / c["sim"]["step_s"]))
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "case"
            shutil.copytree(corpus / c["dir"], work)
            run_dir = work / c["run_dir"]
            lems = os.path.relpath(work / c["lems"], run_dir)
            (run_dir / "results").mkdir(exist_ok=True)
            ours, our_mb = min(timed([sys.executable, "-m", "nmlsim.cli", "run", lems, "--method", a.method, "-q",
                                      "--include-root", str(work)], run_dir) for _ in range(a.repeat))
            theirs, their_mb = (min(timed(jn + [lems, "-nogui"], run_dir) for _ in range(a.repeat)) if jn
                                else (None, float("nan")))
        ratio = f"{ours / theirs:6.2f}" if theirs else "   n/a"
        print(f"{name:28s} {steps:8d} {ours:9.2f} {our_mb:9.0f} {theirs if theirs else float('nan'):8.2f} "
              f"{their_mb:8.0f} {ratio}", flush=True)
    if jn is None:
        print("jnml not available (pip install pyNeuroML==1.3.22 and a Java runtime): nmlsim times only")


if __name__ == "__main__":
    main()
