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
