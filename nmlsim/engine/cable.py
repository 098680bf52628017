"""The implicit phase of the step: the cable equation of every multi-compartment cell.

Per compartment i of capacitance C_i the membrane equation is
``C_i dv_i/dt = I_i(v) + Σ_j g_ij (v_j - v_i)`` with I_i the compartment's own membrane and
synaptic currents — what its LEMS ``TimeDerivative`` of ``v`` gives times C_i.  The explicit
phase leaves ``v`` alone and hands over f_i = dv_i/dt and B_i = ∂f_i/∂v_i at the start of
the step (the group's exponential-Euler Jacobian, taken symbolically); this phase takes the
linearised backward-Euler step, as NEURON's fixed step does (``secondorder=0``)::

    (C_i/dt - C_i B_i) Δ_i + Σ_j g_ij (Δ_i - Δ_j) = C_i f_i + Σ_j g_ij (v_j - v_i)

With ``crank_nicolson`` the same system with 2C_i/dt is solved for the half step and the
voltage moves by twice that (NEURON's ``secondorder=2``): second order in dt for the cable.

Junction nodes (section ends, no membrane) take part with C = 0.  The matrix is a tree in
Hines order, solved in O(nodes) per cell (Gaussian elimination from the leaves, then back
substitution), batched over the cells of one morphology.  With numba installed the whole
phase of a part (gather, axial terms, sweep, scatter) is one compiled function (generic,
compiled once and cached); otherwise NumPy, the sweep a loop over nodes vectorised over cells.
"""
from __future__ import annotations

from typing import List

import numpy as np
import scipy.sparse as sp

from ..compile.build import CableSpec
from ..graph.morphology import CableTree


def _hines_numpy(parent, g, d, rhs):
    nn = d.shape[1]
    for i in range(nn - 1, 0, -1):
        p = parent[i]
        f = g[i] / d[:, i]
        d[:, p] -= f * g[i]
        rhs[:, p] += f * rhs[:, i]
    rhs[:, 0] /= d[:, 0]
    for i in range(1, nn):
        rhs[:, i] = (rhs[:, i] + g[i] * rhs[:, parent[i]]) / d[:, i]


_STEP = None


def _cable_step_py(v, f, b, inst, mem, junc, vj, cap, diag, parent, g, dt, scale, vn, d, rhs):
    """One cable part's implicit step, all cells, in one compiled call (see solve())."""
    ncells, nn = vn.shape
    nmem = mem.shape[0]
    njunc = junc.shape[0]
    for c in range(ncells):
        for k in range(nmem):
            vn[c, mem[k]] = v[inst[c, k]]
        for k in range(njunc):
            vn[c, junc[k]] = vj[c, k]
        for i in range(nn):
            d[c, i] = diag[i]
            rhs[c, i] = 0.0
        for i in range(1, nn):
            p = parent[i]
            x = g[i] * (vn[c, p] - vn[c, i])
            rhs[c, i] += x
            rhs[c, p] -= x
        for k in range(nmem):
            i = mem[k]
            ck = cap[c, i]
            j = inst[c, k]
            d[c, i] += scale * ck / dt - ck * b[j]
            rhs[c, i] += ck * f[j]
        for i in range(nn - 1, 0, -1):
            p = parent[i]
            q = g[i] / d[c, i]
            d[c, p] -= q * g[i]
            rhs[c, p] += q * rhs[c, i]
        rhs[c, 0] /= d[c, 0]
        for i in range(1, nn):
            rhs[c, i] = (rhs[c, i] + g[i] * rhs[c, parent[i]]) / d[c, i]
        for k in range(nmem):
            v[inst[c, k]] = vn[c, mem[k]] + scale * rhs[c, mem[k]]
        for k in range(njunc):
            vj[c, k] = vn[c, junc[k]] + scale * rhs[c, junc[k]]


def cable_stepper():
    """The whole implicit step of one part compiled with numba, or None without numba."""
    global _STEP
    if _STEP is None:
        try:
            import numba
        except ImportError:
            _STEP = False
        else:
            try:
                _STEP = numba.njit(cache=True)(_cable_step_py)
            except Exception:  # no cache folder: compile in memory
                _STEP = numba.njit(_cable_step_py)
    return _STEP or None


class CablePhase:
    """The implicit voltage update of every :class:`CableSpec` of a program."""

    def __init__(self, prog, specs: List[CableSpec], dt: float, crank_nicolson: bool = False):
        self.dt = float(dt)
        #: Crank–Nicolson (NEURON's secondorder=2): the system with 2C/dt solved for the half
        #: step, the full step twice that; 1: backward Euler
        self.scale = 2.0 if crank_nicolson else 1.0
        self.prog = prog
        self.parts = []
        self.step_compiled = cable_stepper()
        for s in specs:
            t = s.tree
            nn = len(t.parent)
            mem = np.nonzero(t.comp >= 0)[0]
            junc = np.nonzero(t.comp < 0)[0]
            inst = np.arange(s.ncells)[:, None] * t.ncomp + t.comp[mem][None, :]
            child = np.arange(1, nn)
            par = t.parent[1:]
            gg = t.g[1:]
            lap = sp.coo_matrix((np.concatenate([gg, gg, -gg, -gg]),
                                 (np.concatenate([child, par, child, par]),
                                  np.concatenate([child, par, par, child]))), shape=(nn, nn)).tocsr()
            key = (s.gid, s.v_key)
            vname, fname, bname = prog.implicit[key]
            cap = np.zeros(nn)
            if s.capacitance is not None:
                cap[mem] = s.capacitance[t.comp[mem]]
            self.parts.append(dict(spec=s,
                v=vname, f=fname, b=bname, inst=inst, mem=mem, junc=junc, lap=lap,
                diag=np.asarray(lap.diagonal()), cap=cap[None, :].repeat(s.ncells, 0),
                vj=np.zeros((s.ncells, len(junc))), parent=t.parent.astype(np.int64),
                g=np.ascontiguousarray(t.g, dtype=float), nn=nn, ncells=s.ncells,
                jnb=self._junction_neighbour(t, junc)))
            if self.step_compiled is not None:  # the compiled step's scratch and index arrays
                p = self.parts[-1]
                shape = (s.ncells, nn)
                p["work"] = (np.empty(shape), np.empty(shape), np.empty(shape),
                             np.ascontiguousarray(inst, dtype=np.int64), np.ascontiguousarray(mem, dtype=np.int64),
                             np.ascontiguousarray(junc, dtype=np.int64), np.ascontiguousarray(p["diag"], dtype=float))

    @staticmethod
    def _junction_neighbour(t: CableTree, junc) -> np.ndarray:
        """A compartment node next to each junction (its start value)."""
        out = []
        for j in junc:
            nb = [int(t.parent[j])] if t.parent[j] >= 0 else []
            nb += [int(i) for i in np.nonzero(t.parent == j)[0]]
            hit = next((i for i in nb if t.comp[i] >= 0), nb[0] if nb else j)
            out.append(hit)
        return np.array(out, dtype=np.int64)

    def reset(self, V) -> None:
        """Junction voltages from their neighbouring compartments (after OnStart)."""
        for p in self.parts:
            s = p["spec"]
            if s.capacitance is None:  # a point cell: its LEMS capacitance
                n = s.ncells * s.tree.ncomp
                c = np.broadcast_to(np.asarray(self.prog.value(s.gid, "totCap"), dtype=float), (n,))
                p["cap"][:, p["mem"]] = c[p["inst"]]
            vn = self._nodes(V, p, init=True)
            p["vj"][...] = vn[:, p["junc"]]

    def _nodes(self, V, p, init=False) -> np.ndarray:
        vn = np.empty((p["ncells"], p["nn"]))
        vn[:, p["mem"]] = V[p["v"]][p["inst"]]
        if init:
            # junctions: repeat until every junction reads a compartment's value
            for _ in range(len(p["junc"]) + 1):
                vn[:, p["junc"]] = vn[:, p["jnb"]]
        else:
            vn[:, p["junc"]] = p["vj"]
        return vn

    def solve(self, V) -> None:
        dt = self.dt
        if self.step_compiled is not None:
            for p in self.parts:
                vn, d, rhs, inst, mem, junc, diag = p["work"]
                v, f, b = V[p["v"]], V[p["f"]], V[p["b"]]
                if np.shape(f) != v.shape:  # a constant f or B (a passive cell's B) as an array
                    f = np.ascontiguousarray(np.broadcast_to(f, v.shape), dtype=float)
                if np.shape(b) != v.shape:
                    b = np.ascontiguousarray(np.broadcast_to(b, v.shape), dtype=float)
                self.step_compiled(v, f, b, inst, mem, junc,
                                   p["vj"], p["cap"], diag, p["parent"], p["g"], dt, self.scale, vn, d, rhs)
            return
        for p in self.parts:
            vn = self._nodes(V, p)
            mem, inst = p["mem"], p["inst"]
            cap = p["cap"][:, mem]
            # junctions have no capacitance and no membrane: their rows are axial terms only
            d = np.repeat(p["diag"][None, :], p["ncells"], axis=0)
            d[:, mem] += self.scale * cap / dt - cap * V[p["b"]][inst]
            rhs = np.ascontiguousarray(-(p["lap"] @ vn.T).T)
            rhs[:, mem] += cap * V[p["f"]][inst]
            _hines_numpy(p["parent"], p["g"], d, rhs)
            vn += self.scale * rhs
            V[p["v"]][inst] = vn[:, mem]
            p["vj"][...] = vn[:, p["junc"]]


def point_tree() -> CableTree:
    """The one-compartment tree of a single-compartment cell (``--method neuron``); its
    capacitance is the cell's LEMS ``totCap`` (:meth:`CablePhase.reset`), its area unused."""
    return CableTree(parent=np.array([-1]), g=np.zeros(1), comp=np.zeros(1, dtype=np.int64),
                     area=np.zeros(1), comp_section=np.zeros(1, dtype=np.int64), comp_x=np.array([0.5]),
                     path_length=np.zeros(1), sections=[])


def point_cell_specs(built) -> List[CableSpec]:
    """Single-compartment NeuroML cells (``cell`` types) as one-node cables, so that
    ``--method neuron`` solves their voltage as NEURON does."""
    done = {c.gid for c in built.cables}
    out = []
    for pid, g in built.pop_groups.items():
        if g.gid in done:
            continue
        done.add(g.gid)
        if not g.model.is_a(g.root.tname, "cell") or "v" not in g.state or "totCap" not in g.derived:
            continue
        out.append(CableSpec(g.gid, "v", point_tree(), None, g.n))
    return out
