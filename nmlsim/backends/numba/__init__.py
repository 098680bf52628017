"""The numba backend: the program's equations as Numba-compiled loops over each group's
instances (:mod:`.kernels`), the event phase and the whole time loop compiled too
(:mod:`.loop`, ``_run`` rendered from the step schedule). Kernels are cached on disk, keyed
by the model's structure (its numbers are a runtime table)."""
from __future__ import annotations

from .. import Backend, Primitives


class NumbaBackend(Backend):
    name = "numba"
    density_domains = True

    def prepare(self, sim, observe) -> Primitives:
        from ...compile.integrators import stepper_jacobian
        from .kernels import NumbaKernels
        prog = sim.program
        jd = stepper_jacobian(sim.method, prog, sim.nmodl)
        kept = None if observe is None else {prog.py(gid, key) for gid, key in observe}
        kernels = NumbaKernels(prog, sim.dt, sim.method, jd, loop_spec=sim.loop_spec(), keep=kept, nmodl=sim.nmodl)
        update = (kernels.step, kernels.step_after) if sim.method == "neuron" else kernels.step  # (RK4's stages inside)
        return Primitives(derived=kernels.derived, update=update,
                          derived_after=kernels.derived_after if kernels._d2 is not None else kernels.derived,
                          rates=kernels.rates if sim.method == "rk4" else sim.numpy.rates, kernels=kernels)

    def stale(self, sim, recorders) -> bool:
        K = sim.kernels
        if K is None or not (K.local or K.fused):
            return False
        # a recorder reads a value compiled into registers, or a derived value the fused loop
        # would record before computing it
        return any(x is None or not x <= sim.observe for x in (r.reads() for r in recorders))

    def loop(self, sim, recorders, check_every: int):
        """The compiled event phases (and, outside table mode, the compiled time loop) where the
        model compiled into them."""
        if sim.kernels is None or sim.kernels.loop is None:
            return None
        from .loop import LoopRun
        return LoopRun(sim, recorders, check_every)


BACKEND = NumbaBackend()
