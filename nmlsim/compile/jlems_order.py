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

from ..lems import expr as E
from ..lems.flatten import Derived, Group, Node


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


class _Reads:
    """The rewriting of one build's groups (see the module docstring)."""

    def __init__(self, groups: List[Group], dt: float, skip: Set[int]):
        self.skip = skip
        self.groups = [g for g in groups if g.gid not in skip]
        self.dt = float(dt)
        self.by_prefix = {g.gid: {nd.prefix: nd for nd in g.nodes} for g in groups}
        self.order = {g.gid: _post_order(g.root) for g in groups}
        self.history: Dict[Tuple[int, str], List[str]] = {}   # (gid, key) -> slots h1, h2...
        self.leads: Dict[Tuple[int, str], str] = {}             # (gid, state key) -> x + dt x'
        self.initial: Dict[int, List[Tuple[str, str]]] = {}     # gid -> (slot, what it copies)
        self.slots: Set[Tuple[int, str]] = set()

    # ------------------------------------------------------------------ lags
    def _relays(self, g: Group, reader: str, owner_g: Group, owner: str, name: str) -> int:
        """Components strictly between reader and owner that keep their own copy of ``name``."""
        n = 0
        nodes = self.by_prefix[g.gid]
        cur = nodes[reader].parent if reader in nodes else None
        grp = g
        while True:
            while cur is not None:
                if grp is owner_g and cur.prefix == owner:
                    return n
                if name in cur.ct.requirements:
                    n += 1
                cur = cur.parent
            if grp.parent is None:
                return n
            cur = grp.parent.node
            grp = grp.parent.group

    def _lag(self, g: Group, reader: str, key: str) -> Optional[Tuple[Group, str, int]]:
        """How many steps older (negative: newer) than the vector step's value jLEMS's reader
        sees ``key`` of group ``g``; None where nothing changes."""
        d = g.derived.get(key)
        if d is not None and d.kind == "gather":
            src, skey = d.src, d.src_key
            owner = _node_of(skey)
            if skey in src.state:
                base = 0
            elif skey in src.derived:
                base = 1
            else:
                return None
            return g, key, base + self._relays(g, reader, src, owner, _base(skey))
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
        if _is_ancestor(owner, reader):       # a Requirement met by an ancestor
            lag = (0 if is_state else 1) + self._relays(g, reader, g, owner, _base(key))
        elif _is_ancestor(reader, owner):     # a path into its own children
            lag = -1 if is_state else 0
        else:
            order = self.order[g.gid]
            before = order.get(owner, -1) < order.get(reader, -1)
            lag = (-1 if is_state else 0) if before else (0 if is_state else 1)
        return (g, key, lag) if lag else None

    def _slot(self, g: Group, key: str, lag: int) -> str:
        slots = self.history.setdefault((g.gid, key), [])
        while len(slots) < lag:
            j = len(slots) + 1
            slot = f"{key}__jlems{j}"
            prev = key if j == 1 else slots[-1]
            g.state[slot] = "none"
            g.rates[slot] = ("bin", "/", ("bin", "-", ("name", prev), ("name", slot)), ("num", self.dt))
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

    def _renamer(self, g: Group, reader: str, own=()):
        cache: Dict[str, str] = {name: name for name in own}

        def fn(name: str) -> str:
            if name not in cache:
                new = name
                found = self._lag(g, reader, name)
                if found is not None:
                    _, key, lag = found
                    if lag > 0:
                        new = self._slot(g, key, lag)
                    else:
                        new = self._lead(g, key) or name
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
        # the updated states the readers above asked for, from their (rewritten) rates
        by_gid = {g.gid: g for g in self.groups}
        for (gid, key), nxt in self.leads.items():
            g = by_gid[gid]
            step = ("bin", "*", ("num", self.dt), g.rates[key])
            g.derived[nxt] = Derived(nxt, "expr", ast=("bin", "+", ("name", key), step))


def jlems_reads(groups: List[Group], dt: float, skip: Set[int] = frozenset()) -> None:
    """Rewrite the reads of ``groups`` to the values jLEMS's walk gives them (module
    docstring), for forward Euler with step ``dt``; ``skip``: group ids left as they are
    (cells whose voltage an implicit phase solves).  Each group gets ``jlems_euler``:
    the step it was rewritten for and the (slot, source) pairs the engine copies once the
    initial values are known.  Idempotent for one ``dt``."""
    done = {getattr(g, "jlems_euler", None) for g in groups}
    if done == {None}:
        r = _Reads(groups, dt, set(skip))
        r.run()
        for g in groups:
            g.jlems_euler = (float(dt), r.initial.get(g.gid, []))
        return
    for g in groups:
        mark = getattr(g, "jlems_euler", None)
        if mark is None or mark[0] != float(dt):
            from ..errors import SimulationError
            raise SimulationError("this built model was prepared for --method euler with another step; "
                                  "build it again")
