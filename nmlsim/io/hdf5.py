"""Opening HDF5 files the readers share (SONATA, NeuroML HDF5)."""
from __future__ import annotations

from pathlib import Path

from ..errors import FormatError


def open_h5(path: Path):
    """``h5py.File(path, "r")``, or a one-line FormatError naming the file."""
    import h5py
    try:
        return h5py.File(path, "r")
    except (OSError, FileNotFoundError):
        raise FormatError("cannot open as HDF5", file=path) from None
