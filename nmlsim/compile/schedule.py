"""The step schedule, written once.

Every run takes its steps in the order of :data:`STEP`, whatever the backend: a backend
supplies the primitives of the phases (the engine's NumPy ones, the compiled kernels' event
functions) and either runs the schedule here, phase by phase (:func:`run_steps`), or renders
it into one compiled loop (``nmlsim.backends.numba.loop.render_run`` walks the same tuple,
so the compiled ``_run`` cannot take its phases in another order). A phase that a run does
not need (white noise in a model without it, MPI exchange on one process) is left out of
that run; a compiled loop that cannot do a phase the run needs is not built, and the run is
stepped here with the compiled kernels as primitives.

One step, from t_k to t_k+1 (jLEMS's order, so that ``--method euler`` matches it):

``noise``     white noise of the step (N(0, 1)/√dt per source, drawn by the engine);
``derived``   every derived value from the states at t_k;
``record``    row k of every recorder (states and derived values at t_k);
``last``      the run ends after its last row;
``watch``     ``--method neuron``: the WATCH tests of abstract point cells on the state just
              recorded, and their actions (a reset) at the start of the step;
``drain``     recorded events handed to their listeners when the event buffer nears full;
``due``       ``--method euler``: the delayed events jLEMS's EventManager hands over before
              any instance advances;
``early``     ``--method euler``: events the step sends to receivers later in jLEMS's walk
              (handled before they advance);
``update``    the states to t_k+1: the explicit update (euler, exp_euler, rk4, NEURON's
              halves), then the implicit solves (the cable equation, kinetic schemes);
``clock``     the time the coming conditions are tested with: t_k+1 + dt (jLEMS tests
              conditions with the end time of the step it is about to take, so a pulse that
              starts at 50 ms acts on the step ending at 50 ms), jLEMS's accumulated clock
              with ``--method euler``, t_k+1 + dt/2 with NEURON's scheme;
``events``    OnCondition handlers in group and declaration order on the states at t_k+1
              (transitions run the target regime's OnEntry), then the events they fire:
              in-group EventConnections at once, projections after ``round(delay/dt)`` steps
              (a zero delay arrives in the same step), OnEvent handlers on arrival;
``exchange``  MPI: the spikes of every rank routed here, coupled cells' v from their ranks;
``check``     every ``check`` steps: all states finite, progress reported.

A phase marked ``refresh`` may move states before the update: when it acted, the derived
values are computed again before the step goes on. Before the first step (:data:`START`):
the derived values, the event phase once (a pulse with delay 0 is on from the start; jLEMS
tests no state before its first step), the exchange.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

__all__ = ["Phase", "START", "STEP", "run_start", "run_steps"]


@dataclass(frozen=True)
class Phase:
    name: str
    #: when the phase acted, the derived values are computed again before the step goes on
    refresh: bool = False
    #: when the phase's op says so, the run ends
    stop: bool = False


START: Tuple[Phase, ...] = (Phase("derived"), Phase("events"), Phase("exchange"))

STEP: Tuple[Phase, ...] = (
    Phase("noise"),
    Phase("derived"),
    Phase("record"),
    Phase("last", stop=True),
    Phase("watch", refresh=True),
    Phase("drain"),
    Phase("due", refresh=True),
    Phase("early", refresh=True),
    Phase("update"),
    Phase("clock"),
    Phase("events"),
    Phase("exchange"),
    Phase("check"),
)

#: an op takes the step index k (the step from t_k to t_k+1) and returns True when it acted
#: (a ``refresh`` phase) or when the run ends (a ``stop`` phase)
Op = Callable[[int], Optional[bool]]


def _unknown(ops: Dict[str, Optional[Op]], phases) -> None:
    names = {ph.name for ph in phases}
    extra = set(ops) - names
    if extra:  # (a primitive under a name the schedule does not have would never run)
        raise ValueError(f"no phase named {sorted(extra)} in the schedule")


def run_start(ops: Dict[str, Optional[Op]]) -> None:
    """The phases of :data:`START` (before the first step), those in ``ops`` that are not None."""
    _unknown(ops, START)
    for ph in START:
        op = ops.get(ph.name)
        if op is not None:
            op(0)


def run_steps(ops: Dict[str, Optional[Op]], nsteps: int, first: int = 0) -> None:
    """Steps ``first`` .. ``nsteps`` in the order of :data:`STEP` (row ``nsteps`` recorded, no
    step after it). ``ops``: a phase's name → its op, None (or absent) where the run has
    nothing to do in that phase; ``ops["refresh"]``: the derived values computed again after a
    ``refresh`` phase acted (default: the ``derived`` phase's op)."""
    _unknown({k: v for k, v in ops.items() if k != "refresh"}, STEP)
    derived = ops.get("refresh") or ops["derived"]
    seq = [(ph.stop, ph.refresh, op) for ph in STEP if (op := ops.get(ph.name)) is not None]
    for k in range(first, nsteps + 1):
        for stop, refresh, op in seq:
            if op(k):
                if stop:
                    return
                if refresh:
                    derived(k)
