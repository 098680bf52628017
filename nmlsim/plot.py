"""Figures of run results (matplotlib imported lazily, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import List


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_result(sim, res, outdir: Path) -> Path:
    """One panel per OutputFile (all its columns against time) and one raster per
    EventOutputFile; written to ``<outdir>/<simulation id>.png``."""
    plt = _plt()
    panels = [(of, res.traces.get(of.id)) for of in sim.spec.outputs if res.traces.get(of.id) is not None]
    rasters = [(ef, res.events.get(ef.id)) for ef in sim.spec.event_outputs if res.events.get(ef.id) is not None]
    n = max(1, len(panels) + len(rasters))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, (of, data) in zip(axes, panels):
        for j, col in enumerate(of.columns, start=1):
            ax.plot(data[:, 0], data[:, j], lw=0.8, label=col.quantity)
        ax.set_title(of.file_name, fontsize=9)
        if len(of.columns) <= 8:
            ax.legend(fontsize=7, loc="upper right")
    for ax, (ef, events) in zip(axes[len(panels):], rasters):
        ids = sorted({e[0] for e in events}, key=str)
        row = {sid: k for k, sid in enumerate(ids)}
        if events:
            ax.plot([t for _, t in events], [row[s] for s, _ in events], "|", ms=6)
        ax.set_ylabel("selection")
        ax.set_title(ef.file_name, fontsize=9)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    outdir.mkdir(parents=True, exist_ok=True)
    out = outdir / f"{sim.spec.id or 'nmlsim'}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_files(files: List[Path], out: Path) -> Path:
    """Plot the columns of jnml-style .dat files against their first column."""
    from .io.results import read_dat
    plt = _plt()
    fig, axes = plt.subplots(len(files), 1, figsize=(9, 2.6 * len(files)), sharex=True, squeeze=False)
    for ax, f in zip(axes[:, 0], files):
        data = read_dat(f)
        for j in range(1, data.shape[1]):
            ax.plot(data[:, 0], data[:, j], lw=0.8)
        ax.set_title(str(f), fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
