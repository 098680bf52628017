"""Bad input: one line naming the file and element/line, a non-zero exit, no traceback."""
import pytest

from conftest import LEMS_HEAD, run_cli

GOOD_CELL = '<iafCell id="c" leakReversal="-70mV" thresh="-50mV" reset="-70mV" C="100pF" leakConductance="10nS"/>'
SIM = ('<Simulation id="sim1" length="10ms" step="0.1ms" target="net">'
       '<OutputFile id="of" fileName="v.dat"><OutputColumn id="v" quantity="p[0]/v"/></OutputFile></Simulation>')


def lems(body):
    return LEMS_HEAD + body + SIM + "\n</Lems>\n"


def net(comp="c"):
    return f'<network id="net"><population id="p" component="{comp}" size="1"/></network>'


CASES = {
    "malformed": (lems(GOOD_CELL + net()).replace("</network>", "</netwrk>"), "malformed XML", 2),
    "truncated": (lems(GOOD_CELL + net())[:300], "malformed XML", 2),
    "billion_laughs": ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
                       '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
                       '<Lems>&lol2;</Lems>\n', "entities are not allowed", 2),
    "xxe": ('<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<Lems>&x;</Lems>\n',
            "entities are not allowed", 2),
    "include_escape": (lems('<Include file="../../../../../../../../etc/passwd"/>' + GOOD_CELL + net()),
                       "outside the model folder", 2),
    "include_absolute": (lems('<Include file="/etc/passwd"/>' + GOOD_CELL + net()), "absolute include", 2),
    "include_missing": (lems('<Include file="nothere.nml"/>' + GOOD_CELL + net()), "not found", 2),
    "unknown_type": (lems('<fooCell id="c" a="1"/>' + net()), "unknown component type 'fooCell'", 3),
    "bad_unit": (lems(GOOD_CELL.replace('C="100pF"', 'C="100 pFF"') + net()), "unknown unit 'pFF'", 3),
    "wrong_dimension": (lems(GOOD_CELL.replace('C="100pF"', 'C="100mV"') + net()), "expected capacitance", 3),
    "missing_reference": (lems(GOOD_CELL + net("nope")), "unknown component 'nope'", 3),
    "bad_expression": (lems('<ComponentType name="bad" extends="baseCell"><Dynamics>'
                            '<StateVariable name="x" dimension="none"/>'
                            '<TimeDerivative variable="x" value="x +* 2"/></Dynamics></ComponentType>'
                            '<bad id="c"/>' + net()).replace("p[0]/v", "p[0]/x"), "x +* 2", 3),
    "circular_derived": (lems('<ComponentType name="circ" extends="baseCell"><Dynamics>'
                              '<DerivedVariable name="a" dimension="none" value="b + 1"/>'
                              '<DerivedVariable name="b" dimension="none" value="a * 2"/>'
                              '</Dynamics></ComponentType><circ id="c"/>' + net()).replace("p[0]/v", "p[0]/a"),
                         "circle", 3),
    "bad_quantity_path": (lems(GOOD_CELL + net()).replace("p[0]/v", "p[0]/nosuch"), "no variable 'nosuch'", 3),
    "cell_out_of_range": (lems(GOOD_CELL + net()).replace("p[0]/v", "p[5]/v"), "out of range", 3),
    "absurd_size": (lems(GOOD_CELL + net().replace('size="1"', 'size="1e12"')), "outside 0..", 3),
    "not_xml": ("this is not xml at all", "not an XML file", 2),
    "wrong_root": ('<html><body/></html>', "neither <Lems> nor <neuroml>", 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_one_line_error(tmp_path, name):
    text, needle, code = CASES[name]
    d = tmp_path / "a" / "b" / "model"
    d.mkdir(parents=True)
    f = d / "LEMS_bad.xml"
    f.write_text(text)
    p = run_cli(["run", f, "--outdir", tmp_path / "out"], cwd=d)
    assert p.returncode == code, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert needle in lines[0], lines[0]
    assert "LEMS_bad.xml" in lines[0], lines[0]
    assert not (tmp_path / "out" / "v.dat").exists()


def test_line_numbers_reported(tmp_path):
    f = tmp_path / "LEMS_bad.xml"
    f.write_text(lems("\n\n" + GOOD_CELL.replace('C="100pF"', 'C="100 pFF"') + net()))
    p = run_cli(["run", f], cwd=tmp_path)
    assert "LEMS_bad.xml:9" in p.stderr, p.stderr


def test_multicompartment_refused(tmp_path):
    cell = """<cell id="mc"><morphology id="m">
      <segment id="0"><proximal x="0" y="0" z="0" diameter="10"/><distal x="10" y="0" z="0" diameter="10"/></segment>
      <segment id="1"><parent segment="0"/><distal x="20" y="0" z="0" diameter="2"/></segment>
    </morphology></cell>"""
    f = tmp_path / "LEMS_mc.xml"
    f.write_text(lems(cell + net("mc")))
    p = run_cli(["run", f], cwd=tmp_path)
    assert p.returncode == 4
    assert "multi-compartment" in p.stderr and "mc" in p.stderr


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
    assert (tmp_path / "v.dat").exists() and (tmp_path / "v.dat.partial").exists()


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
