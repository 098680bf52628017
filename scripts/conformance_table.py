#!/usr/bin/env python3
"""Write the per-case conformance table (docs/conformance.md) from run_conformance.py outputs.

Usage: python scripts/conformance_table.py OUT_EULER OUT_EXP_EULER [--shared ../shared] > docs/conformance.md
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path


def verdicts(manifest, root):
    p = subprocess.run([sys.executable, str(Path(manifest).parent.parent.parent / "tools" / "compare_neuroml.py"),
                        str(manifest), "--all", str(root)], capture_output=True, text=True)
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith(("PASS ", "FAIL ")):
            word, rest = line.split(" ", 1)
            case = rest.split(":", 1)[0]
            out[case] = word
        if "passed" in line and "failed" in line:
            out["__summary__"] = line.strip()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("euler")
    ap.add_argument("exp_euler")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    a = ap.parse_args()
    manifest = Path(a.shared) / "conformance" / "neuroml" / "manifest.json"
    cases = json.loads(manifest.read_text())["cases"]
    ve, vx = verdicts(manifest, a.euler), verdicts(manifest, a.exp_euler)
    te = json.loads((Path(a.euler) / "timings.json").read_text())
    tx = json.loads((Path(a.exp_euler) / "timings.json").read_text())
    print("# NeuroML conformance: nmlsim against jNeuroML\n")
    print("Produced by `python scripts/run_conformance.py OUT --method euler` and `... --method exp_euler`,")
    print("then `python scripts/conformance_table.py OUT_EULER OUT_EXP`; verdicts are those of")
    print("`../shared/tools/compare_neuroml.py` (manifest tolerances). Wall times include Python start-up,")
    print("model loading and code generation, one case at a time on the 2-core development machine;")
    print("jnml times are the manifest's (JVM start included, two runs at a time).\n")
    print(f"- euler: **{ve.get('__summary__', '?')}**")
    print(f"- exp_euler (default): **{vx.get('__summary__', '?')}**\n")
    print("| case | steps | euler | exp_euler | nmlsim euler s | nmlsim exp_euler s | jnml s | features |")
    print("|---|---:|---|---|---:|---:|---:|---|")
    for c in cases:
        n = c["case"]
        steps = int(round(c["sim"]["length_s"] / c["sim"]["step_s"]))
        feats = ", ".join(f for f in c.get("features", []) if not f.startswith("LEMS:"))[:90]
        print(f"| {n} | {steps} | {ve.get(n, '-')} | {vx.get(n, '-')} | {te.get(n, {}).get('wall_s', '-')} | "
              f"{tx.get(n, {}).get('wall_s', '-')} | {c.get('jnml_wall_s', '-')} | {feats} |")


if __name__ == "__main__":
    main()
