"""The shipped noisy HH ring (models/noisy_hh): written by the exporter, white noise on both backends."""
from pathlib import Path

import numpy as np
import pytest

from nmlsim import api
from nmlsim.library import export

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "noisy_hh"


def test_shipped_files_are_the_exporters_output(tmp_path):
    export("noisy_hh", tmp_path, seed=1, to=("neuroml",))
    for f in sorted(tmp_path.glob("*.*")):
        assert f.read_bytes() == (SHIPPED / f.name).read_bytes(), f.name


def _cv(spikes):
    ids, t = spikes
    isis = np.concatenate([np.diff(np.sort(t[ids == i])) for i in np.unique(ids)])
    return isis.std() / isis.mean()


@pytest.mark.parametrize("method", ["euler", "exp_euler"])
def test_noise_makes_the_ring_irregular_on_both_backends(method):
    pytest.importorskip("numba")
    sim = api.load(SHIPPED / "LEMS_noisy_hh.xml")
    a = sim.run(duration=0.3, method=method)
    b = sim.run(duration=0.3, method=method, backend="numba")
    ia, ta = a.spikes["HH"]
    ib, tb = b.spikes["HH"]
    assert np.array_equal(ia, ib) and np.allclose(ta, tb, atol=1e-12)  # the same draws either way
    assert len(ta) > 300 and _cv(a.spikes["HH"]) > 0.25
    sim.set("noise/sigma", "0nA")
    quiet = sim.run(duration=0.3, method=method)
    assert _cv(quiet.spikes["HH"]) < 0.05  # without noise every cell fires like a clock
