"""Spike-train statistics used by the model docs and benchmarks."""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np


def rate_hz(ids: np.ndarray, n_cells: int, duration_s: float) -> float:
    """Mean firing rate of a population."""
    return len(ids) / max(n_cells, 1) / duration_s


def isi_cv(ids: np.ndarray, times: np.ndarray, min_spikes: int = 3) -> float:
    """Mean coefficient of variation of the inter-spike intervals over cells with enough spikes."""
    if len(ids) == 0:
        return float("nan")
    order = np.lexsort((times, ids))
    ids, times = ids[order], times[order]
    bounds = np.flatnonzero(np.diff(ids)) + 1
    cvs = []
    for chunk in np.split(times, bounds):
        if len(chunk) >= min_spikes:
            d = np.diff(chunk)
            if d.mean() > 0:
                cvs.append(d.std() / d.mean())
    return float(np.mean(cvs)) if cvs else float("nan")


def summary(spikes: Dict[str, Tuple[np.ndarray, np.ndarray]], sizes: Dict[str, int], duration_s: float):
    """{population: (rate Hz, ISI CV)}."""
    return {p: (rate_hz(i, sizes[p], duration_s), isi_cv(i, t)) for p, (i, t) in spikes.items()}


def read_sonata_spikes(path) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """{population: (node ids, times in s)} from a SONATA spikes.h5 (current layout)."""
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        for pop, g in f["spikes"].items():
            scale = 1e-3 if g["timestamps"].attrs.get("units", "ms") in ("ms", b"ms") else 1.0
            out[pop] = (g["node_ids"][:].astype(np.int64), g["timestamps"][:] * scale)
    return out


def population_spectrum(times_s: np.ndarray, duration_s: float, *, t_start: float = 0.0, bin_s: float = 1e-3,
                        segment_s: float = 1.0):
    """Welch power spectrum of the summed spike count in ``bin_s`` bins over [t_start, duration).

    Returns (frequencies Hz, power).  Segments of ``segment_s`` (at most the window), Hann
    window, mean removed per segment (scipy's defaults)."""
    from scipy.signal import welch
    edges = np.arange(t_start, duration_s + bin_s / 2, bin_s)
    counts, _ = np.histogram(times_s, edges)
    fs = 1.0 / bin_s
    nper = int(min(len(counts), round(segment_s * fs)))
    return welch(counts.astype(float), fs=fs, nperseg=nper)


def dominant_frequency(times_s: np.ndarray, duration_s: float, *, band=(2.0, 100.0), **kw) -> float:
    """Peak frequency (Hz) of :func:`population_spectrum` inside ``band``."""
    return spectrum_peak(*population_spectrum(times_s, duration_s, **kw), band=band)


def spectrum_peak(f: np.ndarray, p: np.ndarray, band=(2.0, 100.0)) -> float:
    """Frequency of the largest power inside ``band`` (nan when there is none)."""
    sel = (f >= band[0]) & (f <= band[1])
    if not np.any(sel) or not np.any(p[sel] > 0):
        return float("nan")
    return float(f[sel][np.argmax(p[sel])])
