"""A seeded subset of the mutation fuzzer (tests/bad_input/fuzz.py) in CI: every mutant of a
small LEMS model and a small SONATA circuit, through run, validate, info and convert, ends
with exit 0 or a one-line error — no internal error, no hang, no file written outside its
folder. The 1,000-mutant campaign runs on demand (docs/errors.md)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bad_input"))
import fuzz  # noqa: E402


def test_fuzz_subset(tmp_path):
    results = fuzz.fuzz(tmp_path, mutants=24, seed=20261203, timeout=60, log=lambda *a: None)
    assert len(results) == 24 * len(fuzz.COMMANDS)
    bad = [r for r in results if r["verdict"] != "ok"]
    assert not bad, bad[:3]
    # the mutants did break things: most runs end in a clean error, some still run
    codes = {r["rc"] for r in results}
    assert 0 in codes and codes & {2, 3}
