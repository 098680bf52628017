"""A Simulation whose target is one cell, not a network (jLEMS runs it; OSB tests use it):
nmlsim runs it as a network of one, with the cell's own paths ("v")."""
import numpy as np
import pytest

from conftest import run_cli, write_lems

CELL = ('<izhikevich2007Cell id="izh" C="100pF" v0="-60mV" k="0.7nS_per_mV" vr="-60mV" vt="-40mV" vpeak="35mV" '
        'a="0.03per_ms" b="-2nS" c="-50mV" d="100pA"/>')


@pytest.mark.parametrize("method", ["euler", "exp_euler"])
def test_bare_cell_target_equals_a_network_of_one(tmp_path, method):
    bare = write_lems(tmp_path / "LEMS_bare.xml", CELL,
                      '<Simulation id="sim1" length="50ms" step="0.01ms" target="izh">'
                      '<OutputFile id="o" fileName="bare.dat"><OutputColumn id="v" quantity="v"/>'
                      '<OutputColumn id="u" quantity="u"/></OutputFile></Simulation>')
    net = write_lems(tmp_path / "LEMS_net.xml", CELL + '<network id="net"><population id="p" component="izh" '
                     'size="1"/></network>',
                     '<Simulation id="sim1" length="50ms" step="0.01ms" target="net">'
                     '<OutputFile id="o" fileName="net.dat"><OutputColumn id="v" quantity="p[0]/v"/>'
                     '<OutputColumn id="u" quantity="p[0]/u"/></OutputFile></Simulation>')
    for f in (bare, net):
        p = run_cli(["run", f, "--method", method, "-q"], cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    a, b = np.loadtxt(tmp_path / "bare.dat"), np.loadtxt(tmp_path / "net.dat")
    assert a.shape == b.shape == (5001, 3) and np.array_equal(a, b)
    assert a[0, 1] == pytest.approx(-0.06)


def test_a_target_without_dynamics_or_network_is_refused(tmp_path):
    f = write_lems(tmp_path / "LEMS_x.xml", '<pulseGenerator id="pg" delay="0ms" duration="1ms" amplitude="1nA"/>'
                   '<Component id="thing" type="notes"/>',
                   '<Simulation id="sim1" length="1ms" step="0.01ms" target="thing"/>')
    p = run_cli(["run", f, "-q"], cwd=tmp_path)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr
