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
    from .api import DISPLAY_TRACES
    from .io.lems_sim import OutputColumn, OutputFile
    if res.traces.get(DISPLAY_TRACES) is not None and sim.spec.display_quantities:
        disp = OutputFile("displays", "Display lines",
                          [OutputColumn(str(k), q) for k, q in enumerate(sim.spec.display_quantities)])
        panels.append((disp, res.traces[DISPLAY_TRACES]))
    rasters = [(ef, res.events.get(ef.id)) for ef in sim.spec.event_outputs if res.events.get(ef.id) is not None]
    n = max(1, len(panels) + 2 * len(rasters))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.4 * n), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, (of, data) in zip(axes, panels):
        for j, col in enumerate(of.columns, start=1):
            ax.plot(data[:, 0], data[:, j], lw=0.8, label=col.quantity)
        ax.set_title(of.file_name, fontsize=9)
        if len(of.columns) <= 8:
            ax.legend(fontsize=7, loc="upper right")
    import numpy as np
    length = sim.spec.length
    for k, (ef, events) in enumerate(rasters):
        ax, axr = axes[len(panels) + 2 * k], axes[len(panels) + 2 * k + 1]
        order = {sel.id: j for j, sel in enumerate(ef.selections)}
        if events:
            t = np.array([e[1] for e in events])
            y = np.array([order.get(e[0], -1) for e in events])
            ax.plot(t, y, "|" if len(events) < 2000 else ",", ms=4, color="k")
            bins = np.arange(0.0, length + 0.005, 0.005)
            hist, _ = np.histogram(t, bins)
            axr.plot(bins[:-1] + 0.0025, hist / max(len(ef.selections), 1) / 0.005, lw=0.8)
        ax.set_ylabel("cell")
        ax.set_title(f"{ef.file_name}: {len(events)} spikes, {len(ef.selections)} cells, "
                     f"{len(events) / max(len(ef.selections), 1) / max(length, 1e-12):.2f} Hz mean", fontsize=9)
        axr.set_ylabel("rate (Hz)")
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
