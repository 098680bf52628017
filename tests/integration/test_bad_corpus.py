"""Every case of the generated bad-input corpus (tests/bad_input/make_corpus.py): one line naming
the file, the expected exit code and phrase, no traceback, no complete-looking output."""
import json
import sys
from pathlib import Path

import pytest

from conftest import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bad_input"))
import make_corpus  # noqa: E402

NAMES = sorted(list(make_corpus.LEMS_CASES) + list(make_corpus.SONATA_CASES))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad")
    make_corpus.generate(out)
    return out, json.loads((out / "cases.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_bad_corpus_case(corpus, name):
    out, cases = corpus
    c = cases[name]
    d = out / c["dir"]
    p = run_cli(c["args"] + ["-q"], cwd=d)
    assert p.returncode == c["code"], p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert c["phrase"] in lines[0], lines[0]
    # names the file: the LEMS file, or a file of the SONATA circuit
    assert (c["file"] in lines[0]) if c["file"] else (str(d.resolve()) in lines[0]), lines[0]
    assert not (d / c["output"]).exists()
    # what run refuses in a model, validate refuses too (a document of components is valid
    # NeuroML: only running it needs a Simulation)
    if c["file"] and c["code"] == 3 and name != "neuroml_not_lems":
        v = run_cli(["validate", c["file"]], cwd=d)
        assert v.returncode != 0 and "Traceback" not in v.stdout + v.stderr, v.stdout + v.stderr
