"""NeuroML2CoreTypes as data.

The LEMS definitions of every standard NeuroML2 element ship inside jNeuroML's jar
(pyNeuroML on PyPI).  A pinned copy lives in ``NeuroML2CoreTypes/`` so that nmlsim
needs neither Java nor pyNeuroML at run time; ``schemas/refresh_coretypes.py``
re-extracts it from the jar.
"""
import os
from pathlib import Path

CORE_DIR = Path(__file__).parent / "NeuroML2CoreTypes"

#: nmlsim's own LEMS definitions (NEST point neurons), kept in ``schemas/nest`` of the
#: source tree and linked here so that they ship with the package.
NEST_DIR = Path(__file__).parent / "NestTypes"
NEST_TYPES_FILE = NEST_DIR / "NestPointNeurons.xml"

#: The file names a LEMS ``<Include file=...>`` may use for the core types.
CORE_FILES = frozenset(p.name for p in CORE_DIR.glob("*.xml"))
_NEST_FILES = frozenset(p.name for p in NEST_DIR.glob("*.xml"))


def core_file(name: str):
    """Return the path of the core-type file ``name`` (e.g. ``Cells.xml``), or None.

    nmlsim's NEST definitions (``NestPointNeurons.xml``) resolve the same way, so an
    exported model that includes them needs no copy beside it when nmlsim runs it.
    """
    base = Path(name).name
    if base in CORE_FILES:
        return CORE_DIR / base
    if base in _NEST_FILES:
        return NEST_DIR / base
    return None


_SHIPPED = os.path.realpath(Path(__file__).parent)


def shipped(path) -> bool:
    """Whether ``path`` is one of the type definitions nmlsim ships (NeuroML core or NEST)."""
    return path is not None and os.path.realpath(path).startswith(_SHIPPED)
