"""jLEMS's order of evaluation, for ``--method euler``.

jLEMS (``jnml LEMS_x.xml -nogui``) does not step a model as one vector: it walks the
component tree once per step, children before parents, and each component computes its
derived values, moves its states by one Euler step and tests its conditions in turn
(docs/research/jlems_euler.md).  What a component reads of another so depends on where the
two sit in that walk:

* an **ancestor's** value (a Requirement: a rate's ``v``) was left by the ancestor's
  previous advance — a state as it was at the start of the step, a derived value as it was
  computed one step earlier;
* every ancestor in between that declares the same Requirement keeps its own **copy**,
  refreshed when it advances (after its children): each such relay adds one step.  An HH
  rate under ionChannel under channelPopulation sees the cell's ``v`` two steps back;
* a **descendant's** (or an attached synapse's) value is this step's: a derived value as
  computed from the states at the start of the step, a state *after* its update.

The engine computes every derived value from the states at the start of the step (a
vector step); :func:`jlems_reads` rewrites, before the Program is made, each read whose
jLEMS value is older into a read of a history slot — extra states that the Euler step
itself shifts (``h1' = (x - h1)/dt`` moves h1 to x exactly), so both backends run it as
they run any state — and each read of a state that jLEMS sees updated into a read of
``x + dt·x'``.  Only ``euler`` gets this: it is jLEMS's scheme, and the others are not.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from ..lems import expr as E
from ..lems.flatten import Derived, Group, Handler, Node
from .program import derived_deps
from .integrators import copy_rate


def _node_of(key: str) -> str:
    return key.rsplit("/", 1)[0] if "/" in key else ""


def _base(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _synthetic(key: str) -> bool:
    return _base(key).startswith("__")


def _is_ancestor(a: str, b: str) -> bool:
    """Whether node prefix ``a`` is a strict ancestor of node prefix ``b``."""
    return a != b and (a == "" or b.startswith(a + "/"))


def _post_order(root: Node) -> Dict[str, int]:
    out: Dict[str, int] = {}

    def walk(nd: Node):
        for c in nd.child.values():
            walk(c)
        for lst in nd.children.values():
            for c in lst:
                walk(c)
        out[nd.prefix] = len(out)
    walk(root)
    return out


#: A state of every group with updated-state reads: 0 during initialisation — jLEMS's OnStarts
#: see the states they set, no step taken yet (a KCa gate's q = inf of the pool's initial
#: concentration) — and 1 once the run starts, when those reads see ``x + dt·x'``.
STARTED = "__jlems_started"


class _Reads:
    """The rewriting of one build's groups (see the module docstring)."""

    def __init__(self, groups: List[Group], dt: float, skip: Set[int], recorded=()):
        self.recorded = set(recorded or ())
        self.skip = skip
        self.groups = [g for g in groups if g.gid not in skip]
        self.dt = float(dt)
        self.by_prefix = {g.gid: {nd.prefix: nd for nd in g.nodes} for g in groups}
        self.order = {g.gid: _post_order(g.root) for g in groups}
        self.history: Dict[Tuple[int, str], List[str]] = {}   # (gid, key) -> slots h1, h2...
        self.leads: Dict[Tuple[int, str], str] = {}             # (gid, state key) -> x + dt x'
        self.initial: Dict[int, List[Tuple[str, str]]] = {}     # gid -> (slot, what it copies)
        self.slots: Set[Tuple[int, str]] = set()
        self.paths: Dict[Tuple[int, int, str], tuple] = {}
        self.shown: Dict[int, Dict[str, str]] = {}              # gid -> {state: what jnml records}

    # ------------------------------------------------------------------ lags
    def _walk(self, g: Group, i: int, reader: str, d: Derived) -> Optional[int]:
        """The lag of gather ``d`` as instance ``i`` of ``g``'s node ``reader`` sees it: from the
        reader (across the link to the peer, when the gather follows one) up to the owner,
        each component on the way that keeps its own copy of the name (a Requirement) adds a
        step if it advances after the one reading it; the owner's value is read as it stands."""
        og, okey = d.src, d.src_key
        while og.derived.get(okey) is not None and og.derived[okey].kind == "gather":
            inner = og.derived[okey]
            og, okey = inner.src, inner.src_key
        owner, name = _node_of(okey), _base(okey)
        nodes = self.by_prefix[g.gid]
        here = (g, i, nodes[reader])
        if d.via_link:
            link = d.chain[0]
            nxt = (link.group, 0 if link.idx is None else int(link.idx[i]), link.node)
        else:
            nxt = self._up(here)
        reading = here       # who reads the next value (the reader, then each copy on the way)
        aside = d.via_link   # whether the next component may sit beside the reader, not above it
        lag = 0
        while nxt is not None:
            gg, ii, nd = nxt
            is_owner = gg is og and nd.prefix == owner
            if is_owner or name in nd.ct.requirements:
                before = aside and self._before(self._path(gg, ii, nd.prefix),
                                                self._path(reading[0], reading[1], reading[2].prefix))
                if is_owner:
                    if okey in og.state:
                        lag += self._exposed_by_regime(og, okey)
                        return lag - 1 if before else lag
                    return lag if before else lag + 1
                lag += 0 if before else 1
                reading, aside = nxt, False
            nxt = self._up(nxt)
        return None

    @staticmethod
    def _up(pos):
        g, i, nd = pos
        if nd.parent is not None:
            return g, i, nd.parent
        if g.parent is None:
            return None
        link = g.parent
        return link.group, 0 if link.idx is None else int(link.idx[i]), link.node

    def _exposed_by_regime(self, g: Group, key: str) -> bool:
        """A state a regime moves, read by others through its exposure — which jLEMS refreshes
        before the regime moves it (``synchronizeExposures`` precedes the regime's advance), so it
        trails the state by a step."""
        if key not in g.rate_cases:
            return False
        nd = self.by_prefix[g.gid].get(_node_of(key))
        return nd is not None and _base(key) in nd.ct.exposures

    # ------------------------------------------------------------- the walk
    def _path(self, g: Group, i: int, prefix: str) -> tuple:
        """Where instance ``i`` of ``g``'s node ``prefix`` sits in jLEMS's walk, as a sortable
        path: a host's child components (0, post-order) come before its attachments (1, group,
        instance), and every component after all of its descendants."""
        k = (g.gid, i, prefix)
        p = self.paths.get(k)
        if p is None:
            nodes, order = self.by_prefix[g.gid], self.order[g.gid]
            inner = []
            nd = nodes[prefix]
            while nd is not None and nd is not g.root:
                inner.append((0, order[nd.prefix]))
                nd = nd.parent
            head = ()
            if g.parent is not None:
                link = g.parent
                j = 0 if link.idx is None else int(link.idx[i])
                head = self._path(link.group, j, link.node.prefix)
            p = self.paths[k] = head + ((1, g.gid, i),) + tuple(reversed(inner))
        return p

    @staticmethod
    def _before(x: tuple, y: tuple) -> bool:
        """Whether the component at path ``x`` advances before the one at path ``y``."""
        n = 0
        while n < len(x) and n < len(y) and x[n] == y[n]:
            n += 1
        if n == len(y):
            return n < len(x)  # x below y (or the same component: not before)
        if n == len(x):
            return False       # x above y
        return x[n] < y[n]

    # ------------------------------------------------------------------ lags
    def _lag(self, g: Group, reader: str, key: str):
        """How many steps older (negative: newer) than the vector step's value jLEMS's reader
        sees ``key`` of group ``g``: an int, an array (one per instance: a peer on another
        cell advances before or after), or None where nothing changes."""
        d = g.derived.get(key)
        if d is not None and d.kind == "gather":
            if not d.via_link:  # up the parents: every component on the way advances after
                return self._walk(g, 0, reader, d) or None
            lag = np.array([self._walk(g, i, reader, d) for i in range(g.n)], dtype=object)
            if any(x is None for x in lag):
                return None
            lag = lag.astype(np.int64)
            if len(lag) and np.all(lag == lag[0]):
                return int(lag[0]) or None
            return lag if np.any(lag) else None
        if _synthetic(key):
            return None
        if key in g.state:
            is_state = True
        elif d is not None:
            is_state = False
        else:
            return None  # a parameter or a per-instance constant
        owner = _node_of(key)
        if owner == reader:
            return None
        trail = int(is_state and self._exposed_by_regime(g, key))
        if _is_ancestor(owner, reader):       # a Requirement met by an ancestor
            nodes, name = self.by_prefix[g.gid], _base(key)
            relays, nd = 0, nodes[reader].parent
            while nd is not None and nd.prefix != owner:
                relays += name in nd.ct.requirements
                nd = nd.parent
            lag = (0 if is_state else 1) + relays
        elif _is_ancestor(reader, owner):     # a path into its own children
            lag = -1 if is_state else 0
        else:
            order = self.order[g.gid]
            before = order.get(owner, -1) < order.get(reader, -1)
            lag = (-1 if is_state else 0) if before else (0 if is_state else 1)
        return (lag + trail) or None

    def _slot(self, g: Group, key: str, lag: int) -> str:
        slots = self.history.setdefault((g.gid, key), [])
        while len(slots) < lag:
            j = len(slots) + 1
            slot = f"{key}__jlems{j}"
            prev = key if j == 1 else slots[-1]
            g.state[slot] = "none"
            g.rates[slot] = copy_rate(("name", prev), slot, self.dt)
            self.initial.setdefault(g.gid, []).append((slot, prev))
            self.slots.add((g.gid, slot))
            slots.append(slot)
        return slots[lag - 1]

    def _lead(self, g: Group, key: str) -> Optional[str]:
        if g.gid in self.skip or key in g.rate_cases or key not in g.rates:
            return None
        if any(key in k.states for k in g.kinetic_init):
            return None  # a scheme's gate reads the occupancies its last advance exposed
        k = self.leads.get((g.gid, key))
        if k is None:
            k = self.leads[(g.gid, key)] = f"{key}__jlems_next"
        return k

    def _lead_gather(self, g: Group, key: str) -> Optional[str]:
        """A gather of the updated value of the state gather ``key`` reads in the end (through a
        peer's gather of its host's state, say)."""
        d = g.derived[key]
        src, skey, idx = d.src, d.src_key, d.idx
        while src.derived.get(skey) is not None and src.derived[skey].kind == "gather":
            inner = src.derived[skey]
            ii = inner.idx if inner.idx is not None else np.zeros(src.n, dtype=np.int64)
            idx = ii if idx is None else ii[idx]
            src, skey = inner.src, inner.src_key
        nxt = self._lead(src, skey)
        if nxt is None:
            return None
        k = f"{key}__jlems_next"
        if k not in g.derived:
            g.derived[k] = Derived(k, "gather", src=src, src_key=nxt, idx=None if src.n == 1 else idx,
                                   chain=d.chain, via_link=d.via_link)
        return k

    def _version(self, g: Group, key: str, lag: int) -> str:
        if lag > 0:
            return self._slot(g, key, lag)
        if lag < 0:
            d = g.derived.get(key)
            return (self._lead_gather(g, key) if d is not None and d.kind == "gather" else self._lead(g, key)) or key
        return key

    def _renamer(self, g: Group, reader: str, own=()):
        cache: Dict[str, object] = {name: name for name in own}

        def fn(name: str):
            if name not in cache:
                new = name
                lag = self._lag(g, reader, name)
                if lag is None:
                    pass
                elif np.isscalar(lag):
                    new = self._version(g, name, int(lag))
                else:  # per instance: a select over the versions on a per-instance array of lags
                    lk = f"{name}__jlems_lag"
                    g.per_instance[lk] = lag.astype(float)
                    values = sorted(set(int(x) for x in lag))
                    new = ("name", self._version(g, name, values[-1]))
                    for v in reversed(values[:-1]):
                        new = ("call", "__select", (("cmp", "==", ("name", lk), ("num", float(v))),
                                                    ("name", self._version(g, name, v)), new))
                cache[name] = new
            return cache[name]
        return fn

    # -------------------------------------------------------------- rewrite
    def run(self) -> None:
        for g in self.groups:
            ks_owner = {s: _node_of(_node_of(s)) for k in g.kinetic_init for s in k.states}
            for key, d in list(g.derived.items()):
                if d.kind in ("expr", "cases"):
                    fn = self._renamer(g, _node_of(key))
                    if d.kind == "expr":
                        d.ast = E.rename(d.ast, fn)
                    else:
                        d.cases = [(None if c is None else E.rename(c, fn), E.rename(v, fn)) for c, v in d.cases]
                elif d.kind == "scatter":
                    # the host reads its attachments' values: this step's, states after their update
                    d.terms = [(ag, (self._lead(ag, lk) or lk) if lk in ag.state else lk, idx)
                               for ag, lk, idx in d.terms]
            for key in list(g.rates):
                if (g.gid, key) in self.slots:
                    continue
                # a kinetic scheme's flux is its owner's, on the occupancies before the update
                fn = self._renamer(g, ks_owner.get(key, _node_of(key)), own=ks_owner if key in ks_owner else ())
                g.rates[key] = E.rename(g.rates[key], fn)
            for key, cases in g.rate_cases.items():
                fn = self._renamer(g, _node_of(key))
                g.rate_cases[key] = [(reg, E.rename(ast, fn)) for reg, ast in cases]
            for h in g.handlers:
                fn = self._renamer(g, h.node.prefix)
                if h.test is not None:
                    h.test = E.rename(h.test, fn)
                h.assignments = [(k, E.rename(a, fn)) for k, a in h.assignments]
        self._early_handlers()
        for g in self.groups:
            self._regime_sequence(g)
            # recorded through the exposure too: a step behind
            self.shown[g.gid] = {key: self._slot(g, key, 1) for key in g.rate_cases if self._exposed_by_regime(g, key)}
            # a derived value is recorded as the step computed it, from the states before it
            for gid, key in self.recorded:
                if gid == g.gid and g.derived.get(key) is not None and not _synthetic(key):
                    self.shown[g.gid][key] = self._slot(g, key, 1)
        # the updated states the readers above asked for, from their (rewritten) rates
        by_gid = {g.gid: g for g in self.groups}
        for (gid, key), nxt in self.leads.items():
            g = by_gid[gid]
            if STARTED not in g.state:  # 0 while the OnStarts run, 1 from the first step
                g.state[STARTED] = "none"
                g.rates[STARTED] = ("num", 0.0)
            # (dt·x')·1 is dt·x' to the bit: the run's arithmetic is unchanged
            step = ("bin", "*", ("bin", "*", ("num", self.dt), g.rates[key]), ("name", STARTED))
            g.derived[nxt] = Derived(nxt, "expr", ast=("bin", "+", ("name", key), step))
        self._break_circles()

    def _early_handlers(self) -> None:
        """jLEMS sends a zero-delay event in the sender's own step, and a receiver further on in
        its walk handles it before it advances that step. For each OnCondition that sends events
        (no regime, no random draw), a copy tested on the states the coming step will produce
        (``x + dt·x'``; derived values as they stand, as jLEMS's conditions see them) lets the
        engine send those events before the step (``Handler.early``; the engine routes them only
        to such receivers, and the handler itself only to the others)."""
        for g in self.groups:
            for h in list(g.handlers):
                if h.kind != "condition" or not h.event_outs or h.regime is not None or h.test is None \
                        or E.has_random(h.test) or getattr(h, "early_of", None) is not None:
                    continue
                if tests_clock(h) or not any(n in g.rates or n in g.rate_cases or n in g.derived
                                             for n in E.names(h.test)):
                    # a test on time (a spike generator's t > tnext) is tested with the coming
                    # step's clock already: its events go out in time
                    continue
                test = E.rename(h.test, lambda n: (self._lead(g, n) or n) if n in g.state else n)
                early = Handler(node=h.node, kind="condition", test=test, event_outs=list(h.event_outs))
                early.early_of = h
                g.handlers.append(early)

    def _regime_sequence(self, g: Group) -> None:
        """jLEMS moves a regime's states one after another (``ComponentRegime.advance``): each
        TimeDerivative of a regime sees the states its regime moved before it already moved."""
        for rkey, (node, names, _) in g.regimes.items():
            for ri, regime in enumerate(node.ct.dynamics.regimes):
                moved: Dict[str, object] = {}
                for var in regime.time_derivatives:
                    key = node.key(var)
                    cases = g.rate_cases.get(key, [])
                    for n, (reg, ast) in enumerate(cases):
                        if reg != (rkey, ri):
                            continue
                        if moved:
                            ast = E.rename(ast, lambda nm: moved.get(nm, nm))
                            cases[n] = (reg, ast)
                        moved[key] = ("bin", "+", ("name", key), ("bin", "*", ("num", self.dt), ast))

    def _break_circles(self) -> None:
        """An updated state read where the vector step cannot have it yet — cells fused into one
        group reading each other's (jLEMS: the earlier one's new value, the later one's old) —
        falls back to the value before the update."""
        groups = {g.gid: g for g in self.groups}
        suffix = "__jlems_next"

        def deps(gid, key):
            g = groups.get(gid)
            d = None if g is None else g.derived.get(key)
            return () if d is None else derived_deps(g, d)
        while True:
            leads = [(g.gid, k) for g in self.groups for k in g.derived if k.endswith(suffix)]
            circular = set()
            for start in leads:
                seen, todo = set(), list(deps(*start))
                while todo:
                    x = todo.pop()
                    if x == start:
                        circular.add(start)
                        break
                    if x not in seen:
                        seen.add(x)
                        todo.extend(deps(*x))
            if not circular:
                return
            circular |= {(g.gid, k) for g in self.groups for k, d in g.derived.items()
                         if k.endswith(suffix) and d.kind == "gather" and (d.src.gid, d.src_key) in circular}
            for gid, key in circular:
                del groups[gid].derived[key]
            gone = {k for _, k in circular}

            def back(n):
                return n[:-len(suffix)] if n in gone else n
            for g in self.groups:
                for d in g.derived.values():
                    if d.kind == "expr":
                        d.ast = E.rename(d.ast, back)
                    elif d.kind == "cases":
                        d.cases = [(None if c is None else E.rename(c, back), E.rename(v, back)) for c, v in d.cases]
                    elif d.kind == "scatter":
                        d.terms = [(ag, back(k) if (ag.gid, k) in circular else k, idx) for ag, k, idx in d.terms]
                for k in list(g.rates):
                    g.rates[k] = E.rename(g.rates[k], back)
                for k, cases in g.rate_cases.items():
                    g.rate_cases[k] = [(reg, E.rename(a, back)) for reg, a in cases]
                for h in g.handlers:
                    if h.test is not None:
                        h.test = E.rename(h.test, back)
                    h.assignments = [(k, E.rename(a, back)) for k, a in h.assignments]


def tests_clock(h) -> bool:
    """Whether OnCondition handler ``h`` tests t (spike generators and arrays): under jLEMS's
    clock the event phase after step k tests it with step k+1's clock — jLEMS's step k+1."""
    return h.test is not None and "t" in E.names(h.test)


def walk_before(groups: List[Group]):
    """``before(ga, ia, prefix_a, gb, ib, prefix_b)``: whether instance ``ia`` of group ``ga``'s
    node ``prefix_a`` advances before instance ``ib`` of ``gb``'s node in jLEMS's walk."""
    r = _Reads(groups, 1.0, set())

    def before(ga, ia, pa, gb, ib, pb) -> bool:
        return r._before(r._path(ga, int(ia), pa), r._path(gb, int(ib), pb))
    return before


def jlems_reads(groups: List[Group], dt: float, skip: Set[int] = frozenset(), recorded=None) -> None:
    """Rewrite the reads of ``groups`` to the values jLEMS's walk gives them (module
    docstring), for forward Euler with step ``dt``; ``skip``: group ids left as they are
    (cells whose voltage an implicit phase solves); ``recorded``: the (group id, key) pairs
    recorders will read (derived values among them are recorded as jnml writes them, a step
    behind the states).  Each group gets ``jlems_euler``:
    the step it was rewritten for and the (slot, source) pairs the engine copies once the
    initial values are known; and ``jlems_shown``: the slot a recorder reads in place of a
    state (what jnml writes of it).  Idempotent for one ``dt``."""
    done = {getattr(g, "jlems_euler", None) for g in groups}
    if done == {None}:
        r = _Reads(groups, dt, set(skip), recorded)
        r.run()
        for g in groups:
            g.jlems_euler = (float(dt), r.initial.get(g.gid, []))
            g.jlems_shown = r.shown.get(g.gid, {})
        return
    for g in groups:
        mark = getattr(g, "jlems_euler", None)
        if mark is None or mark[0] != float(dt):
            from ..errors import SimulationError
            raise SimulationError("this built model was prepared for --method euler with another step; "
                                  "build it again")
