#!/usr/bin/env python3
"""Run every case of the NeuroML conformance corpus through `nmlsim run`.

Usage: python scripts/run_conformance.py OUTROOT [--shared ../shared] [--method euler] [--cases a,b] [-j 2]
                                          [--backend numba]

Each case runs in its `run_dir` (as jnml does), with outputs written under OUTROOT/<case>/,
then compare with:
    python ../shared/tools/compare_neuroml.py ../shared/conformance/neuroml/manifest.json --all OUTROOT
"""
import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outroot")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    ap.add_argument("--method", default="exp_euler")
    ap.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--backend", default="numpy", help="numpy or numba")
    args = ap.parse_args()
    corpus = Path(args.shared) / "conformance" / "neuroml"
    manifest = json.loads((corpus / "manifest.json").read_text())
    cases = manifest["cases"]
    if args.cases:
        want = set(args.cases.split(","))
        cases = [c for c in cases if c["case"] in want]
    outroot = Path(args.outroot).resolve()

    def one(c):
        cdir = corpus / c["dir"]
        run_dir = cdir / c["run_dir"]
        out = outroot / c["case"]
        out.mkdir(parents=True, exist_ok=True)
        lems = os.path.relpath(cdir / c["lems"], run_dir)
        cmd = [sys.executable, "-m", "nmlsim.cli", "run", lems, "--method", args.method, "--outdir", str(out),
               "--include-root", str(cdir), "--backend", args.backend, "-q"]
        t = time.time()
        p = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True)
        return c["case"], p.returncode, time.time() - t, (p.stderr or "").strip()[-400:]

    timings = {}
    tfile = outroot / "timings.json"
    if tfile.exists():
        timings = json.loads(tfile.read_text())
    with ThreadPoolExecutor(args.jobs) as ex:
        for case, rc, dt, err in ex.map(one, cases):
            print(f"{case:32s} rc={rc} {dt:7.2f}s {err}", flush=True)
            timings[case] = {"rc": rc, "wall_s": round(dt, 2), "method": args.method}
            tfile.write_text(json.dumps(timings, indent=1))


if __name__ == "__main__":
    main()
