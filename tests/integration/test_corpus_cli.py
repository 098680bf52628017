"""Whole LEMS files through the CLI, judged by ../shared/tools/compare_neuroml.py.

CI runs a representative subset (fast cases covering HH channels, abstract cells,
synapses with STP, gap junctions, graded synapses, kinetic schemes, custom types,
tissue-level variables and event outputs); `pytest -m slow` runs the whole corpus.
``--method euler`` is jLEMS's scheme, so its runs are judged with ``--strict`` (within
1e-4 of the range and one step of jnml). Every check runs on both backends.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import CORPUS, SHARED, needs_shared, run_cli

FAST = ["nml2_ex1_hh", "nml2_ex3_net", "nml2_ex4a_ks", "nml2_ex5_detcell", "nml2_ex7_stp", "nml2_ex9_fn", "nml2_ex10_q10",
        "nml2_ex13_instances", "nml2_ex14_pynn", "nml2_ex17_tissue", "nml2_ex19_gapjunctions", "nml2_ex20_analogsynapses",
        "nml2_ex24_fractional", "osb_izh2007_fivecells", "osb_pospischil_im", "osb_wilsoncowan_driven"]


def _cases():
    if not (CORPUS / "manifest.json").exists():
        return []
    return [c["case"] for c in json.loads((CORPUS / "manifest.json").read_text())["cases"]]


def _run_case(case, method, out, backend="numpy"):
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    c = next(x for x in manifest["cases"] if x["case"] == case)
    cdir = CORPUS / c["dir"]
    run_dir = cdir / c["run_dir"]
    lems = os.path.relpath(cdir / c["lems"], run_dir)
    p = run_cli(["run", lems, "--method", method, "--backend", backend, "--outdir", out, "--include-root", cdir,
                 "-q"], cwd=run_dir, timeout=1800)
    assert p.returncode == 0, p.stderr
    strict = ["--strict"] if method == "euler" else []
    cmp = subprocess.run([sys.executable, str(SHARED / "tools" / "compare_neuroml.py"), str(CORPUS / "manifest.json"),
                          case, str(out)] + strict, capture_output=True, text=True)
    assert cmp.returncode == 0 and f"PASS {case}" in cmp.stdout, cmp.stdout + cmp.stderr


def _backend(backend):
    if backend == "numba":
        pytest.importorskip("numba")


@needs_shared
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", FAST)
def test_fast_cases_euler(case, backend, tmp_path):
    """jLEMS's scheme on both backends (the compiled one steps jLEMS's order too: history slots,
    kinetic schemes, peers, clock), judged --strict."""
    _backend(backend)
    _run_case(case, "euler", tmp_path, backend=backend)


@needs_shared
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", ["nml2_ex1_hh", "nml2_ex7_stp", "nml2_ex19_gapjunctions", "osb_pospischil_im"])
def test_fast_cases_default_method(case, backend, tmp_path):
    _backend(backend)
    _run_case(case, "exp_euler", tmp_path, backend=backend)


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("method", ["euler", "exp_euler"])
@pytest.mark.parametrize("case", [c for c in _cases() if c not in FAST] or ["none"])
def test_whole_corpus(case, method, backend, tmp_path):
    if case == "none":
        pytest.skip("no corpus")
    _backend(backend)
    _run_case(case, method, tmp_path, backend=backend)


@needs_shared
def test_jnml_style_invocation(tmp_path):
    """`nmlsim LEMS_x.xml -nogui` in the LEMS folder writes outputs like jnml."""
    run_dir = CORPUS / "nml2_ex9_fn" / "LEMSexamples"
    import shutil
    work = tmp_path / "LEMSexamples"
    shutil.copytree(run_dir, work)
    p = subprocess.run([sys.executable, "-m", "nmlsim.cli", "LEMS_NML2_Ex9_FN.xml", "-nogui"], cwd=work,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (work / "results" / "ex9.dat").exists()


@needs_shared
def test_jnml_style_invocation_writes_what_jnml_writes(tmp_path):
    """Called the jnml way, nmlsim steps as jLEMS: the HH example's trace within --strict."""
    import shutil
    case = "nml2_ex1_hh"
    shutil.copytree(CORPUS / case, tmp_path / case)
    work = tmp_path / case / "LEMSexamples"
    p = subprocess.run([sys.executable, "-m", "nmlsim.cli", "LEMS_NML2_Ex1_HH.xml", "-nogui"], cwd=work,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    cmp = subprocess.run([sys.executable, str(SHARED / "tools" / "compare_neuroml.py"), str(CORPUS / "manifest.json"),
                          case, str(work), "--strict"], capture_output=True, text=True)
    assert cmp.returncode == 0 and f"PASS {case}" in cmp.stdout, cmp.stdout + cmp.stderr


@needs_shared
def test_info_and_validate():
    f = CORPUS / "nml2_ex19_gapjunctions" / "LEMSexamples" / "LEMS_NML2_Ex19_GapJunctions.xml"
    p = run_cli(["info", f])
    assert p.returncode == 0 and "electricalProjection" in p.stdout, p.stdout + p.stderr
    p = run_cli(["validate", CORPUS / "nml2_ex13_instances" / "examples" / "NML2_InstanceBasedNetwork.nml"])
    assert p.returncode == 0 and "valid" in p.stdout, p.stdout + p.stderr
