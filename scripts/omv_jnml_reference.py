#!/usr/bin/env python3
"""Run jNeuroML itself on the OMV tests nmlsim failed, and score it with OMV's own checks.

An OMV test (.omt + .mep) holds expected values written down at some time with some engine
version; a test that jNeuroML 0.14 (pyNeuroML 1.3.22) fails too says nothing about nmlsim.
This script takes the ``results.csv`` of ``../shared/tools/omv/run_omv.py`` (run with
``--method euler``: jLEMS's scheme), keeps the failed rows of the jNeuroML engine, runs
``java -jar jNeuroML.jar TARGET -nogui`` on each target in a fresh copy of its repository
(as OMV runs it), scores every .omt of that target with the runner's OMV checks, and writes
``OUT/jnml_reference.csv``: omt, target, nmlsim's detail, jnml's verdict and detail.

    python scripts/omv_jnml_reference.py --results OMV_OUT/results.csv --src OMV_SRC --out DIR
        [--shared ../shared] [--timeout 600] [--engines jNeuroML]

Needs Java and pyNeuroML (for the jar), osbmodelvalidation and pyyaml (for OMV's checks).
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path


def jar_path() -> str:
    import pyneuroml
    lib = Path(pyneuroml.__file__).parent / "lib"
    jars = sorted(lib.glob("jNeuroML*-jar-with-dependencies.jar"))
    if not jars:
        sys.exit("no jNeuroML jar in pyNeuroML's lib folder")
    return str(jars[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True, help="results.csv of run_omv.py")
    ap.add_argument("--src", required=True, help="the OSB repositories (run_omv.py's --src)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--engines", default="jNeuroML", help="comma-separated engines to check")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.shared, "tools", "omv"))
    import run_omv  # noqa: E402  (the runner's OMV glue: build_checks, score)

    engines = set(a.engines.split(","))
    rows = [r for r in csv.DictReader(open(a.results)) if r["engine"] in engines and r["category"] == "FAIL"]
    by_target = defaultdict(list)
    for r in rows:
        by_target[(r["repo"], r["target"], os.path.dirname(r["omt"]))].append(r)
    jar = jar_path()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    work = Path(tempfile.mkdtemp(prefix="omv_jnml_"))
    try:
        for k, ((repo, target, omt_dir), rs) in enumerate(sorted(by_target.items()), start=1):
            copy = work / f"{repo}_{k}"
            subprocess.run(["cp", "-al", os.path.join(a.src, repo), str(copy)], check=True)
            omt_abs0 = copy / rs[0]["omt"]
            run_dir = (omt_abs0.parent / target).resolve().parent
            checks = []
            for r in rs:  # observables created before the run, as OMV does
                exps, eng = run_omv.build_checks(str(copy / r["omt"]), r["engine"])
                checks.append((r, exps, eng))
            print(f"[{k}/{len(by_target)}] jnml {repo}/{target}", flush=True)
            try:
                p = subprocess.run(["java", "-Xmx4G", "-jar", jar, os.path.basename(target), "-nogui"],
                                   cwd=run_dir, capture_output=True, text=True, timeout=a.timeout)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                rc = 124
            for r, exps, eng in checks:
                if rc == 124:
                    ok, detail = False, "jnml: no result within the time limit"
                else:
                    ok, detail, _ = run_omv.score(exps, eng, rc)
                results.append(dict(omt=f"{repo}/{r['omt']}", target=target, nmlsim=r["detail"],
                                    jnml="PASS" if ok else "FAIL", jnml_detail=detail))
                print(f"    jnml {'PASS' if ok else 'FAIL'}  {r['omt']}", flush=True)
            shutil.rmtree(copy, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(out / "jnml_reference.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["omt", "target", "nmlsim", "jnml", "jnml_detail"])
        w.writeheader()
        w.writerows(results)
    n_fail = sum(r["jnml"] == "FAIL" for r in results)
    print(f"{len(results)} tests nmlsim failed: jnml fails {n_fail}, passes {len(results) - n_fail}")


if __name__ == "__main__":
    main()
