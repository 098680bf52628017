#!/usr/bin/env python3
"""Loading a shipped model: NeuroML XML network vs the same network in NeuroML HDF5.

Usage: python benchmarks/bench_formats.py [--models ei_hh,coba_lif]

Each load runs in a fresh Python process (``nmlsim info``: read, resolve, build the graph),
so wall time includes start-up and the peak RSS is the process's own. Prints a table with the
HDF5/XML ratios.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


#: the child: `nmlsim info` in this interpreter, then its own peak resident memory on stderr
CHILD = ("import resource, sys\nfrom nmlsim.cli import main\nrc = main(sys.argv[1:])\n"
         "sys.stderr.write(f'PEAK {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')\nsys.exit(rc)")


def measure(lems: Path):
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, "info", str(lems)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(p.stderr)
    peak = int(p.stderr.rsplit("PEAK ", 1)[1].split()[0])
    return wall, peak / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="ei_hh,coba_lif")
    args = ap.parse_args()
    print("| model | XML load s | HDF5 load s | ratio | XML peak MB | HDF5 peak MB | XML file MB | HDF5 file MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in args.models.split(","):
        d = REPO / "models" / m
        th, ph = measure(d / f"LEMS_{m}_h5.xml")
        tx, px = measure(d / f"LEMS_{m}.xml")
        sx = (d / f"{m}.net.nml").stat().st_size / 1e6
        sh = (d / f"{m}.net.h5").stat().st_size / 1e6
        print(f"| {m} | {tx:.2f} | {th:.2f} | {th / tx:.2f} | {px:.0f} | {ph:.0f} | {sx:.1f} | {sh:.1f} |")


if __name__ == "__main__":
    main()
