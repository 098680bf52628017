"""Backends: the primitives of the step schedule, made from one lowered program.

The engine lowers a model once — ``compile/program.Program`` (names, arrays and their owners,
the derived values in one evaluation order, handlers), ``compile/integrators.lower_updates``
(each state's update, written once as backend-neutral records), routes and recorders
(``engine/simulator``) — and runs the step schedule of ``compile/schedule.py``. A backend
turns the program into the schedule's primitives:

* :meth:`Backend.prepare` — ``derived(V, t)``, the update (``--method neuron``: its two halves
  around the voltage solve), what the rest of the step reads after the solve, the rates (RK4's
  stages); the same calls on every backend, so the engine's initialisation, implicit phases
  (the cable equation, kinetic schemes) and MPI exchange serve them all;
* :meth:`Backend.loop` — who runs the event phases (``start``, ``drain``, ``due``, ``events``,
  ``finish``): None for the engine's own (NumPy handlers, queue and rings), or the backend's
  compiled ones; where that object also has ``chunk``, it runs whole chunks of the schedule in
  compiled code (rendered from the same schedule) and the engine only hands rows to recorders.

``numpy`` (the default, :mod:`nmlsim.backends.numpy`): generated NumPy functions, with scalar
twins for one-instance groups. ``numba`` (:mod:`nmlsim.backends.numba`): the same equations as
Numba-compiled loops, the event phase and the time loop compiled too. A new backend (a GPU one)
implements these two methods; the engine, the integrators' rules and the schedule stay as they
are.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict

from ..errors import SimulationError

__all__ = ["Backend", "Primitives", "get_backend", "BACKENDS"]


@dataclass
class Primitives:
    """What a backend gives the engine for one simulator."""
    #: derived(V, t): every derived value at t, in the program's evaluation order
    derived: Callable
    #: the update of the states over one step: update(V, t); with ``--method neuron`` the pair
    #: (before the voltage solve, after it)
    update: Any
    #: --method neuron: the derived values the rest of the step reads after the solve
    derived_after: Callable
    #: rates(V, t): every state's rate (RK4's stages, the NumPy integrators)
    rates: Callable
    #: the compiled kernels, where the backend has them (the numba backend's NumbaKernels)
    kernels: Any = None


class Backend:
    """One way of running the lowered program (see the module's docstring)."""

    name = ""
    #: one-instance groups get scalar (Python float) twins of the generated NumPy functions
    scalar_groups = False
    #: the kernels need each density mechanism's compartments (Simulator._density_domains)
    density_domains = False

    def prepare(self, sim, observe) -> Primitives:  # pragma: no cover - interface
        """The primitives for ``sim`` (its program lowered, its events set up); ``observe``:
        the (group, variable) pairs read between steps (None: any)."""
        raise NotImplementedError

    def stale(self, sim, recorders) -> bool:
        """Whether ``recorders`` read something :meth:`prepare` compiled away (the engine then
        prepares again, observing everything)."""
        return False

    def loop(self, sim, recorders, check_every: int):
        """The event phases of a run (None: the engine's own), asked for only where every
        recorder and event listener takes its data in blocks (``sample_block``, ``block``)."""
        return None


#: name -> module holding ``BACKEND``; imported on first use (numba is optional)
BACKENDS: Dict[str, str] = {"numpy": "nmlsim.backends.numpy", "numba": "nmlsim.backends.numba"}
_loaded: Dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The backend called ``name``."""
    b = _loaded.get(name)
    if b is None:
        mod = BACKENDS.get(name)
        if mod is None:
            raise SimulationError(f"unknown backend '{name}' ({' or '.join(BACKENDS)})")
        b = _loaded[name] = importlib.import_module(mod).BACKEND
    return b

