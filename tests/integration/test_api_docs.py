"""docs/api.md's examples, run in order as one script in a copy of docs/examples/."""
import re
import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_api_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    pytest.importorskip("pynwb")
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "api.md").read_text(), flags=re.S)
    assert len(blocks) >= 4
    shutil.copytree(DOCS / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path / "examples")
    ns = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/api.md block {i + 1}", "exec"), ns)
    assert (tmp_path / "examples" / "demo.nwb").exists() and (tmp_path / "examples" / "demo.png").exists()


def test_run_writes_nwb_beside_the_jnml_files(tmp_path):
    """`nmlsim run --nwb`: every cell a unit (silent ones too), spike counts as in the .spikes
    files, traces with their units."""
    pytest.importorskip("pynwb")
    import numpy as np
    from pynwb import NWBHDF5IO

    from conftest import run_cli
    shutil.copytree(DOCS / "examples", tmp_path / "ex")
    p = run_cli(["run", "LEMS_izh_demo.xml", "--nwb", "demo.nwb", "-q"], cwd=tmp_path / "ex")
    assert p.returncode == 0, p.stderr
    ev = np.loadtxt(tmp_path / "ex" / "results" / "izh.spikes")
    with NWBHDF5IO(str(tmp_path / "ex" / "demo.nwb"), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        assert len(units) == 11 and set(units.population) == {"exc", "reader"}
        n = {(r.population, r.cell): len(r.spike_times) for r in units.itertuples()}
        assert n[("exc", 0)] == int(np.sum(ev[:, 0] == 0)) and n[("reader", 0)] == int(np.sum(ev[:, 0] == 1))
        assert nwb.acquisition["v.exc0"].unit == "V"


@pytest.mark.parametrize("args,msg", [
    (["sweep", "LEMS_izh_demo.xml", "--set", "step/amplitude"], "write PATH=V1,V2"),
    (["sweep", "LEMS_izh_demo.xml", "--set", "step/nothing=1nA"], "no parameter 'step/nothing'"),
    (["sweep", "LEMS_izh_demo.xml", "--set", "step/amplitude=3mV"], "dimension voltage, expected current"),
    (["run", "simulation_config.json", "--nwb", "x.nwb"], "no 'networks' section"),
])
def test_bad_sweep_and_nwb_arguments_are_one_line_errors(tmp_path, args, msg):
    from conftest import run_cli
    shutil.copytree(DOCS / "examples", tmp_path / "ex")
    (tmp_path / "ex" / "simulation_config.json").write_text("{}")
    p = run_cli(args, cwd=tmp_path / "ex")
    assert p.returncode != 0 and msg in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
