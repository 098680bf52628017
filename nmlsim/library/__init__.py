"""Builders of the shipped models and their export to NeuroML/LEMS (and SONATA)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

#: model name -> (builder name in library.ei, default duration s, step s)
MODELS = {
    "ei_hh": ("cobahh", 1.0, 1e-4),
    "coba_lif": ("coba_lif", 1.0, 1e-4),
    "noisy_hh": ("noisy", 1.0, 2.5e-5),  # nmlsim.library.noisy (NeuroML + LEMS only: its noise is nmlsim's xi)
}


#: models with their own exporter (several files and states, nmlsim.library.<name>)
MULTI_STATE = ("thalamus",)


def build(name: str, size: Optional[int] = None, seed: int = 1, state: str = "alpha"):
    """The network of model ``name`` (``state``: the thalamus's delta, spindle, alpha or gamma)."""
    from . import ei
    if name == "thalamus":
        from . import thalamus
        return thalamus.build(state, seed=seed)
    if name not in MODELS:
        from ..errors import ModelError
        raise ModelError(f"unknown model '{name}' (choose from {', '.join(sorted([*MODELS, *MULTI_STATE]))})")
    if name == "noisy_hh":
        from . import noisy
        return noisy.build(n=size or 100, seed=seed)
    return ei.build(MODELS[name][0], n=size or 4000, seed=seed)


def export(name: str, outdir, *, to: Sequence[str] = ("neuroml",), size: Optional[int] = None, seed: int = 1,
           duration: Optional[float] = None, step: Optional[float] = None, trace_cells: int = 3,
           tc_gap_junctions: bool = False, std: bool = False):
    """Build model ``name`` and write it under ``outdir``; returns the paths written. All
    files or none: they are written to a staging folder and moved into ``outdir`` at the end."""
    from ..io.results import staged_folder
    with staged_folder(outdir) as stage:
        files = _export(name, stage, to=to, size=size, seed=seed, duration=duration, step=step,
                        trace_cells=trace_cells, tc_gap_junctions=tc_gap_junctions, std=std)
    return [Path(outdir) / f.relative_to(stage) for f in files]


def _export(name: str, outdir, *, to, size, seed, duration, step, trace_cells, tc_gap_junctions, std):
    from ..errors import UnsupportedFeature
    from ..io.neuroml_writer import write_lems_simulation, write_network
    if (tc_gap_junctions or std) and name not in MULTI_STATE:
        raise UnsupportedFeature("--tc-gap-junctions and --std apply to the thalamus only")
    if name in MULTI_STATE:
        from . import thalamus
        bad = [f for f in to if f not in ("neuroml", "sonata")]
        if bad:
            raise UnsupportedFeature(f"the thalamus is exported as neuroml and/or sonata, not {', '.join(bad)}")
        kw = {k: v for k, v in (("duration", duration), ("step", step)) if v is not None}
        return thalamus.export(outdir, to=to, seed=seed, tc_gap_junctions=tc_gap_junctions, std=std, **kw)
    if name == "noisy_hh" and [f for f in to if f != "neuroml"]:
        raise UnsupportedFeature("noisy_hh is exported as neuroml only (its white noise has no SONATA or "
                                 "NeuroML-HDF5 form)")
    net = build(name, size, seed)
    _, default_len, default_step = MODELS[name]
    step = step if step is not None else default_step
    length = duration if duration is not None else default_len
    outdir = Path(outdir)
    written = []
    for fmt in to:
        if fmt in ("neuroml", "neuroml-h5"):
            h5 = fmt == "neuroml-h5"
            # the HDF5 variant: components in <name>.cells.nml, structure in <name>.net.h5
            files = write_network(net, outdir / (f"{name}.cells.nml" if h5 else f"{name}.net.nml"), doc_id=name,
                                  hdf5=h5)

            def cell(pid, i):  # HDF5 populations are populationLists: jLEMS wants pop/i/component
                return f"{pid}/{i}/{net.populations[pid].component.id}" if h5 else f"{pid}[{i}]"
            events = {f"results/{name}_{pid}.spikes": [cell(pid, i) for i in range(p.size)]
                      for pid, p in net.populations.items()}
            traces = {f"results/{name}_v.dat": [f"{cell(pid, i)}/v" for pid, p in net.populations.items()
                                                for i in range(min(trace_cells, p.size))]}
            lems = write_lems_simulation(outdir / (f"LEMS_{name}_h5.xml" if h5 else f"LEMS_{name}.xml"), sim_id=f"sim_{name}", target=net.id,
                                         includes=[f.name for f in files], length_s=length, step_s=step, seed=seed,
                                         event_outputs=events, traces=traces)
            written += files + [lems]
        elif fmt == "sonata":
            from ..io.sonata import write_sonata
            # the cells whose potential the LEMS file records, as one report
            rec = [(pid, i) for pid, p in net.populations.items() for i in range(min(trace_cells, p.size))]
            written += write_sonata(net, outdir / "sonata", tstop_s=length, dt_s=step, seed=seed,
                                    reports={f"{name}_v": rec})
        else:
            raise UnsupportedFeature(f"unknown export format '{fmt}' (neuroml, neuroml-h5 or sonata)")
    return written
