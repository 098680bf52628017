"""``nmlsim convert``: NeuroML/LEMS networks <-> SONATA circuits, through the internal graph."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .errors import UnsupportedFeature

#: a recorded cell's membrane potential: ``pop[i]/v`` or ``pop/i/<component>/v`` (after the
#: network's id, if the path starts with it)
_V_PATH = re.compile(r"^(\w+)(?:\[(\d+)\]|/(\d+)/[^/]+)/v$")
_INDEXED = re.compile(r"^(\w+)\[(\d+)\]/(.+)$")


def convert(src, outdir, *, to: str, include_root=None, notes: Optional[List[str]] = None) -> List[Path]:
    """Convert ``src`` (a LEMS simulation file or a SONATA config) into format ``to``.

    Recordings travel too: a LEMS file's recorded membrane potentials become SONATA reports,
    SONATA reports become LEMS OutputFiles (``results/<report>.dat``). What has no form in the
    target format is listed in ``notes`` (one line each), not silently dropped."""
    src = Path(src)
    outdir = Path(outdir)
    notes = notes if notes is not None else []
    traces: Dict[str, List[str]] = {}  # SONATA reports -> LEMS quantities, pop[i]/<path>
    reports: Dict[str, List[Tuple[str, int]]] = {}  # LEMS v columns -> SONATA reports
    if src.suffix == ".json":
        from .io.sonata import read_sonata
        net, settings = read_sonata(src, include_root=include_root)
        length, step, seed = settings["tstop_s"], settings["dt_s"], settings["seed"]
        run = settings.get("run")
        neuron_mechanisms = bool(getattr(run, "nmodl", False))
        for rep in getattr(run, "reports", []):
            traces[rep.name] = [q for qs in rep.quantities.values() for q in qs]
            if to != "sonata":
                continue
            if rep.variable in ("v", "V_m"):
                reports[rep.name] = [(m[1], int(m[2])) for m in map(_INDEXED.match, traces[rep.name])]
            else:
                notes.append(f"report '{rep.name}' of '{rep.variable}' is not converted (nmlsim writes "
                             "membrane-potential reports)")
    else:
        neuron_mechanisms = False
        from .api import load
        sim = load(src, include_root=include_root)
        net = sim.network
        length, step, seed = sim.spec.length, sim.spec.step, sim.spec.seed
        if net.root is not net.component:
            raise UnsupportedFeature(f"the network of '{src.name}' sits inside a '{net.root.tag}' component, "
                                     "which SONATA cannot express")
        reports = _v_reports(net, sim.spec.outputs, notes) if to == "sonata" else {}
    from .io.results import staged_folder
    with staged_folder(outdir) as stage:  # all files or none (a full disk leaves nothing half-written)
        files = _write(net, stage, to, length=length, step=step, seed=seed, neuron_mechanisms=neuron_mechanisms,
                       reports=reports, traces=traces)
    return [outdir / f.relative_to(stage) for f in files]


def _write(net, outdir: Path, to: str, *, length, step, seed, neuron_mechanisms, reports, traces) -> List[Path]:
    if to == "sonata":
        from .io.sonata import write_sonata
        return write_sonata(net, outdir, tstop_s=length, dt_s=step, seed=seed, neuron_mechanisms=neuron_mechanisms,
                            reports=reports)
    from .io.neuroml_writer import write_lems_simulation, write_network
    h5 = to == "neuroml-h5"  # network structure in NeuroML HDF5, components in <id>.cells.nml
    files = write_network(net, outdir / (f"{net.id}.cells.nml" if h5 else f"{net.id}.net.nml"), hdf5=h5)
    def cell(pid, p, i):  # HDF5 populations are populationLists, addressed pop/i/component
        return f"{pid}/{i}/{p.component.id}" if h5 else f"{pid}[{i}]"
    def quantity(q):
        m = _INDEXED.match(q)
        return f"{cell(m[1], net.populations[m[1]], int(m[2]))}/{m[3]}" if m and m[1] in net.populations else q
    events = {f"results/{pid}.spikes": [cell(pid, p, i) for i in range(p.size)] for pid, p in net.populations.items()}
    lems = write_lems_simulation(outdir / f"LEMS_{net.id}.xml", sim_id=f"sim_{net.id}", target=net.id,
                                 includes=[f.name for f in files], length_s=length, step_s=step, seed=seed,
                                 event_outputs=events,
                                 traces={f"results/{name}.dat": [quantity(q) for q in qs] for name, qs in traces.items()})
    return files + [lems]


def _v_reports(net, outputs, notes: List[str]) -> Dict[str, List[Tuple[str, int]]]:
    """The cells whose membrane potential each OutputFile records; the columns SONATA cannot
    report (other quantities, points off the soma) are counted in ``notes``."""
    reports, skipped = {}, []
    for of in outputs:
        cells = []
        for c in of.columns:
            q = c.quantity.strip()
            if net.id and q.startswith(net.id + "/"):
                q = q[len(net.id) + 1:]
            if net.bare is not None and not _V_PATH.match(q):
                q = f"{net.bare}[0]/{q}"  # a bare cell target's own paths ("v")
            m = _V_PATH.match(q)
            p = net.populations.get(m[1]) if m else None
            i = int(m[2] or m[3]) if m else -1
            if p is None or not 0 <= i < p.size:
                skipped.append(c.quantity)
                continue
            cells.append((m[1], i))
        if cells:
            reports[of.id] = cells
    if skipped:
        notes.append(f"{len(skipped)} recorded quantit{'y' if len(skipped) == 1 else 'ies'} other than a cell's "
                     f"membrane potential (e.g. '{skipped[0]}') ha{'s' if len(skipped) == 1 else 've'} no SONATA "
                     f"report form and {'is' if len(skipped) == 1 else 'are'} not converted")
    return reports
