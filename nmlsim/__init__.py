"""nmlsim: NeuroML2/LEMS and SONATA interchange and a vectorised simulation backend."""
from .errors import (FormatError, ModelError, NmlsimError, SimulationError, UnitError,
                     UnsupportedFeature)

__version__ = "0.1.0"

__all__ = ["load", "run", "sweep", "NmlsimError", "FormatError", "ModelError", "UnitError", "UnsupportedFeature",
           "SimulationError", "__version__"]


def load(path, include_root=None, comm=None):
    """Load a LEMS simulation file or a SONATA config; see :func:`nmlsim.api.load`."""
    from .api import load as _load
    return _load(path, include_root=include_root, comm=comm)


def run(sim, **kw):
    """Run a loaded simulation; see :func:`nmlsim.api.run`."""
    from .api import run as _run
    return _run(sim, **kw)


def sweep(sim, param, values, **kw):
    """Run once per value of a parameter; see :func:`nmlsim.api.sweep`."""
    from .api import sweep as _sweep
    return _sweep(sim, param, values, **kw)

