"""SWC files cut into NEURON's sections (Import3d's rules), and malformed SWC files refused
with one line naming file and line.  Where NEURON is installed, the sections are also checked
against its own Import3d on the same files."""
import numpy as np
import pytest

from nmlsim.errors import FormatError, ModelError
from nmlsim.io.sonata_biophys import axon_stub, morphology_component, nseg_for
from nmlsim.io.swc import read_swc

from conftest import REPO

DATA = REPO / "tests" / "data" / "swc"
FILES = sorted(DATA.glob("*.swc"))


def test_three_point_soma_is_a_sphere_and_wired_children():
    secs = read_swc(DATA / "soma3pt.swc")
    soma = secs[0]
    assert soma.name == "soma_0" and soma.parent is None
    # a sphere of radius 5: 3 points along x, length = diameter = 10
    assert np.allclose(soma.points[:, 0], [-5, 0, 5]) and np.allclose(soma.points[:, 3], 10)
    assert soma.length == pytest.approx(10.0)
    kids = [s for s in secs if s.parent == 0]
    assert {s.name for s in kids} == {"dend_0", "axon_0"}
    for s in kids:  # wired to the centre: the section starts at its own first point
        assert s.parent_x == 0.5
        assert not np.allclose(s.points[0, :3], [0, 0, 0])
    dend = next(s for s in secs if s.name == "dend_0")
    assert [s.name for s in secs if s.parent == secs.index(dend)] == ["dend_1", "dend_2"]
    d1 = next(s for s in secs if s.name == "dend_1")
    # a branch starts with a copy of its parent point, diameter included
    assert np.allclose(d1.points[0], [15, 0, 0, 1.6]) and d1.parent_x == 1.0


def test_multipoint_soma_interior_and_end_branches():
    secs = read_swc(DATA / "soma_stack.swc")
    by = {s.name: s for s in secs}
    assert len(by["soma_0"].points) == 4
    # from an interior soma point: x = 0.5, wired; from the soma's last point: x = 1 with a copy of it
    assert by["dend_0"].parent_x == 0.5
    assert by["apic_0"].parent_x == 1.0 and np.allclose(by["apic_0"].points[0, :3], [0, 12, 0])
    # a dendrite hanging on the root point: x = 0 of the soma
    root_kids = [s for s in secs if s.parent == 0 and s.parent_x == 0.0]
    assert [s.name for s in root_kids] == ["dend_2"]


def test_dendrite_only_tree():
    secs = read_swc(DATA / "nosoma.swc")
    # the root point's second child does not end the root section: it hangs on its x = 0
    assert [s.name for s in secs] == ["dend_0", "dend_1"]
    assert secs[0].parent is None and np.allclose(secs[0].points[:, 0], [0, 10, 20])
    assert secs[1].parent == 0 and secs[1].parent_x == 0.0 and np.allclose(secs[1].points[0, :3], 0)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_sections_equal_neurons_import3d(path):
    h = pytest.importorskip("neuron").h
    h.load_file("stdlib.hoc")
    h.load_file("import3d.hoc")
    for sec in list(h.allsec()):
        h.delete_section(sec=sec)
    reader = h.Import3d_SWC_read()
    reader.quiet = 1
    reader.input(str(path))
    h.Import3d_GUI(reader, 0).instantiate(None)
    theirs = {s.name(): s for s in h.allsec()}
    mine = read_swc(path)
    assert len(theirs) == len(mine)
    for s in mine:
        kind, k = s.name.rsplit("_", 1)
        ns = theirs[f"{kind}[{k}]"] if f"{kind}[{k}]" in theirs else theirs[kind]
        pts = np.array([[ns.x3d(i), ns.y3d(i), ns.z3d(i), ns.diam3d(i)] for i in range(ns.n3d())])
        assert pts.shape == s.points.shape and np.allclose(pts, s.points, atol=1e-5), s.name
        ps = ns.parentseg()
        if s.parent is None:
            assert ps is None
        else:
            pk, pj = mine[s.parent].name.rsplit("_", 1)
            assert ps.sec.name() in (f"{pk}[{pj}]", pk) and ps.x == pytest.approx(s.parent_x)
    for sec in list(h.allsec()):
        h.delete_section(sec=sec)


def test_axon_stub_and_nseg_rule():
    secs = axon_stub(read_swc(DATA / "soma3pt.swc"))
    axons = [s for s in secs if s.type == 2]
    assert [s.name for s in axons] == ["axon_0", "axon_1"]
    assert axons[0].parent == 0 and axons[0].parent_x == 0.5
    assert all(s.length == pytest.approx(30.0) and np.allclose(s.points[:, 3], 1.0) for s in axons)
    assert [nseg_for(L, 20.0) for L in (10.0, 39.9, 40.0, 79.0, 80.0)] == [1, 1, 3, 3, 5]
    assert nseg_for(500.0, None) == 1
    m = morphology_component(secs, dl=20.0, file="x.swc")
    groups = {c.id: c for c in m.children if c.tag == "segmentGroup"}
    assert {"soma", "axon", "dend", "apic", "somatic", "basal"} <= set(groups)


BAD = [
    ("1 1 0 0 0 5\n", "expected 7 columns", 1),
    ("1 1 0 0 0 5 -1\n2 3 x 0 0 1 1\n", "not a number", 2),
    ("1 1 0 0 0 5 -1\n2 3 1 0 0 1 3\n3 3 2 0 0 1 2\n", "not an earlier point", 2),
    ("1 1 0 0 0 5 -1\n2 3 1 0 0 1 1\n2 3 2 0 0 1 1\n", "defined twice", 3),
    ("1 1 0 0 0 5 -1\n2 3 1 0 0 1 -1\n", "root points", 2),
    ("1 1 0 0 0 5 -1\n2 3 1 0 0 -1 1\n", "negative radius", 2),
    ("1 1 0 0 0 5 -1\n2 3 10 0 0 0 1\n3 3 20 0 0 0 2\n", "zero diameter", 2),
    ("1 1 0 0 0 5 -1\n3 3 1 0 0 1 2\n", "does not exist", 2),
    ("# only a comment\n", "no points", None),
]


@pytest.mark.parametrize("text,msg,line", BAD, ids=[b[1] for b in BAD])
def test_malformed_swc_one_line_error(tmp_path, text, msg, line):
    f = tmp_path / "bad.swc"
    f.write_text(text)
    with pytest.raises((FormatError, ModelError)) as e:
        read_swc(f)
    err = e.value
    assert msg in err.message and err.file == str(f) and err.line == line
    assert "\n" not in str(err)
