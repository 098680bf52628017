"""SONATA biophysical nodes (nml: templates on SWC morphologies) through the CLI: a short run
against bmtk BioNet + NEURON's somatic voltage, `validate`, and bad input as one-line errors.
Uses the corpus case sonata_5_cells_iclamp_nml (skipped without ../shared)."""
import shutil

import h5py
import numpy as np
import pytest

from conftest import SHARED, run_cli

CASE = SHARED / "conformance" / "sonata" / "sonata_5_cells_iclamp_nml"
pytestmark = pytest.mark.skipif(not (CASE / "config.json").exists(), reason="../shared SONATA corpus not present")


def _copy(tmp_path):
    dst = tmp_path / "case"
    shutil.copytree(CASE, dst, ignore=shutil.ignore_patterns("ref", "upstream_output", "output"))
    return dst


def _report(f):
    with h5py.File(f, "r") as h:
        g = h["report/biophysical"]
        return list(g["mapping/node_ids"][()]), g["data"][()], g["mapping/time"][()]


def test_first_50ms_match_bionet(tmp_path):
    """Before the clamps start every cell rests; NEURON's somatic voltage (bmtk's report rows:
    the state after each step) is matched to 1e-6 mV, the PV cells included: their NaV starts
    where NaV.mod's INITIAL (with its typo) puts it, off the scheme's own equilibrium."""
    out = tmp_path / "out"
    p = run_cli(["run", "config.json", "--duration", "0.05", "--outdir", out, "-q"], cwd=CASE, timeout=900)
    assert p.returncode == 0, p.stderr
    ids, mine, t = _report(out / "membrane_potential.h5")
    rids, ref, _ = _report(CASE / "ref" / "membrane_potential.h5")
    assert mine.shape[0] == 500 and list(t) == [0.0, 50.0, 0.1]
    for n in range(5):
        d = np.abs(mine[:, ids.index(n)] - ref[:500, rids.index(n)])
        assert d.max() < 1e-5, (n, d.max())
    cids, cai, _ = _report(out / "calcium_concentration.h5")
    rcids, rcai, _ = _report(CASE / "ref" / "calcium_concentration.h5")
    assert np.abs(cai - rcai[:500][:, [rcids.index(n) for n in cids]]).max() < 1e-11  # manifest: 1e-8


def test_validate_reads_the_circuit_and_checks_templates_against_the_schema():
    # the circuit and its templates make a valid model (the templates are what the config
    # includes: as jnml, the schema is not applied to them unless asked)
    p = run_cli(["validate", "config.json"], cwd=CASE, timeout=600)
    assert p.returncode == 0 and p.stdout.strip() == "config.json: valid", p.stdout + p.stderr
    # --includes: the Allen templates carry <concentrationModel type="CaDynamics">, which the
    # NeuroML schema does not know: one line per template, then the verdict
    p = run_cli(["validate", "config.json", "--includes"], cwd=CASE, timeout=600)
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 3 and len(lines) == 6, p.stdout + p.stderr
    assert all("schema" in ln and "concentrationModel" in ln for ln in lines[:5])
    assert lines[5] == "config.json: schema (templates): 5 problems; model: valid"


def test_malformed_swc_is_one_line_naming_file_and_line(tmp_path):
    d = _copy(tmp_path)
    swc = d / "components" / "morphologies" / "Pvalb_469628681_m.swc"
    lines = swc.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("10 "))
    lines[k] = "10 3 4.0 -4.7 oops 0.29 9"
    swc.write_text("\n".join(lines) + "\n")
    p = run_cli(["run", "config.json", "--duration", "0.001", "-q"], cwd=d)
    assert p.returncode == 2, p.stderr
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and f"Pvalb_469628681_m.swc:{k + 1}" in err and "not a number" in err


def test_unknown_mechanism_is_named(tmp_path):
    d = _copy(tmp_path)
    t = d / "components" / "biophysical_neuron_templates" / "nml" / "Cell_472363762.cell.nml"
    t.write_text(t.read_text().replace('ionChannel="Im"', 'ionChannel="Im_custom"'))
    p = run_cli(["run", "config.json", "--duration", "0.001", "-q"], cwd=d)
    err = p.stderr.strip()
    assert p.returncode == 3 and len(err.splitlines()) == 1, err
    assert "'Im_custom'" in err and "Cell_472363762.cell.nml" in err and "NaTs" in err


def test_missing_morphology_file(tmp_path):
    d = _copy(tmp_path)
    (d / "components" / "morphologies" / "Rorb_325404214_m.swc").unlink()
    p = run_cli(["run", "config.json", "--duration", "0.001", "-q"], cwd=d)
    err = p.stderr.strip()
    assert p.returncode == 2 and len(err.splitlines()) == 1 and "Rorb_325404214_m.swc" in err, err


def test_report_on_other_sections_is_refused(tmp_path):
    import json
    case = _copy(tmp_path)
    sim = json.loads((case / "simulation_config.json").read_text())
    rep = next(iter(sim["reports"].values()))
    rep["sections"] = "dend"
    (case / "simulation_config.json").write_text(json.dumps(sim))
    p = run_cli(["run", "config.json", "--duration", "0.001", "-q"], cwd=case)
    assert p.returncode == 4
    assert len(p.stderr.strip().splitlines()) == 1 and "sections 'dend'" in p.stderr
