"""The thalamic model (nmlsim.library.thalamus): connectivity rules, channel encodings against
the spec's equations, the export and its re-import, reproducibility."""
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, tube_error
from nmlsim.library import thalamus as th

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))
import thalamus_reference as ref  # noqa: E402


def test_fixed_number_rule():
    net = th.build("alpha", seed=3)
    sizes = {p: net.populations[p].size for p in net.populations}
    for pid, pre, post, p, ratio, *_ in th.CHEMICAL:
        pr = next(x for x in net.projections if x.id == pid)
        k = int(np.floor(sizes[post] * p))
        counts = np.bincount(pr.pre_idx, minlength=sizes[pre])
        if ratio == 1.0:
            assert np.all(counts == k), pid
        else:  # RE->IN: about 10 % of RE cells project, each with exactly k targets
            assert set(np.unique(counts)) <= {0, k} and 0 < np.count_nonzero(counts) < 30
        assert pr.post_idx.max() < sizes[post] and np.all(pr.delay == (0.0 if pre == "HTC" and post == "IN" else 2e-3))


def test_gap_junction_rule():
    net = th.build("alpha", seed=3, tc_gap_junctions=True)
    seedlike = th.build("alpha", seed=3)
    assert [e.id for e in seedlike.electrical] == ["gj_RE"]  # the seed's TC junctions are inert
    assert np.array_equal(seedlike.electrical[0].pre_idx, net.electrical[2].pre_idx)
    sides = {p: th.POPULATIONS[p][0] for p in th.POPULATIONS}
    for e in net.electrical:
        sp, sq = sides[e.pre], sides[e.post]
        a, b = np.divmod(e.pre_idx, sp)  # pre index = a * side + b (spec §6.2)
        i, j = np.divmod(e.post_idx, sq)
        d = np.hypot(a - i, b - j)
        assert len(d) > 0 and np.all(d <= 2.0) and np.all(d > 0), e.id  # no d == 0 pairs, even across grids
        if e.pre == "RTC":
            assert a.max() <= 8 and b.max() <= 8  # raw coordinates: only RTC cells near the 7x7 grid
    g = {e.id: e.synapse.attrs["conductance"] for e in net.electrical}
    assert g["gj_HTC"] == "10nS" and g["gj_RE"].startswith("3.333")


def test_states_differ_only_in_k_leak_and_noise():
    a, d = th.build("alpha", seed=5), th.build("delta", seed=5)
    for pa, pd in zip(a.projections, d.projections):
        assert np.array_equal(pa.pre_idx, pd.pre_idx) and np.array_equal(pa.post_idx, pd.post_idx)
    assert "KLeak_all" not in {x.id for x in th._densities(a.model.components["HTC_alpha"])}
    kl = {x.id: x.attrs["condDensity"] for x in th._densities(d.model.components["HTC_delta"])}
    assert kl["KLeak_all"] == "0.035mS_per_cm2"


@pytest.mark.parametrize("channel", list(th.channels()))
def test_channel_file_matches_spec_equations(tmp_path, channel):
    """Each channel file, alone in a cell under current steps, gives the trace of the spec's
    equations integrated independently (tests/validation/thalamus_reference.py)."""
    lems = th.channel_test(channel, tmp_path)
    p = run_cli(["run", lems.name, "--method", "euler", "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    ours = np.loadtxt(tmp_path / f"{channel}_test.dat")
    ct, _kind, g = th._test_density(channel)
    _side, area, v0 = th.POPULATIONS[ct]
    steps = [(20, 100, -70 * area), (150, 50, 300 * area), (220, 50, 1000 * area)]
    r = ref.simulate(channel, g, area_cm2=area, v0=v0, e_leak=th.LEAK[ct], pool_tau=th.CA_POOL_TAU[ct], steps=steps)
    t = ours[:, 0] * 1e3
    assert tube_error(t, r[:, 0], ours[:, 1] * 1e3, 0.2) < 0.5  # mV; spikes may shift by a step or two
    assert np.ptp(r[:, 0]) > 10  # the protocol moves the membrane
    assert tube_error(t, r[:, 1], ours[:, 2], 0.2) < 0.02 * r[:, 1].max()


def test_export_reimport_and_reproducibility(tmp_path):
    """The exported alpha state runs from its LEMS file with the spikes of the in-memory
    network, twice byte-identically, and its SONATA export gives the same spikes."""
    from nmlsim import api
    from nmlsim.analysis import read_sonata_spikes
    files = th.export(tmp_path, states=["alpha"], to=("neuroml", "sonata"), duration=0.06)
    names = {f.name for f in files}
    assert {"ThalamusTypes.xml", "CaT_HM1992.channel.nml", "LEMS_thalamus_alpha.xml",
            "thalamus_alpha.net.nml", "circuit_config.json"} <= names
    spikes, _ = api.simulate_network(th.build("alpha", seed=1), 0.06, 1e-4, seed=1)
    assert sum(len(t) for _, t in spikes.values()) > 0
    outs = []
    for k in range(2):
        p = run_cli(["run", "LEMS_thalamus_alpha.xml", "--outdir", f"run{k}", "-q"], cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        outs.append({pid: (tmp_path / f"run{k}" / "results" / f"thalamus_alpha_{pid}.spikes").read_bytes()
                     for pid in th.POPULATIONS})
    assert outs[0] == outs[1]
    for pid, (idx, t) in spikes.items():
        d = np.loadtxt(tmp_path / "run0" / "results" / f"thalamus_alpha_{pid}.spikes", ndmin=2).reshape(-1, 2)
        assert sorted(zip(d[:, 0].astype(int), np.round(d[:, 1], 6))) == sorted(zip(idx, np.round(t, 6))), pid
    p = run_cli(["run", "sonata/alpha/simulation_config.json", "--outdir", "son", "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    son = read_sonata_spikes(tmp_path / "son" / "spikes.h5")
    for pid, (idx, t) in spikes.items():
        si, st = son[pid]
        # the same spikes; SONATA files carry the step's state time, one dt before jLEMS's event time
        assert sorted(zip(si, np.round(st + 1e-4, 6))) == sorted(zip(idx, np.round(t, 6))), pid


def test_shipped_files_are_the_exporters_output(tmp_path):
    """models/thalamus is written by nmlsim (scripts/make_models.sh), never edited by hand."""
    shipped = Path(__file__).resolve().parents[2] / "models" / "thalamus"
    if not shipped.exists():
        pytest.skip("models/thalamus not in this checkout")
    th.export(tmp_path, seed=1, to=("neuroml",))
    for f in sorted(tmp_path.glob("*.*")):
        assert f.read_bytes() == (shipped / f.name).read_bytes(), f.name


def test_release_depression_follows_the_original_rule(tmp_path):
    """kineticPulseSynapse's efficacy: E <- 1 - (1 - E (1 - U)) exp(-dt/tauRec) per release."""
    import shutil
    shutil.copyfile(th.TYPES_FILE, tmp_path / th.TYPES_FILE.name)
    (tmp_path / "LEMS_std.xml").write_text(f"""<Lems>
<Target component="sim1"/>
<Include file="Cells.xml"/><Include file="Networks.xml"/><Include file="Simulation.xml"/>
<Include file="{th.TYPES_FILE.name}"/>
<Component id="syn" type="kineticPulseSynapse" gbase="1nS" erev="0mV" alpha="0.94per_ms" beta="0.18per_ms"
           Tmax="0.5" Tdur="0.5ms" U="0.5" tauRec="10ms"/>
<spikeArray id="sa"><spike id="0" time="10ms"/><spike id="1" time="20ms"/><spike id="2" time="30ms"/></spikeArray>
<iafCell id="c" leakReversal="-70mV" thresh="100mV" reset="-70mV" C="100pF" leakConductance="10nS"/>
<network id="net">
 <population id="pre" component="sa" size="1"/><population id="post" component="c" size="1"/>
 <projection id="pr" presynapticPopulation="pre" postsynapticPopulation="post" synapse="syn">
   <connection id="0" preCellId="../pre[0]" postCellId="../post[0]"/></projection>
</network>
<Simulation id="sim1" length="40ms" step="0.01ms" target="net">
 <OutputFile id="o" fileName="g.dat"><OutputColumn id="e" quantity="post[0]/synapses:syn:0/E"/></OutputFile>
</Simulation>
</Lems>
""")
    p = run_cli(["run", "LEMS_std.xml", "-q"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    e = np.loadtxt(tmp_path / "g.dat")[:, 1]
    e1 = 1 - (1 - 1.0 * 0.5) * np.exp(-10 / 10)  # second release, 10 ms after the first (E = 1)
    e2 = 1 - (1 - e1 * 0.5) * np.exp(-10 / 10)
    assert e[1500] == 1.0 and abs(e[2500] - e1) < 1e-9 and abs(e[3500] - e2) < 1e-9
    plain = th.synapses()["HTC_IN_AMPA"].attrs
    assert plain["U"] == "0" and th.synapses(std=True)["HTC_IN_AMPA"].attrs["U"] == "0.07"


@pytest.mark.parametrize("args", [["ei_hh", "out", "--std"], ["thalamus", "out", "--to", "neuroml-h5"],
                                  ["thalamus", "out", "--to", "nonsense"]])
def test_export_options_refused_in_one_line(tmp_path, args):
    p = run_cli(["export", *args], cwd=tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("nmlsim: error:"), p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unknown_state_and_channel(tmp_path):
    from nmlsim.errors import ModelError
    with pytest.raises(ModelError, match="unknown thalamus state 'theta'"):
        th.build("theta")
    with pytest.raises(ModelError, match="unknown thalamic channel"):
        th.channel_test("NaP", tmp_path / "t")
    assert not (tmp_path / "t").exists()
