"""The whole time loop compiled: the event phase of the engine generated as Numba code.

:class:`~nmlsim.backends.numba.kernels.NumbaKernels` compiles the derived variables and the
integration step; this module adds ``_events(ee, t, ...)`` — delayed deliveries due now,
spike-source replay, OnCondition handlers, then every event they cause (routes with their
delays, merged-synapse increments, OnEvent handlers, EventConnections inside a component)
— and ``_run(e0, e1, ...)``, which steps ``e0 .. e1-1`` without returning to Python:
derived, trace sample, integrate, event phase, a finiteness check every ``check`` steps.

It is the same schedule as :mod:`nmlsim.engine.simulator` (whose docstring states it),
generated from the same handlers and routes:

* events are processed per instance instead of per mask; instances only touch their own
  variables, so the order inside one handler does not matter;
* delayed events wait in per-route rings indexed by step: a merged (linear) synapse's ring
  holds the summed increments per host cell, any other synapse's ring an event count per
  instance; events for per-connection synapses wait in an inbox until every OnCondition
  handler has run, as the engine's queue does;
* random numbers come from each instance's own counter-based stream (compile/streams.py),
  computed here by the same function as in the engine, so spike trains equal the NumPy
  backend's;
* events that listeners (spike and event recorders) asked for go to a buffer the engine
  drains between chunks.

What it cannot generate (an event cascade deeper than :data:`MAX_DEPTH`) raises
:class:`~nmlsim.errors.UnsupportedFeature` at build time, and the engine keeps its own loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...errors import UnsupportedFeature
from ...lems import expr as E
from ...compile.jlems_order import tests_clock
from ...compile.schedule import STEP
from ...compile.streams import NUMBA_SOURCE as STREAMS_SOURCE

MAX_DEPTH = 8


@dataclass
class LoopSpec:
    """What the engine routes: everything the event phase needs, as plain data."""
    cond_handlers: list                 # [(group, handler)] in engine order
    event_handlers: dict                # (gid, prefix, port) -> [(group, handler)]
    entry_handlers: dict                # (gid, regime key, index) -> [(group, handler)]
    internal: dict                      # (gid, prefix, port) -> [(dst prefix, dst port)]
    routes: dict                        # (src gid, port) -> [route record]
    sources: list                       # [(source group, steps, ids)]
    merged_handlers: dict               # dst gid -> [handler] (merged synapse OnEvent)
    groups: dict                        # gid -> group (sources included)
    ring_len: int = 1
    jlems_clock: bool = False           # delays by jLEMS's accumulated clock (--method euler)


def _joined_routes(recs) -> list:
    """Routes without delays into the same merged synapse group as one CSR per source (each
    source's connections in route order, so every target sums in the engine's order): one
    loop per spike instead of one per projection."""
    out, joined = [], {}
    for rec in recs:
        if rec["merged"] is None or rec["any_delay"]:
            out.append(rec)
            continue
        k = (rec["route"].dst.gid, rec["route"].dst_port)
        if k not in joined:
            joined[k] = []
            out.append(joined[k])
        joined[k].append(rec)
    return [r if isinstance(r, dict) else _join(r) for r in out]


def _join(recs):
    if len(recs) == 1:
        return recs[0]
    n = len(recs[0]["indptr"]) - 1
    src = np.concatenate([np.repeat(np.arange(n), np.diff(r["indptr"])) for r in recs])
    order = np.argsort(src, kind="stable")
    counts = np.bincount(src, minlength=n)
    rec = dict(recs[0])
    rec["indptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(recs[0]["indptr"].dtype)
    rec["dst"] = np.concatenate([r["dst"] for r in recs])[order]
    rec["w"] = np.concatenate([np.broadcast_to(r["w"], r["dst"].shape) for r in recs])[order]
    rec["steps"] = np.zeros(len(order), dtype=np.int64)
    rec["delay_s"] = np.zeros(len(order))
    return rec


class LoopGen:
    """Generates ``_events`` and ``_run`` into a :class:`NumbaKernels`' source."""

    def __init__(self, K, spec: LoopSpec):
        self.K = K
        self.spec = spec
        self.prog = K.prog
        self.lines: List[str] = []
        self.uid = 0
        self.listen_codes: Dict[Tuple[int, str], int] = {}
        self.listen_flags: Dict[Tuple[int, str], str] = {}
        self.inboxes: Dict[Tuple[int, str], Tuple[str, str]] = {}
        self.streams: Dict[int, Tuple[str, str]] = {}  # gid -> (states, counters) of its instances
        self.rings: List[tuple] = []  # (kind, ring names, flag name, rec)
        self.state_arrays: List[int] = []  # extras positions reset before a run
        self.settled: Dict[int, str] = {}  # id(handler) -> its "nothing to redo" flag
        self._lag = 0  # steps added to the delayed events of the handler being generated
        self._last: Optional[str] = None  # the array holding the run's number of steps

    # ------------------------------------------------------------ helpers
    def x(self, arr: np.ndarray, state: bool = False) -> str:
        """An extra kernel argument; ``state``: zeroed at the start of every run."""
        name = self.K._extra(arr)
        if state:
            self.state_arrays.append(int(name[1:]))
        return name

    def last_step(self) -> str:
        """The array holding the run's number of steps (set by LoopRun)."""
        if self._last is None:
            self._last = self.x(np.zeros(1, dtype=np.int64))
        return self._last

    def fresh(self, base: str) -> str:
        self.uid += 1
        return f"_{base}{self.uid}"

    def expr(self, g, ast, var: str) -> str:
        """Scalar code of ``ast`` for instance ``var`` of ``g``; random(x) draws from the
        instance's stream (the program's own state and counter arrays, shared with the engine)."""
        code = self.K._expr(g, ast, var, allow_random=True)
        if "_rand1(" not in code:
            return code
        names = self.streams.get(g.gid)
        if names is None:
            st = self.prog.streams_for(g.gid)
            names = self.streams[g.gid] = (self.x(st.state.view(np.int64)), self.x(st.count))
        return code.replace("_rand1(", f"_rkey({names[0]}, {names[1]}, {var}, ")

    # ------------------------------------------------------------ handlers
    def handler_body(self, g, h, var: str, ind: str, depth: int, with_events=True) -> List[str]:
        """Assignments, transition and events of handler ``h`` for instance ``var`` (its
        test already passed)."""
        out = []
        for key, ast in h.assignments:
            tgt = self.K._arr(self.prog.py(g.gid, key))
            out.append(f"{ind}{tgt}[{var}] = {self.expr(g, ast, var)}")
        if h.transition is not None:
            rp = self.K._arr(self.prog.py(g.gid, h.regime[0]))
            out.append(f"{ind}{rp}[{var}] = {float(h.transition)!r}")
        if with_events:
            for o in h.event_outs:
                out += self.emit(g, h.node.prefix, o, var, ind, depth + 1)
        return out

    def test_code(self, g, h, var: str) -> Optional[str]:
        tests = []
        if h.regime is not None:
            rp = self.K._arr(self.prog.py(g.gid, h.regime[0]))
            tests.append(f"({rp}[{var}] == {float(h.regime[1])!r})")
        if h.test is not None:
            tests.append(f"({self.expr(g, h.test, var)})")
        # both sides evaluated, so that the loop vectorises (and every instance draws on every
        # pass of a test, as the engine's vectorised test does)
        return " & ".join(tests) if tests else None

    # ------------------------------------------------------------ events
    def emit(self, g, prefix: str, port: str, var: str, ind: str, depth: int) -> List[str]:
        """Code run when instance ``var`` of ``g`` gets/sends an event on ``prefix``/``port``."""
        if depth > MAX_DEPTH:
            raise UnsupportedFeature(f"events of '{g.name}' cascade more than {MAX_DEPTH} levels deep; "
                                     f"the compiled loop does not follow them (use the numpy backend)")
        spec = self.spec
        out: List[str] = []
        for gg, h in spec.event_handlers.get((g.gid, prefix, port), ()):
            test = self.test_code(gg, h, var)
            body = self.handler_body(gg, h, var, ind + ("    " if test else ""), depth)
            if test:
                out.append(f"{ind}if {test}:")
                body = body or [ind + "    pass"]
            out += body
        for dprefix, dport in spec.internal.get((g.gid, prefix, port), ()):
            out += self.emit(g, dprefix, dport, var, ind, depth + 1)
        if prefix == "":
            key = (g.gid, port)
            if key not in self.listen_flags:
                self.listen_codes[key] = len(self.listen_codes)
                self.listen_flags[key] = self.x(np.zeros(1, dtype=np.int64), True)
            out.append(f"{ind}if {self.listen_flags[key]}[0]:")
            out.append(f"{ind}    _listen(SBK, SBI, SBS, SBN, {self.listen_codes[key]}, {var}, ee)")
            for rec in _joined_routes(spec.routes.get(key, ())):
                out += self.route(rec, var, ind)
        return out

    def route(self, rec, var: str, ind: str) -> List[str]:
        r = rec["route"]
        dst = r.dst
        c, q = self.fresh("c"), self.fresh("q")
        ip, dd = self.x(rec["indptr"]), self.x(rec["dst"])
        out = [f"{ind}for {c} in range({ip}[{var}], {ip}[{var} + 1]):", f"{ind}    {q} = {dd}[{c}]"]
        ind2 = ind + "    "
        merged = rec["merged"] is not None
        if merged:
            w = self.x(rec["w"])
            incs = []
            for h in self.spec.merged_handlers[dst.gid]:
                for key, ast in h.assignments:
                    inc = ast[3] if ast[2] == ("name", key) else ast[2]
                    if "t" in E.names(inc) or E.has_random(inc):
                        raise UnsupportedFeature(f"the increment of merged synapse '{dst.name}' depends on time")
                    incs.append((self.K._arr(self.prog.py(dst.gid, key)),
                                 self._inc_code(dst, inc, q, f"{w}[{c}]")))
            now = [f"{tgt}[{q}] += {code}" for tgt, code in incs]
        else:
            box, anyf = self.inbox(dst, r.dst_port)
            now = [f"{box}[{q}] += 1", f"{anyf}[0] = 1"]
        if not rec["any_delay"]:
            return out + [ind2 + s for s in now]
        steps = self.x(rec["steps"])
        L = self.spec.ring_len
        flag = self.x(np.zeros(L, dtype=np.int64), True)
        d, s = self.fresh("d"), self.fresh("s")
        out += [f"{ind2}{d} = {steps}[{c}]", f"{ind2}if {d} == 0:"] + [ind2 + "    " + x for x in now]
        out += [f"{ind2}else:"]
        if self.spec.jlems_clock:  # the step jLEMS's clock reaches t + delay (Simulator._jlems_steps)
            ds = self.x(np.ascontiguousarray(rec["delay_s"], dtype=float))
            due, a, pa = self.fresh("due"), self.fresh("a"), self.fresh("pa")
            dt = repr(float(self.K.dt))
            out += [f"{ind2}    {due} = t + {ds}[{c}]", f"{ind2}    {a} = t", f"{ind2}    {pa} = t",
                    f"{ind2}    for _q in range({d}):", f"{ind2}        {pa} = {a}", f"{ind2}        {a} = {a} + {dt}",
                    f"{ind2}    if {pa} >= {due}:", f"{ind2}        {d} = max({d} - 1, 1)",
                    f"{ind2}    elif {a} < {due}:", f"{ind2}        {d} = {d} + 1"]
        lag = " + 1" if self._lag else ""
        out += [f"{ind2}    {s} = (ee + {d}{lag}) % {L}", f"{ind2}    {flag}[{s}] = 1"]
        if merged:
            rings = []
            for tgt, code in incs:
                ring = self.x(np.zeros((L, dst.n)), True)
                rings.append((ring, tgt))
                out.append(f"{ind2}    {ring}[{s}, {q}] += {code}")
            self.rings.append(("merged", rings, flag, dst.n))
        else:
            ring = self.x(np.zeros((L, dst.n), dtype=np.int64), True)
            out.append(f"{ind2}    {ring}[{s}, {q}] += 1")
            self.rings.append(("count", (ring, box, anyf), flag, dst.n))
        return out

    def _inc_code(self, g, ast, var, wcode):
        wkey = g.root.key("weight")
        fn = self.prog.name_fn(g)

        def name(key):
            if key == wkey:
                return wcode
            s = fn(key)
            if s == "t" or not s.startswith("x"):
                return s
            return f"{self.K._arr(s)}[{var}]"
        from .kernels import _DIALECT
        return E._emit(ast, name, _DIALECT)

    def inbox(self, g, port):
        key = (g.gid, port)
        if key not in self.inboxes:
            self.inboxes[key] = (self.x(np.zeros(g.n, dtype=np.int64), True), self.x(np.zeros(1, dtype=np.int64), True))
        return self.inboxes[key]

    # ------------------------------------------------------------ phases
    def cond_handler(self, g, h) -> List[str]:
        n = g.n
        rand_test = h.test is not None and E.has_random(h.test)
        out = []
        mask = self.x(np.zeros(n, dtype=np.uint8), True)
        i, anyv = self.fresh("i"), self.fresh("any")
        test = self.test_code(g, h, i)
        if self.spec.jlems_clock and not rand_test and h.test is not None and not self.prog._time_only(g, h.test):
            # jLEMS tests a condition on the states after a step: none before the first
            test = f"(ee > 0 and ({test}))"
        clock = self.spec.jlems_clock and tests_clock(h)
        if clock:  # a test on t after the last step would be jLEMS's step after the run's end
            test = f"(ee < {self.last_step()}[0] and ({test}))"
        body = self.handler_body(g, h, i, "", 0, with_events=False)
        if h.transition is not None:
            for eg, eh in self.spec.entry_handlers.get((g.gid, h.regime[0], h.transition), ()):
                et = self.test_code(eg, eh, i)
                eb = self.handler_body(eg, eh, i, "    " if et else "", 0, with_events=False)
                body += ([f"if {et}:"] + (eb or ["    pass"])) if et else eb
        body = body or ["pass"]

        def ind(lines, k):
            return [" " * (4 * k) + ln for ln in lines]
        emits = bool(h.event_outs)
        fired = None
        if h.regime is None and h.test is not None and self.prog._time_only(g, h.test):
            # a test on time alone (pulse generators): one scalar test for every instance
            done = self.settled_flag(g, h)
            if done is None:
                out += [f"    {anyv} = {test}", f"    if {anyv}:", f"        for {i} in range({n}):"] + ind(body, 3)
            else:
                # constant assignments already made, their targets untouched since: skip
                # (a pulse generator's current, set on every step of the pulse)
                out += [f"    {anyv} = {test}", f"    if {anyv} and {done}[0] == 0:",
                        f"        for {i} in range({n}):"] + ind(body, 3) + [f"        {done}[0] = 1"]
                out += [f"        {other}[0] = 0" for other in self.family_flags(g, h)]
            if emits:
                out += [f"    for {i} in range({n}):", f"        {mask}[{i}] = {anyv}"]
        else:
            # every test first, branch-free and counted (the loop vectorises: 2-3x faster
            # than testing and acting in one pass), then the actions of those that fired
            # (an instance's test reads only its own values, so the order is the engine's)
            listed = []
            if emits:  # the instances that fired, in order, for the emission below
                fired, cnt = self.x(np.zeros(n, dtype=np.int64)), self.fresh("n")
                listed = [f"{fired}[{cnt}] = {i}", f"{cnt} += 1"]
            out += [f"    {anyv} = 0", f"    for {i} in range({n}):",
                    f"        _m_ = _np.uint8({test or 'True'})", f"        {mask}[{i}] = _m_",
                    f"        {anyv} += _m_"] + ([f"    {cnt} = 0"] if emits else [])
            out += [f"    if {anyv}:", f"        for {i} in range({n}):",
                    f"            if {mask}[{i}]:"] + ind(body + listed, 4)
        # its events go out after every OnCondition handler has run (the engine's queue);
        # delayed ones of a test on t a step later under jLEMS's clock (Simulator._clock_tests)
        self._lag = 1 if clock else 0
        if emits and fired is not None:
            k = self.fresh("k")
            emit = [f"    if {anyv}:", f"        for {k} in range({cnt}):", f"            {i} = {fired}[{k}]"]
            for o in h.event_outs:
                emit += self.emit(g, h.node.prefix, o, i, "            ", 1)
            self.deferred.append(emit)
        elif emits:
            emit = [f"    if {anyv}:", f"        for {i} in range({n}):", f"            if {mask}[{i}]:"]
            for o in h.event_outs:
                emit += self.emit(g, h.node.prefix, o, i, "                ", 1)
            self.deferred.append(emit)
        self._lag = 0
        return out

    def _settles(self, g, h) -> bool:
        """A time-only OnCondition handler whose assignments are constants of the instance
        (parameters, literals): running it again changes nothing unless its targets were
        written in between."""
        if h.kind != "condition" or h.regime is not None or h.event_outs or h.transition is not None:
            return False
        if not h.assignments or h.test is None or not self.prog._time_only(g, h.test):
            return False

        def const(n):
            return n in g.params or n in g.per_instance or (g.gid, n) in self.prog.literals
        return all(not E.has_random(a) and all(map(const, E.names(a))) for _, a in h.assignments)

    def _writers(self, g, key):
        return [h for g2, h, _ in self.prog.handlers if g2.gid == g.gid and h.kind != "start"
                and any(k == key for k, _ in h.assignments)]

    def settled_flag(self, g, h) -> Optional[str]:
        """A flag "assignments made, targets untouched since" for ``h``, where the only
        other writers of its targets are handlers of the same kind (which clear it when they
        run) and the targets are not integrated; None where that cannot be known."""
        if not self._settles(g, h):
            return None
        for key, _ in h.assignments:
            if key in g.rates or key in g.rate_cases or not all(self._settles(g, w) for w in self._writers(g, key)):
                return None
        if id(h) not in self.settled:
            self.settled[id(h)] = self.x(np.zeros(1, dtype=np.int64), True)
        return self.settled[id(h)]

    def family_flags(self, g, h) -> List[str]:
        """The flags of the other handlers writing ``h``'s targets (they must run again)."""
        out = []
        for key, _ in h.assignments:
            for w in self._writers(g, key):
                if w is not h:
                    f = self.settled_flag(g, w)
                    if f not in out:
                        out.append(f)
        return out

    def ring_delivery(self, mark: Optional[str] = None) -> List[str]:
        """The delayed events due at ``_slot``; ``mark``: a local set to 2 when any arrive."""
        out = []
        for kind, data, flag, n in self.rings:
            q = self.fresh("q")
            out.append(f"    if {flag}[_slot]:")
            out.append(f"        {flag}[_slot] = 0")
            if mark:
                out.append(f"        {mark} = 2")
            out.append(f"        for {q} in range({n}):")
            if kind == "merged":
                for ring, tgt in data:
                    out.append(f"            {tgt}[{q}] += {ring}[_slot, {q}]")
                    out.append(f"            {ring}[_slot, {q}] = 0.0")
            else:
                ring, box, anyf = data
                out += [f"            if {ring}[_slot, {q}]:", f"                {box}[{q}] += {ring}[_slot, {q}]",
                        f"                {ring}[_slot, {q}] = 0", f"                {anyf}[0] = 1"]
        return out

    def source_replay(self) -> List[str]:
        out = []
        for src, steps, ids in self.spec.sources:
            st, ix, cur = self.x(steps), self.x(ids), self.x(np.zeros(1, dtype=np.int64), True)
            c, i = self.fresh("cur"), self.fresh("i")
            out += [f"    {c} = {cur}[0]", f"    while {c} < {len(steps)} and {st}[{c}] <= ee:",
                    f"        {i} = {ix}[{c}]"]
            out += self.emit(src, "", src.port, i, "        ", 0)
            out += [f"        {c} += 1", f"    {cur}[0] = {c}"]
        return out

    def inbox_processing(self) -> List[str]:
        out = ["    _again = True", "    _guard = 0", "    while _again:", "        _again = False",
               "        _guard += 1", "        if _guard > 100000:", "            return 1"]
        done = set()
        while True:
            todo = [k for k in self.inboxes if k not in done]
            if not todo:
                break
            for key in todo:
                done.add(key)
                g = self.spec.groups[key[0]]
                box, anyf = self.inboxes[key]
                q, r = self.fresh("q"), self.fresh("r")
                out += [f"        if {anyf}[0]:", f"            {anyf}[0] = 0", "            _again = True",
                        f"            for {q} in range({g.n}):", f"                {r} = {box}[{q}]",
                        f"                if {r}:", f"                    {box}[{q}] = 0",
                        f"                    for _k in range({r}):"]
                body = self.emit(g, "", key[1], q, "                        ", 1)
                out += body or ["                        pass"]
        return out

    # ------------------------------------------------------------ whole
    def generate(self, args: str) -> List[str]:
        body = [f"    _slot = ee % {self.spec.ring_len}"]
        cond = []
        self.deferred: List[List[str]] = []
        for g, h in self.spec.cond_handlers:
            cond += self.cond_handler(g, h)
        for lines in self.deferred:
            cond += lines
        src = self.source_replay()
        inbox = self.inbox_processing()
        ring = self.ring_delivery()  # after the routes, which registered the rings
        due = []
        if self.spec.jlems_clock:
            # jLEMS hands delayed events over at the start of a step, before any instance
            # advances: _due(ee) before the step to ee (1: an event loop, 2: something arrived)
            due = [f"def _due(ee, t, SBK, SBI, SBS, SBN, {args}):", f"    _slot = ee % {self.spec.ring_len}",
                   "    _got = 0"] + self.ring_delivery("_got") + inbox + ["    return _got"]
            ring = []
        body += ring + src + cond + inbox + ["    return 0"]
        return due + [f"def _events(ee, t, SBK, SBI, SBS, SBN, {args}):"] + body


RUN_HEAD = ("def _run(e0, e1, nsteps, dt, check, need, TB, RAID, RIDX, R, SBK, SBI, SBS, SBN, ST, CLK, {args}):\n"
            "    for e in range(e0, e1):\n"
            "        t = e * dt")


def run_phases(args: str, update: str, derived: bool, due: bool, finite: List[str]) -> Dict[str, Optional[str]]:
    """The compiled loop's primitives of the schedule's phases (compile/schedule.py), one step
    ``e`` → ``e + 1``: code per phase, None for the phases it does not do (white noise, WATCH
    tests, jLEMS's early events and MPI exchange: runs that need them are stepped by the engine).
    ``update``: the kernel that moves the states; ``derived``: whether the derived values are
    computed before the row is recorded (False: ``update`` computes them itself, `_dstep`; the
    last row still gets them); ``due``: jLEMS's delayed events handed over before the step."""
    return {
        "noise": None,
        "derived": f"_derived(t, {args})" if derived else f"if e == nsteps:\n    _derived(t, {args})",
        "record": "r = e - e0\nfor j in range(RAID.shape[0]):\n    TB[r, j] = R[RAID[j]][RIDX[j]]",
        "last": "if e == nsteps:\n    return e + 1",
        "watch": None,
        "drain": "if SBN[0] + need > SBK.shape[0]:\n    ST[0] = 2\n    return e",
        "due": (f"_g = _due(e + 1, CLK[1] + dt, SBK, SBI, SBS, SBN, {args})\n"
                "if _g == 1:\n    ST[0] = 3\n    return e\n_acted = _g == 2") if due else None,
        "early": None,
        "update": f"{update}(t, {args})",
        "clock": ("ee = e + 1\nif CLK[0] > 0.0:  # jLEMS's clock: t += dt\n    CLK[1] = CLK[1] + dt\n"
                  "    tev = CLK[1]\nelse:\n    tev = ee * dt + dt"),
        "events": f"if _events(ee, tev, SBK, SBI, SBS, SBN, {args}):\n    ST[0] = 3\n    return ee",
        "exchange": None,
        "check": "if check > 0 and ee % check == 0:\n" + "\n".join(ln[8:] for ln in finite) if finite else None,
    }


def render_run(phases: Dict[str, Optional[str]], args: str, refresh: Optional[str]) -> List[str]:
    """``_run`` as the schedule's steps (compile/schedule.STEP) in the order given there, from
    the primitives of :func:`run_phases`; ``refresh``: the code that computes the derived values
    again after a ``refresh`` phase acted (None: the update computes its own)."""
    missing = [ph.name for ph in STEP if ph.name not in phases]
    if missing:
        raise ValueError(f"the compiled loop has no primitive for the phases {missing}")
    out = RUN_HEAD.format(args=args).split("\n")
    for ph in STEP:
        code = phases[ph.name]
        if code is None:
            continue
        if ph.refresh and refresh:
            code += f"\nif _acted:\n    {refresh}"
        out += ["        " + ln for ln in code.split("\n")]
    out.append("    return e1")
    return out


HELPERS = STREAMS_SOURCE + """

@numba.njit(cache=True)
def _listen(SBK, SBI, SBS, SBN, code, i, ee):
    n = SBN[0]
    if n < SBK.shape[0]:
        SBK[n] = code
        SBI[n] = i
        SBS[n] = ee
        SBN[0] = n + 1
    else:
        SBN[1] = 1


"""


class LoopRun:
    """Drives the compiled loop for one run of a simulator: resets the loop's state, hands
    trace rows to recorders and recorded events to listeners."""

    def __init__(self, sim, recorders, check_every: int):
        from ...errors import SimulationError
        self.Error = SimulationError
        self.sim = sim
        self.K = K = sim.kernels
        self.gen = gen = K.loop
        self.check = int(check_every or 0)
        #: the whole schedule compiled (`chunk`); False in table mode, where the engine steps the
        #: schedule with the compiled event phases below
        self.whole = K._run is not None
        #: (the schedule's `due` phase: only where jLEMS's clock hands delayed events over)
        self.due = self._due if K._due is not None else None
        for j in gen.state_arrays:
            K.extras[j][...] = 0
        # listeners: a flag per (group, port), a code per event in the buffer
        self.by_code = {}
        need = 16
        for key, flag in gen.listen_flags.items():
            cbs = sim.event_listeners.get(key, ())
            K.extras[int(flag[1:])][0] = 1 if cbs else 0
            if cbs:
                self.by_code[gen.listen_codes[key]] = cbs
                need += 4 * gen.spec.groups[key[0]].n
        self.need = need
        cap = max(1 << 16, 8 * need)
        self.SB = [np.zeros(cap, dtype=np.int64) for _ in range(3)] + [np.zeros(2, dtype=np.int64)]
        # trace columns of every recorder: (array, index) per column
        arrays, index = [], {}
        self.parts = []  # (recorder, column positions or literal values)
        self.recorders = list(recorders)
        raid, ridx = [], []
        V = sim.V
        for r in recorders:
            cols = r.trace_columns(sim) if hasattr(r, "trace_columns") else None
            if cols is None:
                continue
            pos = []
            for nm, lit, idx in cols:
                if nm is None:
                    pos.append(("lit", lit))
                    continue
                a = V[nm]
                if id(a) not in index:
                    index[id(a)] = len(arrays)
                    arrays.append(a)
                pos.append(("col", len(raid)))
                raid.append(index[id(a)])
                ridx.append(idx if a.shape[0] > idx else 0)
            self.parts.append((r, pos))
        self.R = tuple(arrays) if arrays else (np.zeros(1),)
        self.RAID = np.asarray(raid, dtype=np.int64)
        self.RIDX = np.asarray(ridx, dtype=np.int64)
        self.chunk_len = max(1, min(self.check or 1000, 1000, (1 << 22) // max(1, len(raid))))
        self.TB = np.zeros((self.chunk_len, max(1, len(raid))))
        self.ST = np.zeros(1, dtype=np.int64)
        #: the clock of the condition tests: [1 if accumulated (jLEMS's t += dt), the next test's time]
        self.CLK = np.array([1.0 if sim.accumulated_time else 0.0, sim.dt])
        if gen._last is not None:  # (the run's number of steps: tests on t stop after the last)
            K.extras[int(gen._last[1:])][0] = sim.run_length

    def _drain(self):
        SBK, SBI, SBS, SBN = self.SB
        n = int(SBN[0])
        if SBN[1]:
            raise self.Error("the compiled loop's event buffer overflowed (internal error)")
        if not n:
            return
        codes, idx, steps = SBK[:n].copy(), SBI[:n].copy(), SBS[:n].copy()
        SBN[0] = 0
        for code, cbs in self.by_code.items():
            sel = codes == code
            if sel.any():
                t = self.sim.event_times(steps[sel])
                for cb in cbs:
                    cb.block(idx[sel], t)

    # the event parts of the schedule (compile/schedule.py), for the engine's loop where the
    # kernels are too big to compile into one loop (table mode): three compiled calls per step
    def start(self, t: float) -> None:
        K = self.K
        if K._events(0, t, *self.SB, *K._args(self.sim.V)):
            raise self.Error("events keep triggering events (an event loop in the model?)")
        self._drain()

    def drain(self, k: int) -> None:
        if self.SB[3][0] + self.need > self.SB[0].shape[0]:
            self._drain()

    def _due(self, k: int, t: float) -> bool:
        K = self.K
        got = K._due(k, t, *self.SB, *K._args(self.sim.V))
        if got == 1:
            raise self.Error("events keep triggering events (an event loop in the model?)")
        return got == 2

    def events(self, k: int, t: float) -> None:
        K = self.K
        if K._events(k, t, *self.SB, *K._args(self.sim.V)):
            raise self.Error("events keep triggering events (an event loop in the model?)")

    def finish(self) -> None:
        self._drain()

    def chunk(self, e: int, nsteps: int) -> int:
        K, sim = self.K, self.sim
        e1 = min(nsteps + 1, e + self.chunk_len)
        self.ST[0] = 0
        e_new = int(K._run(e, e1, nsteps, sim.dt, self.check, self.need, self.TB, self.RAID, self.RIDX, self.R,
                           *self.SB, self.ST, self.CLK, *K._args(sim.V)))
        rows = e_new - e
        if rows > 0:
            for r, pos in self.parts:
                r.sample_block(sim, e, self.TB[:rows], pos)
        self._drain()
        st = int(self.ST[0])
        if st == 1:
            sim.check_finite(e_new * sim.dt)
        elif st == 3:
            raise self.Error("events keep triggering events (an event loop in the model?)")
        return e_new
