"""SWC morphologies, read into NEURON sections as NEURON's Import3d lays them out.

bmtk (and every NEURON-based SONATA tool) loads a cell's SWC file with NEURON's
``Import3d_SWC_read`` and ``Import3d_GUI.instantiate``; a simulator that wants the same
compartments has to cut the points into the same sections.  The rules, from NEURON's
``read_swc.hoc`` / ``import3d_gui.hoc``:

* points are sorted by id; every parent id must be smaller than its child's id and the file
  must hold one tree;
* a section is a run of points of one type with no branch: it ends at a point with other
  than one child, or whose child is not the next line, or whose child changes type;
* a non-root section starts with a copy of its parent point, except that a branch leaving a
  one-point soma (or the interior of a soma) is joined to the soma centre (``parentx`` 0.5)
  "by a wire": its own first point is its start, and its first diameter is its own;
* a one-point root soma is a sphere, drawn as a 3-point cylinder along x with length and
  diameter equal to the sphere's diameter (the same membrane area); the neuromorpho.org
  3-point soma (two points at ± r around the root) is the same sphere;
* a section of one point, or of two points in the same place, is dropped and its children
  hang on its parent;
* sections are named ``soma``, ``axon``, ``dend``, ``apic`` for types 1-4 (``dend_<t>`` for
  other types), numbered per type in file order.

:func:`read_swc` returns those sections; geometry is in micrometres.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import FormatError

TYPE_NAMES = {1: "soma", 2: "axon", 3: "dend", 4: "apic"}


def type_name(t: int) -> str:
    if t in TYPE_NAMES:
        return TYPE_NAMES[t]
    return f"minus_{-t}" if t < 0 else f"dend_{t}"


@dataclass
class SwcSection:
    """One NEURON section: its points (k, 4: x, y, z, diameter, µm), where it hangs."""
    type: int
    points: np.ndarray
    parent: Optional[int]  # index in the section list
    parent_x: float
    name: str = ""
    line: int = 0  # the file line of its first own point (for messages)

    @property
    def length(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.points[:, :3], axis=0), axis=1)))


def _parse(path: Path):
    rows, lines = [], []
    try:
        text = path.read_text()
    except OSError as e:
        raise FormatError(f"cannot read SWC file: {e.strerror or e}", file=path) from None
    except UnicodeDecodeError:
        raise FormatError("not a text file (an SWC morphology is text)", file=path) from None
    for ln, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        bits = s.split()
        if len(bits) < 7:
            raise FormatError(f"expected 7 columns (id type x y z radius parent), found {len(bits)}",
                              file=path, line=ln)
        try:
            vals = [float(b) for b in bits[:7]]
        except ValueError:
            raise FormatError(f"a column is not a number: '{s}'", file=path, line=ln) from None
        if not all(np.isfinite(vals)):
            raise FormatError(f"a column is not finite: '{s}'", file=path, line=ln)
        if vals[0] != int(vals[0]) or vals[6] != int(vals[6]) or vals[1] != int(vals[1]):
            raise FormatError(f"id, type and parent must be integers: '{s}'", file=path, line=ln)
        if vals[5] < 0:
            raise FormatError(f"negative radius {vals[5]}", file=path, line=ln)
        rows.append(vals)
        lines.append(ln)
    if not rows:
        raise FormatError("no points (an SWC file needs at least one line 'id type x y z radius parent')",
                          file=path)
    a = np.array(rows)
    return a, np.array(lines)


def read_swc(path) -> List[SwcSection]:
    """The sections NEURON's Import3d makes of an SWC file (see the module docstring)."""
    path = Path(path)
    a, lines = _parse(path)
    order = np.argsort(a[:, 0], kind="stable")
    a, lines = a[order], lines[order]
    ids = a[:, 0].astype(np.int64)
    typ = a[:, 1].astype(np.int64)
    xyz = a[:, 2:5]
    d = 2.0 * a[:, 5]
    pid = a[:, 6].astype(np.int64)
    n = len(ids)
    dup = np.nonzero(np.diff(ids) == 0)[0]
    if len(dup):
        raise FormatError(f"point id {ids[dup[0]]} is defined twice", file=path, line=int(lines[dup[0] + 1]))
    bad = np.nonzero((pid >= ids) & (pid >= 0))[0]
    if len(bad):
        i = int(bad[0])
        raise FormatError(f"point {ids[i]}: parent {pid[i]} is not an earlier point (an SWC tree lists a "
                          "parent before its children; a loop or a forward reference?)", file=path, line=int(lines[i]))
    index = {int(k): i for i, k in enumerate(ids)}
    pix = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if pid[i] >= 0:
            if int(pid[i]) not in index:
                raise FormatError(f"point {ids[i]}: parent {pid[i]} does not exist", file=path, line=int(lines[i]))
            pix[i] = index[int(pid[i])]
    roots = np.nonzero(pix < 0)[0]
    if len(roots) != 1 or roots[0] != 0:
        raise FormatError(f"{len(roots)} root points (parent -1) at lines "
                          f"{', '.join(str(int(lines[r])) for r in roots[:5])}: a cell is one tree",
                          file=path, line=int(lines[roots[min(1, len(roots) - 1)]]))
    if n == 1 and typ[0] != 1:
        raise FormatError("a single point that is not a soma is not a cell", file=path, line=int(lines[0]))

    # -- mark_branch: children per point (+.01 when not contiguous or changing type)
    nchild = np.zeros(n)
    connect2prox = np.zeros(n, dtype=bool)
    for i in range(n):
        p = int(pix[i])
        if p < 0:
            continue
        nchild[p] += 1
        if p != i - 1:
            nchild[p] += 0.01
            if p > 1:
                if typ[p] != 1 and typ[pix[p]] == 1:
                    connect2prox[i] = True
                    nchild[p] = 1
            elif p == 0 and typ[p] != 1:
                connect2prox[i] = True
                nchild[p] = 1
        if typ[p] != typ[i]:
            nchild[p] += 0.01

    # -- sectionify
    nchild_soma = np.zeros(n)
    nsoma = int(typ[0] == 1)
    for i in range(1, n):
        if typ[i] == 1:
            nsoma += 1
            p = int(pix[i])
            if p >= 0 and typ[p] == 1:
                nchild_soma[p] += 1
    soma3 = False
    if nsoma == 3 and n >= 3 and pix[1] == 0 and pix[2] == 0 and nchild[1] == 0 and nchild[2] == 0 \
            and d[1] == d[0] and d[2] == d[0] and d[0] > 0:
        ln = np.linalg.norm(xyz[1] - xyz[0]) + np.linalg.norm(xyz[2] - xyz[0])
        if abs(ln / d[0] - 1) < 0.01:
            soma3 = True
            pix[2] = 1  # the two outer points are one sphere, not two soma sections
    for i in range(n - 1):
        if typ[i] == 1 and typ[i + 1] == 1 and pix[i + 1] == i:
            if not (i != 0 and nchild_soma[i] > 1):
                nchild[i] = 1
    ends = np.nonzero(nchild != 1)[0]  # last point of each section
    point2sec = np.zeros(n, dtype=np.int64)
    si = 0
    for i in range(1, n):
        if i > ends[si]:
            si += 1
        point2sec[i] = si

    # -- mksections: (first own point, end) per section
    spans = []
    first = 0
    isec = 0
    for i in range(n):
        if point2sec[i] > isec:
            spans.append((first, i))
            isec += 1
            first = i
    spans.append((first, n))

    raw = []  # (type, point indices, parent sec, parentx, skip_first, id)
    for k, (first, end) in enumerate(spans):
        if k == 0:
            if soma3:
                end = 1
            raw.append(dict(type=int(typ[first]), idx=list(range(first, end)), parent=None, x=1.0,
                            skip=0, id=first, dfix=False))
            continue
        p = int(pix[first])
        ps = int(point2sec[p])
        psec = raw[ps]
        den_con_soma = psec["type"] == 1 and typ[first] != 1
        con_soma = psec["type"] == 1
        x, skip = 1.0, 0
        handled = False
        if ps == 0:
            handled = True
            if den_con_soma and len(psec["idx"]) == 1:
                x = 0.5
                if end - first > 1:
                    skip = 1
            elif p == psec["id"]:
                x = 0.0
                if typ[first] != 1 and nchild_soma[p] > 1:
                    skip = 1
            else:
                handled = False
        if not handled and con_soma:
            offset = -1 if psec["id"] == 0 else -2
            if p < psec["id"] + len(psec["idx"]) + offset:
                x = 0.5
                if den_con_soma and end - first > 1:
                    skip = 1
            elif end - first > 1 and nchild_soma[p] > 1 and typ[first] != 1:
                skip = 1
        sec = dict(type=int(typ[first]), idx=[p] + list(range(first, end)), parent=ps, x=x, skip=skip,
                   id=first, dfix=psec["type"] == 1 and typ[first] != 1)
        if connect2prox[first]:
            sec["x"] = 0.0
        raw.append(sec)

    # -- chk_valid: drop one-point and zero-length two-point sections (children to the parent)
    alive = [True] * len(raw)
    for k in range(len(raw) - 1, 0, -1):
        s = raw[k]
        own = s["idx"][s["skip"]:]
        drop = len(own) <= 1 or (len(own) == 2 and np.array_equal(xyz[own[0]], xyz[own[1]]))
        if drop:
            alive[k] = False
            for j in range(k + 1, len(raw)):
                if alive[j] and raw[j]["parent"] == k:
                    raw[j]["parent"], raw[j]["x"] = s["parent"], s["x"]
    keep = [k for k in range(len(raw)) if alive[k]]
    new_index = {k: j for j, k in enumerate(keep)}
    out: List[SwcSection] = []
    counts: dict = {}
    for k in keep:
        s = raw[k]
        idx = s["idx"]
        pts = np.column_stack([xyz[idx], d[idx]])
        if s["dfix"] and len(pts) > 1:
            pts[0, 3] = pts[1, 3]
        pts = pts[s["skip"]:]
        if len(pts) == 1:  # a one-point (root) soma: a sphere as a cylinder along x
            c = pts[0]
            pts = np.array([[c[0] - c[3] / 2, c[1], c[2], c[3]], c, [c[0] + c[3] / 2, c[1], c[2], c[3]]])
        t = s["type"]
        nm = type_name(t)
        j = counts.get(nm, 0)
        counts[nm] = j + 1
        out.append(SwcSection(t, pts, None if s["parent"] is None else new_index[s["parent"]], s["x"],
                              f"{nm}_{j}", int(lines[s["id"]])))
    for s in out:
        if s.points[:, 3].min() <= 0:
            raise FormatError(f"section {s.name} has a point of zero diameter (radius 0)", file=path, line=s.line)
    return out
