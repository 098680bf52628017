"""A kinetic scheme started from the linear system its mod file's INITIAL block solves.

Allen's NaV.mod (SONATA biophysical cells) starts its 12-state scheme with ``SOLVE seqinitial``, a
LINEAR block with the balance of every state but I6, the conservation of occupancy, and a typo: the
I3 balance takes I4's inflow at ``bi3`` where the scheme has ``b13``. NEURON solves what the file
says, so the channel starts slightly off its steady state. nmlsim's translation states that system
in an ``<nmlsim:kineticInitial>`` annotation; with ``--method neuron`` the occupancies must equal the
solution of the mod's block, written out here from the mod file independently of the LEMS rates.
"""
import shutil

import numpy as np
import pytest

from conftest import BACKENDS, REPO

CELL = """<neuroml xmlns="http://www.neuroml.org/schema/neuroml2">
<cell id="c">
  <morphology id="m">
    <segment id="0" name="soma"><proximal x="0" y="0" z="0" diameter="10"/><distal x="10" y="0" z="0" diameter="10"/></segment>
  </morphology>
  <biophysicalProperties id="biophys">
    <membraneProperties>
      <channelDensity id="nav" ionChannel="NaV" condDensity="10 S_per_m2" erev="50mV" ion="na"/>
      <specificCapacitance value="1 uF_per_cm2"/>
      <initMembPotential value="{v0}mV"/>
    </membraneProperties>
    <intracellularProperties><resistivity value="0.1 kohm_cm"/></intracellularProperties>
  </biophysicalProperties>
</cell>
<network id="net" type="networkWithTemperature" temperature="{celsius} degC">
  <population id="p" component="c" size="1"/></network>
</neuroml>"""

STATES = ["C1", "C2", "C3", "C4", "C5", "O", "I1", "I2", "I3", "I4", "I5", "I6"]
KS = "p/0/c/biophys/membraneProperties/nav/NaV/ks"
LEMS = """<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>
<Include file="Simulation.xml"/><Include file="NaV.xml"/><Include file="cell.nml"/>
<Simulation id="sim" length="0.025ms" step="0.025ms" target="net"><OutputFile id="of" fileName="ks.dat">
""" + "".join(f'<OutputColumn id="{s}" quantity="{KS}/{s}/occupancy"/>\n' for s in STATES) + \
    "</OutputFile></Simulation></Lems>"


def seqinitial(v, celsius, typo=True):
    """NaV.mod's PROCEDURE rates and LINEAR seqinitial, solved as NEURON does."""
    Con, Coff, Oon, Ooff, alpha, beta, gamma, delta, alfac, btfac = 0.01, 40, 8, 0.05, 400, 12, 250, 60, 2.51, 5.32
    qt = 2.3 ** ((celsius - 37) / 10)
    ea, eb = np.exp(v / 24), np.exp(v / -24)
    f0 = [qt * k * alpha * ea for k in (4, 3, 2, 1)]
    f1 = [qt * k * alpha * alfac * ea for k in (4, 3, 2, 1)]
    b0 = [qt * k * beta * eb for k in (1, 2, 3, 4)]
    b1 = [qt * k * beta * eb / btfac for k in (1, 2, 3, 4)]
    fi = [qt * Con * alfac ** k for k in range(5)]
    bi = [qt * Coff / btfac ** k for k in range(5)]
    f0O = f1n = qt * gamma
    b0O = b1n = qt * delta
    fin, bin_ = qt * Oon, qt * Ooff
    i = {s: k for k, s in enumerate(STATES)}
    A = np.zeros((12, 12))

    def row(r, terms):  # sum(coef * state) = 0
        for s, c in terms:
            A[r, i[s]] += c

    row(0, [("I1", bi[0]), ("C2", b0[0]), ("C1", -(fi[0] + f0[0]))])
    row(1, [("C1", f0[0]), ("I2", bi[1]), ("C3", b0[1]), ("C2", -(b0[0] + fi[1] + f0[1]))])
    row(2, [("C2", f0[1]), ("I3", bi[2]), ("C4", b0[2]), ("C3", -(b0[1] + fi[2] + f0[2]))])
    row(3, [("C3", f0[2]), ("I4", bi[3]), ("C5", b0[3]), ("C4", -(b0[2] + fi[3] + f0[3]))])
    row(4, [("C4", f0[3]), ("I5", bi[4]), ("O", b0O), ("C5", -(b0[3] + fi[4] + f0O))])
    row(5, [("C5", f0O), ("I6", bin_), ("O", -(b0O + fin))])
    row(6, [("C1", fi[0]), ("I2", b1[0]), ("I1", -(bi[0] + f1[0]))])
    row(7, [("I1", f1[0]), ("C2", fi[1]), ("I3", b1[1]), ("I2", -(b1[0] + bi[1] + f1[1]))])
    row(8, [("I2", f1[1]), ("C3", fi[2]), ("I4", bi[2] if typo else b1[2]), ("I3", -(b1[1] + bi[2] + f1[2]))])
    row(9, [("I3", f1[2]), ("C4", fi[3]), ("I5", b1[3]), ("I4", -(b1[2] + bi[3] + f1[3]))])
    row(10, [("I4", f1[3]), ("C5", fi[4]), ("I6", b1n), ("I5", -(b1[3] + bi[4] + f1n))])
    A[11, :] = 1.0
    rhs = np.zeros(12)
    rhs[11] = 1.0
    return np.linalg.solve(A, rhs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v0,celsius", [(-72.0, 34.0), (-90.0, 22.0)])
def test_nav_starts_from_its_mod_initial(tmp_path, backend, v0, celsius):
    import nmlsim
    (tmp_path / "cell.nml").write_text(CELL.format(v0=v0, celsius=celsius))
    (tmp_path / "LEMS_nav.xml").write_text(LEMS)
    shutil.copy(REPO / "nmlsim" / "library" / "allen" / "NaV.xml", tmp_path / "NaV.xml")
    res = nmlsim.run(nmlsim.load(str(tmp_path / "LEMS_nav.xml")), method="neuron", backend=backend, write=False)
    rows = np.asarray(res.traces["of"])  # t, then the columns
    got = rows[0, 1:]
    want = seqinitial(v0, celsius)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
    # and that start is measurably off the steady state the scheme itself has
    assert np.max(np.abs(want - seqinitial(v0, celsius, typo=False))) > 1e-6 * np.max(want)


@pytest.mark.parametrize("bad,good,msg", [('transition="C3_I3_r"', 'transition="nope"', "unknown transition 'nope'"),
                                          ('inflow to="I3"', 'inflow to="I9"', "to 'I9' is not a state")])
def test_bad_kinetic_initial_is_one_line(tmp_path, bad, good, msg):
    import nmlsim
    from nmlsim.errors import NmlsimError
    (tmp_path / "cell.nml").write_text(CELL.format(v0=-70, celsius=34))
    (tmp_path / "LEMS_nav.xml").write_text(LEMS)
    nav = (REPO / "nmlsim" / "library" / "allen" / "NaV.xml").read_text()
    assert bad in nav
    (tmp_path / "NaV.xml").write_text(nav.replace(bad, good))
    with pytest.raises(NmlsimError) as e:
        nmlsim.run(nmlsim.load(str(tmp_path / "LEMS_nav.xml")), method="neuron", write=False)
    assert msg in str(e.value) and "NaV.xml" in str(e.value)
