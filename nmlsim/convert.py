"""``nmlsim convert``: NeuroML/LEMS networks <-> SONATA circuits, through the internal graph."""
from __future__ import annotations

from pathlib import Path
from typing import List

from .errors import UnsupportedFeature


def convert(src, outdir, *, to: str, include_root=None) -> List[Path]:
    """Convert ``src`` (a LEMS simulation file or a SONATA config) into format ``to``."""
    src = Path(src)
    outdir = Path(outdir)
    if src.suffix == ".json":
        from .io.sonata import read_sonata
        net, settings = read_sonata(src, include_root=include_root)
        length, step, seed = settings["tstop_s"], settings["dt_s"], settings["seed"]
        neuron_mechanisms = bool(getattr(settings.get("run"), "nmodl", False))
    else:
        neuron_mechanisms = False
        from .api import load
        sim = load(src, include_root=include_root)
        net = sim.network
        length, step, seed = sim.spec.length, sim.spec.step, sim.spec.seed
        if net.root is not net.component:
            raise UnsupportedFeature(f"the network of '{src.name}' sits inside a '{net.root.tag}' component, "
                                     "which SONATA cannot express")
    if to == "sonata":
        from .io.sonata import write_sonata
        return write_sonata(net, outdir, tstop_s=length, dt_s=step, seed=seed, neuron_mechanisms=neuron_mechanisms)
    from .io.neuroml_writer import write_lems_simulation, write_network
    h5 = to == "neuroml-h5"  # network structure in NeuroML HDF5, components in <id>.cells.nml
    files = write_network(net, outdir / (f"{net.id}.cells.nml" if h5 else f"{net.id}.net.nml"), hdf5=h5)
    def cell(pid, p, i):  # HDF5 populations are populationLists, addressed pop/i/component
        return f"{pid}/{i}/{p.component.id}" if h5 else f"{pid}[{i}]"
    events = {f"results/{pid}.spikes": [cell(pid, p, i) for i in range(p.size)] for pid, p in net.populations.items()}
    lems = write_lems_simulation(outdir / f"LEMS_{net.id}.xml", sim_id=f"sim_{net.id}", target=net.id,
                                 includes=[f.name for f in files], length_s=length, step_s=step, seed=seed,
                                 event_outputs=events)
    return files + [lems]
