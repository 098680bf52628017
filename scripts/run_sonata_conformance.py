#!/usr/bin/env python3
"""Run every case of the SONATA conformance corpus through `nmlsim run`.

Usage: python scripts/run_sonata_conformance.py OUTROOT [--shared ../shared] [--method M] [--backend numba] [--cases a,b] [-j 2]

Each case's run config goes through `nmlsim run CONFIG --outdir OUTROOT/<case>`, so the
spike file and reports land where compare_sonata.py looks for them:
    python ../shared/tools/compare_sonata.py --manifest ../shared/conformance/sonata/manifest.json --cand-root OUTROOT
A case nmlsim refuses (exit code 4, unsupported feature) is reported with its one-line reason.
"""
import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outroot")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    ap.add_argument("--method", default=None, help="integrator (default: nmlsim's choice per model)")
    ap.add_argument("--backend", default="numpy", help="numpy or numba")
    ap.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args()
    corpus = Path(args.shared) / "conformance" / "sonata"
    cases = json.loads((corpus / "manifest.json").read_text())["cases"]
    if args.cases:
        want = set(args.cases.split(","))
        cases = [c for c in cases if c["case"] in want]
    outroot = Path(args.outroot).resolve()

    def one(c):
        cdir = corpus / c["dir"]
        out = outroot / c["case"]
        out.mkdir(parents=True, exist_ok=True)
        # reports in float64, as bmtk wrote the references (some are compared to 5e-4 mV)
        cmd = [sys.executable, "-m", "nmlsim.cli", "run", c["run_config"], "--outdir", str(out), "-q",
               "--report-dtype", "float64"]
        if args.method:
            cmd += ["--method", args.method]
        if args.backend != "numpy":
            cmd += ["--backend", args.backend]
        t = time.time()
        p = subprocess.run(cmd, cwd=cdir, capture_output=True, text=True)
        return c["case"], p.returncode, time.time() - t, (p.stderr or "").strip()[-400:]

    timings = {}
    tfile = outroot / "timings.json"
    if tfile.exists():
        timings = json.loads(tfile.read_text())
    with ThreadPoolExecutor(args.jobs) as ex:
        for case, rc, dt, err in ex.map(one, cases):
            verdict = {0: "ran", 4: "refused (unsupported feature)"}.get(rc, "error")
            print(f"{case:28s} rc={rc} {verdict:30s} {dt:7.1f}s {err}", flush=True)
            timings[case] = {"rc": rc, "wall_s": round(dt, 1), "verdict": verdict, "message": err}
            tfile.write_text(json.dumps(timings, indent=1))


if __name__ == "__main__":
    main()
