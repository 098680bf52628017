"""The SONATA conformance corpus (bmtk + NEST references) through `nmlsim run`, judged by
../shared/tools/compare_sonata.py. Slow (fine-step NEST circuits: minutes each)."""
import json
import subprocess
import sys

import pytest

from conftest import SHARED, run_cli

CORPUS = SHARED / "conformance" / "sonata"
CASES = json.loads((CORPUS / "manifest.json").read_text())["cases"] if (CORPUS / "manifest.json").exists() else []
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CASES, reason="../shared SONATA corpus not present")]


#: reports that differ from the reference in a known, explained stretch: (report, from ms).
#: sonata_5_cells_iclamp_nml: the Allen NaV.mod's INITIAL solves a steady state with a typo
#: (I4*bi3 for I4*b13 in the I3 balance), so NEURON starts the two PV cells' NaV kinetic scheme
#: off its equilibrium; nmlsim starts it at the equilibrium.  Their somatic voltage differs by
#: up to 0.013 mV for the first 25 ms, then by < 1e-4 mV (the other cells: < 1e-7 mV throughout).
KNOWN_REPORT_DEVIATIONS = {"sonata_5_cells_iclamp_nml": ("membrane_potential", 30.0)}


def _report_within(case_spec, cand_dir, report, t_from):
    import h5py
    import numpy as np
    rspec = case_spec["reference"]["reports"][report]

    def read(f):
        with h5py.File(f, "r") as h:
            out = {}
            for pop, g in h["report"].items():
                t0, _, dt = g["mapping/time"][()]
                out[pop] = (t0 + dt * np.arange(g["data"].shape[0]), list(g["mapping/node_ids"][()]), g["data"][()])
            return out
    ref, cand = read(CORPUS / rspec["file"]), read(cand_dir / f"{report}.h5")
    lo, hi = max(t_from, rspec["t_window"][0]), rspec["t_window"][1]
    for pop, (rt, rids, rd) in ref.items():
        ct, cids, cd = cand[pop]
        rows = (rt >= lo) & (rt <= hi)
        crow = np.searchsorted(ct, rt[rows] - 1e-9)
        for k, nid in enumerate(rids):
            worst = np.abs(rd[rows, k] - cd[crow, cids.index(nid)]).max()
            assert worst <= rspec["atol"], f"{report} node {nid}: {worst} > {rspec['atol']} from {lo} ms"


@pytest.mark.parametrize("case", [c["case"] for c in CASES])
def test_sonata_case(tmp_path, case):
    c = next(c for c in CASES if c["case"] == case)
    out = tmp_path / case
    p = run_cli(["run", c["run_config"], "--outdir", out, "-q"], cwd=CORPUS / c["dir"], timeout=3600)
    if p.returncode == 4:  # cleanly refused (multi-compartment cells): one line naming the reason
        assert len(p.stderr.strip().splitlines()) == 1 and "not supported" in p.stderr, p.stderr
        pytest.skip(f"refused: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr
    known = KNOWN_REPORT_DEVIATIONS.get(case)
    q = subprocess.run([sys.executable, str(SHARED / "tools" / "compare_sonata.py"), "--manifest",
                        str(CORPUS / "manifest.json"), "--cand-root", str(tmp_path), "--only", case]
                       + (["--no-reports"] if known else []), capture_output=True, text=True)
    assert q.returncode == 0, q.stdout + q.stderr
    if known:
        for report in c["reference"]["reports"]:
            _report_within(c, out, report, known[1] if report == known[0] else 0.0)
