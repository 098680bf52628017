"""Faults from outside the model: a full disk (here a file-size limit, which fails writes the
same way without needing a small file system) and a Ctrl-C arriving as a run finishes."""
import os
import signal
import subprocess
import sys
import time

import pytest

from nmlsim.library import export

resource = pytest.importorskip("resource")  # POSIX

#: run nmlsim with writes beyond LIMIT bytes failing (EFBIG, "File too large"), as a full disk does
LIMITED = ("import resource, runpy, signal, sys; lim = int(sys.argv.pop(1)); "
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (lim, lim)); "
           "sys.argv[0] = 'nmlsim'; runpy.run_module('nmlsim', run_name='__main__')")


def run_limited(limit, args, cwd=None):
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    export("coba_lif", d, size=1000, seed=2, duration=0.1, to=("neuroml", "sonata"))
    return d


def _one_line(p, phrase):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr and phrase in lines[0], p.stderr


@pytest.mark.parametrize("to", ["sonata", "neuroml", "neuroml-h5"])
def test_convert_on_a_full_disk_leaves_nothing(model, tmp_path, to):
    """The network's files exceed the limit: one line naming the file, exit 2, and neither a
    half-written model nor a temporary file (the output folder did not exist: it is gone)."""
    out = tmp_path / "conv"
    p = run_limited(60_000, ["convert", model / "LEMS_coba_lif.xml", out, "--to", to])
    assert p.returncode == 2
    _one_line(p, "File too large")
    assert str(out) in p.stderr and ".tmp" not in p.stderr
    assert not out.exists()


def test_convert_on_a_full_disk_keeps_the_folder_as_it_was(model, tmp_path):
    out = tmp_path / "conv"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    p = run_limited(60_000, ["convert", model / "LEMS_coba_lif.xml", out, "--to", "sonata"])
    assert p.returncode == 2
    assert [f.name for f in out.iterdir()] == ["notes.txt"]


def test_sonata_run_on_a_full_disk(model, tmp_path):
    """The spike file does not fit: one line, exit 2, no temporary left, no spikes.h5 that
    looks complete."""
    out = tmp_path / "out"
    p = run_limited(20_000, ["run", model / "sonata" / "simulation_config.json", "--outdir", out, "-q"])
    assert p.returncode == 2
    _one_line(p, "File too large")
    assert not (out / "spikes.h5").exists()
    assert not [f for f in out.iterdir() if f.name.endswith(".tmp")]


def test_export_on_a_full_disk_leaves_nothing(tmp_path):
    p = run_limited(60_000, ["export", "coba_lif", tmp_path / "x", "--size", "1000", "--to", "neuroml,sonata"])
    assert p.returncode == 2
    _one_line(p, "File too large")
    assert not (tmp_path / "x").exists()


def test_ctrl_c_as_a_run_finishes(model, tmp_path):
    """SIGINT sent the moment the last output appears (the run is over, the process is
    printing and exiting): the run counts as finished (exit 0) or, at worst, as interrupted
    with one line (130); never killed by the signal (-2) without a word, and the outputs are
    complete."""
    for k in range(4):
        out = tmp_path / f"o{k}"
        last = out / "results" / "coba_lif_E.spikes"
        proc = subprocess.Popen([sys.executable, "-m", "nmlsim", "run", "LEMS_coba_lif.xml", "--outdir", out,
                                 "--duration", "20ms"], cwd=model, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        while not last.exists() and proc.poll() is None and time.time() - t0 < 120:
            time.sleep(0.0005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 130), (proc.returncode, err)
        assert "Traceback" not in err and (proc.returncode == 0 or err.strip() == "nmlsim: interrupted"), err
        assert last.exists() and not (out / "results" / "coba_lif_E.spikes.partial").exists()
