"""Figures of run results (matplotlib imported lazily, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import List


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_result(sim, res, outdir: Path, duration: float = None) -> Path:
    """The input current of the first stimulated cell (pulse/sine/ramp generators), one
    panel per OutputFile (all its columns against time), a raster and a rate per
    EventOutputFile and the power spectrum of all recorded spikes (runs of 0.5 s or more);
    written to ``<outdir>/<simulation id>.png``."""
    plt = _plt()
    panels = [(of, res.traces.get(of.id)) for of in sim.spec.outputs if res.traces.get(of.id) is not None]
    from .api import DISPLAY_TRACES
    from .io.lems_sim import OutputColumn, OutputFile
    if res.traces.get(DISPLAY_TRACES) is not None and sim.spec.display_quantities:
        disp = OutputFile("displays", "Display lines",
                          [OutputColumn(str(k), q) for k, q in enumerate(sim.spec.display_quantities)])
        panels.append((disp, res.traces[DISPLAY_TRACES]))
    rasters = [(ef, res.events.get(ef.id)) for ef in sim.spec.event_outputs if res.events.get(ef.id) is not None]
    import numpy as np
    length = duration if duration is not None else sim.spec.length
    t_stim = np.arange(0.0, length, min(sim.spec.step, length / 2000))
    stim = stimulus_waveform(sim, t_stim)
    all_events = np.array([e[1] for _, evs in rasters for e in (evs or ())])
    spectrum = len(all_events) > 10 and length >= 0.5
    n = max(1, len(panels) + 2 * len(rasters) + (stim is not None))
    fig, axes = plt.subplots(n + spectrum, 1, figsize=(9, 2.4 * (n + spectrum)), squeeze=False)
    axes = axes[:, 0]
    for ax in axes[1:n]:
        ax.sharex(axes[0])
    if stim is not None:
        label, current = stim
        axes[0].plot(t_stim, current * 1e9, lw=0.8, color="C3")
        axes[0].set_ylabel("nA")
        axes[0].set_title(f"input current ({label})", fontsize=9)
        axes = axes[1:]
        n -= 1
    for ax, (of, data) in zip(axes, panels):
        for j, col in enumerate(of.columns, start=1):
            ax.plot(data[:, 0], data[:, j], lw=0.8, label=col.quantity)
        ax.set_title(of.file_name, fontsize=9)
        if len(of.columns) <= 8:
            ax.legend(fontsize=7, loc="upper right")
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
    axes[n - 1].set_xlabel("time (s)")
    if spectrum:
        from .analysis import population_spectrum, spectrum_peak
        ax = axes[n]
        f, pw = population_spectrum(all_events, length)
        sel = (f > 0) & (f <= 100)
        ax.semilogy(f[sel], pw[sel], lw=0.9, color="k")
        peak = spectrum_peak(f, pw)
        if np.isfinite(peak):
            ax.axvline(peak, color="C3", lw=0.8, ls="--")
            ax.set_title(f"power spectrum of population activity (all spikes, 1 ms bins, Welch 1 s): "
                         f"peak {peak:.1f} Hz", fontsize=9)
        ax.set_xlabel("frequency (Hz)")
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


def stimulus_waveform(sim, t):
    """The current (A) that the network's pulse, sine and ramp generators (also inside
    compoundInputs) inject into the first cell that receives any, at times ``t``; None if
    the network has no such input."""
    import numpy as np
    model, net = sim.model, sim.network

    def num(c, name, dim):
        return model.units.parse(c.attrs[name], dim)

    def wave(c):
        t_ = model.type_of(c)
        if t_ == "compoundInput":
            parts = [wave(ch) for ch in c.children]
            return None if any(p is None for p in parts) else sum(parts, np.zeros_like(t))
        if t_ not in ("pulseGenerator", "sineGenerator", "rampGenerator"):
            return None
        d, w = num(c, "delay", "time"), num(c, "duration", "time")
        on = (t >= d) & (t < d + w)
        if t_ == "pulseGenerator":
            return np.where(on, num(c, "amplitude", "current"), 0.0)
        if t_ == "sineGenerator":
            amp, per = num(c, "amplitude", "current"), num(c, "period", "time")
            phase = float(c.attrs.get("phase", "0"))
            return np.where(on, amp * np.sin(2 * np.pi * (t - d) / per + phase), 0.0)
        a0, a1 = num(c, "startAmplitude", "current"), num(c, "finishAmplitude", "current")
        base = num(c, "baselineAmplitude", "current")
        return np.where(on, a0 + (a1 - a0) * (t - d) / max(w, 1e-30), base)

    target = None
    total = np.zeros_like(t)
    for inp in net.inputs:
        try:
            w = wave(inp.component)
        except (KeyError, ValueError):
            w = None
        if w is None or len(inp.target_idx) == 0:
            continue
        if target is None:
            target = (inp.population, int(inp.target_idx[0]))
        hits = np.nonzero((inp.target_idx == target[1]))[0] if inp.population == target[0] else []
        for k in hits:
            total = total + inp.weight[k] * w
    if target is None:
        return None
    return f"{target[0]}[{target[1]}]", total
