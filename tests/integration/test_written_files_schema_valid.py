"""Every NeuroML file nmlsim writes is valid against the NeuroML XSD: the shipped models, fresh
exports in every format, conversions from SONATA, and the thalamic channel tests."""
from pathlib import Path

import pytest

from conftest import run_cli
from nmlsim.io.validate import neuroml_schema, validate_file, xsd_problems
from nmlsim.library import export
from nmlsim.library.thalamus import channel_test

pytestmark = pytest.mark.skipif(neuroml_schema() is None, reason="libNeuroML (the XSD) not installed")
MODELS = Path(__file__).resolve().parents[2] / "models"


def _nml(folder: Path):
    return sorted(p for p in folder.rglob("*.nml"))


def test_shipped_models_are_schema_valid():
    files = _nml(MODELS)
    assert len(files) > 40  # channels, cells, networks of three models, SONATA templates
    problems = [p for f in files for p in xsd_problems(f)]
    assert not problems, "\n".join(problems[:10])


def test_shipped_networks_validate_with_their_includes():
    """Beyond the schema: every reference of a network document resolves through its includes,
    but for the thalamus's kinetic synapses: components of LEMS types, which no NeuroML
    document can hold (they are in Thalamus_components.xml, included by the LEMS files; jnml
    -validate reports the same references)."""
    nets = sorted(MODELS.rglob("*.net.nml"))
    assert len(nets) == 7
    for f in nets:
        problems = validate_file(f)
        if f.parent.name == "thalamus":
            assert problems and all("reference to unknown component 'syn_" in p for p in problems), problems[:3]
        else:
            assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("model,formats", [("coba_lif", "neuroml,neuroml-h5,sonata"), ("ei_hh", "neuroml,sonata")])
def test_exports_are_schema_valid(tmp_path, model, formats):
    export(model, tmp_path, size=100, seed=2, duration=0.01, to=formats.split(","))
    files = _nml(tmp_path)
    assert files
    problems = [p for f in files for p in xsd_problems(f)]
    assert not problems, "\n".join(problems[:10])


def test_sonata_to_neuroml_conversion_is_schema_valid(tmp_path):
    cfg = MODELS / "thalamus" / "sonata" / "alpha" / "simulation_config.json"
    p = run_cli(["convert", cfg, tmp_path / "nml", "--to", "neuroml"])
    assert p.returncode == 0, p.stderr
    problems = [q for f in _nml(tmp_path / "nml") for q in xsd_problems(f)]
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("channel", ["CAN_IS2008", "CaHT_HM1992", "KLeak"])
def test_channel_tests_are_schema_valid(tmp_path, channel):
    channel_test(channel, tmp_path)
    problems = [p for f in _nml(tmp_path) for p in xsd_problems(f)]
    assert not problems, "\n".join(problems[:10])


def test_jnml_validates_the_shipped_models():
    """jNeuroML's own check (schema and its tests) on every shipped NeuroML file but the thalamic
    networks (their kinetic synapses are LEMS components: jnml's test 10070 cannot find them)."""
    pytest.importorskip("pyneuroml")
    import shutil
    import subprocess
    if shutil.which("java") is None or shutil.which("pynml") is None:
        pytest.skip("java / pynml not available")
    files = [f for f in _nml(MODELS) if not (f.parent.name == "thalamus" and f.name.endswith(".net.nml"))]
    p = subprocess.run(["pynml", "-validate", *map(str, files)], capture_output=True, text=True, timeout=900)
    assert f"Validated {len(files)} files: All valid and no warnings" in p.stdout + p.stderr, (p.stdout + p.stderr)[-2000:]
