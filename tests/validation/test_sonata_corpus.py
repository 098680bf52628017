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


@pytest.mark.parametrize("case", [c["case"] for c in CASES])
def test_sonata_case(tmp_path, case):
    c = next(c for c in CASES if c["case"] == case)
    out = tmp_path / case
    # reports in float64 as bmtk wrote the references (some compared to 5e-4 mV, their rounding)
    p = run_cli(["run", c["run_config"], "--outdir", out, "-q", "--report-dtype", "float64"], cwd=CORPUS / c["dir"],
                timeout=3600)
    assert p.returncode == 0, p.stderr
    q = subprocess.run([sys.executable, str(SHARED / "tools" / "compare_sonata.py"), "--manifest",
                        str(CORPUS / "manifest.json"), "--cand-root", str(tmp_path), "--only", case],
                       capture_output=True, text=True)
    assert q.returncode == 0, q.stdout + q.stderr
