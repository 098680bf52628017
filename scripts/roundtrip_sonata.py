#!/usr/bin/env python3
"""NeuroML -> SONATA -> nmlsim round trip over the NeuroML conformance corpus.

Usage: python scripts/roundtrip_sonata.py OUTROOT [--shared ../shared] [--cases a,b]

For each case: run the LEMS file with ``--sonata-spikes``, ``nmlsim convert`` it to SONATA,
run the SONATA config, and compare the two spike files (same populations, same spikes,
times equal to 1e-9 ms).  Cases SONATA cannot hold are reported with nmlsim's reason.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from nmlsim.analysis import read_sonata_spikes


def nmlsim(args, cwd):
    return subprocess.run([sys.executable, "-m", "nmlsim.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outroot")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    ap.add_argument("--cases", default=None)
    args = ap.parse_args()
    corpus = Path(args.shared) / "conformance" / "neuroml"
    cases = json.loads((corpus / "manifest.json").read_text())["cases"]
    if args.cases:
        cases = [c for c in cases if c["case"] in set(args.cases.split(","))]
    outroot = Path(args.outroot).resolve()
    summary = {"same": 0, "differ": 0, "refused": 0, "no spikes": 0}
    for c in cases:
        cdir = corpus / c["dir"]
        run_dir = cdir / c["run_dir"]
        lems = os.path.relpath(cdir / c["lems"], run_dir)
        out = outroot / c["case"]
        out.mkdir(parents=True, exist_ok=True)
        p = nmlsim(["convert", lems, out / "sonata", "--to", "sonata", "--include-root", cdir], run_dir)
        # one seed for both runs: Poisson sources draw the same streams
        if p.returncode:
            summary["refused"] += 1
            print(f"{c['case']:32s} refused: {p.stderr.strip()[-200:]}")
            continue
        p = nmlsim(["run", lems, "--outdir", out / "lems", "--include-root", cdir, "--sonata-spikes",
                    out / "lems_spikes.h5", "--seed", "1", "-q"], run_dir)
        q = nmlsim(["run", out / "sonata" / "simulation_config.json", "--outdir", out / "son", "--seed", "1", "-q"],
                   out)
        if p.returncode or q.returncode:
            summary["differ"] += 1
            print(f"{c['case']:32s} run failed: {(p.stderr or q.stderr).strip()[-200:]}")
            continue
        a = read_sonata_spikes(out / "lems_spikes.h5")
        b = read_sonata_spikes(out / "son" / "spikes.h5")
        n = sum(len(v[0]) for v in a.values())
        same = set(a) == set(b) and all(
            np.array_equal(a[k][0], b[k][0]) and np.allclose(a[k][1], b[k][1], atol=1e-12) for k in a)
        key = "same" if same and n else ("no spikes" if same else "differ")
        summary[key] += 1
        print(f"{c['case']:32s} {key}: {n} spikes via NeuroML, {sum(len(v[0]) for v in b.values())} via SONATA")
    print(summary)


if __name__ == "__main__":
    main()
