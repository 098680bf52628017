"""Per-target markdown table of an OMV run (../shared/tools/omv/run_omv.py OUT/runs.json).

    python scripts/omv_table.py OUT/runs.json [MORE/runs.json ...] [--only REGEX]

Several runs: a target's later run replaces its earlier one (reruns after a fix).
"""
import argparse
import json
import re
from collections import Counter


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--only", default=None, help="regex on 'repo/target'")
    a = ap.parse_args()
    runs = {}
    for path in a.runs:
        runs.update(json.load(open(path)))
    total = Counter()
    print("| repository | target | backend | wall s | results (engine: category) | detail of the first failure |")
    print("|---|---|---|---|---|---|")
    for r in runs.values():
        name = f"{r['repo']}/{r['target']}"
        if a.only and not re.search(a.only, name):
            continue
        res = r.get("results", [])
        cats = ", ".join(f"{x['engine']}: {x['category']}" for x in res)
        total.update(x["category"] for x in res)
        fail = next((x["detail"] for x in res if x["category"] != "PASS"), "")
        backend = res[0]["backend"] if res else (r.get("attempts") or [{}])[-1].get("backend", "")
        print(f"| {r['repo']} | {r['target']} | {backend} | {r.get('wall_total', '')} | {cats} | {fail[:160]} |")
    print()
    print(", ".join(f"{k} {v}" for k, v in sorted(total.items())))


if __name__ == "__main__":
    main()
