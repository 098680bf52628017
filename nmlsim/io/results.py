"""Result files: jnml-style ``.dat`` traces and event files, written atomically.

Every file is written under a temporary name in the same folder and renamed when
complete.  A run that stops early (Ctrl-C, SIGTERM, a blow-up) still writes what it
recorded, under ``<file>.partial`` (so nothing that looks complete holds partial data), and
removes an older ``<file>`` an earlier run left there: after a run, ``<file>`` exists exactly
when this run completed.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Tuple

import numpy as np

from ..errors import FormatError

SONATA_MAGIC = 0x0A7A


@contextmanager
def staged_folder(outdir) -> Iterator[Path]:
    """Write a set of files as one: yields a staging folder inside ``outdir``; when the block
    ends its files move to the same relative paths in ``outdir`` (renames: no space needed);
    when it fails the staging folder is removed, and so is ``outdir`` if the block created it,
    so that a failed conversion (a full disk) leaves no half-written model behind."""
    outdir = Path(outdir)
    created = not outdir.exists()
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".nmlsim-", suffix=".tmp", dir=str(outdir)))
    except OSError as e:
        raise FormatError(f"cannot write output: {e.strerror}", file=outdir) from None
    try:
        yield stage
        for p in sorted(stage.rglob("*")):
            dst = outdir / p.relative_to(stage)
            if p.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            else:
                os.replace(p, dst)
    except OSError as e:
        _discard(stage, outdir if created else None)
        raise FormatError(f"cannot write output: {e.strerror}", file=outdir) from None
    except BaseException as e:
        _discard(stage, outdir if created else None)
        if isinstance(e, FormatError) and e.file and e.file.startswith(str(stage)):
            e.file = str(outdir) + e.file[len(str(stage)):]  # the file the user asked for
        raise
    shutil.rmtree(stage, ignore_errors=True)


def _discard(stage: Path, created) -> None:
    shutil.rmtree(created if created is not None else stage, ignore_errors=True)


def _atomic_write(path: Path, write, what: str = "output", binary: bool = False) -> None:
    """Write ``path`` through ``write(fh)`` under a temporary name in its folder, then rename;
    on failure (a full disk) the temporary file is removed and an older ``path`` stays."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    except OSError as e:
        raise FormatError(f"cannot write {what}: {e.strerror}", file=path) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise FormatError(f"cannot write {what}: {e.strerror}", file=path) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def partial_name(path) -> Path:
    """Where an output of a run that stopped early is written."""
    return Path(str(path) + ".partial")


def _target(path, complete: bool) -> Path:
    """The name to write ``path``'s data under; the other name (a complete file of an
    earlier run, or an earlier run's partial file) is removed."""
    path = Path(path)
    keep, drop = (path, partial_name(path)) if complete else (partial_name(path), path)
    try:
        if drop.is_file() or drop.is_symlink():
            drop.unlink()
    except OSError as e:
        raise FormatError(f"cannot remove the stale output: {e.strerror}", file=drop) from None
    return keep


def write_dat(path, data: np.ndarray, complete: bool = True) -> None:
    """Whitespace-separated columns (time first), one row per sample, SI units."""
    def w(fh):
        if len(data):
            np.savetxt(fh, data, fmt="%.10g", delimiter="\t")
    _atomic_write(_target(path, complete), w)


def write_events(path, events: Iterable[Tuple[str, float]], fmt: str = "ID_TIME", complete: bool = True) -> None:
    events = list(events)

    def w(fh):
        for sid, t in events:
            fh.write(f"{sid}\t{t:.10g}\n" if fmt == "ID_TIME" else f"{t:.10g}\t{sid}\n")
    _atomic_write(_target(path, complete), w)


def read_dat(path) -> np.ndarray:
    try:
        return np.atleast_2d(np.loadtxt(path))
    except (OSError, ValueError) as e:
        raise FormatError(f"cannot read trace file: {e}", file=path) from None


def _atomic_h5(path, fill, what: str, sonata: bool = True) -> None:
    """Write an HDF5 file (with SONATA's magic/version attributes when ``sonata``): built in
    memory by ``fill(h5py.File)``, then written as plain bytes under a temporary name and
    renamed. (HDF5 writing straight to a disk that fills up fails in object destructors,
    prints a traceback per object and can crash the process; a plain write fails cleanly.)"""
    import h5py

    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        if sonata:
            f.attrs["magic"] = np.uint32(SONATA_MAGIC)
            f.attrs["version"] = np.array([0, 1], dtype=np.uint32)
        fill(f)
    _atomic_write(path, lambda fh: fh.write(image.getbuffer()), what, binary=True)


_SORTING = {"none": 0, "by_id": 1, "by_time": 2}


def write_sonata_spikes(path, spikes, complete: bool = True, sort: str = "time") -> None:
    """SONATA spike file: ``/spikes/<population>/{timestamps (ms), node_ids}``.

    ``spikes``: {population: (node ids, times in seconds)}; ``sort``: ``time`` (ties by
    id), ``id`` (ties by time) or ``none`` (as recorded, which is time order here).
    """
    import h5py
    key = {"time": "by_time", "by_time": "by_time", "id": "by_id", "by_id": "by_id", "gid": "by_id"}.get(sort, "none")

    def fill(f):
        grp = f.create_group("spikes")
        for pop, (ids, times) in spikes.items():
            ids = np.asarray(ids, dtype=np.uint64)
            times = np.asarray(times, dtype=float) * 1e3
            order = np.lexsort((times, ids)) if key == "by_id" else np.lexsort((ids, times))
            g = grp.create_group(pop)
            # an HDF5 enum, as the SONATA spec and libsonata want (bmtk writes a string)
            g.attrs.create("sorting", _SORTING[key], dtype=h5py.enum_dtype(_SORTING, basetype="u1"))
            ts = g.create_dataset("timestamps", data=times[order])
            ts.attrs["units"] = "ms"
            g.create_dataset("node_ids", data=ids[order])
    _atomic_h5(_target(path, complete), fill, "spikes")


def write_sonata_report(path, reports, complete: bool = True, dtype: str = "float32") -> None:
    """SONATA report: ``/report/<population>/data`` (time x node) and ``mapping``.

    ``reports``: {population: (node ids, data (T x N), (tstart, tstop, dt) in ms, units)}.
    One element per node (point / single-compartment cells: element id 0, the soma).
    ``dtype``: float32 (the default: libsonata's ElementReportReader reads nothing else; 6e-6 mV
    at -70 mV), or float64 as bmtk writes (a report's ``"dtype": "float64"``).
    """
    def fill(f):
        root = f.create_group("report")
        for pop, (ids, data, (t0, t1, dt), units) in reports.items():
            g = root.create_group(pop)
            d = g.create_dataset("data", data=np.asarray(data, dtype=dtype))
            d.attrs["units"] = units
            m = g.create_group("mapping")
            n = len(ids)
            m.create_dataset("node_ids", data=np.asarray(ids, dtype=np.uint64))
            m.create_dataset("index_pointers", data=np.arange(n + 1, dtype=np.uint64))
            m.create_dataset("element_ids", data=np.zeros(n, dtype=np.uint32))
            m.create_dataset("element_pos", data=np.full(n, 0.5))
            tm = m.create_dataset("time", data=np.array([t0, t1, dt], dtype=float))
            tm.attrs["units"] = "ms"  # libsonata reads it
    _atomic_h5(_target(path, complete), fill, "report")
