"""The engine: a lowered program (compile/program.py) run by a backend (backends/) through
the step schedule (compile/schedule.py, which states the order of a step and why), with the
events — OnCondition handlers, routing through projections with their delays, OnEvent
handlers — the initialisation (OnStart, kinetic schemes at steady state, NEURON's INITIAL),
the implicit phases (engine/cable.py), recorders and the MPI exchange (engine/exchange.py).

A spike emitted in the event phase after step k with delay d is handled d steps later.
"""
from __future__ import annotations

import signal
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

import numpy as np

from ..compile.build import Built
from ..compile.program import Program
from ..compile.streams import Streams, identities, normal
from ..compile.integrators import (BREAKPOINT_DONE, OWN_RATE, SOLVED_V, STORED_RATE, add_attached_slopes,
                                   point_cell_shapes, solved_voltage_reads, stale_ancestor_reads, stored_point_rates)
from ..compile.jlems_order import STARTED, jlems_reads, tests_clock
from ..compile.schedule import run_start, run_steps
from ..backends import get_backend
from ..backends.numpy import NumpyCode
from ..errors import SimulationError
from ..lems import expr as E


class Recorder:
    """Lifecycle hooks the engine calls: initialize, sample each step, finalize."""

    def initialize(self, sim: "Simulator", nsteps: int) -> None:
        pass

    def sample(self, sim: "Simulator", k: int, t: float) -> None:
        pass

    def finalize(self, sim: "Simulator", complete: bool) -> None:
        pass

    def reads(self) -> Optional[Set[Tuple[int, str]]]:
        """The (group id, variable) pairs this recorder reads from the state between steps;
        None: it may read any (a compiled backend then keeps every derived value in memory)."""
        return None


def _copy_arrays(dst, src):
    for a, b in zip(dst, src):
        a[...] = b


_COPY_JIT = None


def array_copier(arrays):
    """``copy(dst, src)`` for tuples shaped like ``arrays``: every array of ``src`` into the
    same one of ``dst`` (the lagged states of ``--method neuron``) — one compiled call per
    step with numba when they are all 1-d float arrays, else NumPy assignments."""
    global _COPY_JIT
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype == np.float64 and a.flags.c_contiguous
               for a in arrays):
        return _copy_arrays
    if _COPY_JIT is None:
        try:
            import numba
        except ImportError:
            _COPY_JIT = _copy_arrays
        else:
            def copy_tuple(dst, src):
                for k in range(len(dst)):
                    a = dst[k]
                    b = src[k]
                    for i in range(a.shape[0]):
                        a[i] = b[i]
            _COPY_JIT = numba.njit(cache=True)(copy_tuple)
    return _COPY_JIT


def _connections(rec, mask) -> np.ndarray:
    """Positions, in a route record's CSR order, of the connections of the senders in ``mask``
    (a boolean mask, or the senders' indices in ascending order)."""
    pre = np.nonzero(mask)[0] if mask.dtype == bool else mask
    indptr = rec["indptr"]
    starts, ends = indptr[pre], indptr[pre + 1]
    counts = ends - starts
    total = int(counts.sum())
    return np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)


#: NEURON's default initial voltage (``h.finitialize()`` without an argument, as jNeuroML's
#: generated scripts call it), in V
NEURON_V_INIT = -0.065


class _EnginePhases:
    """The event parts of the schedule (compile/schedule.py) as the engine runs them:
    ``start(t)`` (the event phase before the first step), ``drain`` (None: nothing buffered),
    ``due(k, t)`` (delayed events handed over before step k, or None), ``events(k, t)``,
    ``finish()``. numba's ``LoopRun`` offers the same with the compiled event functions."""

    drain = None

    def __init__(self, sim):
        self.sim = sim
        self.due = sim._deliver_due

    def start(self, t: float) -> None:
        self.sim._event_phase(0, t)

    def events(self, k: int, t: float) -> None:
        self.sim._event_phase(k, t)

    def finish(self) -> None:
        pass


class Simulator:
    def __init__(self, built: Built, dt: float, method: str = "exp_euler", seed: Optional[int] = None,
                 backend: str = "numpy", observe: Optional[Iterable[Tuple[int, str]]] = None,
                 nmodl: bool = False, crank_nicolson: bool = False, exchange=None):
        """``observe``: the (group id, variable) pairs that will be read between steps — what
        the recorders of the coming runs read (:func:`observed_by`); None: any. With it the
        numba backend keeps derived values nothing reads in registers instead of arrays.
        ``nmodl``: with ``method="neuron"``, the mechanisms stand for NEURON's own mod files
        (a SONATA circuit run by bmtk), not jNeuroML's generated ones: gates by ``cnexp``'s
        exponential step, and the currents from the states as they are (no one-update lag).
        ``crank_nicolson``: the cable's voltage by Crank–Nicolson (NEURON's ``secondorder=2``)
        instead of backward Euler; the other states as ``method`` moves them.
        ``exchange``: this rank's :class:`nmlsim.engine.exchange.SpikeExchange` when the network
        is one MPI rank's share (graph/partition.py): spikes of every rank reach this rank's
        cells once a step."""
        self.built = built
        self.exchange = exchange
        #: (group id, port) -> callbacks (mask, lag) of the spikes a rank sends to the others
        self.exports: Dict[Tuple[int, str], List[Callable]] = defaultdict(list)
        self.dt = float(dt)
        self.method = method
        #: conditions tested with jLEMS's clock (t += dt each step: 0.09999999999999393 after
        #: 10000 steps of 1e-5 s, where k·dt is 0.1) — a pulse ends on the step jnml ends it, a
        #: delayed event arrives on the step jnml's EventManager delivers it
        self.accumulated_time = method == "euler"
        self.nmodl = bool(nmodl) and method == "neuron"
        self.backend = backend
        self._backend = get_backend(backend)
        specs = list(built.cables)
        #: --method neuron: abstract point cells, as jNeuroML's export makes them (v only / more)
        self._point_shapes = ([], [])
        if method == "neuron":
            from .cable import point_cell_specs
            specs += point_cell_specs(built)
            if not self.nmodl:
                self._point_shapes = point_cell_shapes(set(built.pop_groups.values()), {c.gid for c in specs})
                stored_point_rates(self._point_shapes[1], self.dt)
                solved_voltage_reads(self._point_shapes[0] + self._point_shapes[1], self.dt)
        point_v = [(g.gid, "v") for shape in self._point_shapes for g in shape]
        if specs or point_v:  # the attached synapses' and junctions' di/dv on the implicit phase's diagonal
            add_attached_slopes(built.groups, [(c.gid, c.v_key) for c in specs] + point_v,
                                with_states=self.nmodl or method != "neuron")
        if method == "neuron" and not self.nmodl:  # jNeuroML's rates(): children before parents
            stale_ancestor_reads(built.groups)
        if method == "euler":  # what each component sees in jLEMS's walk of the tree
            jlems_reads(built.groups, self.dt, skip={c.gid for c in built.cables}, recorded=observe)
        self.program = Program(built.groups, seed=seed)
        #: the program's NumPy functions: the engine's own event phase and initialisation run
        #: their handlers on every backend (backends/numpy.py)
        self.numpy = NumpyCode(self.program, scalars=self._backend.scalar_groups)
        #: the backend's derived values (until _prepare: the NumPy ones)
        self.derived = self.derived_after = self.numpy.derived
        self.V = self.program.V
        self.noise = self._noise_sources(seed)
        self._stale = self._stale_copies()
        #: the derived values at the start of a step (the engine's loop calls it before recording)
        self.derived_now = lambda V, t: self.derived(V, t)
        self.cable = None
        if specs:  # multi-compartment cells (and, with --method neuron, NeuroML point cells)
            from .cable import CablePhase
            self.program.declare_implicit([(c.gid, c.v_key) for c in specs])
            self.cable = CablePhase(self.program, specs, self.dt, crank_nicolson=crank_nicolson)
        self.seed = seed
        self.program.domains = self._density_domains() if self._backend.density_domains else {}
        lagged = []
        ks = []
        if method == "neuron":
            lagged, early = self._neuron_state_roles(specs)
            if self.nmodl:  # NEURON's BREAKPOINT sees the states the last update left
                lagged = []
            points = self._point_voltages()
            self.program.early_states = set(early) | points
            self.program.point_voltages = points
        if method in ("neuron", "euler"):
            # kinetic schemes: NEURON's `SOLVE ... METHOD sparse` (backward Euler); jLEMS's
            # KScheme.advance (the exponential of the transition matrix), not forward Euler
            for g in built.groups:
                for k in g.kinetic_init:
                    ks.append((g, k.states, k.pairs))
            self.program.solved_apart = {(g.gid, st) for g, states, _ in ks for st in states}
        self._setup_events()
        if exchange is not None:
            exchange.attach(self)
        #: --method euler: the senders' early handlers that have receivers to serve
        self._early = [(g, h, fn) for g, h, fn in self.cond_handlers if getattr(h, "early_of", None) is not None
                       and any((g.gid, o) in self.early_routes for o in h.event_outs)]
        #: OnCondition handlers that test states (not time alone, no random draw in the test)
        self._state_tests = {id(h) for g, h, _ in self.cond_handlers
                             if h.test is not None and not E.has_random(h.test)
                             and not self.program._time_only(g, h.test) and getattr(h, "early_of", None) is None}
        #: --method euler: handlers whose test reads t. The event phase after step k tests them with the
        #: clock of step k + 1, as jLEMS does in step k + 1 (a state test there is jLEMS's step k): the
        #: delayed events they send are stamped with that step's clock, so they arrive a step later
        self._clock_tests = {id(h) for g, h, _ in self.cond_handlers if self.accumulated_time and tests_clock(h)}
        #: --method neuron: the state tests of abstract point cells, which jNeuroML's export makes
        #: WATCH statements: NEURON tests them on the state a step reached and runs their actions at
        #: the start of the next step, after the row is recorded (NeuroML cells' spike tests are
        #: NEURON's NetCon thresholds: tested in the event phase as before)
        points = {gid for gid, _ in getattr(self.program, "point_voltages", ())}
        self._watch = {id(h) for g, h, _ in self.cond_handlers
                       if method == "neuron" and g.gid in points and id(h) in self._state_tests}
        self.run_length = -1  # steps of the run under way (Simulator.run)
        self.kernels = None
        self.observe = None if observe is None else set(observe)
        if self.observe is not None:
            # (read once, at the start: _initial_stored_rates)
            self.observe.update((g.gid, OWN_RATE) for g in self._point_shapes[1])
            # (the updated states early handlers test, kept in arrays)
            for g, h, _ in self.cond_handlers:
                if getattr(h, "early_of", None) is not None and h.test is not None:
                    self.observe.update((g.gid, n) for n in E.names(h.test) if n in g.derived)
        if self.observe is not None:
            # the kinetic schemes solved here (steady state, backward Euler) read their
            # transition rates from the arrays: the numba kernels must store them
            # (a kineticInitial's inflow rates are transition rates too)
            for g, _, pairs in ks:
                for _, _, rf, rr in pairs:
                    self.observe.update({(g.gid, rf), (g.gid, rr)})
        self._prepare(self.observe)
        if method == "euler" and ks:
            explicit, ks_step = self.integrate, self._kinetic_exponential(ks)

            def integrate(V, t):
                # with the step's rates; the gates read the occupancies before the move (jLEMS
                # writes the moved ones to the states' variables, not to their exposures)
                explicit(V, t)
                ks_step(V)
            self.integrate = integrate
        if self.method == "neuron":
            before, after = self.integrate
            cable, dt = self.cable, self.dt
            #: the states the currents of the coming step see: those before the last update
            #: (0 before the first: jNeuroML's INITIAL evaluates the conductances with gates at 0)
            self.lag = {nm: np.zeros_like(self.V[nm], dtype=float) for nm in lagged}
            lag = self.lag
            states = tuple(self.V[nm] for nm in lag)
            copy_all = array_copier(states)
            lags = tuple(lag.values())
            saved = tuple(np.empty_like(x) for x in lags)

            def derived_now(V, t):
                """The derived values the coming step's currents use — those of the lagged
                states (what NEURON's BREAKPOINT computes, and what it records)."""
                if lags:
                    copy_all(saved, states)
                    copy_all(states, lags)
                self.derived(V, t)
                if lags:
                    copy_all(states, saved)
            self.derived_now = derived_now

            ks_step = self._kinetic_backward_euler(ks)
            stale = self._stale

            def integrate(V, t):  # after derived_now(V, t)
                before(V, t)
                if cable is not None:
                    cable.solve(V)
                # what the rest of the step reads (numba: only that; derived_now computes all)
                self.derived_after(V, t + dt)
                if stale:
                    self._refresh_stale()
                if lags:
                    copy_all(lags, states)
                after(V, t + dt)
                if ks_step is not None:
                    ks_step(V)
            self.integrate = integrate
        elif self.cable is not None:
            explicit, cable = self.integrate, self.cable

            def integrate(V, t):
                explicit(V, t)
                cable.solve(V)
            self.integrate = integrate
        #: time ahead of the state at which conditions are tested (and events stamped):
        #: jLEMS's dt, or dt/2 for NEURON's scheme (currents evaluated mid-step)
        self.event_lead = 0.5 * self.dt if method == "neuron" else self.dt
        #: subtracted from an event's time in jnml-style event files: 0 (jLEMS writes the test
        #: time), or the lead with --method neuron (NEURON writes the crossing state's time)
        self.jnml_event_shift = self.event_lead if method == "neuron" else 0.0
        self.t = 0.0
        self.step_index = 0
        self.event_listeners: Dict[Tuple[int, str], List[Callable]] = defaultdict(list)
        self.interrupted = False

    def neuron_clock(self, k: int) -> float:
        """NEURON's t after ``k`` fixed steps, in s: it adds dt/2 twice a step, in ms (so that
        a test such as t > lastSpikeTime + refract falls on NEURON's side of the rounding)."""
        acc = getattr(self, "_nclock", None)
        if acc is None or len(acc) <= k:
            n = max(k + 1, 2 * (0 if acc is None else len(acc)), 1024)
            half_ms = np.concatenate([[0.0], np.cumsum(np.full(2 * n, 0.5 * (self.dt * 1e3)))])
            acc = self._nclock = half_ms[::2] * 1e-3
        return float(acc[k])

    def event_times(self, ticks: np.ndarray) -> np.ndarray:
        """The time the conditions of event phase ``ticks`` were tested with (what events are
        stamped with): (tick + 1)·dt, or jLEMS's accumulated clock with --method euler."""
        ticks = np.asarray(ticks, dtype=np.int64)
        if not self.accumulated_time:
            return ticks * self.dt + self.dt
        need = int(ticks.max()) + 2 if ticks.size else 1
        acc = getattr(self, "_clock", None)
        if acc is None or len(acc) < need:
            # t += dt from 0, as np.add.accumulate adds: one after another
            n = max(need, 2 * (0 if acc is None else len(acc)))
            acc = self._clock = np.concatenate([[0.0], np.cumsum(np.full(n, self.dt))])
        return acc[ticks + 1]

    def _noise_sources(self, seed):
        """(array, streams) of every white-noise term (``xi`` in a TimeDerivative): each step
        the engine fills the array with N(0, 1)/sqrt(dt), so that the explicit step's dt·xi is
        a Wiener increment — Euler–Maruyama with ``euler``, its exponential variant with
        ``exp_euler`` (the noise scaled by the same factor as the drift: the Ornstein–Uhlenbeck
        variance within 0.1 % for dt up to a tenth of tau). Each instance has a stream per
        term, keyed like its random() draws (compile/streams.py) but apart from them; drawn in
        Python on both backends: the same numbers either way, whatever the partition."""
        out = []
        for g in self.built.groups:
            if not getattr(g, "noise", None):
                continue
            if self.method not in ("euler", "exp_euler"):
                from ..errors import UnsupportedFeature
                raise UnsupportedFeature(f"white noise (xi) in '{g.name}' is integrated by Euler–Maruyama: use "
                                         f"--method euler or exp_euler, not {self.method}")
            ids = self.program.streams_for(g.gid).state
            for key in g.noise:
                st = Streams(ids ^ identities("xi:" + key, np.zeros(1))[0], self.program.stream_seed)
                out.append((self.V[self.program.py(g.gid, key)], st))
        return out

    def _draw_noise(self):
        scale = 1.0 / np.sqrt(self.dt)
        for arr, st in self.noise:
            st.count += 1
            arr[...] = normal(st.state, st.count) * scale

    def shown_key(self, g, key: str) -> str:
        """What a recorder of ``key`` reads: the key itself, or with ``--method euler`` the value
        jLEMS records for it (a state a regime moves: its exposure, a step behind)."""
        if self.method != "euler":
            return key
        return getattr(g, "jlems_shown", {}).get(key, key)

    def _neuron_watch(self, fn):
        """A condition handler tested with NEURON's clock, for ``WATCH (t > time)``.

        NEURON advances ``t`` by dt/2 twice a step (in ms), so after step k it is not k·dt
        but that sum with its rounding (61.00000000000531 after 2440 steps of 0.025 ms);
        WATCH compares it strictly.  The handler gets that time (in s, nudged below by 1e-15
        relative so that an exact tie stays false)."""
        dt = self.dt
        h = round(dt * 1000.0, 12) * 0.5  # NEURON's dt/2 in ms, as jNeuroML writes the step
        cache = {"t": np.zeros(1)}

        def clock(k: int) -> float:
            tn = cache["t"]
            if k >= len(tn):
                n = max(2 * len(tn), k + 1)
                halves = np.empty(2 * n - 1)
                halves[0] = 0.0
                halves[1:] = h
                tn = cache["t"] = np.cumsum(halves)[::2]  # sequential sums, as NEURON's t += dt/2
            return float(tn[k])

        lead = 0.5 * dt

        def handler(V, t, m):
            k = int(round((t - lead) / dt))
            return fn(V, clock(k) * 1e-3 * (1.0 - 1e-15), m)
        return handler

    def _density_domains(self) -> Dict[Tuple[int, str], np.ndarray]:
        """(gid, key) -> the instances where that value of a multi-compartment cell matters.

        A channel density lowered onto every compartment is zero outside its segment group;
        its channel (gates, rates, states) need not be computed there — NEURON does not
        insert the mechanism there.  The numba backend loops over these instances only; the
        values elsewhere stay as initialised (the density's conductance 0)."""
        out = {}
        built = self.built
        done = set()
        for pid, lay in built.layouts.items():
            g = built.pop_groups[pid]
            if g.gid in done:
                continue  # populations sharing a group share its domains
            done.add(g.gid)
            ncells = g.n // lay.ncomp
            prefixes = []
            for node in g.nodes:
                vals = lay.values.get(id(node.comp), {})
                dens = vals.get("condDensity", vals.get("permeability"))
                if dens is None:
                    continue
                on = np.flatnonzero(np.tile(np.asarray(dens) != 0.0, ncells))
                if len(on) < g.n:
                    prefixes.append((node.prefix, on))
            if not prefixes:
                continue
            prefixes.sort(key=lambda x: -len(x[0]))
            keys = list(g.derived) + list(g.state)
            for key in keys:
                for pre, on in prefixes:
                    if key.startswith(pre + "/"):
                        out[(g.gid, key)] = on
                        break
        return out

    def _point_voltages(self) -> set:
        """The membrane potentials of abstract point cells under NEURON's step: jNeuroML's export
        makes ``v`` the voltage of a section the cell's mod drives with a current ``i = -C·dv/dt``
        (and the attached mechanisms with theirs), which NEURON moves by its linearised backward
        Euler (di/dv taken at v). Where v is the cell's only state the current is computed from v
        (di/dv its slope); otherwise it is the rate the last state update stored
        (:func:`~nmlsim.compile.integrators.stored_point_rates`: di/dv only the attachments')."""
        rate_keys = set(self.program.rate_keys)
        return {(g.gid, "v") for shape in self._point_shapes for g in shape
                if (g.gid, "v") in rate_keys and (g.gid, "v") not in self.program.implicit}

    def _neuron_state_roles(self, specs) -> Tuple[List[str], List[Tuple[int, str]]]:
        """(lagged V names, early state keys) of NEURON's step with jNeuroML's mod files.

        Lagged: a generated channel (or synapse) mod computes its gates' conductance factors
        (and a synapse its current) in ``rates()``, called from the state update *before* the
        states move; the next step's currents use those stored values.  So during a step the
        currents see the states of one update earlier, and during the first step the value
        INITIAL left there, computed with every state still 0.

        Early: a concentration model's ``rates()`` uses ``ica`` from this step's currents
        (those of the lagged states, at the old voltage), so its states move with the
        voltage's f and B, not after the solve; its ``cai`` is read fresh, never lagged.
        Only the cells whose voltage the implicit phase solves (and what is attached to
        them) take these roles.
        """
        prog = self.program
        # (abstract point cells' mods and their synapses' are the same kind of mod: their states
        # lag as well; v itself and the stored rate v_I are what the step moves and reads)
        cable_gids = {c.gid for c in specs} | {g.gid for shape in self._point_shapes for g in shape}
        model = self.built.net.model
        lagged, early = [], []
        rate_keys = set(prog.rate_keys)
        # kinetic schemes are not lagged: NEURON's sparse solver evaluates the KINETIC block
        # (and the rates() that computes fcond in it) again after its solve, to test
        # convergence, so BREAKPOINT sees the updated occupancies
        kinetic = {(g.gid, st) for g in self.built.groups for k in g.kinetic_init for st in k.states}
        for g in self.built.groups:
            host = g
            while host is not None and host.gid not in cable_gids:
                host = host.parent.group if host.parent is not None else None
            if host is None:
                continue
            for node in g.nodes:
                if node.ct.dynamics is None or not node.ct.dynamics.state:
                    continue
                conc = model.is_a(node.tname, "concentrationModel")
                for sname in node.ct.dynamics.state:
                    k = (g.gid, node.key(sname))
                    if k in prog.implicit or k not in rate_keys or k in kinetic or (g.gid, "v") == k:
                        continue
                    if conc:
                        early.append(k)
                    else:
                        lagged.append(prog.py(*k))
        return lagged, early

    def _prepare(self, observe):
        """The backend's primitives (backends/): derived values, the update, the rates."""
        p = self._backend.prepare(self, observe)
        self.kernels = p.kernels
        self.derived, self.derived_after, self.integrate = p.derived, p.derived_after, p.update

    def loop_spec(self):
        """The event structure as plain data, for a compiled event phase (backends/numba/loop.py);
        None where the run needs phases a compiled loop does not have (an implicit phase, NEURON's
        halves, kinetic schemes moved by the engine, white noise, jLEMS's early events, MPI)."""
        from ..backends.numba.loop import LoopSpec
        prog = self.program
        if (prog.implicit or self.method == "neuron" or getattr(prog, "solved_apart", None) or self.noise
                or self.early_routes or self.late_routes or self.exchange is not None):
            return None
        entry = defaultdict(list)
        for g, h, _ in prog.handlers:
            if h.kind == "entry":
                entry[(g.gid, h.regime[0], h.regime[1])].append((g, h))
        groups = {g.gid: g for g in self.built.groups}
        groups.update({src.gid: src for src in self.built.sources.values()})
        return LoopSpec(
            cond_handlers=[(g, h) for g, h, _ in self.cond_handlers if getattr(h, "early_of", None) is None],
            event_handlers={k: [(g, h) for g, h, _ in v] for k, v in self.event_handlers.items()},
            entry_handlers=dict(entry), internal=dict(self.internal), routes=dict(self.routes),
            sources=[(src, steps, src.ids) for src, steps, _ in self.sources],
            merged_handlers={gid: [h for h, _ in lst] for gid, lst in prog.event_fns.items()},
            groups=groups, ring_len=self.ring_len, jlems_clock=self.accumulated_time)

    # --------------------------------------------------------- events
    def _setup_events(self):
        prog = self.program
        self.cond_handlers = []
        self.event_handlers = defaultdict(list)  # (gid, node prefix, port) -> [(h, fname)]
        self.entry_handlers = defaultdict(list)  # (gid, regime key, idx) -> [fname]
        self.start_handlers = []
        model = self.built.net.model
        for g, h, fname in prog.handlers:
            fn = self.numpy.handler_fns[fname]
            if h.kind == "condition":
                if (self.method == "neuron" and model.is_a(h.node.tname, "spike") and h.node.parent is not None
                        and model.is_a(h.node.parent.tname, "spikeArray")):
                    # jNeuroML's NEURON export makes a spikeArray's spike a WATCH (t > time),
                    # tested with the step's end time as NEURON accumulates it, not the
                    # mid-step time of the currents (a timedSynapticInput's spikes become
                    # NetStims: exact times, as for every other condition)
                    fn = self._neuron_watch(fn)
                self.cond_handlers.append((g, h, fn))
            elif h.kind == "event":
                self.event_handlers[(g.gid, h.node.prefix, h.port)].append((g, h, fn))
            elif h.kind == "entry":
                self.entry_handlers[(g.gid, h.regime[0], h.regime[1])].append(fn)
            elif h.kind == "start":
                self.start_handlers.append((g, h, fn))
        if self.method == "neuron":
            # NEURON has every ion's concentrations (cai0, cao0) before any INITIAL block runs:
            # concentration models start first, so that a calcium-dependent gate starts at its
            # steady state for them (in tree order it would see 0)
            self.start_handlers.sort(key=lambda x: not model.is_a(x[1].node.tname, "concentrationModel"))
        self.internal = defaultdict(list)  # (gid, prefix, port) -> [(dst prefix, dst port)]
        for g in self.built.groups:
            for src, sport, dst, dport in g.internal:
                self.internal[(g.gid, src.prefix, sport)].append((dst.prefix, dport))
        self.routes = defaultdict(list)
        self._route_order = {}  # id(route record) -> its place among the routes
        #: --method euler: the zero-delay connections to receivers further on in jLEMS's walk,
        #: served by the senders' early handlers (jlems_order._early_handlers) before the step
        self.early_routes = defaultdict(list)
        early_ports = {(g.gid, o) for g, h, _ in self.cond_handlers if getattr(h, "early_of", None) is not None
                       for o in h.event_outs}
        #: --method euler: zero-delay connections from a sender whose condition reads t (a spike
        #: generator, a spike array): the event phase after step k tests it with step k+1's clock,
        #: as jLEMS does in step k+1, whose receivers then take the event at once — those later in
        #: jLEMS's walk before they advance (the engine: before step k+1, after row k is recorded),
        #: those earlier after (the engine: before step k+2; jLEMS shows it in no row before).
        #: (route record, steps) per port, scheduled in the delay ring
        self.late_routes = defaultdict(list)
        clock_ports = set()
        if self.accumulated_time:
            emitters = defaultdict(list)
            for g, h, _ in self.cond_handlers:
                for o in h.event_outs:
                    for key in self.root_ports(g.gid, h.node.prefix, o):
                        emitters[key].append(tests_clock(h))
            clock_ports = {k for k, v in emitters.items() if all(v)}
        walk = []

        def walk_first(r, a, b) -> np.ndarray:
            """Per connection of route ``r``: whether end ``a`` ("src" or "dst") comes before end
            ``b`` in jLEMS's walk."""
            if not walk:
                from ..compile.jlems_order import walk_before
                walk.append(walk_before(self.built.groups))
            ends = {"src": (r.src, r.pre_idx), "dst": (r.dst, r.dst_idx)}
            (ga, ia), (gb, ib) = ends[a], ends[b]
            return np.array([walk[0](ga, p, "", gb, q, "") for p, q in zip(ia, ib)], dtype=bool)
        maxd = 0

        def record(r, delays, keep):
            pre, dst, delays = r.pre_idx[keep], r.dst_idx[keep], delays[keep]
            steps = np.rint(delays / self.dt).astype(np.int64)
            order = np.argsort(pre, kind="stable")
            indptr = np.zeros(r.src.n + 1, dtype=np.int64)
            np.add.at(indptr, pre + 1, 1)
            indptr = np.cumsum(indptr)
            w = r.weight[keep][order] if r.weight is not None else np.ones(len(order))
            return dict(route=r, indptr=indptr, dst=dst[order], steps=steps[order], w=w, delay_s=delays[order],
                        any_delay=bool(np.any(steps > 0)),
                        merged=self.numpy.merged_event_fns.get(r.dst.gid) if r.dst.merged else None)
        for r in self.built.routes:
            delays = np.broadcast_to(np.asarray(r.delay_s, dtype=float), r.pre_idx.shape)
            early = np.zeros(len(r.pre_idx), dtype=bool)
            if (r.src.gid, r.port) in early_ports:
                early = (np.rint(delays / self.dt) == 0) & walk_first(r, "src", "dst")
            late = np.zeros(len(r.pre_idx), dtype=bool)
            if (r.src.gid, r.port) in clock_ports:
                late = np.rint(delays / self.dt) == 0
                earlier = late & walk_first(r, "dst", "src")
                for sel, steps in ((late & ~earlier, 1), (earlier, 2)):
                    if sel.any():
                        self.late_routes[(r.src.gid, r.port)].append((record(r, delays, sel), steps))
                maxd = max(maxd, 2)
            rec = record(r, delays, ~early & ~late)
            maxd = max(maxd, int(rec["steps"].max()) if len(rec["steps"]) else 0)
            self.routes[(r.src.gid, r.port)].append(rec)
            self._route_order[id(rec)] = len(self._route_order)
            if early.any():
                self.early_routes[(r.src.gid, r.port)].append(record(r, delays, early))
        self.ring_len = maxd + (3 if self.accumulated_time else 1)  # (jLEMS: a step later by its clock, one more after a clock test)
        self.ring = [defaultdict(list) for _ in range(self.ring_len)]
        # spike sources: emission step of each spike and a cursor. ceil(t/dt): the first step
        # boundary at or after the spike (NEST's rule; a small tolerance keeps times on the grid
        # on their own step). With --method neuron the nearest boundary, ties to the earlier:
        # NEURON's fixed step delivers, at the start of a step from t, the events due by
        # t + dt/2 (bmtk's VecStims are such events)
        half = 0.5 if self.method == "neuron" else 0.0
        self.sources = []
        for src in self.built.sources.values():
            steps = np.ceil(src.times / self.dt - half - 1e-6).astype(np.int64)
            self.sources.append([src, np.maximum(steps, 0), 0])

    def root_ports(self, gid: int, prefix: str, port: str) -> set:
        """The group's own (root) ports an event of node ``prefix``'s ``port`` reaches, itself
        included, through relays and OnEvent handlers (a spikeArray's spike children send to its
        ``in``, whose handler sends ``spike``): ``{(gid, port)}``."""
        out, todo, seen = set(), [(prefix, port)], set()
        while todo:
            pp = todo.pop()
            if pp in seen:
                continue
            seen.add(pp)
            if not pp[0]:
                out.add((gid, pp[1]))
            todo += list(self.internal.get((gid, pp[0], pp[1]), ()))
            for _, h, _ in self.event_handlers.get((gid, pp[0], pp[1]), ()):
                todo += [(h.node.prefix, o) for o in h.event_outs]
        return out

    def _process_events(self, queue: list, t: float):
        guard = 0
        while queue:
            guard += 1
            if guard > 100000:
                raise SimulationError("events keep triggering events (an event loop in the model?)")
            g, prefix, port, mask, lag = queue.pop(0)
            # handlers on the node that owns the port (an incoming event)
            for gg, h, fn in self.event_handlers.get((g.gid, prefix, port), ()):
                m = fn(self.V, t, mask.copy())
                if m is not None:
                    for out in h.event_outs:
                        queue.append((g, h.node.prefix, out, m, lag))
            for dprefix, dport in self.internal.get((g.gid, prefix, port), ()):
                queue.append((g, dprefix, dport, mask, lag))
            if prefix == "":
                for cb in self.event_listeners.get((g.gid, port), ()):
                    cb(mask, t)
                for cb in self.exports.get((g.gid, port), ()):
                    cb(mask, lag)
                for rec in self.routes.get((g.gid, port), ()):
                    self._route(rec, mask, queue, t, lag)
                for rec, steps in self.late_routes.get((g.gid, port), ()):
                    self._schedule(rec, mask, steps)

    def _route(self, rec, mask, queue, t, lag: int = 0):
        """Deliver or schedule the events of senders ``mask`` along one route; ``lag``: steps
        added to delayed ones (see ``_clock_tests``)."""
        sel = _connections(rec, mask)
        if not len(sel):
            return
        if rec["any_delay"]:
            steps = rec["steps"][sel]
            now = steps == 0
            if self.accumulated_time:
                steps = steps.copy()
                ds = rec["delay_s"][sel]
                for d in np.unique(ds[~now]):
                    at = ds == d
                    steps[at] = self._jlems_steps(t, float(d), int(steps[at][0]))
            for d in np.unique(steps[~now]):
                slot = self.ring[(self.step_index + int(d) + lag) % self.ring_len]
                slot[id(rec)].append((rec, sel[steps == d]))
            sel = sel[now]
        if len(sel):
            self._deliver(rec, sel, queue)

    def _schedule(self, rec, mask, steps: int) -> None:
        """The events of senders ``mask`` along one route, due ``steps`` steps on (Simulator.late_routes)."""
        sel = _connections(rec, mask)
        if len(sel):
            self.ring[(self.step_index + steps) % self.ring_len][id(rec)].append((rec, sel))

    def _jlems_steps(self, t: float, delay: float, steps: int) -> int:
        """Steps until jLEMS delivers an event sent at clock ``t`` with ``delay``: its
        EventManager hands it over at the first step whose clock (t += dt) reaches t + delay,
        which rounding puts one step before or after ``steps`` = round(delay/dt) at times."""
        due = t + delay
        prev = a = t
        for _ in range(steps):
            prev, a = a, a + self.dt
        if prev >= due:
            return max(steps - 1, 1)
        return steps + 1 if a < due else steps

    def _deliver(self, rec, sel, queue):
        """Deliver the events of connections ``sel`` of one route."""
        r = rec["route"]
        dst_idx = rec["dst"][sel]
        if rec["merged"] is not None:
            w = rec["w"][sel]
            for fn in rec["merged"]:
                fn(self.V, self.t, dst_idx, w)
            return
        # an instance may receive several events in one step: deliver in rounds
        self._queue_in_rounds(r.dst, r.dst_port, dst_idx, queue)

    def _queue_in_rounds(self, g, port, idx, queue):
        """Queue events of port ``port`` for instances ``idx`` of ``g`` as masks; an instance
        listed k times gets k rounds, the queue being processed between rounds."""
        while len(idx):
            uniq, first = np.unique(idx, return_index=True)
            m = np.zeros(g.n, dtype=bool)
            m[uniq] = True
            queue.append((g, "", port, m, 0))
            if len(uniq) == len(idx):
                return
            keep = np.ones(len(idx), dtype=bool)
            keep[first] = False
            idx = idx[keep]
            self._process_events(queue, self.t)

    # ----------------------------------------------------------- init
    def initialize(self):
        prog = self.program
        V = self.V
        prog.reset_streams()  # (a run draws the same numbers however often the simulator ran)
        for _, st in self.noise:
            st.reset()
        # --method neuron: the first step's currents see the gates at 0 (jNeuroML's INITIAL
        # computes the conductances before setting the gates) — again on every run
        for a in getattr(self, "lag", {}).values():
            a[...] = 0.0
        slots = [(prog.py(g.gid, slot), prog.py(g.gid, src), prog.literals.get((g.gid, src)))
                 for g in self.built.groups for slot, src in getattr(g, "jlems_euler", (0, ()))[1]
                 ] if self.method == "euler" else []

        started = [V[prog.py(g.gid, STARTED)] for g in self.built.groups
                   if STARTED in g.state] if self.method == "euler" else []
        for a in started:  # no step taken yet: updated-state reads see the states themselves
            a[...] = 0.0

        def derived():
            self.derived(V, 0.0)
            if slots:  # jLEMS's copies and past values hold the initial values throughout
                for slot, src, lit in slots:
                    V[slot][...] = V[src] if lit is None else lit
                self.derived(V, 0.0)
        with np.errstate(all="ignore"):
            for g in self.built.groups:
                for rkey, (node, names, initial) in g.regimes.items():
                    V[prog.py(g.gid, rkey)][:] = float(initial)
            # jLEMS runs each OnStart again once its parents' and children's have run (a gate's
            # q = inf of a calcium concentration its pool sets at start): --method euler does too
            for _ in range(2 if self.method == "euler" else 1):
                for g, h, fn in self.start_handlers:
                    derived()
                    fn(V, 0.0, None)
            derived()
            self._init_kinetic()
            derived()
            if self._stale:  # INITIAL calls rates() twice: the stale reads start right
                self._refresh_stale()
                self.derived(V, 0.0)
            if self.cable is not None:
                self.cable.reset(V)
            if self._point_shapes[1]:
                self._initial_stored_rates()
            solved = [g for shape in self._point_shapes for g in shape if SOLVED_V in g.state]
            for g in solved:  # (the synapses' reads of it: derived again)
                V[prog.py(g.gid, SOLVED_V)][...] = V[prog.py(g.gid, "v")]
            if solved:
                self.derived(V, 0.0)
        for a in started:
            a[...] = 1.0

    def _initial_stored_rates(self):
        """v_I as the INITIAL block of jNeuroML's mod leaves it (``rates()`` before the flag-1
        event sets the cell's initial v): v at NEURON's default v_init, -65 mV, a state s at the
        parameter s0 where the cell has one (NEURON's default initial value of a STATE), and every
        other state, every assigned value and every regime flag still 0 (a regime's rate of v reads 0; the
        channels' BREAKPOINT values too). The gates' stored values start at 0 as well; the
        channels' BREAKPOINT values count from the first step."""
        prog, V = self.program, self.V
        cells = self._point_shapes[1]
        for g in cells:
            for k in g.state:
                if k.endswith("__nrn_stored") or k == BREAKPOINT_DONE:
                    V[prog.py(g.gid, k)][...] = 0.0
        names = [prog.py(g.gid, k) for g in cells for k in list(g.state)
                 if k != STORED_RATE and not k.endswith("__nrn_stored") and k != BREAKPOINT_DONE]
        regimes = [prog.py(g.gid, r) for g in cells for r in g.regimes]
        saved = {nm: np.array(V[nm], dtype=float, copy=True) for nm in names + regimes}
        for nm in names:
            V[nm][...] = 0.0
        for g in cells:  # (NEURON starts a STATE s at the PARAMETER s0 where the mod has one)
            for k in g.state:
                p = k + "0"
                if "/" in k or k == "v" or not (p in g.params or p in g.per_instance):
                    continue
                lit = prog.literals.get((g.gid, p))
                V[prog.py(g.gid, k)][...] = lit if lit is not None else V[prog.py(g.gid, p)]
        for nm in regimes:
            V[nm][...] = -1.0  # no regime
        for g in cells:
            V[prog.py(g.gid, "v")][...] = NEURON_V_INIT
        self.derived(V, 0.0)
        own = [np.array(V[prog.py(g.gid, OWN_RATE)], dtype=float, copy=True) for g in cells]
        for nm, x in saved.items():
            V[nm][...] = x
        for g, x in zip(cells, own):
            V[prog.py(g.gid, STORED_RATE)][...] = x
            if BREAKPOINT_DONE in g.state:
                V[prog.py(g.gid, BREAKPOINT_DONE)][...] = 1.0
        self.derived(V, 0.0)

    def _stale_copies(self):
        """(parent value, its copy) V names of jNeuroML's stale reads (stale_ancestor_reads)."""
        prog, out = self.program, []
        for g in self.built.groups:
            for p, copy in getattr(g, "stale_reads", ()):
                lit = prog.literals.get((g.gid, p))
                if lit is not None:  # a constant: never stale
                    self.V[prog.py(g.gid, copy)][...] = lit
                    continue
                out.append((prog.py(g.gid, p), prog.py(g.gid, copy)))
        return out

    def _refresh_stale(self):
        """The copies take their parents' current values. By name: a NumPy one-instance group's
        derived values are Python floats, rebound each pass; the numba backend may alias arrays."""
        V = self.V
        for a, b in self._stale:
            V[b][...] = V[a]

    def _init_kinetic(self):
        """Start every kinetic scheme with all occupancy in its first state, as jLEMS does;
        with ``--method neuron`` at its steady state for the initial voltage, as NEURON's
        ``SOLVE ... STEADYSTATE sparse`` in the INITIAL block of jNeuroML's mod files."""
        prog = self.program
        V = self.V
        for g in self.built.groups:
            for k in g.kinetic_init:
                if self.method == "neuron":
                    self._kinetic_steady_state(g, k)
                    continue
                for i, s in enumerate(k.states):
                    V[prog.py(g.gid, s)][:] = 1.0 if i == 0 else 0.0

    def _kinetic_matrix(self, g, states, pairs):
        """Q (instances × states × states) with dq/dt = Q q at the current rates."""
        prog = self.program
        m, n = len(states), g.n
        idx = {s: i for i, s in enumerate(states)}
        Q = np.zeros((n, m, m))
        for a, b, rf, rr in pairs:
            kf = np.broadcast_to(np.asarray(prog.value(g.gid, rf), dtype=float), (n,))
            kr = np.broadcast_to(np.asarray(prog.value(g.gid, rr), dtype=float), (n,))
            i, j = idx[a], idx[b]
            Q[:, i, i] -= kf
            Q[:, j, i] += kf
            Q[:, j, j] -= kr
            Q[:, i, j] += kr
        return Q

    def _kinetic_backward_euler(self, ks):
        """``step(V)``: every kinetic scheme by one backward-Euler step with the rates of the new
        voltage, (I - dt Q) q' = q — NEURON's ``sparse`` method (occupancy is conserved)."""
        if not ks:
            return None
        prog, dt = self.program, self.dt
        parts = [(g, states, pairs, [prog.py(g.gid, st) for st in states], np.eye(len(states))[None, :, :])
                 for g, states, pairs in ks]

        def step(V):
            for g, states, pairs, names, eye in parts:
                A = -dt * self._kinetic_matrix(g, states, pairs)
                A += eye
                q = np.stack([np.broadcast_to(V[nm], (g.n,)) for nm in names], axis=1)
                q = np.linalg.solve(A, q[..., None])[..., 0]
                for i, nm in enumerate(names):
                    V[nm][...] = q[:, i]
        return step

    def _kinetic_exponential(self, ks):
        """``step(V)``: every kinetic scheme by q' = exp(dt Q) q with the rates of the step —
        jLEMS's ``KScheme.advance`` (its ``Matrix.expOf`` is this exponential to rounding)."""
        from scipy.linalg import expm
        prog, dt = self.program, self.dt
        parts = [(g, states, pairs, [prog.py(g.gid, st) for st in states]) for g, states, pairs in ks]

        def step(V):
            for g, states, pairs, names in parts:
                A = dt * self._kinetic_matrix(g, states, pairs)
                q = np.stack([np.broadcast_to(V[nm], (g.n,)) for nm in names], axis=1)
                if np.abs(A).sum(axis=2).max() <= 0.5:
                    # the series on the vector: a few products where a full exponential costs
                    # a Padé approximant per step (|A| <= 1/2: 20 terms are exact to rounding)
                    term, out = q, q.copy()
                    for j in range(1, 21):
                        term = np.einsum("nij,nj->ni", A, term) / j
                        out += term
                        if np.abs(term).max() <= 1e-18 * np.abs(out).max():
                            break
                    q = out
                else:
                    q = np.einsum("nij,nj->ni", expm(A), q)
                for i, nm in enumerate(names):
                    V[nm][...] = q[:, i]
        return step

    def _kinetic_steady_state(self, g, k):
        """Occupancies from the balance equations at the current rates, one of them replaced by
        the conservation of occupancy; or from the system a mod file's INITIAL block states
        (``k.initial``: NEURON solves what the file says, also where it is not the steady state)."""
        prog, V = self.program, self.V
        states = k.states
        m, n = len(states), g.n
        Q = self._kinetic_matrix(g, states, k.pairs)  # dq/dt = Q q, per instance
        row = 0
        if k.initial is not None:
            idx = {s: i for i, s in enumerate(states)}
            row = idx[k.initial.replaced]
            for to, frm, rate in k.initial.inflows:
                Q[:, idx[to], idx[frm]] = np.broadcast_to(np.asarray(prog.value(g.gid, rate), dtype=float), (n,))
        Q[:, row, :] = 1.0  # one equation replaced by the conservation of occupancy
        rhs = np.zeros((n, m))
        rhs[:, row] = 1.0
        try:
            q = np.linalg.solve(Q, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:
            # instance by instance: a scheme with unreachable states (or one the numba backend
            # does not compute on this compartment, outside its density's group: its rates are
            # 0) starts as jLEMS starts it, all in the first state; the others at steady state
            q = np.zeros((n, m))
            q[:, 0] = 1.0
            for k in range(n):
                try:
                    q[k] = np.linalg.solve(Q[k], rhs[k])
                except np.linalg.LinAlgError:
                    pass
        for i, st in enumerate(states):
            V[prog.py(g.gid, st)][:] = q[:, i]

    # ------------------------------------------------------------ run
    def run(self, duration: float, recorders: List[Recorder] = (), progress: Optional[Callable] = None,
            check_every: int = 1000):
        nsteps = self.run_length = int(round(duration / self.dt))
        if self._backend.stale(self, recorders):  # (a recorder reads what was compiled away)
            self.observe = None
            self._prepare(None)
        self.initialize()
        for r in recorders:
            r.initialize(self, nsteps)
        complete = False
        old_handlers = {}
        # SIGTERM ends the run like Ctrl-C; an MPI rank instead tells the others at the next
        # exchange, so that every rank stops at the same step (engine/exchange.py)
        stop = _raise_interrupt if self.exchange is None else self.exchange.request_stop
        try:
            for sig in (signal.SIGTERM,) if self.exchange is None else (signal.SIGTERM, signal.SIGINT):
                prev = signal.getsignal(sig)
                signal.signal(sig, stop)
                old_handlers[sig] = prev
        except ValueError:  # not in the main thread
            pass
        failed = False
        try:
            with np.errstate(all="ignore"):
                runner = self._backend.loop(self, recorders, check_every) if self._blockwise(recorders) else None
                if runner is not None and runner.whole:
                    self._run_compiled(runner, nsteps, progress, check_every)
                else:
                    self._run_python(nsteps, recorders, progress, check_every, phases=runner)
                if check_every:  # runs shorter than check_every steps are checked too
                    self.check_finite(nsteps * self.dt)
            complete = True
        except KeyboardInterrupt:
            self.interrupted = True
        except BaseException:
            # an MPI rank that fails ends every rank (nmlsim/parallel.py): no gathering of
            # outputs the others are not at
            failed = self.exchange is not None
            raise
        finally:
            for sig, h in old_handlers.items():
                try:
                    signal.signal(sig, h if h is not None else signal.SIG_DFL)
                except ValueError:
                    pass
            if not failed:
                with _signals_held() as arrived:
                    for r in recorders:
                        r.finalize(self, complete)
                    if complete and ON_OUTPUTS_COMPLETE is not None:
                        ON_OUTPUTS_COMPLETE()  # (before a Ctrl-C held off meanwhile can land)
                # a Ctrl-C while a finished run's outputs were written comes too late to stop it
                self.interrupted |= bool(arrived) and not complete
        if self.interrupted:
            raise KeyboardInterrupt
        return complete

    def _run_python(self, nsteps, recorders, progress, check_every, phases=None):
        """The run stepped phase by phase in the order of the schedule (compile/schedule.py).
        ``phases``: who runs the event parts — the engine (default) or the compiled kernels'
        event functions (numba's LoopRun, for kernels too big to compile into one loop); a fully
        compiled loop renders the same schedule (backends/numba/loop.py)."""
        phases = phases or _EnginePhases(self)
        run_start(self._start_ops(phases))
        try:
            run_steps(self._step_ops(nsteps, recorders, progress, check_every, phases), nsteps)
        finally:
            phases.finish()

    def _start_ops(self, phases) -> dict:
        """The primitives of the schedule's START: derived values, the event phase once (jLEMS
        tests conditions with the end time of the step about to be taken; NEURON evaluates its
        currents, a pulse's on/off test, in the middle of that step), the exchange."""
        V, exchange = self.V, self.exchange

        def derived(k):
            if exchange is not None:  # (nothing pending; coupled cells on other ranks: their v first)
                exchange.reset()
                exchange.couple()
            self.derived(V, 0.0)
        return {"derived": derived, "events": lambda k: phases.start(self.event_lead),
                "exchange": None if exchange is None else lambda k: exchange.step(0, self.event_lead)}

    def _step_ops(self, nsteps, recorders, progress, check_every, phases) -> dict:
        """The primitives of one step of the schedule (compile/schedule.py), None for the phases
        this run has nothing to do in."""
        V, dt, lead = self.V, self.dt, self.event_lead
        derived_now, integrate, exchange = self.derived_now, self.integrate, self.exchange
        watch = self._watch
        if exchange is not None:  # the WATCH phase exchanges too when any rank has one (they call it in step)
            watch_any = exchange.comm.allreduce(int(bool(watch))) > 0
        else:
            watch_any = bool(watch)
        accumulated = self.accumulated_time
        clock = lead  # the time the coming conditions are tested with

        def derived(k):
            self.step_index = k
            t = self.t = k * dt
            derived_now(V, t)

        def record(k):
            t = k * dt
            for r in recorders:
                r.sample(self, k, t)

        def watch_phase(k):
            t = k * dt
            acted = bool(watch) and self._event_phase(k, t + lead, only=watch)
            if exchange is not None:
                acted = exchange.step(k, t + lead) or acted
            return acted

        def advance_clock(k):
            nonlocal clock
            clock = clock + dt if accumulated else (k + 1) * dt + lead

        def exchange_phase(k):
            exchange.step(k + 1, clock)
            exchange.couple()

        def check(k):
            if (k + 1) % check_every == 0:
                self.check_finite((k + 1) * dt)
                if progress:
                    progress(k + 1, nsteps)
        return {
            "noise": (lambda k: self._draw_noise()) if self.noise else None,
            "derived": derived,
            # (after a phase that acted: the derived values again, the event time it set kept
            # for the phases after it: jLEMS's delayed events handed over stamp with their clock)
            "refresh": lambda k: derived_now(V, k * dt),
            "record": record if recorders else None,
            "last": lambda k: k == nsteps,
            "watch": watch_phase if watch_any else None,
            "drain": phases.drain,
            "due": (lambda k: phases.due(k + 1, clock + dt)) if accumulated and phases.due is not None else None,
            "early": (lambda k: self._send_early(clock)) if self._early else None,
            "update": lambda k: integrate(V, k * dt),
            "clock": advance_clock,
            "events": lambda k: phases.events(k + 1, clock),
            "exchange": exchange_phase if exchange is not None else None,
            "check": check if check_every else None,
        }

    def _blockwise(self, recorders) -> bool:
        """Whether every recorder and event listener takes its data in blocks (a compiled loop
        hands them over between chunks)."""
        if any(type(r).sample is not Recorder.sample and not hasattr(r, "sample_block") for r in recorders):
            return False
        return all(hasattr(cb, "block") for cbs in self.event_listeners.values() for cb in cbs)

    def _run_compiled(self, run, nsteps, progress, check_every):
        """The whole schedule in compiled chunks (at most ``check_every`` steps each); recorders
        get their rows and events between chunks."""
        run_start(self._start_ops(run))
        e = 0
        while e <= nsteps:
            e_new = run.chunk(e, nsteps)
            self.step_index = e_new
            if progress and check_every and e_new // check_every > e // check_every and e_new <= nsteps:
                progress(e_new, nsteps)
            e = e_new
        run.finish()

    def _event_phase(self, k: int, t: float, only=None) -> bool:
        """Delayed events due now, OnCondition handlers, then every event they cause.
        ``only``: just these handlers (by id), nothing else (NEURON's WATCH tests, run after
        the row is recorded). True if a handler acted."""
        V = self.V
        self.t = t
        self.step_index = k
        queue = []
        if only is None:
            if not self.accumulated_time:  # (jLEMS's: before the step, by _deliver_due)
                self._deliver_slot(k, queue)
            for entry in self.sources:
                src, steps, cur = entry
                if cur < len(steps) and steps[cur] <= k:
                    end = int(np.searchsorted(steps, k, side="right"))
                    entry[2] = end
                    self._queue_in_rounds(src, src.port, src.ids[cur:end], queue)
        # jLEMS tests conditions on states after a step: none before the first; NEURON tests
        # its WATCH conditions on the states a step reached, and acts on them at the start of the
        # next step, after that state is recorded (Simulator._run_python)
        if only is not None:
            skip = ()
        elif k == 0 and self.accumulated_time:
            skip = self._state_tests
        elif 0 < k == self.run_length:  # (a test on t there would be jLEMS's step after the run's end)
            skip = self._watch | self._clock_tests
        else:
            skip = self._watch
        fired = False
        # NEURON tests WATCH conditions (and runs their actions) with its clock (t += dt/2 twice a
        # step) at the end of the step; time-only tests (pulses) keep the mid-step time
        t_state = self.neuron_clock(k) if only is not None else t
        for g, h, fn in self.cond_handlers:
            if id(h) in skip or (only is not None and id(h) not in only):
                continue
            if getattr(h, "early_of", None) is not None:
                continue  # (run by _send_early, once the derived values of these states are known)
            th = t_state if id(h) in self._watch else t
            m = fn(V, th, None)
            if m is not None:
                fired = True
                if h.transition is not None:
                    for efn in self.entry_handlers.get((g.gid, h.regime[0], h.transition), ()):
                        efn(V, th, m.copy())
                lag = 1 if id(h) in self._clock_tests else 0
                for out in h.event_outs:
                    queue.append((g, h.node.prefix, out, m, lag))
        if queue:
            self._process_events(queue, t)
        return fired

    def _deliver_slot(self, k: int, queue: list) -> bool:
        """Queue the delayed events due at step ``k``; True if there were any."""
        slot = self.ring[k % self.ring_len]
        if not slot:
            return False
        entries = list(slot.items())
        if self.exchange is not None:  # (routes in one order on every rank, whichever got events first)
            entries.sort(key=lambda e: self._route_order.get(e[0], 1 << 62))
        for _, items in entries:
            for rec, sel in items:
                self._deliver(rec, sel, queue)
        slot.clear()
        return True

    def _deliver_due(self, k: int, t: float) -> bool:
        """--method euler: the delayed events jLEMS's EventManager hands over at the start of
        the step to ``k`` (clock ``t``), before any instance advances; True if any."""
        queue = []
        if not self._deliver_slot(k, queue):
            return False
        self.t = t
        self._process_events(queue, t)
        return True

    def _send_early(self, t: float) -> bool:
        """--method euler: the events jLEMS sends in the coming step to receivers further on in its
        walk (which handle them before they advance): the senders' conditions tested on the states
        the step will produce. Called after the derived values of the step's start; True if any
        event went out (the derived values are then computed again)."""
        queue, sent = [], False
        for g, h, fn in self._early:
            m = fn(self.V, t, None)
            if m is None or not np.any(m):
                continue
            for out in h.event_outs:
                for rec in self.early_routes.get((g.gid, out), ()):
                    self._route(rec, np.broadcast_to(m, (g.n,)), queue, t)
                    sent = True
        if queue:
            self._process_events(queue, t)
        return sent

    def check_finite(self, t):
        prog = self.program
        for gid, key in prog.state_keys:
            arr = self.V[prog.py(gid, key)]
            if not np.all(np.isfinite(arr)):
                bad = int(np.nonzero(~np.isfinite(arr))[0][0])
                g = prog.by_gid[gid]
                where, idx = g.name, bad
                for pid, pg in self.built.pop_groups.items():  # name the population, not the fused group
                    o = self.built.pop_offset[pid]
                    if pg is g and o <= bad < o + self.built.net.populations[pid].size:
                        where, idx = pid, bad - o
                raise SimulationError(f"'{key}' of cell {idx} in '{where}' became {arr[bad]} at t = {t:.6g} s "
                                      f"(try a smaller --dt or another --method)")


#: called, with SIGINT and SIGTERM still held off, once a complete run's outputs are written:
#: the command line marks its work done there, so a Ctrl-C arriving afterwards cannot turn a
#: finished run into an interrupted one (cli._finished)
ON_OUTPUTS_COMPLETE: Optional[Callable[[], None]] = None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def _signals_held() -> Iterator[List[int]]:
    """SIGINT and SIGTERM held off while the outputs are written (arriving then, they would
    leave some files written and the rest not): yields the list of those that arrived."""
    arrived: List[int] = []
    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            prev = signal.getsignal(sig)
            signal.signal(sig, lambda signum, frame: arrived.append(signum))
            old[sig] = prev  # (only once it is ours to restore: a thread's raises above)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    try:
        yield arrived
    finally:
        for sig, h in old.items():
            signal.signal(sig, h if h is not None else signal.SIG_DFL)


def observed_by(recorders: Iterable[Recorder]) -> Optional[Set[Tuple[int, str]]]:
    """What ``recorders`` read between steps (for ``Simulator(observe=...)``); None: anything."""
    out: Set[Tuple[int, str]] = set()
    for r in recorders:
        x = r.reads()
        if x is None:
            return None
        out |= x
    return out
