"""Figures of run results (matplotlib imported lazily, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


#: how a LEMS dimension is drawn: (label, unit, factor from SI)
_AXES = {"voltage": ("membrane potential", "mV", 1e3), "current": ("current", "nA", 1e9),
         "concentration": ("concentration", "mM", 1.0), "conductance": ("conductance", "nS", 1e9),
         "time": ("time", "ms", 1e3), "capacitance": ("capacitance", "pF", 1e12),
         "per_time": ("rate", "1/s", 1.0), "temperature": ("temperature", "K", 1.0), "none": ("", "", 1.0)}


def _axis(dim):
    """(y label, factor) of a LEMS dimension; unknown dimensions stay in SI."""
    label, unit, k = _AXES.get(dim, (dim or "value", "SI", 1.0))
    return (f"{label} ({unit})" if unit else (label or "dimensionless")), k


def _layout(plt, n: int, time_panels: int):
    """``n`` panels, one column up to 5, else two (a 357-cell thalamus run with four
    populations drew 14 stacked panels, 990x3696 px); the first ``time_panels`` share x."""
    cols = 1 if n <= 5 else 2
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(9 if cols == 1 else 14, 2.3 * rows + 0.4), squeeze=False)
    flat = list(axes.T.ravel()) if cols == 2 else list(axes[:, 0])  # down the first column, then the second
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax in flat[1:time_panels]:
        ax.sharex(flat[0])
    return fig, flat[:n]


def plot_result(sim, res, outdir: Path, duration: float = None) -> Path:
    """:func:`result_figure` written to ``<outdir>/<simulation id>.png``."""
    fig = result_figure(sim, res, duration)
    outdir.mkdir(parents=True, exist_ok=True)
    out = outdir / f"{sim.spec.id or 'nmlsim'}.png"
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


def result_figure(sim, res, duration: float = None):
    """The input current of the first stimulated cell (pulse/sine/ramp generators), the
    OutputFiles' traces (one panel per file and dimension, in mV / nA / mM ...), one raster of
    all EventOutputFiles (a colour each) with their rates (5 ms bins), and the power spectrum
    of all recorded spikes (runs of 0.5 s or more)."""
    import numpy as np

    from .api import DISPLAY_TRACES
    from .engine.paths import quantity_dimension
    from .errors import ModelError
    plt = _plt()
    built = res.simulator.built

    def dim(q):
        try:
            return quantity_dimension(built, q)
        except ModelError:
            return None
    # (title, time, [(label, column)], dimension)
    traces = []
    sources = [(Path(of.file_name).name, [c.quantity for c in of.columns], res.traces.get(of.id))
               for of in sim.spec.outputs]
    if sim.spec.display_quantities:
        sources.append(("Display lines", list(sim.spec.display_quantities), res.traces.get(DISPLAY_TRACES)))
    for title, qs, data in sources:
        if data is None:
            continue
        by_dim = {}
        for j, q in enumerate(qs, start=1):
            by_dim.setdefault(dim(q), []).append((q, data[:, j]))
        for d, cols in by_dim.items():
            traces.append((title, data[:, 0], cols, d))
    events = [(Path(ef.file_name).name, ef, res.events.get(ef.id)) for ef in sim.spec.event_outputs
              if res.events.get(ef.id) is not None]
    length = duration if duration is not None else sim.spec.length
    t_stim = np.arange(0.0, length, min(sim.spec.step, length / 2000))
    stim = stimulus_waveform(sim, t_stim)
    if stim is not None and not np.any(stim[1]):
        stim = None  # generators of amplitude 0 (the thalamus's placeholders): nothing to see
    all_events = np.array([e[1] for _, _, evs in events for e in evs])
    spectrum = len(all_events) > 10 and length >= 0.5
    n_time = (stim is not None) + len(traces) + 2 * bool(events)
    fig, axes = _layout(plt, max(1, n_time + spectrum), n_time)
    k = 0
    if stim is not None:
        label, current = stim
        axes[0].plot(t_stim * 1e3, current * 1e9, lw=0.8, color="C3")
        axes[0].set_ylabel("current (nA)")
        axes[0].set_title(f"input current into {label}", fontsize=9)
        k = 1
    for title, t, cols, d in traces:
        _trace_panel(axes[k], title, t, cols, d)
        k += 1
    if events:
        ax, axr = axes[k], axes[k + 1]
        k += 2
        offset, ticks, names = 0, [], []
        bins = np.arange(0.0, length + 0.005, 0.005)
        total = sum(len(evs) for _, _, evs in events)
        for c, (name, ef, evs) in enumerate(events):
            n_cells = max(len(ef.selections), 1)
            rate = len(evs) / n_cells / max(length, 1e-12)
            label = f"{Path(name).stem}: {n_cells} cells, {rate:.2f} Hz"
            if evs:
                order = {sel.id: j for j, sel in enumerate(ef.selections)}
                t = np.array([e[1] for e in evs])
                y = offset + np.array([order.get(e[0], -1) for e in evs])
                ax.plot(t * 1e3, y, "|" if total < 5000 else ",", ms=3, color=f"C{c % 10}")
                hist, _ = np.histogram(t, bins)
                axr.plot((bins[:-1] + 0.0025) * 1e3, hist / n_cells / 0.005, lw=0.8, color=f"C{c % 10}", label=label)
            ticks.append(offset + n_cells / 2)
            names.append(Path(name).stem)
            offset += n_cells
        ax.set_yticks(ticks)
        ax.set_yticklabels(names, fontsize=7)
        ax.set_ylim(-0.5, offset - 0.5)
        ax.set_ylabel("cell")
        ax.set_title(f"spikes: {total} in {len(events)} file{'s' * (len(events) > 1)}", fontsize=9)
        axr.set_ylabel("rate (Hz)")
        axr.set_title("population rate (5 ms bins)", fontsize=9)
        axr.legend(fontsize=7, loc="upper right")
    for ax in axes[:n_time]:
        ax.set_xlabel("time (ms)")
    if spectrum:
        from .analysis import population_spectrum, spectrum_peak
        ax = axes[n_time]
        f, pw = population_spectrum(all_events, length)
        sel = (f > 0) & (f <= 100)
        ax.semilogy(f[sel], pw[sel], lw=0.9, color="k")
        peak = spectrum_peak(f, pw)
        title = "power spectrum of population activity (all spikes, 1 ms bins, Welch 1 s)"
        if np.isfinite(peak):
            ax.axvline(peak, color="C3", lw=0.8, ls="--")
            title += f": peak {peak:.1f} Hz"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("power")
    fig.suptitle(f"{sim.spec.id}: {length * 1e3:g} ms, step {sim.spec.step * 1e3:g} ms", fontsize=10)
    fig.tight_layout()
    return fig


def _trace_panel(ax, title, t, cols, dim):
    """One panel of traces (``cols``: (label, values SI)) in the units of LEMS dimension ``dim``."""
    ylabel, factor = _axis(dim)
    for q, y in cols:
        ax.plot(t * 1e3, y * factor, lw=0.8, label=q)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if len(cols) <= 8:
        ax.legend(fontsize=7, loc="upper right")


def results_figure(res):
    """A run's outputs from Python (:meth:`nmlsim.results.RunResult.plot`): one panel per output
    and unit (in mV / nA ...), and a raster of ``res.spikes`` with each population's rate."""
    plt = _plt()
    panels = []
    for name in res.outputs():
        out = res.output(name)
        by_dim = {}
        for j, c in enumerate(out.columns):
            by_dim.setdefault(c.dimension, []).append((c.quantity, out.data[:, j]))
        for d, cols in by_dim.items():
            panels.append((name, out.time, cols, d))
    spikes = {p: v for p, v in res.spikes.items() if len(v[1])}
    n = len(panels) + bool(spikes)
    fig, axes = _layout(plt, max(n, 1), max(n, 1))
    for ax, (title, t, cols, d) in zip(axes, panels):
        _trace_panel(ax, title, t, cols, d)
    if spikes:
        ax = axes[len(panels)]
        offset, ticks, names = 0, [], []
        t_end = max(float(np.max(t)) for _, t in spikes.values())
        for c, (pop, (idx, t)) in enumerate(sorted(spikes.items())):
            n_cells = int(np.max(idx)) + 1
            ax.plot(np.asarray(t) * 1e3, offset + np.asarray(idx), "|" if len(t) < 5000 else ",", ms=3,
                    color=f"C{c % 10}")
            ticks.append(offset + n_cells / 2)
            names.append(f"{pop} ({len(t) / max(n_cells, 1) / max(t_end, 1e-12):.1f} Hz)")
            offset += n_cells
        ax.set_yticks(ticks)
        ax.set_yticklabels(names, fontsize=7)
        ax.set_ylabel("cell")
        ax.set_title(f"spikes: {sum(len(t) for _, t in spikes.values())}", fontsize=9)
    for ax in axes:
        ax.set_xlabel("time (ms)")
    fig.tight_layout()
    return fig


#: event files of jnml (``id time`` per line, or ``time id`` with format TIME_ID)
EVENT_SUFFIXES = (".spikes", ".events", ".evt")


def plot_files(files: List[Path], out: Path) -> Path:
    """:func:`files_figure` written to ``out``."""
    fig = files_figure(files)
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


def files_figure(files: List[Path]):
    """One panel per file: jnml ``.dat`` traces (every column against the first, time;
    SI units as written), jnml event files (``.spikes``: a raster), SONATA spike files (a
    raster per population) and SONATA reports (traces in the file's units)."""
    plt = _plt()
    panels = []
    for f in files:
        panels.extend(_read_panels(Path(f)))
    fig, axes = _layout(plt, max(1, len(panels)), len(panels))
    for ax, (title, kind, data, ylabel) in zip(axes, panels):
        if kind == "raster":
            ids, t = data
            ax.plot(t * 1e3, ids, "|" if len(t) < 5000 else ",", ms=3, color="k")
            ax.set_title(f"{title}: {len(t)} spikes, {len(np.unique(ids)) if len(ids) else 0} cells firing",
                         fontsize=9)
        else:
            t, cols = data
            for label, y in cols:
                ax.plot(t * 1e3, y, lw=0.8, label=label)
            if 1 < len(cols) <= 8:
                ax.legend(fontsize=7, loc="upper right")
            ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("time (ms)")
    fig.tight_layout()
    return fig


def _read_panels(f: Path):
    """(title, 'raster' | 'traces', data, y label) panels of one result file."""
    from .errors import FormatError
    from .io.results import read_dat
    if f.suffix in (".h5", ".hdf5"):
        return _sonata_panels(f)
    data = read_dat(f)
    if f.suffix in EVENT_SUFFIXES:
        if data.size == 0:
            return [(f.name, "raster", (np.zeros(0), np.zeros(0)), "cell id")]
        if data.shape[1] != 2:
            raise FormatError(f"an event file has 2 columns (id, time), found {data.shape[1]}", file=f)
        ints = [np.all(data[:, j] == np.round(data[:, j])) for j in (0, 1)]
        # jnml's ID_TIME unless only the second column holds integers (TIME_ID)
        ids, t = (data[:, 1], data[:, 0]) if ints[1] and not ints[0] else (data[:, 0], data[:, 1])
        return [(f.name, "raster", (ids, t), "cell id")]
    cols = [(f"column {j}", data[:, j]) for j in range(1, data.shape[1])]
    return [(f.name, "traces", (data[:, 0], cols), "value (SI units, as written)")]


def _sonata_panels(f: Path):
    from .errors import FormatError
    from .io.hdf5 import open_h5
    panels = []
    with open_h5(f) as h:
        if "spikes" in h:
            for pop, g in h["spikes"].items():
                if hasattr(g, "keys") and "timestamps" in g:
                    panels.append((f"{f.name}: {pop}", "raster",
                                   (g["node_ids"][()], g["timestamps"][()] * 1e-3), "node id"))
        elif "report" in h:
            for pop, g in h["report"].items():
                t0, t1, dt = g["mapping/time"][()]
                data = g["data"][()]
                unit = g["data"].attrs.get("units", "")
                unit = unit.decode() if isinstance(unit, bytes) else str(unit)
                t = (t0 + dt * np.arange(data.shape[0])) * 1e-3
                ids = g["mapping/node_ids"][()]
                panels.append((f"{f.name}: {pop}", "traces",
                               (t, [(f"node {i}", data[:, j]) for j, i in enumerate(ids[:data.shape[1]])]),
                               f"{'membrane potential' if unit == 'mV' else 'value'} ({unit or 'as written'})"))
        else:
            raise FormatError("neither a SONATA spike file (/spikes) nor a report (/report)", file=f)
    return panels


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
