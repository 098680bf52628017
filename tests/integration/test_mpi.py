"""`mpirun -n K nmlsim run MODEL`: the same bytes for every K (issue: beyond one machine).

Runs real MPI processes (mpi4py over the MPI library it finds; `pip install mpi4py mpich`);
skipped cleanly where either is missing. K = 1, 2, 3 on a 2-core machine oversubscribes it,
which is slow but exercises partitions with uneven shares.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BACKENDS, REPO, RUNAWAY_TYPE, SHARED, needs_shared, run_cli

MODELS = REPO / "models"


def _launcher():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    exe = shutil.which("mpirun") or shutil.which("mpiexec")
    if exe is None:
        return None
    cmd = [exe]
    try:
        ver = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    if "Open MPI" in ver or "OpenRTE" in ver:
        cmd += ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return cmd


LAUNCHER = _launcher()
pytestmark = pytest.mark.skipif(LAUNCHER is None, reason="mpi4py or mpirun not installed (pip install mpi4py mpich)")


def run_ranks(n, args, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "NMLSIM_NO_MPI"}
    return subprocess.run(LAUNCHER + ["-n", str(n), sys.executable, "-m", "nmlsim.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def files(folder: Path):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def same_bytes(a: Path, b: Path):
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    assert fa, "nothing written"
    for name in fa:
        assert fa[name] == fb[name], name


@pytest.mark.parametrize("model,lems,duration", [
    ("coba_lif", "LEMS_coba_lif.xml", "0.05"),      # LIF, zero delays: an exchange every step
    ("ei_hh", "LEMS_ei_hh.xml", "0.03"),            # COBAHH
    ("ei_hh", "LEMS_ei_hh_h5.xml", "0.02"),         # its network in NeuroML HDF5: ranks read their rows
    ("thalamus", "LEMS_thalamus_alpha.xml", "0.1"),  # Poisson inputs (random draws), gap junctions, delays
    ("noisy_hh", "LEMS_noisy_hh.xml", "0.05"),      # a gap-junction ring cut across ranks (halo cells), noise
])
def test_ranks_write_the_bytes_one_process_writes(model, lems, duration, tmp_path):
    ref = tmp_path / "one"
    p = run_cli(["run", lems, "--duration", duration, "--outdir", ref, "-q"], cwd=MODELS / model)
    assert p.returncode == 0, p.stderr
    for n in (1, 2, 3):
        out = tmp_path / f"ranks{n}"
        p = run_ranks(n, ["run", lems, "--duration", duration, "--outdir", out, "-q"], cwd=MODELS / model)
        assert p.returncode == 0, p.stderr
        same_bytes(ref, out)


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
def test_compiled_backend_on_ranks(tmp_path):
    """Each rank compiles its share's kernels; the spikes are the NumPy engine's, bytes and all."""
    ref, out = tmp_path / "one", tmp_path / "two"
    assert run_cli(["run", "LEMS_coba_lif.xml", "--duration", "0.05", "--outdir", ref, "-q"],
                   cwd=MODELS / "coba_lif").returncode == 0
    p = run_ranks(2, ["run", "LEMS_coba_lif.xml", "--duration", "0.05", "--outdir", out, "-q", "--backend", "numba"],
                  cwd=MODELS / "coba_lif")
    assert p.returncode == 0, p.stderr
    same_bytes(ref, out)


@needs_shared
def test_sonata_circuit_on_ranks(tmp_path):
    """A SONATA circuit (NEST point neurons, 2 ms delays: spikes cross once per 200 steps)."""
    case = SHARED / "conformance" / "sonata" / "sonata_300_pointneurons"
    if not case.exists():
        pytest.skip("the SONATA corpus is not in ../shared")
    ref = tmp_path / "one"
    p = run_cli(["run", "config.json", "--duration", "0.3", "--outdir", ref, "-q"], cwd=case)
    assert p.returncode == 0, p.stderr
    for n in (2, 3):
        out = tmp_path / f"ranks{n}"
        p = run_ranks(n, ["run", "config.json", "--duration", "0.3", "--outdir", out, "-q"], cwd=case)
        assert p.returncode == 0, p.stderr
        same_bytes(ref, out)


RUNAWAY = """<Lems>
    <Target component="sim1"/>
    <Include file="Cells.xml"/>
    <Include file="Networks.xml"/>
    <Include file="Simulation.xml"/>""" + RUNAWAY_TYPE + """
    <runaway id="r" k="1e9 per_s"/>
    <runaway id="calm" k="0 per_s"/>
    <network id="net"><population id="ok" component="calm" size="4"/><population id="p" component="r" size="1"/></network>
    <Simulation id="sim1" length="0.3s" step="0.1ms" target="net">
        <OutputFile id="f" fileName="v.dat"><OutputColumn id="a" quantity="ok[0]/v"/></OutputFile>
    </Simulation>
</Lems>
"""


def test_a_failing_rank_ends_every_rank_with_its_message(tmp_path):
    """The one runaway cell lives on one rank: its error ends the run on both, named."""
    (tmp_path / "LEMS_r.xml").write_text(RUNAWAY)
    p = run_ranks(2, ["run", "LEMS_r.xml"], cwd=tmp_path, timeout=300)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("nmlsim")]
    assert len(lines) == 1 and re.search(r"\(rank [01] of 2\)", lines[0]), p.stderr
    assert "'v' of cell 0 in 'p' became" in lines[0], p.stderr
    assert not (tmp_path / "v.dat").exists()


def test_a_bad_model_is_reported_once(tmp_path):
    (tmp_path / "LEMS_bad.xml").write_text("<Lems><Target component='nothing'/></Lems>")
    p = run_ranks(3, ["run", "LEMS_bad.xml"], cwd=tmp_path, timeout=300)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("nmlsim")]
    assert len(lines) == 1 and "LEMS_bad.xml" in lines[0], p.stderr


def test_plot_under_mpirun_is_a_one_line_error(tmp_path):
    p = run_ranks(2, ["run", "LEMS_coba_lif.xml", "--duration", "0.01", "--outdir", tmp_path, "--plot"],
                  cwd=MODELS / "coba_lif", timeout=300)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("nmlsim")]
    assert p.returncode != 0 and len(lines) == 1 and "--plot is not available under mpirun" in lines[0], p.stderr
