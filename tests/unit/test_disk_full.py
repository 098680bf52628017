"""A full disk while writing results: a one-line FormatError, no half-written file, no temporary left."""
import errno
import os

import numpy as np
import pytest

from nmlsim.errors import FormatError
from nmlsim.io import results


class _FullFile:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, fd):
        self.fd = fd

    def write(self, *_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


def test_trace_file_on_full_disk(tmp_path, monkeypatch):
    target = tmp_path / "v.dat"
    target.write_text("old complete results\n")
    monkeypatch.setattr(results.os, "fdopen", lambda fd, mode="w": _FullFile(fd))
    with pytest.raises(FormatError, match="No space left on device") as e:
        results.write_dat(target, np.ones((10, 2)))
    assert "v.dat" in str(e.value) and "\n" not in str(e.value)
    assert target.read_text() == "old complete results\n"  # the previous file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["v.dat"]  # no temporary left behind


def test_spike_file_on_full_disk(tmp_path, monkeypatch):
    """HDF5 files are built in memory and written as plain bytes: the write fails cleanly."""
    target = tmp_path / "spikes.h5"
    results.write_sonata_spikes(target, {"p": (np.array([0]), np.array([0.1]))})
    old = target.read_bytes()
    monkeypatch.setattr(results.os, "fdopen", lambda fd, mode="w": _FullFile(fd))
    with pytest.raises(FormatError, match="No space left on device") as e:
        results.write_sonata_spikes(target, {"p": (np.array([0, 1]), np.array([0.1, 0.2]))})
    assert "spikes.h5" in str(e.value) and "\n" not in str(e.value)
    assert target.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["spikes.h5"]
