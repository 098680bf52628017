"""The NumPy backend: the program's generated NumPy functions (compile/codegen.Program), with
scalar twins for one-instance groups, stepped by the engine; its event phases are the
engine's own (NumPy handlers under masks, the event queue and the delay rings)."""
from __future__ import annotations

from ..compile.integrators import make_integrator
from . import Backend, Primitives


class NumpyBackend(Backend):
    name = "numpy"
    scalar_groups = True

    def prepare(self, sim, observe) -> Primitives:
        prog = sim.program
        apart = getattr(prog, "solved_apart", None)
        if sim.method == "euler" and apart:  # (jLEMS's kinetic schemes: moved by the engine)
            update = prog.make_stepper(sim.dt, keys={k for k in prog.rate_keys if k not in apart})
        else:
            update = make_integrator(sim.method, prog, sim.dt, sim.nmodl)
        return Primitives(derived=prog.derived, update=update, derived_after=prog.derived_after, rates=prog.rates)


BACKEND = NumpyBackend()
