"""``nmlsim validate``: the NeuroML XSD (shipped by libNeuroML) plus semantic checks.

Semantic checks load the file the way ``nmlsim run`` would — every reference, unit,
expression and select path is resolved and every group compiled — without simulating.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from lxml import etree

from ..errors import NmlsimError
from ..coretypes import shipped
from ..lems.dimensions import check_model, user_types
from .xmlsafe import local, parse_xml

_SCHEMA_CACHE = {}


def neuroml_schema(version: str = "2.3.1"):
    """The NeuroML XSD of libNeuroML (None if libNeuroML is not installed)."""
    if version in _SCHEMA_CACHE:
        return _SCHEMA_CACHE[version]
    try:
        import neuroml
    except ImportError:
        return None
    path = Path(neuroml.__file__).parent / "nml" / f"NeuroML_v{version}.xsd"
    if not path.exists():
        return None
    doc = etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False))
    schema = etree.XMLSchema(doc)
    _SCHEMA_CACHE[version] = schema
    return schema


def xsd_problems(path, root=None) -> List[str]:
    """Schema errors of a NeuroML document (an empty list for LEMS files); ``root``: its
    parsed root element, when the caller has it."""
    root = parse_xml(path) if root is None else root
    if local(root.tag) != "neuroml":
        return []
    schema = neuroml_schema()
    if schema is None:
        return [f"{path}: cannot check against the NeuroML schema: libNeuroML is not installed"]
    if schema.validate(etree.ElementTree(root)):
        return []
    out = []
    for e in schema.error_log:
        out.append(f"{path}:{e.line}: schema: {e.message}")
    return out


@dataclass
class Validation:
    """What ``nmlsim validate`` found in one file: ``schema``, the NeuroML XSD's complaints
    about the named file (and with ``includes`` about the NeuroML files it includes); ``model``,
    what loading it the way ``run`` does finds (references, units, expressions, recordings)."""
    path: str
    schema: List[str] = field(default_factory=list)
    model: List[str] = field(default_factory=list)
    #: False when the file could not be read at all (the schema line says why)
    model_checked: bool = True
    #: what jLEMS lets pass but is inconsistent (a DerivedVariable of another dimension than
    #: declared): printed, not a failure
    warnings: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.schema and not self.model


def validate(path, include_root=None, includes: bool = False) -> Validation:
    """Check ``path`` as jnml -validate does — the schema for the named file only (included
    files may use LEMS-extended elements, as OSB models do), then the model as a whole —
    reporting the two apart; ``includes`` checks included NeuroML files against the schema too."""
    v = Validation(str(path))
    if Path(path).suffix.lower() != ".json":
        try:
            root = parse_xml(path)
            v.schema = xsd_problems(path, root)
            if Path(path).suffix.lower() == ".nml" and local(root.tag) != "neuroml":
                # (jnml too: a .nml document is NeuroML; LEMS files are .xml)
                v.schema = [f"{path}:1: schema: the root element is <{local(root.tag)}>, "
                            "not <neuroml> (a LEMS file in a .nml file)"]
        except NmlsimError as e:  # missing, unreadable, not XML: nothing more to check
            v.schema, v.model_checked = [str(e)], False
            return v
    for p in validate_file(path, include_root, includes=includes, named=False, warnings=v.warnings):
        (v.schema if ": schema: " in p else v.model).append(p)
    return v


def validate_file(path, include_root=None, includes: bool = True, named: bool = True,
                  warnings: Optional[List[str]] = None) -> List[str]:
    """All problems found in ``path`` (empty: valid): the schema's (of the named file, and of
    the NeuroML files it includes when ``includes``) and the model's."""
    from ..compile.build import build_groups
    from ..compile.program import Program
    from ..engine.paths import resolve_outputs
    from .lems_reader import load_model
    from .lems_sim import read_simulation
    from .neuroml import build_network

    problems: List[str] = []
    if Path(path).suffix.lower() == ".json":  # a SONATA config: read and build it, as `run` would
        return sonata_problems(path, include_root, includes)
    # nmlsim writes the components of non-NeuroML types beside a network document, in
    # <stem>.types.xml (see neuroml_writer.write_network): check references against it
    path = Path(path)
    types = path.with_name(path.name.split(".")[0] + ".types.xml")
    before = [types] if types.exists() and types.resolve() != path.resolve() else []
    try:
        model = load_model(path, include_root=include_root, before=before)
    except NmlsimError as e:
        return [str(e)]
    # every expression of every user ComponentType, as jLEMS checks them
    for e in check_model(model, user_types(model), warnings=warnings is not None):
        if getattr(e, "warning", False):
            warnings.append(f"warning: {e}")
        else:
            problems.append(str(e))
    here = os.path.realpath(path)
    for f in model.files:
        if (includes or (named and os.path.realpath(f) == here)) and not shipped(f) \
                and not f.endswith((".h5", ".hdf5")):
            problems.extend(xsd_problems(f))  # (HDF5 networks are checked by reading them)
    try:
        sims = [c for c in model.components.values() if c.tag == "Simulation" or c.type == "Simulation"]
        if sims or model.targets:
            spec = read_simulation(model)
            net = build_network(model, model.component(spec.target, where=spec.component.where()))
            # what `run` resolves before it steps: the equations' order (a circle of derived
            # variables), every recorded quantity and selected cell
            built = build_groups(net)
            Program(built.groups)
            resolve_outputs(built, spec, path)
        else:
            # a NeuroML document, not a simulation: a cell without biophysics (a morphology file)
            # or an input list whose input another file defines keeps the network from running
            # but leaves the document valid, as jnml -validate finds it: a warning
            for c in model.components.values():
                try:
                    is_net = model.is_a(model.type_of(c), "network")
                except NmlsimError:
                    is_net = False
                if is_net:
                    try:
                        build_groups(build_network(model, c))
                    except NmlsimError as e:
                        element = str(e.element or "")
                        if warnings is None or not ("has no biophysicalProperties" in e.message
                                                    or element.lstrip("<").startswith(("inputList", "input "))):
                            raise
                        warnings.append(f"warning: not runnable as it stands: {e}")
    except NmlsimError as e:
        problems.append(str(e))
    return problems


def sonata_problems(path, include_root=None, includes: bool = True) -> List[str]:
    """Problems of a SONATA circuit/simulation config: every file it names read, every cell
    (SWC morphologies included) lowered and every group compiled, without simulating; with
    ``includes`` the NeuroML templates it loads are checked against the schema too."""
    from ..compile.build import build_groups
    from ..compile.program import Program
    from .sonata_reader import SonataReader
    try:
        reader = SonataReader(path, include_root=include_root)
        run = reader.read()
        Program(build_groups(run.network).groups)
    except NmlsimError as e:
        return [str(e)]
    problems: List[str] = []
    core = os.path.realpath(Path(__file__).resolve().parent.parent)
    for f in reader.model.files if includes else ():
        if not os.path.realpath(f).startswith(core) and f.endswith(".nml"):
            problems.extend(xsd_problems(f))
    return problems
