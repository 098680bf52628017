#!/usr/bin/env python3
"""Mutation fuzzer: broken copies of small valid models through every command.

Usage: python tests/bad_input/fuzz.py OUTDIR [--mutants 1000] [--seed 0] [--timeout 60] [--table]

Seeds (written by tests/bad_input/make_corpus.py's helpers, no opaque files): a LEMS model
(an IaF and an HH cell, a projection, pulse and Poisson inputs, outputs) and a SONATA point
circuit (NEST cells, virtual inputs, edges, a current clamp). Each mutant changes one thing:
an XML attribute set to a hostile value, an element deleted, duplicated or emptied, the
file cut short; a JSON value replaced or deleted; an HDF5 dataset replaced (NaN, negative,
huge, float ids, wrong length). Every mutant goes through ``run``, ``validate``, ``info`` and
``convert`` in its own folder, and each outcome is classified:

- ``ok``: exit 0, or a one-line ``nmlsim: error:`` (exit 1-5) — what a user should get;
- ``internal``: exit 70 or a traceback (a bug in nmlsim);
- ``hang``: still running after --timeout seconds;
- ``outside``: a file appeared outside the mutant's folder;
- ``noisy``: an error spread over several lines.

Exit status 1 if any mutant is not ``ok``. tests/integration/test_fuzz.py runs a seeded
subset in CI; the full campaign runs on demand (docs/errors.md has its table).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import GOOD_CELL, LEMS_HEAD, sonata_circuit  # noqa: E402

COMMANDS = ("run", "validate", "info", "convert")

#: values a careless user or an attacker puts where a number, id, path or unit belongs
HOSTILE = ["", " ", "-1", "0", "1.5", "abc", "e5", "NaN", "inf", "-inf", "1e308", "1e-300ms", "1e-300",
           "0ms", "-5ms", "1e12", "../../../../outside.dat", "/tmp/nmlsim_fuzz_outside.dat", ".", "..",
           "pop[ 0 ]/v", "p[99]/v", "p[0]/nosuch", "10 mV", "10mVV", "1nS", "\u00e9\u00e8", "'\"<&",
           "9" * 40, "0x10"]
JSON_HOSTILE = HOSTILE + [True, False, None, [], {}, -1, 0, 1e300, -1e300, 2 ** 63, [1, "a"], {"a": 1}]

LEMS_BODY = GOOD_CELL + """
<ionChannelHH id="na" conductance="10pS" species="na">
  <gateHHrates id="m" instances="3">
    <forwardRate type="HHExpLinearRate" rate="1per_ms" midpoint="-40mV" scale="10mV"/>
    <reverseRate type="HHExpRate" rate="4per_ms" midpoint="-65mV" scale="-18mV"/>
  </gateHHrates>
</ionChannelHH>
<cell id="hh"><morphology id="m"><segment id="0"><proximal x="0" y="0" z="0" diameter="10"/>
  <distal x="0" y="0" z="0" diameter="10"/></segment></morphology><biophysicalProperties id="b">
  <membraneProperties><channelDensity id="d" ionChannel="na" condDensity="120mS_per_cm2" erev="50mV" ion="na"/>
  <channelDensity id="l" ionChannel="pas" condDensity="0.3mS_per_cm2" erev="-54mV" ion="non_specific"/>
  <spikeThresh value="0mV"/><specificCapacitance value="1uF_per_cm2"/><initMembPotential value="-65mV"/>
  </membraneProperties><intracellularProperties><resistivity value="0.1kohm_cm"/></intracellularProperties>
  </biophysicalProperties></cell>
<ionChannelPassive id="pas" conductance="10pS"/>
<expOneSynapse id="syn" gbase="1nS" erev="0mV" tauDecay="3ms"/>
<pulseGenerator id="pg" delay="2ms" duration="20ms" amplitude="0.3nA"/>
<poissonFiringSynapse id="poi" averageRate="50Hz" synapse="syn" spikeTarget="./syn"/>
<network id="net">
  <population id="p" component="c" size="3"/>
  <population id="q" component="hh" size="2"/>
  <projection id="pr" presynapticPopulation="p" postsynapticPopulation="q" synapse="syn">
    <connectionWD id="0" preCellId="../p/0/c" postCellId="../q/1/hh" weight="2" delay="1ms"/>
  </projection>
  <inputList id="il" component="pg" population="p">
    <input id="0" target="../p/0/c" destination="synapses"/>
  </inputList>
  <inputList id="ip" component="poi" population="q">
    <input id="0" target="../q/0/hh" destination="synapses"/>
  </inputList>
</network>
"""
LEMS_SIM = """<Simulation id="sim1" length="20ms" step="0.05ms" target="net" seed="3">
  <OutputFile id="of" fileName="results/v.dat"><OutputColumn id="a" quantity="p[0]/v"/>
    <OutputColumn id="b" quantity="q/0/hh/v"/></OutputFile>
  <EventOutputFile id="ev" fileName="results/s.spikes" format="ID_TIME">
    <EventSelection id="0" select="p[0]" eventPort="spike"/></EventOutputFile>
</Simulation>"""


def lems_seed(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    f = d / "LEMS_fuzz.xml"
    f.write_text(LEMS_HEAD + LEMS_BODY + LEMS_SIM + "\n</Lems>\n")
    return f


def sonata_seed(d: Path) -> Path:
    sonata_circuit(d)
    sim = json.loads((d / "simulation_config.json").read_text())
    sim["inputs"]["drive"] = {"input_type": "current_clamp", "module": "IClamp", "node_set": "cells",
                              "amp": 400.0, "delay": 2.0, "duration": 10.0}
    sim["run"]["random_seed"] = 1
    (d / "simulation_config.json").write_text(json.dumps(sim))
    return d / "simulation_config.json"


# ------------------------------------------------------------------------------ mutations
def mutate_xml(f: Path, rng: random.Random) -> str:
    from lxml import etree
    text = f.read_text()
    if rng.random() < 0.05:
        cut = rng.randrange(len(text))
        f.write_text(text[:cut])
        return f"cut at byte {cut}"
    root = etree.fromstring(text.encode())
    elements = [e for e in root.iter() if isinstance(e.tag, str) and e is not root]
    e = rng.choice(elements)
    kind = rng.random()
    if kind < 0.7 and e.attrib:
        a = rng.choice(sorted(e.attrib))
        v = rng.choice(HOSTILE)
        e.set(a, v)
        what = f"<{e.tag}> {a}={v!r}"
    elif kind < 0.8:
        e.getparent().remove(e)
        what = f"<{e.tag}> deleted"
    elif kind < 0.9:
        e.addnext(etree.fromstring(etree.tostring(e)))
        what = f"<{e.tag}> duplicated"
    elif e.attrib:
        a = rng.choice(sorted(e.attrib))
        del e.attrib[a]
        what = f"<{e.tag}> without {a}"
    else:
        for ch in list(e):
            e.remove(ch)
        what = f"<{e.tag}> emptied"
    f.write_bytes(etree.tostring(root))
    return what


def _json_paths(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path + (k,)
            yield from _json_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield path + (i,)
            yield from _json_paths(v, path + (i,))


def mutate_json(f: Path, rng: random.Random) -> str:
    obj = json.loads(f.read_text())
    paths = list(_json_paths(obj))
    if not paths:  # an empty document: replace it whole
        v = rng.choice(JSON_HOSTILE)
        f.write_text(json.dumps(v))
        return f"{f.name} = {v!r}"
    path = rng.choice(paths)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if rng.random() < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
        what = f"{f.name}: {'.'.join(map(str, path))} deleted"
    else:
        v = rng.choice(JSON_HOSTILE)
        parent[path[-1]] = v
        what = f"{f.name}: {'.'.join(map(str, path))} = {v!r}"
    f.write_text(json.dumps(obj))
    return what


def mutate_h5(f: Path, rng: random.Random) -> str:
    import h5py
    with h5py.File(f, "a") as h:
        names = []
        h.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        name = rng.choice(names)
        old = h[name][()]
        n = len(old) if np.ndim(old) == 1 else 1
        choices = {
            "nan": np.full(n, np.nan), "negative": -np.abs(np.asarray(old, float)) - 1,
            "huge": np.full(n, 2 ** 40, dtype=np.uint64), "float ids": np.asarray(old, float) + 0.5,
            "shorter": np.asarray(old)[:-1], "longer": np.concatenate([np.asarray(old).ravel()] * 2),
            "2-D": np.zeros((n, 2)), "strings": np.array([b"x"] * n),
        }
        kind = rng.choice(sorted(choices))
        attrs = dict(h[name].attrs)
        del h[name]
        ds = h.create_dataset(name, data=choices[kind])
        for k, v in attrs.items():
            ds.attrs[k] = v
    return f"{f.name}: {name} {kind}"


def mutate_text(f: Path, rng: random.Random) -> str:
    data = bytearray(f.read_bytes())
    kind = rng.choice(["byte", "line", "cut"])
    if kind == "byte" and data:
        i = rng.randrange(len(data))
        data[i] = rng.choice([0xFF, 0x00, ord(" "), ord('"'), ord("\n")])
    elif kind == "line":
        data += b"7 point_neuron nest:iaf_psc_alpha extra columns here\n"
    else:
        data = data[: rng.randrange(len(data) + 1)]
    f.write_bytes(bytes(data))
    return f"{f.name}: {kind}"


def make_mutant(d: Path, fmt: str, rng: random.Random):
    """A mutated model in ``d`` (which it creates); returns (model file, description)."""
    if fmt == "lems":
        f = lems_seed(d)
        return f, mutate_xml(f, rng)
    cfg = sonata_seed(d)
    files = sorted(p for p in d.rglob("*") if p.is_file())
    target = rng.choice(files)
    mut = {".json": mutate_json, ".h5": mutate_h5, ".csv": mutate_text}[target.suffix]
    return cfg, mut(target, rng)


# ------------------------------------------------------------------------------ running
def classify(proc_rc, stderr: str, timed_out: bool, outside: bool, listing: bool = False) -> str:
    """``listing``: the command reports problems on stdout, one per line (validate)."""
    if timed_out:
        return "hang"
    if outside:
        return "outside"
    if proc_rc == 70 or "Traceback" in stderr:
        return "internal"
    if proc_rc not in (0, 1, 2, 3, 4, 5):
        return "internal"
    if proc_rc != 0 and not listing and len([ln for ln in stderr.strip().splitlines() if ln.strip()]) != 1:
        return "noisy"
    return "ok"


def _snapshot(folder: Path):
    return {p for p in folder.rglob("*")}


def run_mutant(work: Path, model: Path, command: str, timeout: float):
    """Run one command on one mutant inside ``work/case``; files may appear only there."""
    case = model.parent
    before = _snapshot(work)
    args = {"run": ["run", model.name, "-q"], "validate": ["validate", model.name], "info": ["info", model.name],
            "convert": ["convert", model.name, "converted",
                        "--to", "neuroml" if model.suffix == ".json" else "sonata"]}[command]
    t = time.time()
    try:
        p = subprocess.run([sys.executable, "-m", "nmlsim.cli", *args], cwd=case, capture_output=True, text=True,
                           timeout=timeout, env=dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", "")))
        rc, err, hung = p.returncode, p.stderr + (p.stdout if command == "validate" else ""), False
    except subprocess.TimeoutExpired as e:
        rc, err, hung = None, (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else "", True
    new = _snapshot(work) - before
    escapes = [Path("/tmp/nmlsim_fuzz_outside.dat"), (case / "../../../../outside.dat").resolve()]
    outside = any(case not in p.parents and p != case for p in new) or any(e.exists() for e in escapes)
    for e in escapes:
        if e.exists():
            e.unlink()
    return classify(rc, err, hung, outside, listing=command == "validate"), rc, err.strip().splitlines()[-1:] if err else [], time.time() - t


def fuzz(out: Path, mutants: int, seed: int, timeout: float, commands=COMMANDS, log=print):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    results = []
    for k in range(mutants):
        fmt = "lems" if k % 2 == 0 else "sonata"
        work = out / f"m{k:04d}"
        if work.exists():
            shutil.rmtree(work)
        model, what = make_mutant(work / "case", fmt, rng)
        for cmd in commands:
            verdict, rc, last, dt = run_mutant(work, model, cmd, timeout)
            results.append(dict(mutant=k, format=fmt, mutation=what, command=cmd, verdict=verdict, rc=rc,
                                message=last[0] if last else "", seconds=round(dt, 2)))
            if verdict != "ok":
                log(f"m{k:04d} {fmt} {cmd}: {verdict} (rc {rc}) after [{what}]: {last[0] if last else ''}")
    (out / "fuzz.json").write_text(json.dumps(results, indent=1))
    return results


def table(results) -> str:
    rows = Counter((r["format"], r["command"], r["verdict"]) for r in results)
    verdicts = ["ok", "internal", "hang", "outside", "noisy"]
    lines = ["| format | command | " + " | ".join(verdicts) + " |", "|---|---|" + "---:|" * len(verdicts)]
    for fmt in ("lems", "sonata"):
        for cmd in COMMANDS:
            if any(k[0] == fmt and k[1] == cmd for k in rows):
                lines.append(f"| {fmt} | {cmd} | " + " | ".join(str(rows.get((fmt, cmd, v), 0)) for v in verdicts)
                             + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder for the mutants and fuzz.json")
    ap.add_argument("--mutants", type=int, default=1000, help="number of mutants (half LEMS, half SONATA)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a command counts as hung")
    ap.add_argument("--table", action="store_true", help="print the markdown table of the outcomes")
    a = ap.parse_args()
    results = fuzz(Path(a.out), a.mutants, a.seed, a.timeout)
    if a.table:
        print(table(results))
    bad = [r for r in results if r["verdict"] != "ok"]
    print(f"{len(results)} runs of {a.mutants} mutants: {len(bad)} not ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
