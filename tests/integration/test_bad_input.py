"""Bad input: one line naming the file and element/line, a non-zero exit, no traceback."""
import sys

import pytest
from pathlib import Path

from conftest import run_cli, write_lems

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bad_input"))
from make_corpus import GOOD_CELL, lems, net  # noqa: E402  (the corpus cases: test_bad_corpus.py)


def test_line_numbers_reported(tmp_path):
    f = tmp_path / "LEMS_bad.xml"
    f.write_text(lems("\n\n" + GOOD_CELL.replace('C="100pF"', 'C="100 pFF"') + net()))
    p = run_cli(["run", f], cwd=tmp_path)
    assert "LEMS_bad.xml:9" in p.stderr, p.stderr


MC_SEGS = ('<segment id="0"><proximal x="0" y="0" z="0" diameter="10"/><distal x="10" y="0" z="0" diameter="10"/>'
           '</segment><segment id="1"><parent segment="0"/><distal x="20" y="0" z="0" diameter="2"/></segment>')
MC_BIO = ('<biophysicalProperties id="b"><membraneProperties>'
          '<channelDensity id="pas" ionChannel="pas" condDensity="1 S_per_m2" erev="-65mV" ion="non_specific"{grp}/>'
          '<specificCapacitance value="1 uF_per_cm2"/><initMembPotential value="-65mV"/><spikeThresh value="0mV"/>'
          '</membraneProperties><intracellularProperties><resistivity value="100 ohm_cm"/></intracellularProperties>'
          '</biophysicalProperties>')


@pytest.mark.parametrize("segs,grp,message", [
    (MC_SEGS.replace('<parent segment="0"/>', '<parent segment="7"/>'), "", "parent segment 7 does not exist"),
    (MC_SEGS.replace('<segment id="0">', '<segment id="0"><parent segment="1"/>').replace(
        '<parent segment="0"/>', '<parent segment="0"/><proximal x="10" y="0" z="0" diameter="2"/>'), "",
     "no root segment"),
    (MC_SEGS.replace('x="20" y="0" z="0" diameter="2"', 'x="10" y="0" z="0" diameter="2"'), "", "zero length"),
    (MC_SEGS.replace('diameter="2"', 'diameter="0"'), "", "diameter 0.0 must be positive"),
    (MC_SEGS, ' segmentGroup="nowhere"', "unknown segment group 'nowhere'"),
])
def test_bad_morphology(tmp_path, segs, grp, message):
    cell = (f'<ionChannelHH id="pas" conductance="10pS"/><cell id="mc"><morphology id="m">{segs}</morphology>'
            + MC_BIO.format(grp=grp) + '</cell>')
    f = tmp_path / "LEMS_mc.xml"
    f.write_text(lems(cell + net("mc")))
    p = run_cli(["run", f], cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert message in p.stderr and "LEMS_mc.xml:" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_bad_inhomogeneous_value(tmp_path):
    segs = MC_SEGS.replace('</segment><segment id="1">', '</segment><segment id="1">')
    groups = ('<segmentGroup id="dend"><member segment="1"/><inhomogeneousParameter id="PL" variable="p" '
              'metric="Path Length from root"><proximal translationStart="0"/></inhomogeneousParameter>'
              '</segmentGroup>')
    bio = MC_BIO.format(grp="").replace(
        '<specificCapacitance', '<channelDensityNonUniform id="nu" ionChannel="pas" erev="-65mV" ion="non_specific">'
        '<variableParameter parameter="condDensity" segmentGroup="dend"><inhomogeneousValue '
        'inhomogeneousParameter="PL" value="1e-4 * exp(q / 10)"/></variableParameter></channelDensityNonUniform>'
        '<specificCapacitance')
    cell = f'<ionChannelHH id="pas" conductance="10pS"/><cell id="mc"><morphology id="m">{segs}{groups}</morphology>{bio}</cell>'
    f = tmp_path / "LEMS_mc.xml"
    f.write_text(lems(cell + net("mc")))
    p = run_cli(["run", f], cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert "unknown names q" in p.stderr and "inhomogeneousValue" in p.stderr, p.stderr


@pytest.mark.parametrize("attrs,message", [
    ('segmentId="9" fractionAlong="0.5"', "segmentId=9: the cells of population 'p' have no segment 9"),
    ('segmentId="inf" fractionAlong="0.5"', "segmentId='inf' is not a segment id"),
    ('segmentId="1" fractionAlong="nan"', "fractionAlong=nan is outside 0..1"),
    ('segmentId="1.5"', "segmentId='1.5' is not a segment id"),
])
def test_bad_input_location(tmp_path, attrs, message):
    """Where an input sits on a multi-compartment cell: one line naming the <input>."""
    cell = (f'<ionChannelHH id="pas" conductance="10pS"/><cell id="mc"><morphology id="m">{MC_SEGS}</morphology>'
            + MC_BIO.format(grp="") + '</cell><pulseGenerator id="pg" delay="0ms" duration="1ms" amplitude="1pA"/>')
    network = ('<network id="net"><population id="p" component="mc" size="1"/><inputList id="il" population="p" '
               f'component="pg"><input id="0" target="../p[0]" destination="synapses" {attrs}/></inputList></network>')
    f = tmp_path / "LEMS_mc.xml"
    f.write_text(lems(cell + network))
    p = run_cli(["run", f], cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert message in p.stderr and "<input id='0'>" in p.stderr and "LEMS_mc.xml:" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_bad_connection_segment(tmp_path):
    cell = (f'<ionChannelHH id="pas" conductance="10pS"/><cell id="mc"><morphology id="m">{MC_SEGS}</morphology>'
            + MC_BIO.format(grp="") + '</cell><expOneSynapse id="syn" gbase="1nS" erev="0mV" tauDecay="2ms"/>')
    network = ('<network id="net"><population id="p" component="mc" size="2"/><projection id="pr" '
               'presynapticPopulation="p" postsynapticPopulation="p" synapse="syn"><connection id="0" '
               'preCellId="../p[0]" postCellId="../p[1]" postSegmentId="5"/></projection></network>')
    f = tmp_path / "LEMS_mc.xml"
    f.write_text(lems(cell + network))
    p = run_cli(["run", f], cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert "postSegmentId=5: the cells of population 'p' have no segment 5" in p.stderr, p.stderr
    assert "<connection id='0'>" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("conn,message", [
    ('<connection id="0" preCellId="p-0" postCellId="../p[1]"/>', "cannot understand cell reference 'p-0'"),
    ('<connection id="0" preCellId="../p[0]" postCellId="../p[7]"/>', "out of range"),
    ('<connection id="0" preCellId="../p[0]" postCellId="../p[1]" weight="heavy"/>', "weight 'heavy'"),
    ('<connectionWD id="0" preCellId="../p[0]" postCellId="../p[1]" weight="1" delay="2 parsecs"/>', "parsecs"),
])
def test_bad_connection(tmp_path, conn, message):
    """A plain connection's cell references, weight and delay: one line naming it (the reader's
    short path for connections looks the location up only on an error)."""
    body = GOOD_CELL + '<expOneSynapse id="syn" gbase="1nS" erev="0mV" tauDecay="2ms"/>'
    network = ('<network id="net"><population id="p" component="c" size="2"/><projection id="pr" '
               f'presynapticPopulation="p" postsynapticPopulation="p" synapse="syn">{conn}</projection></network>')
    f = tmp_path / "LEMS_conn.xml"
    f.write_text(lems(body + network))
    p = run_cli(["run", f], cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert message in p.stderr and "LEMS_conn.xml:" in p.stderr and "id='0'" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_bad_recorded_segment(tmp_path):
    cell = (f'<ionChannelHH id="pas" conductance="10pS"/><cell id="mc"><morphology id="m">{MC_SEGS}</morphology>'
            + MC_BIO.format(grp="") + '</cell>')
    f = tmp_path / "LEMS_mc.xml"
    f.write_text(lems(cell + net("mc")).replace('quantity="p[0]/v"', 'quantity="p/0/mc/7/v"'))
    p = run_cli(["run", f], cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert "segment 7 does not exist" in p.stderr and "<OutputColumn id='v'>" in p.stderr, p.stderr


BLOWUP = """<ComponentType name="runaway" extends="baseCellMembPot">
  <Constant name="T" dimension="time" value="1s"/><Constant name="V1" dimension="voltage" value="1V"/>
  <Dynamics><StateVariable name="v" dimension="voltage" exposure="v"/>
  <TimeDerivative variable="v" value="v * v * 1e6 / (T * V1)"/>
  <OnStart><StateAssignment variable="v" value="V1"/></OnStart></Dynamics>
</ComponentType><runaway id="c"/>"""


def test_nan_blowup_stops_with_partial_outputs(tmp_path):
    f = tmp_path / "LEMS_blow.xml"
    f.write_text(lems(BLOWUP + net()).replace('length="10ms"', 'length="1000ms"'))
    p = run_cli(["run", f, "--method", "euler"], cwd=tmp_path)
    assert p.returncode == 5, p.stderr
    line = p.stderr.strip()
    assert len(line.splitlines()) == 1 and "'v' of cell 0 in 'p'" in line and "t = " in line, line
    assert (tmp_path / "v.dat.partial").exists() and not (tmp_path / "v.dat").exists()


def test_unwritable_output_folder(tmp_path):
    import os
    f = tmp_path / "LEMS_ok.xml"
    f.write_text(lems(GOOD_CELL + net()))
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):  # running as root: permissions do not bind
            blocker = tmp_path / "afile"
            blocker.write_text("x")
            outdir = blocker  # a file where a folder is needed
        else:
            outdir = ro
        p = run_cli(["run", f, "--outdir", outdir], cwd=tmp_path)
    finally:
        os.chmod(ro, 0o700)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "cannot write output" in p.stderr


def test_include_cycle_is_read_once(tmp_path):
    """a.nml includes b.nml includes a.nml: each file is read once, no hang, no error."""
    (tmp_path / "a.nml").write_text('<neuroml id="a"><include href="b.nml"/>' + GOOD_CELL + "</neuroml>")
    (tmp_path / "b.nml").write_text('<neuroml id="b"><include href="a.nml"/></neuroml>')
    f = tmp_path / "LEMS_cyc.xml"
    f.write_text(lems('<Include file="a.nml"/>' + net()))
    p = run_cli(["run", f, "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "v.dat").exists()


def test_duplicate_ids_do_not_crash(tmp_path):
    f = tmp_path / "LEMS_dup.xml"
    f.write_text(lems(GOOD_CELL + GOOD_CELL + net()))
    p = run_cli(["run", f, "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("command", ["run", "validate", "info", "convert"])
def test_include_of_a_fifo_is_refused_not_waited_on(tmp_path, command):
    """A FIFO (or device) named by an <Include> would block every command forever."""
    import os
    os.mkfifo(tmp_path / "pipe.nml")
    f = tmp_path / "LEMS_f.xml"
    f.write_text(lems('<Include file="pipe.nml"/>' + GOOD_CELL + net()))
    args = [command, f] + ([tmp_path / "out", "--to", "sonata"] if command == "convert" else [])
    p = run_cli(args, cwd=tmp_path, timeout=60)
    assert p.returncode != 0 and "not a regular file" in p.stdout + p.stderr


HOST_READER = """
<ComponentType name="leaky" extends="baseCellMembPot">
  <Parameter name="tau" dimension="time"/><Parameter name="vrest" dimension="voltage"/>
  <Parameter name="C" dimension="capacitance"/>
  <Attachments name="synapses" type="basePointCurrent"/>
  <Dynamics>
    <DerivedVariable name="isyn" dimension="current" select="synapses[*]/i" reduce="add"/>
    <StateVariable name="v" dimension="voltage" exposure="v"/>
    <TimeDerivative variable="v" value="-v/tau + isyn/C"/>
  </Dynamics>
</ComponentType>
<ComponentType name="readsHost" extends="baseSynapse">
  <Parameter name="g" dimension="conductance"/>
  <Requirement name="vrest" dimension="voltage"/><Requirement name="v" dimension="voltage"/>
  <Dynamics><DerivedVariable name="i" dimension="current" exposure="i" value="g * (vrest - v)"/></Dynamics>
</ComponentType>
<leaky id="c" tau="10ms" C="1pF"/>
<readsHost id="s" g="1nS"/>
<network id="net"><population id="p" component="c" size="2"/><explicitInput target="p[0]" input="s"/></network>
"""


def test_parameter_without_value_read_by_another_group(tmp_path):
    """A parameter without a value read only through another group (an input's Requirement of
    its host's vrest) is named by `validate` and by `run`, as one read in the group's own
    equations is."""
    sim = ('<Simulation id="sim1" length="10ms" step="0.1ms" target="net"><OutputFile id="o" fileName="o.dat">'
           '<OutputColumn id="v" quantity="p[0]/v"/></OutputFile></Simulation>')
    f = write_lems(tmp_path / "LEMS_host.xml", HOST_READER, sim)
    for cmd in (["validate", f], ["run", f, "-q"]):
        p = run_cli(cmd, cwd=tmp_path)
        assert p.returncode != 0 and "Traceback" not in p.stderr + p.stdout
        out = p.stdout + p.stderr
        assert "LEMS_host.xml:" in out and "parameter 'vrest' of group 'p' has no value" in out, out
