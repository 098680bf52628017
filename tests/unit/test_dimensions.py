"""The dimension checker (nmlsim.lems.dimensions): jLEMS's rules; the corpus and the shipped
models pass, a mismatch is refused naming the file, the ComponentType and the expression."""
import json
from pathlib import Path

import pytest

from conftest import CORPUS, needs_shared, run_cli, write_lems
from nmlsim.io.lems_reader import core_model, load_model
from nmlsim.lems import expr as E
from nmlsim.lems.dimensions import ANY, Checker, _Mismatch, check_model

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def checker():
    return Checker(core_model())


def _dim(checker, text, **names):
    env = {k: checker.dim(v) for k, v in names.items()}
    return checker.of(E.parse(text), env)


def test_node_rules(checker):
    V, T = checker.dim("voltage"), checker.dim("time")
    assert _dim(checker, "v / tau", v="voltage", tau="time") == tuple(a - b for a, b in zip(V, T))
    assert checker.describe(_dim(checker, "i / g", i="current", g="conductance")) == "voltage"
    assert _dim(checker, "(v - v0) / k", v="voltage", v0="voltage", k="voltage") == checker.dim("none")
    assert _dim(checker, "v - 0", v="voltage") == V and _dim(checker, "0", ) is ANY
    assert _dim(checker, "v .gt. 0", v="voltage") == checker.dim("none")  # 0 compares with anything
    assert _dim(checker, "tau ^ 2", tau="time") == tuple(2 * x for x in T)
    assert _dim(checker, "-k / 150", k="none") is ANY  # jLEMS: 0 - (k / 150)
    # a zero-valued quantity minus a dimensionless one stays "any" (PinskyRinzel's NMDA channel:
    # dSi/dt = numCellsWithVover10 - Si/150 with numCellsWithVover10 = 0 runs in jnml 0.14)
    assert _dim(checker, "z - s / 150", z="*", s="none") is ANY
    with pytest.raises(_Mismatch, match="cannot subtract voltage and none"):
        _dim(checker, "1 - v", v="voltage")
    with pytest.raises(_Mismatch, match="compares voltage with none"):
        _dim(checker, "v .gt. 1", v="voltage")
    with pytest.raises(_Mismatch, match=r"exp\(\) of voltage"):
        _dim(checker, "exp(v)", v="voltage")
    with pytest.raises(_Mismatch, match="exponent of dimension time"):
        _dim(checker, "v ^ tau", v="voltage", tau="time")
    assert _dim(checker, "v * x", v="voltage", x="*") == V  # '*' is any: dimensionless in a product
    assert _dim(checker, "v * q", v="voltage") is None  # an undeclared name: unknown, never reported


BAD_TYPE = """
<ComponentType name="leaky" extends="baseCellMembPot">
    <Parameter name="tau" dimension="time"/>
    <Dynamics>
        <StateVariable name="v" dimension="voltage" exposure="v"/>
        <TimeDerivative variable="v" value="(1 - v)/tau"/>
    </Dynamics>
</ComponentType>
<leaky id="c" tau="10ms"/>
<network id="net"><population id="p" component="c" size="1"/></network>
"""
SIM = ('<Simulation id="sim1" length="10ms" step="0.1ms" target="net">'
       '<OutputFile id="o" fileName="v.dat"><OutputColumn id="v" quantity="p[0]/v"/></OutputFile></Simulation>')


def test_mismatch_refused_by_run_and_validate(tmp_path):
    f = write_lems(tmp_path / "LEMS_bad.xml", BAD_TYPE, SIM)
    for cmd in (["run", f, "-q"], ["validate", f]):
        p = run_cli(cmd, cwd=tmp_path)
        assert p.returncode == 3, p.stdout + p.stderr
        line = (p.stderr if cmd[0] == "run" else p.stdout).strip().splitlines()[0]
        assert "LEMS_bad.xml:" in line and "ComponentType name='leaky'" in line
        assert "TimeDerivative of 'v': '(1 - v)/tau'" in line and "cannot subtract voltage and none" in line
    assert not (tmp_path / "v.dat").exists()


def test_assignment_and_derived_variable(tmp_path):
    body = BAD_TYPE.replace('<TimeDerivative variable="v" value="(1 - v)/tau"/>',
                            '<DerivedVariable name="r" dimension="none" value="v / tau"/>'
                            '<TimeDerivative variable="v" value="0"/>'
                            '<OnStart><StateAssignment variable="v" value="0"/></OnStart>')
    f = write_lems(tmp_path / "LEMS_dv.xml", body, SIM)
    p = run_cli(["validate", f], cwd=tmp_path)  # a DerivedVariable's mismatch: jLEMS logs it, so a warning
    assert p.returncode == 0 and "warning:" in p.stdout and "DerivedVariable 'r'" in p.stdout, p.stdout
    assert p.stdout.strip().splitlines()[-1] == f"{f}: valid"
    f = write_lems(tmp_path / "LEMS_sa.xml", body.replace('value="0"/></OnStart>', 'value="1"/></OnStart>'), SIM)
    p = run_cli(["run", f, "-q"], cwd=tmp_path)  # an assignment's: refused, as jLEMS does
    assert p.returncode == 3 and "StateAssignment of 'v': '1' is none where voltage is due" in p.stderr, p.stderr


@needs_shared
def test_corpus_and_shipped_models_pass():
    cases = json.loads((CORPUS / "manifest.json").read_text())["cases"]
    files = [CORPUS / c["dir"] / c["lems"] for c in cases]
    files += sorted(MODELS.glob("*/LEMS_*.xml"))
    for f in files:
        root = CORPUS.parent if str(f).startswith(str(CORPUS)) else None
        errors = check_model(load_model(f, include_root=root))
        assert not errors, f"{f}: {errors[0]}"
