"""Simulation targets and selections as jLEMS takes them: a Simulation whose target is one cell, not a
network (nmlsim runs it as a network of one, with the cell's own paths), and EventSelections of inputs on cells."""
import json

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
    # to SONATA: the cell's v column becomes a report of its one node (u has no report form: a note)
    p = run_cli(["convert", bare, tmp_path / "son", "--to", "sonata"], cwd=tmp_path)
    assert p.returncode == 0 and "'u'" in p.stderr and "'v'" not in p.stderr, p.stderr
    assert list(json.loads((tmp_path / "son" / "simulation_config.json").read_text())["reports"]) == ["o"]


def test_a_target_without_dynamics_or_network_is_refused(tmp_path):
    f = write_lems(tmp_path / "LEMS_x.xml", '<pulseGenerator id="pg" delay="0ms" duration="1ms" amplitude="1nA"/>'
                   '<Component id="thing" type="notes"/>',
                   '<Simulation id="sim1" length="1ms" step="0.01ms" target="thing"/>')
    p = run_cli(["run", f, "-q"], cwd=tmp_path)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_event_selection_of_an_input_on_a_cell(tmp_path):
    """EventSelection of an input attached to a cell (StochasticityShowcase's
    izhPop/4/RS/poissonFiringSyn): the input's own spikes, at its rate."""
    body = (CELL + '<expOneSynapse id="syn" gbase="1nS" erev="0mV" tauDecay="2ms"/>'
            '<poissonFiringSynapse id="pfs" averageRate="50 Hz" synapse="syn" spikeTarget="./syn"/>'
            '<network id="net"><population id="pop" component="izh" type="populationList" size="2">'
            '<instance id="0"><location x="0" y="0" z="0"/></instance>'
            '<instance id="1"><location x="1" y="0" z="0"/></instance></population>'
            '<explicitInput target="pop/1/izh" input="pfs" destination="synapses"/></network>')
    f = write_lems(tmp_path / "LEMS_sel.xml", body,
                   '<Simulation id="sim1" length="2s" step="0.05ms" target="net" seed="3">'
                   '<EventOutputFile id="e" fileName="pfs.spikes" format="ID_TIME">'
                   '<EventSelection id="7" select="pop/1/izh/pfs" eventPort="spike"/></EventOutputFile></Simulation>')
    p = run_cli(["run", f, "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    ev = np.loadtxt(tmp_path / "pfs.spikes", ndmin=2)
    assert set(ev[:, 0]) == {7} and 70 < len(ev) < 130  # 50 Hz for 2 s: 100 +- 3 SD
    p = run_cli(["validate", f], cwd=tmp_path)
    assert p.returncode == 0, p.stdout
