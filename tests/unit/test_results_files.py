"""Outputs of a run that stopped early are written under <file>.partial, never under the
final name; <file> exists after a run exactly when that run completed."""
import numpy as np

from nmlsim.io.results import partial_name, write_dat, write_events, write_sonata_spikes


def test_partial_data_never_under_the_final_name(tmp_path):
    f = tmp_path / "v.dat"
    write_dat(f, np.ones((3, 2)))
    assert f.exists() and not partial_name(f).exists()
    write_dat(f, np.zeros((2, 2)), complete=False)  # a later run, interrupted
    assert not f.exists() and np.loadtxt(partial_name(f)).shape == (2, 2)
    write_dat(f, np.ones((4, 2)))  # and one that completes
    assert np.loadtxt(f).shape == (4, 2) and not partial_name(f).exists()


def test_partial_events_and_sonata_spikes(tmp_path):
    import h5py
    e = tmp_path / "s.spikes"
    write_events(e, [("0", 0.001)], complete=False)
    assert partial_name(e).read_text().startswith("0\t") and not e.exists()
    h = tmp_path / "spikes.h5"
    write_sonata_spikes(h, {"E": (np.array([1]), np.array([0.002]))})
    write_sonata_spikes(h, {"E": (np.array([1, 2]), np.array([0.002, 0.003]))}, complete=False)
    assert not h.exists()
    with h5py.File(partial_name(h)) as f:
        assert list(f["spikes/E/node_ids"]) == [1, 2]
