"""LEMS <Simulation> elements -> run settings and a record specification."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import List, Optional

from ..errors import ModelError
from ..lems.model import Component, LemsModel
from ..units import check_run_times, check_seed


@dataclass
class OutputColumn:
    id: str
    quantity: str


@dataclass
class OutputFile:
    id: str
    file_name: str
    columns: List[OutputColumn] = field(default_factory=list)


@dataclass
class EventSelection:
    id: str
    select: str
    port: str = "spike"


@dataclass
class EventOutputFile:
    id: str
    file_name: str
    format: str = "ID_TIME"
    selections: List[EventSelection] = field(default_factory=list)


@dataclass
class SimulationSpec:
    id: str
    length: float  # seconds
    step: float  # seconds
    target: str
    seed: Optional[int] = None
    outputs: List[OutputFile] = field(default_factory=list)
    event_outputs: List[EventOutputFile] = field(default_factory=list)
    display_quantities: List[str] = field(default_factory=list)
    component: Optional[Component] = None


def find_simulation(model: LemsModel) -> Component:
    for tid in model.targets:
        c = model.components.get(tid)
        if c is None:
            raise ModelError(f"<Target component='{tid}'> names no component")
        return c
    sims = [c for c in model.components.values() if c.tag == "Simulation" or c.type == "Simulation"]
    if len(sims) == 1:
        return sims[0]
    raise ModelError("no <Target> and no single <Simulation> to run (a NeuroML document holds components; "
                     "run the LEMS file that includes it, or check it with 'nmlsim validate')" if not sims else
                     "several <Simulation>s and no <Target> saying which to run")


def _check_file_name(spec: SimulationSpec, c: Component) -> None:
    """An output's fileName names a file, and no other output of the Simulation writes it."""
    name = (spec.outputs + spec.event_outputs)[-1].file_name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.endswith(("/", "\\")) or parts[-1] in (".", ".."):
        raise ModelError(f"fileName '{name}' does not name a file", **c.where())
    norm = os.path.normpath(name)
    others = [o.file_name for o in (spec.outputs + spec.event_outputs)[:-1]]
    if any(os.path.normpath(o) == norm for o in others):
        raise ModelError(f"two outputs write the file '{name}' (one would overwrite the other)", **c.where())


def read_simulation(model: LemsModel) -> SimulationSpec:
    sim = find_simulation(model)
    w = sim.where()
    u = model.units
    try:
        length = u.parse(sim.attrs["length"], "time")
        step = u.parse(sim.attrs["step"], "time")
        target = sim.attrs["target"]
    except KeyError as e:
        raise ModelError(f"Simulation needs the attribute {e.args[0]}", **w) from None
    bad = check_run_times(length, step) or check_seed(sim.attrs.get("seed"))
    if bad:
        raise ModelError(f"Simulation: {bad}", **w)
    seed = sim.attrs.get("seed")
    spec = SimulationSpec(sim.id, length, step, target, int(seed) if seed is not None else None, component=sim)
    for c in sim.children:
        if c.tag == "OutputFile":
            of = OutputFile(c.id, c.attrs.get("fileName") or f"{c.id}.dat")
            for col in c.children:
                if col.tag == "OutputColumn":
                    if not (col.attrs.get("quantity") or "").strip():
                        raise ModelError("OutputColumn without a quantity", **col.where())
                    of.columns.append(OutputColumn(col.id, col.attrs["quantity"]))
            spec.outputs.append(of)
        elif c.tag == "EventOutputFile":
            ef = EventOutputFile(c.id, c.attrs.get("fileName") or f"{c.id}.spikes",
                                 c.attrs.get("format", "ID_TIME"))
            if ef.format not in ("ID_TIME", "TIME_ID"):
                raise ModelError(f"EventOutputFile format '{ef.format}' is not ID_TIME or TIME_ID", **c.where())
            for sel in c.children:
                if sel.tag == "EventSelection":
                    ef.selections.append(EventSelection(sel.id, sel.attrs.get("select"),
                                                        sel.attrs.get("eventPort", "spike")))
            spec.event_outputs.append(ef)
        if c.tag in ("OutputFile", "EventOutputFile"):
            _check_file_name(spec, c)
        elif c.tag == "Display":
            for line in c.children:
                if line.tag == "Line" and "quantity" in line.attrs:
                    spec.display_quantities.append(line.attrs["quantity"])
    return spec
