"""Shared fixtures: where ../shared is, and small LEMS models written on the fly."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NMLSIM_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "conformance" / "neuroml"

try:  # the backends a test parametrised over them runs on: numba where it is installed
    import numba  # noqa: F401
    BACKENDS = ["numpy", "numba"]
except ImportError:
    BACKENDS = ["numpy"]


def have_shared() -> bool:
    return (CORPUS / "manifest.json").exists()


needs_shared = pytest.mark.skipif(not have_shared(), reason="../shared (conformance corpus) not present")


def have_jnml() -> bool:
    if shutil.which("java") is None:
        return False
    try:
        import pyneuroml  # noqa: F401
    except ImportError:
        return False
    return True


def run_jnml(lems: Path, timeout=1800, memory="2G") -> subprocess.CompletedProcess:
    """Run pyNeuroML's jNeuroML jar on ``lems`` in its folder (``jnml LEMS -nogui``)."""
    import pyneuroml
    jar = next((Path(pyneuroml.__file__).parent / "lib").glob("jNeuroML-*-jar-with-dependencies.jar"))
    return subprocess.run(["java", f"-Xmx{memory}", "-Djava.awt.headless=true", "-jar", str(jar), lems.name, "-nogui"],
                          cwd=lems.parent, capture_output=True, text=True, timeout=timeout)


def run_cli(args, cwd=None, timeout=600):
    """Run `python -m nmlsim.cli ARGS`; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "nmlsim.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


sys.path.insert(0, str(Path(__file__).resolve().parent / "bad_input"))
from make_corpus import LEMS_HEAD  # noqa: E402  (one LEMS header for the tests and the bad-input corpus)


#: a cell type whose v blows up in finite time (dv/dt = k v²): errors named with cell and time
RUNAWAY_TYPE = """
    <ComponentType name="runaway" extends="baseCellMembPot">
        <Parameter name="k" dimension="per_time"/>
        <Constant name="VOLT" dimension="voltage" value="1V"/>
        <Dynamics>
            <StateVariable name="v" dimension="voltage" exposure="v"/>
            <OnStart><StateAssignment variable="v" value="VOLT"/></OnStart>
            <TimeDerivative variable="v" value="k * v * v / VOLT"/>
        </Dynamics>
    </ComponentType>
"""


def write_lems(path: Path, body: str, sim: str) -> Path:
    path.write_text(LEMS_HEAD + body + sim + "\n</Lems>\n")
    return path


@pytest.fixture
def lems_file(tmp_path):
    """Factory: lems_file(body, sim) -> path of a LEMS file in a fresh folder."""
    def make(body, sim, name="LEMS_test.xml"):
        return write_lems(tmp_path / name, body, sim)
    return make


def tube_error(t, ref, cand, window):
    """Largest distance of ``cand`` outside the band [min, max] of ``ref`` over +-``window``
    (same sampling): a trace shifted in time by no more than ``window`` scores 0."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d
    dt = t[1] - t[0]
    k = 2 * int(round(window / dt)) + 1
    hi = maximum_filter1d(ref, k, mode="nearest")
    lo = minimum_filter1d(ref, k, mode="nearest")
    return float(np.max(np.maximum(cand - hi, 0) + np.maximum(lo - cand, 0)))
