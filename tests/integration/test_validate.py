"""`nmlsim validate` as jnml -validate: the schema for the named files, the model as a whole,
reported apart; included files may use LEMS-extended elements unless --includes asks."""
from conftest import run_cli

NS = 'xmlns="http://www.neuroml.org/schema/neuroml2"'
# a gate form with a parameter NeuroML's timeCourse cannot carry (k): a LEMS extension that
# jnml and nmlsim run, in an included file
EXTENDED = f'''<neuroml {NS} id="ext">
    <ionChannelHH id="kchan" conductance="10pS" species="k">
        <gateHHtauInf id="n" instances="1">
            <timeCourse type="myTau" k="2ms"/>
            <steadyState type="HHSigmoidVariable" rate="1" midpoint="-40mV" scale="5mV"/>
        </gateHHtauInf>
    </ionChannelHH>
    <ComponentType name="myTau" extends="baseVoltageDepTime">
        <Parameter name="k" dimension="time"/>
        <Dynamics><DerivedVariable name="t" dimension="time" exposure="t" value="k"/></Dynamics>
    </ComponentType>
</neuroml>
'''
MAIN = f'''<neuroml {NS} id="main">
    <include href="ext.nml"/>
    <iafCell id="iaf" leakReversal="-65mV" thresh="-50mV" reset="-65mV" C="100pF" leakConductance="10nS"/>
</neuroml>
'''


def test_included_extensions_pass_unless_asked(tmp_path):
    (tmp_path / "ext.nml").write_text(EXTENDED)
    (tmp_path / "main.nml").write_text(MAIN)
    p = run_cli(["validate", "main.nml"], cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "main.nml: valid", p.stdout + p.stderr
    p = run_cli(["validate", "main.nml", "--includes"], cwd=tmp_path)
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 3 and len(lines) == 2, p.stdout
    assert "ext.nml:4: schema:" in lines[0] and "'k'" in lines[0]
    assert lines[1] == "main.nml: schema: 1 problem; model: valid"
    # named itself, the extended file is checked: the schema objects, the model is fine
    p = run_cli(["validate", "ext.nml"], cwd=tmp_path)
    assert p.returncode == 3 and p.stdout.strip().splitlines()[-1] == "ext.nml: schema: 1 problem; model: valid"


def test_several_files_and_a_semantic_problem(tmp_path):
    (tmp_path / "ok.nml").write_text(MAIN.replace('<include href="ext.nml"/>', ""))
    (tmp_path / "net.nml").write_text(f'<neuroml {NS} id="n"><network id="net">'
                                      '<population id="p" component="nothere" size="2"/></network></neuroml>')
    p = run_cli(["validate", "ok.nml", "net.nml", "missing.nml"], cwd=tmp_path)
    out = p.stdout.strip().splitlines()
    assert p.returncode == 3
    assert out[0] == "ok.nml: valid"
    assert "unknown component 'nothere'" in out[1] and out[2] == "net.nml: schema: valid; model: 1 problem"
    assert "missing.nml" in out[3] and out[4] == "missing.nml: schema: 1 problem; model: not checked"
    assert out[5] == "validated 3 files: 1 valid, 2 not"


def test_lems_file_named_nml(tmp_path):
    """A .nml file is a NeuroML document: one whose root is <Lems> fails the schema (as in jnml)."""
    (tmp_path / "types.nml").write_text('<Lems><ComponentType name="x"/></Lems>\n')
    p = run_cli(["validate", "types.nml"], cwd=tmp_path)
    assert p.returncode == 3 and "the root element is <Lems>, not <neuroml>" in p.stdout, p.stdout


def test_a_document_that_cannot_run_alone_is_still_valid(tmp_path):
    """A morphology-only cell in a network, an input list whose input another file defines:
    valid NeuroML (jnml -validate agrees), reported as warnings, exit 0."""
    (tmp_path / "m.nml").write_text(
        f'<neuroml {NS} id="m"><cell id="c"><morphology id="mo"><segment id="0" name="s">'
        '<proximal x="0" y="0" z="0" diameter="10"/><distal x="10" y="0" z="0" diameter="10"/></segment>'
        '<segment id="1" name="d"><parent segment="0"/><distal x="20" y="0" z="0" diameter="2"/></segment>'
        '</morphology></cell><network id="net"><population id="p" component="c" size="1"/></network></neuroml>')
    p = run_cli(["validate", "m.nml"], cwd=tmp_path)
    assert p.returncode == 0 and "m.nml: valid" in p.stdout, p.stdout + p.stderr
    assert "has no biophysicalProperties" in p.stdout + p.stderr
