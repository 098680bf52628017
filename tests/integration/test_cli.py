"""The command line as a new user meets it: python -m, jnml's -validate, times with units,
help for every argument."""
import argparse
import subprocess
import sys

import numpy as np

from conftest import run_cli
from nmlsim.cli import build_parser

CELL = """
<iafCell id="iaf" leakReversal="-65mV" thresh="-50mV" reset="-65mV" C="100pF" leakConductance="10nS"/>
<pulseGenerator id="pg" delay="2ms" duration="30ms" amplitude="0.2nA"/>
<network id="net"><population id="p" component="iaf" size="1"/>
  <inputList id="i" component="pg" population="p"><input id="0" target="../p[0]" destination="synapses"/></inputList>
</network>
"""
SIM = """<Simulation id="sim1" length="50ms" step="0.05ms" target="net">
  <OutputFile id="of" fileName="v.dat"><OutputColumn id="v" quantity="p[0]/v"/></OutputFile>
</Simulation>"""


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "nmlsim", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("nmlsim ")


def test_durations_and_steps_with_units(lems_file, tmp_path):
    lems = lems_file(CELL, SIM)
    r = run_cli(["run", lems, "--duration", "20ms", "--dt", "0.1ms", "--outdir", tmp_path / "a"])
    assert r.returncode == 0, r.stderr
    t = np.loadtxt(tmp_path / "a" / "v.dat")[:, 0]
    assert np.isclose(t[-1], 0.02) and np.isclose(t[1] - t[0], 1e-4)
    r = run_cli(["run", lems, "--duration", "0.02", "--outdir", tmp_path / "b"])
    assert r.returncode == 0 and "note" not in r.stderr
    tb = np.loadtxt(tmp_path / "b" / "v.dat")[:, 0]
    assert np.isclose(tb[-1], 0.02) and np.isclose(tb[1] - tb[0], 5e-5)
    r = run_cli(["run", lems, "--duration", "12", "--outdir", tmp_path / "c", "--dt", "1ms"])
    assert r.returncode == 0 and "read as 12 s" in r.stderr and "12ms" in r.stderr
    for bad in ("20parsec", "-5ms", "0", "20mV"):
        r = run_cli(["run", lems, "--duration", bad])
        assert r.returncode == 2 and "--duration" in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)


def test_jnml_validate_spelling(lems_file, tmp_path):
    good = tmp_path / "cell.nml"
    good.write_text('<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="d">'
                    '<iafCell id="iaf" leakReversal="-65mV" thresh="-50mV" reset="-65mV" C="100pF" '
                    'leakConductance="10nS"/></neuroml>')
    r = run_cli(["-validate", good])
    assert r.returncode == 0 and "valid" in r.stdout, r.stdout + r.stderr
    r = run_cli(["-validate", good, tmp_path / "missing.nml"])
    assert r.returncode == 3 and "valid" in r.stdout and "missing.nml" in r.stdout + r.stderr
    r = run_cli(["-validate"])
    assert r.returncode == 2 and "needs the files" in r.stderr


def test_every_argument_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.dest}" for name, p in sub.choices.items() for a in p._actions
               if a.help is None and not isinstance(a, argparse._HelpAction)]
    assert not missing, missing


def test_exported_models_have_their_results_folder(tmp_path):
    """jnml writes into results/ but does not create it: an export makes it."""
    r = run_cli(["export", "coba_lif", tmp_path / "m", "--size", "40"])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m" / "results").is_dir()
