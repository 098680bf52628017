"""The numba backend gives the NumPy backend's results (to float rounding); skipped without numba."""
import numpy as np
import pytest

from conftest import CORPUS, needs_shared
from nmlsim import api
from nmlsim.errors import UnsupportedFeature
from nmlsim.library import build

pytest.importorskip("numba")


@pytest.mark.parametrize("model", ["coba_lif", "ei_hh"])
def test_same_spikes_as_numpy(model):
    net = build(model, size=200, seed=4)
    a, _ = api.simulate_network(net, 0.05, 1e-4, seed=4)
    b, _ = api.simulate_network(net, 0.05, 1e-4, seed=4, backend="numba")
    assert set(a) == set(b)
    for pop in a:
        assert len(a[pop][0]) > 0
        assert np.array_equal(a[pop][0], b[pop][0]) and np.allclose(a[pop][1], b[pop][1], rtol=0, atol=1e-12)


@needs_shared
def test_hh_traces_match_numpy():
    sim = api.load(CORPUS / "nml2_ex5_detcell" / "LEMSexamples" / "LEMS_NML2_Ex5_DetCell.xml")
    a = api.run(sim, write=False, duration=0.05)
    b = api.run(sim, write=False, duration=0.05, backend="numba")
    for k in a.traces:
        assert np.allclose(a.traces[k], b.traces[k], rtol=1e-9, atol=1e-12), k


def test_rk4_matches_numpy():
    net = build("ei_hh", size=100, seed=2)
    # (at 0.1 ms RK4 and Euler are unstable for these HH cells: NaN within 30 ms)
    a, _ = api.simulate_network(net, 0.03, 5e-5, seed=2, method="rk4")
    b, _ = api.simulate_network(net, 0.03, 5e-5, seed=2, method="rk4", backend="numba")
    for pop in a:
        assert np.array_equal(a[pop][0], b[pop][0]) and np.allclose(a[pop][1], b[pop][1], rtol=0, atol=1e-12)


def test_random_in_event_handlers_runs_random_in_equations_refused(lems_file):
    """Poisson inputs draw in their event handlers (kept in NumPy, same streams): same spikes.
    A random number inside a derived variable cannot be compiled: refused by name."""
    from nmlsim.graph.network import InputList
    from nmlsim.lems.model import Component
    net = build("coba_lif", size=50, seed=1)
    poisson = Component(tag="poissonFiringSynapse", id="noise", type="poissonFiringSynapse",
                        attrs={"averageRate": "200Hz", "synapse": "syn_e", "spikeTarget": "./syn_e"})
    net.model.add_component(poisson)
    net.inputs.append(InputList("n", poisson, "E", np.arange(3), np.ones(3)))
    a, _ = api.simulate_network(net, 0.02, 1e-4, seed=3)
    b, _ = api.simulate_network(net, 0.02, 1e-4, seed=3, backend="numba")
    for pop in a:
        assert np.array_equal(a[pop][0], b[pop][0]) and np.allclose(a[pop][1], b[pop][1], rtol=0, atol=1e-12)
    path = lems_file("""
    <ComponentType name="jitter" extends="baseCellMembPot">
        <Constant name="VOLT" dimension="voltage" value="1V"/>
        <Constant name="SEC" dimension="time" value="1s"/>
        <Dynamics>
            <StateVariable name="v" dimension="voltage" exposure="v"/>
            <DerivedVariable name="noise" dimension="none" value="random(1)"/>
            <TimeDerivative variable="v" value="noise * VOLT / SEC"/>
        </Dynamics>
    </ComponentType>
    <jitter id="j"/>
    <network id="net"><population id="p" component="j" size="2"/></network>
""", '<Simulation id="sim1" length="1ms" step="0.1ms" target="net"/>')
    with pytest.raises(UnsupportedFeature, match="random"):
        api.run(api.load(path), write=False, backend="numba")


def test_kernels_cached_on_disk(tmp_path, monkeypatch):
    """Generated kernels go to one file per model (same source every time: deterministic
    order) with Numba's cache beside it; an unwritable cache folder falls back to memory."""
    monkeypatch.setenv("NMLSIM_CACHE_DIR", str(tmp_path / "cache"))
    net = build("ei_hh", size=60, seed=3)
    runs = [api.simulate_network(net, 0.01, 1e-4, seed=3, backend="numba")[0] for _ in range(2)]
    assert len(list((tmp_path / "cache").glob("k_*.py"))) == 1
    assert list((tmp_path / "cache" / "__pycache__").glob("*_derived*.nbi"))
    for pop in runs[0]:
        assert np.array_equal(runs[0][pop][1], runs[1][pop][1])
    (tmp_path / "ro").write_text("a file, not a folder")
    monkeypatch.setenv("NMLSIM_CACHE_DIR", str(tmp_path / "ro" / "sub"))
    again, _ = api.simulate_network(net, 0.01, 1e-4, seed=3, backend="numba")
    for pop in again:
        assert np.array_equal(again[pop][1], runs[0][pop][1])


def _sim(net, **kw):
    from nmlsim.compile.build import build_groups
    from nmlsim.engine.simulator import Simulator
    built = build_groups(net)
    return built, Simulator(built, 1e-4, seed=5, **kw)


def test_compiled_loop_runs_and_equals_python_loop():
    """With block-capable recorders the whole loop runs compiled; a recorder that only
    samples step by step gets the engine's Python loop; both give the NumPy backend's
    spikes and traces (delays of several steps, merged synapses, spike recording)."""
    from nmlsim.compile.build import spiking_groups
    from nmlsim.engine.record import SpikeRecorder, TraceRecorder
    from nmlsim.engine.simulator import Recorder
    net = build("coba_lif", size=120, seed=6)
    for proj in net.projections:
        proj.delay = np.full(len(proj.pre_idx), 1e-3) * (1 + np.arange(len(proj.pre_idx)) % 3)
    out = {}
    for backend, extra in (("numpy", []), ("numba", []), ("numba", ["python"])):
        built, sim = _sim(net, backend=backend)
        g = built.pop_groups["E"]
        traces = {}
        rec = [SpikeRecorder(spiking_groups(built)),
               TraceRecorder("v", [(g, g.root.key("v"), 3), (g, g.root.key("v"), 7)],
                             lambda n, d, c: traces.__setitem__(n, d), every=3)]

        class StepOnly(Recorder):
            def sample(self, sim, k, t):
                pass
        if extra:
            rec.append(StepOnly())
        if backend == "numba":
            assert sim.kernels.loop is not None and sim._blockwise(rec) == (not extra)
        sim.run(0.04, rec)
        out[(backend, bool(extra))] = (rec[0].result(), traces["v"])
    ref_sp, ref_tr = out[("numpy", False)]
    assert sum(len(i) for i, _ in ref_sp.values()) > 20
    for key, (sp, tr) in out.items():
        assert np.array_equal(tr, ref_tr), key
        for pop in ref_sp:
            assert np.array_equal(sp[pop][0], ref_sp[pop][0]) and np.array_equal(sp[pop][1], ref_sp[pop][1]), key


def test_compiled_loop_reports_non_finite_state(lems_file):
    """A state that overflows inside the compiled loop is named, with the time, as the
    NumPy engine names it."""
    from nmlsim.errors import SimulationError
    from conftest import RUNAWAY_TYPE
    path = lems_file(RUNAWAY_TYPE + """
    <runaway id="r" k="1e9 per_s"/>
    <network id="net"><population id="p" component="r" size="3"/></network>
""", '<Simulation id="sim1" length="0.5s" step="0.1ms" target="net"/>')
    with pytest.raises(SimulationError, match="'v' of cell 0 in 'p' became"):
        api.run(api.load(path), write=False, backend="numba", method="euler")


def test_table_mode_for_large_kernels(monkeypatch):
    """Kernels with many arrays take one table of addresses and the engine drives the
    steps (three compiled calls per step): same spikes as the NumPy backend, Poisson
    inputs included."""
    import nmlsim.backends.numba.kernels as nb
    from nmlsim.graph.network import InputList
    from nmlsim.lems.model import Component
    monkeypatch.setattr(nb, "TABLE_ABOVE", 10)
    net = build("coba_lif", size=150, seed=2)
    poisson = Component(tag="poissonFiringSynapse", id="noise", type="poissonFiringSynapse",
                        attrs={"averageRate": "300Hz", "synapse": "syn_e", "spikeTarget": "./syn_e"})
    net.model.add_component(poisson)
    net.inputs.append(InputList("n", poisson, "E", np.arange(10), np.ones(10)))
    built, sim = _sim(net, backend="numba")
    assert sim.kernels.table and sim.kernels._run is None
    a, _ = api.simulate_network(net, 0.04, 1e-4, seed=3)
    b, _ = api.simulate_network(net, 0.04, 1e-4, seed=3, backend="numba")
    for pop in a:
        assert len(a[pop][0]) > 0
        assert np.array_equal(a[pop][0], b[pop][0]) and np.array_equal(a[pop][1], b[pop][1])


@pytest.mark.parametrize("method", ["rk4", "euler", "exp_euler"])
def test_table_mode_split_into_parts_each_method(monkeypatch, method):
    """Table-mode kernels cut into parts of a few lines (as the thalamus's are): every
    integrator gives the NumPy backend's spikes (RK4's step holds its own stage arrays and must
    stay whole: split, bmtk_point_450glifs failed with "name '_ka0' is not defined")."""
    import nmlsim.backends.numba.kernels as nb
    monkeypatch.setattr(nb, "TABLE_ABOVE", 10)
    monkeypatch.setattr(nb, "PART_LINES", 4)
    net = build("coba_lif", size=120, seed=4)
    a, _ = api.simulate_network(net, 0.03, 1e-4, seed=3, method=method)
    b, sim = api.simulate_network(net, 0.03, 1e-4, seed=3, method=method, backend="numba")
    assert sim.kernels.table
    for pop in a:
        assert len(a[pop][0]) > 0
        assert np.array_equal(a[pop][0], b[pop][0]) and np.array_equal(a[pop][1], b[pop][1])


def test_vectorisable_exp_within_an_ulp_of_libm():
    """The kernels' exp and expm1 (polynomials that vectorise) against NumPy's libm calls:
    exp within 1 ulp (subnormal results too), expm1 within 2, special values as IEEE has them."""
    import numba
    from nmlsim.backends.numba.kernels import _helpers
    ns = _helpers()

    def apply(name, x, out):  # (the helpers are intrinsics: called by name in a compiled loop)
        if "apply_" + name not in ns:
            exec(f"def apply_{name}(x, out):\n    for i in range(x.size):\n        out[i] = {name}(x[i])\n", ns)
            ns["apply_" + name] = numba.njit(error_model="numpy")(ns["apply_" + name])
        ns["apply_" + name](x, out)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 30, 50000), rng.normal(0, 1e-3, 20000), np.linspace(-2, 2, 20001),
                        rng.uniform(-745.1, -700, 20000),  # results down to the subnormals
                        rng.normal(0, 1e-9, 2000), [700.0, -700.0, 0.3465, -0.3466]])
    out = np.empty_like(x)
    for name, ref, bound in (("_vexp", np.exp, 1.0), ("_vexpm1", np.expm1, 2.0)):
        apply(name, x, out)
        r = ref(x)
        assert np.max(np.abs(out - r) / np.spacing(np.abs(r))) <= bound, name
    special = np.array([np.nan, np.inf, -np.inf, 800.0, -800.0, 0.0])
    apply("_vexp", special, out[:6])
    assert np.isnan(out[0]) and list(out[1:6]) == [np.inf, 0.0, np.inf, 0.0, 1.0]
    apply("_vexpm1", special, out[:6])
    assert np.isnan(out[0]) and list(out[1:6]) == [np.inf, -1.0, np.inf, -1.0, 0.0]


def test_unread_derived_values_stay_in_registers():
    """With ``observe`` (what the recorders read) derived values nothing else reads are not
    stored; spikes stay the NumPy backend's. A recorder that reads one of them makes the
    simulator compile again keeping them all, and records the NumPy trace."""
    from nmlsim.compile.build import build_groups, spiking_groups
    from nmlsim.engine.record import SpikeRecorder, TraceRecorder
    from nmlsim.engine.simulator import Simulator, observed_by
    net = build("ei_hh", size=120, seed=3)

    def make(backend):
        built = build_groups(net)
        spikes = SpikeRecorder(spiking_groups(built))
        sim = Simulator(built, 1e-4, seed=3, backend=backend, observe=observed_by([spikes]))
        return built.pop_groups["E"], spikes, sim
    out = {}
    for backend in ("numpy", "numba"):
        g, spikes, sim = make(backend)
        if backend == "numba":
            assert sim.kernels.local  # gate powers, rate functions...
            local = sorted(sim.kernels.local)[0]
            key = next(k for k in g.derived if sim.program.py(g.gid, k) == local)
        sim.run(0.03, [spikes])
        out[backend] = spikes.result()
    for pop in out["numpy"]:
        assert len(out["numpy"][pop][0]) > 0
        assert np.array_equal(out["numpy"][pop][0], out["numba"][pop][0])
        assert np.array_equal(out["numpy"][pop][1], out["numba"][pop][1])
    traces = {}
    for backend in ("numpy", "numba"):
        g, spikes, sim = make(backend)
        rec = TraceRecorder("d", [(g, key, 5)], lambda n, d, c: traces.__setitem__(backend, d))
        sim.run(0.01, [spikes, rec])
        assert not getattr(sim.kernels, "local", ())
    assert np.ptp(traces["numpy"][:, 1]) > 0
    assert np.allclose(traces["numpy"], traces["numba"], rtol=1e-12, atol=0)


def test_elementwise_loops_fuse_across_population_blocks():
    """A whole-population loop, a scatter split at population blocks and the loop after it
    become one loop per block, bodies in their order; a run where a body reads at another
    index an array the run writes stays as it was."""
    from nmlsim.backends.numba.kernels import _fuse
    lines = ["    for i in range(4):", "        a0[i] = a1[i]",
             "    for i in range(0, 2):", "        a2[i] = a0[i] + a3[i]",
             "    for i in range(2, 4):", "        a2[i] = a0[i] + a4[i - 2]",
             "    for i in range(4):", "        a5[i] = a2[i]"]
    assert _fuse(lines) == ["    for i in range(2):", "        a0[i] = a1[i]", "        a2[i] = a0[i] + a3[i]",
                            "        a5[i] = a2[i]",
                            "    for i in range(2, 4):", "        a0[i] = a1[i]", "        a2[i] = a0[i] + a4[i - 2]",
                            "        a5[i] = a2[i]"]
    crossed = lines[:2] + ["    for i in range(4):", "        a6[i] = a0[c0[i]]"]
    assert _fuse(crossed) == crossed
    barrier = lines[:2] + ["    for j in range(3):", "        a7[c1[j]] += a0[j]"] + lines[:2]
    assert _fuse(barrier) == barrier
    # big kernels: only neighbours over the same range merge; so do runs that would repeat
    # more than FUSE_REPEAT_LIMIT lines
    same = lines[:2] + ["    for i in range(4):", "        a8[i] = a0[i]"]
    assert _fuse(lines + same[2:], cut=False) == lines[:6] + ["    for i in range(4):", "        a5[i] = a2[i]",
                                                             "        a8[i] = a0[i]"]
    long = ["    for i in range(4):"] + [f"        a{k}[i] = a1[i]" for k in range(10, 200)] + lines[2:6]
    assert _fuse(long) == long  # cutting would repeat 190 lines


def test_derived_and_update_in_one_pass_when_no_derived_value_is_recorded():
    """Recording states only (and spikes), the compiled loop computes derived values and
    the update in one pass (_dstep) and records the states before it: NumPy's rows and
    spikes; the derived values left after the run are those of the last row's time."""
    from nmlsim.compile.build import build_groups, spiking_groups
    from nmlsim.engine.record import SpikeRecorder, TraceRecorder
    from nmlsim.engine.simulator import Simulator, observed_by
    net = build("coba_lif", size=150, seed=8)
    out = {}
    for backend in ("numpy", "numba"):
        built = build_groups(net)
        g = built.pop_groups["E"]
        traces = {}
        rec = [SpikeRecorder(spiking_groups(built)),
               TraceRecorder("v", [(g, g.root.key("v"), 2), (g, g.root.key("v"), 9)],
                             lambda n, d, c: traces.__setitem__(n, d))]
        sim = Simulator(built, 1e-4, seed=8, backend=backend, observe=observed_by(rec))
        if backend == "numba":
            assert "def _dstep(" in sim.kernels.source and sim.kernels.loop is not None and sim._blockwise(rec)
        sim.run(0.03, rec)
        K = sim.kernels
        stored = [k for k in g.derived if (g.gid, k) not in sim.program.literals and (
            K is None or K.alias.get(sim.program.py(g.gid, k), sim.program.py(g.gid, k)) not in K.local)]
        derived = {k: np.array(sim.V[sim.program.py(g.gid, k)]) for k in stored}
        out[backend] = (rec[0].result(), traces["v"], derived)
    (sa, ta, da), (sb, tb, db) = out["numpy"], out["numba"]
    assert np.array_equal(ta, tb) and len(ta) == 301
    for pop in sa:
        assert len(sa[pop][0]) > 0
        assert np.array_equal(sa[pop][0], sb[pop][0]) and np.array_equal(sa[pop][1], sb[pop][1])
    assert db and all(np.allclose(da[k], db[k], rtol=1e-12, atol=0) for k in db), db


def test_routes_into_one_merged_group_join_per_source():
    """Undelayed projections into the same merged synapse group become one CSR: each
    source's connections in route order (the engine's summation order), weights along."""
    from types import SimpleNamespace
    from nmlsim.backends.numba.loop import _joined_routes
    dst = SimpleNamespace(gid=7)
    route = SimpleNamespace(dst=dst, dst_port="in")

    def rec(indptr, targets, w, delay=False):
        return dict(route=route, indptr=np.array(indptr), dst=np.array(targets), w=np.array(w, dtype=float),
                    steps=np.zeros(len(targets), dtype=np.int64), any_delay=delay, merged=[object()])
    r1, r2 = rec([0, 2, 2, 3], [5, 6, 7], [1, 2, 3]), rec([0, 1, 3, 3], [8, 9, 10], [4, 5, 6])
    delayed = rec([0, 1, 1, 1], [1], [1], delay=True)
    out = _joined_routes([r1, delayed, r2])
    assert len(out) == 2 and out[1] is delayed
    j = out[0]
    assert list(j["indptr"]) == [0, 3, 5, 6]
    assert list(j["dst"]) == [5, 6, 8, 9, 10, 7] and list(j["w"]) == [1, 2, 4, 5, 6, 3]


def test_recording_a_derived_value_later_recompiles_the_fused_loop(monkeypatch):
    """Built to record spikes only (derived + update fused; here with no value held in
    registers), then run with a recorder of a derived value: compiled again unfused, NumPy's
    trace (the fused loop records before it computes derived values)."""
    import nmlsim.backends.numba.kernels as nb
    monkeypatch.setattr(nb.NumbaKernels, "_localize", lambda self, lines, others, keep: lines)
    from nmlsim.compile.build import build_groups, spiking_groups
    from nmlsim.engine.record import SpikeRecorder, TraceRecorder
    from nmlsim.engine.simulator import Simulator, observed_by
    net = build("coba_lif", size=100, seed=9)
    traces = {}
    for backend in ("numpy", "numba"):
        built = build_groups(net)
        g = built.pop_groups["E"]
        spikes = SpikeRecorder(spiking_groups(built))
        sim = Simulator(built, 1e-4, seed=9, backend=backend, observe=observed_by([spikes]))
        key = next(k for k in g.derived if k.endswith("iMemb"))
        if backend == "numba":
            assert sim.kernels.fused and not sim.kernels.local
        rec = TraceRecorder("i", [(g, key, 4)], lambda n, d, c: traces.__setitem__(backend, d))
        sim.run(0.02, [spikes, rec])
        if backend == "numba":
            assert not sim.kernels.fused
    assert np.ptp(traces["numpy"][:, 1]) > 0
    assert np.array_equal(traces["numpy"], traces["numba"])


def test_cli_says_when_it_compiles(tmp_path):
    """The first numba run of a model says it is compiling (it can take minutes); the second,
    served from the cache, does not; -q keeps quiet."""
    import os
    import subprocess
    import sys
    model = CORPUS / "nml2_ex5_detcell" / "LEMSexamples" / "LEMS_NML2_Ex5_DetCell.xml"
    if not model.exists():
        pytest.skip("needs ../shared")
    env = dict(os.environ, NMLSIM_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "nmlsim.cli", "run", str(model), "--backend", "numba", "--duration", "0.001",
           "--outdir", str(tmp_path / "out")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "compiling this model's kernels" in first.stderr
    second = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert second.returncode == 0 and "compiling" not in second.stderr


def test_large_functions_call_libm_exp_small_ones_inline():
    """A generated function with more exp sites than VEXP_INLINE_MAX calls libm (compile time);
    the others keep the inlined vectorisable polynomial."""
    from nmlsim.backends.numba.kernels import VEXP_INLINE_MAX, _libm_if_large
    big = "def _derived(t, P):\n" + "    x = _vexp(t) + _phi(t)\n" * (VEXP_INLINE_MAX // 2 + 1)
    small = "def _step(t, P):\n    y = _vexpm1(t)\n"
    out = _libm_if_large(big + small)
    head, tail = out.split("\ndef _step")
    assert "_vexp(" not in head and "_phi(" not in head and "_m.exp(" in head and "_phi_libm(" in head
    assert "_vexpm1(" in tail and "_m.expm1(" not in tail
    assert _libm_if_large(small) == small


def test_kinetic_scheme_on_a_segment_group_same_on_both_backends(tmp_path):
    """A gateKS potassium channel on the soma group of a branched cell (--method neuron: steady
    start, backward Euler). The numba backend computes it on the soma only; its steady-state
    start once fell back to 'all closed' for every compartment (the others' rates are 0, a
    singular system) and the cell fired at 5 ms without input."""
    pytest.importorskip("numba")
    import shutil
    import nmlsim
    from conftest import REPO
    data = REPO / "tests" / "data" / "multicomp"
    for f in ("LEMS_ks.xml", "ks.cell.nml"):
        shutil.copy(data / f, tmp_path)
    out = {}
    for backend in ("numpy", "numba"):
        sim = nmlsim.load(str(tmp_path / "LEMS_ks.xml"))
        nmlsim.run(sim, backend=backend, duration=0.03, outdir=str(tmp_path / backend))
        out[backend] = np.loadtxt(tmp_path / backend / "results" / "ks_v.dat")
    np.testing.assert_allclose(out["numba"], out["numpy"], rtol=0, atol=1e-9)
    spikes = np.loadtxt(tmp_path / "numba" / "results" / "ks.spikes", ndmin=2)
    assert spikes.shape[0] == 1 and spikes[0, 0] > 0.02  # only after the pulse starts at 20 ms


def test_changed_parameters_and_step_reuse_the_compiled_kernels(tmp_path, monkeypatch):
    """Kernels are keyed by structure: parameter values and the time step come from a table
    at run time, so a sweep compiles once; each run still equals the NumPy backend's."""
    import nmlsim.backends.numba.kernels as nb
    monkeypatch.setenv("NMLSIM_CACHE_DIR", str(tmp_path / "cache"))
    compiled = []
    monkeypatch.setattr(nb, "COMPILE_NOTICE", lambda: compiled.append(1))
    counts = []
    for gbase, dt in (("6nS", 1e-4), ("9nS", 1e-4), ("9nS", 5e-5)):
        net = build("ei_hh", size=80, seed=3)
        for proj in net.projections:
            if proj.synapse.id == "syn_e":
                proj.synapse.attrs["gbase"] = gbase
        runs = {b: api.simulate_network(net, 0.03, dt, seed=3, backend=b)[0] for b in ("numpy", "numba")}
        for pop in runs["numpy"]:
            assert np.array_equal(runs["numpy"][pop][0], runs["numba"][pop][0])
            assert np.array_equal(runs["numpy"][pop][1], runs["numba"][pop][1])
        counts.append(sum(len(i) for i, _ in runs["numba"].values()))
    assert len(compiled) == 1 and len(list((tmp_path / "cache").glob("k_*.py"))) == 1
    assert counts[1] > counts[0]  # the stronger excitation was used, not the cached value


@pytest.mark.parametrize("model,method", [("coba_lif", "euler"), ("ei_hh", "exp_euler"), ("ei_hh", "rk4")])
def test_another_population_size_reuses_the_compiled_kernels(model, method, tmp_path, monkeypatch):
    """Sizes (loop bounds, population blocks and their offsets, scratch arrays) come from a table
    at run time too: a network of another size loads the kernels the first one compiled, and
    each run still gives the NumPy backend's spikes."""
    import nmlsim.backends.numba.kernels as nb
    monkeypatch.setenv("NMLSIM_CACHE_DIR", str(tmp_path / "cache"))
    compiled = []
    monkeypatch.setattr(nb, "COMPILE_NOTICE", lambda: compiled.append(1))
    dt = 2.5e-5 if method != "exp_euler" and model == "ei_hh" else 1e-4
    for size in (100, 160):  # (both above the size where a network's kick inputs fuse into one group)
        net = build(model, size=size, seed=5)
        runs = {b: api.simulate_network(net, 0.02, dt, seed=5, method=method, backend=b)[0] for b in ("numpy", "numba")}
        for pop in runs["numpy"]:
            assert np.array_equal(runs["numpy"][pop][0], runs["numba"][pop][0])
            assert np.allclose(runs["numpy"][pop][1], runs["numba"][pop][1], rtol=0, atol=1e-12)
    assert len(compiled) == 1 and len(list((tmp_path / "cache").glob("k_*.py"))) == 1


def test_hoisted_sizes():
    """Sizes read from the table; a population block's loop counted from 0 with an unsigned
    index (LLVM then needs no test of a negative index, and the loop vectorises)."""
    from nmlsim.backends.numba.kernels import hoist_sizes
    src = ["def f(t, a0, a1, x2):", "    for i in range(3200, 4000):", "        a0[i] = a1[i - 3200] + a1[i + 1]",
           "    w = _np.empty(4000)", "    for q in range(1):", "        a0[q] = a1[q - 3200]", "    for i in range(4000):",
           "        a0[i] = 0.0"]
    out, vals = hoist_sizes(src, "x2")
    assert out[1:5] == ["    for i_ in range(x2[1] - x2[0]):", "        i = x2[0] + i_",
                        "        i_u = _np.uint64(x2[0]) + _np.uint64(i_)",
                        "        a0[i_u] = a1[i_u - _np.uint64(x2[0])] + a1[i_u + _np.uint64(1)]"]
    assert out[5] == "    w = _np.empty(x2[1])" and out[6] == "    for q in range(1):"
    assert out[7] == "        a0[q] = a1[q - x2[0]]" and out[8] == "    for i in range(x2[1]):"
    assert list(vals) == [3200, 4000] and vals.dtype == np.int64


def test_hoisted_literals_keep_the_generators_constants():
    from nmlsim.backends.numba.kernels import hoist_literals
    src = ["def f(t, a0, x1):", "    for i in range(40):", "        a0[i] = (a0[i] * 0.25) + 1.0 - 2.5e-05 * 0.25",
           "def g(t, a0, x1):", "    a0[3] = -0.065 + 0.0"]
    out, vals = hoist_literals(src, "x1", direct=False)
    assert out[1] == "    _K0 = x1[0]" and out[2] == "    _K1 = x1[1]"
    assert out[4] == "        a0[i] = (a0[i] * _K0) + 1.0 - _K1 * _K0" and "range(40)" in out[3]
    assert out[6] == "    _K2 = x1[2]" and out[7] == "    a0[3] = -_K2 + 0.0"
    assert list(vals) == [0.25, 2.5e-05, 0.065]
    direct, _ = hoist_literals(src, "x1")
    assert direct[2] == "        a0[i] = (a0[i] * x1[0]) + 1.0 - x1[1] * x1[0]"


def test_table_mode_kernels_compile_in_parts(monkeypatch):
    """Table-mode kernels are cut between loops into several compiled functions (LLVM's
    time grows faster than a function's size), and a group's update loop into one loop per
    set of states that read each other (HH gates apart; here with an HH population), the
    event phase between statements: the same spikes as the NumPy backend, with each
    integrator."""
    import nmlsim.backends.numba.kernels as nb
    monkeypatch.setattr(nb, "TABLE_ABOVE", 10)
    monkeypatch.setattr(nb, "PART_LINES", 6)
    monkeypatch.setattr(nb, "EVENT_PART_LINES", 8)
    net = build("ei_hh", size=60, seed=4)
    for method, dt in (("exp_euler", 1e-4), ("euler", 2.5e-5)):  # (Euler at 0.1 ms: NaN within 30 ms)
        built, sim = _sim(net, backend="numba", method=method)
        # (the derived values of this network are one loop over its cells: one part)
        assert sim.kernels.table and isinstance(sim.kernels._s, nb._Parts)
        assert len(sim.kernels._s.fns) >= 3  # the gates m, h, n of the HH cells apart
        # the event phase too (where it compiles: under euler jLEMS's early events keep the
        # engine's): an OnCondition handler's fired count set in one part, its events routed
        # in another (through a one-element array)
        assert (sim.kernels.loop is None) == (method == "euler")
        if method != "euler":
            assert isinstance(sim.kernels._events, nb._EventParts) and len(sim.kernels._events.fns) >= 3
            assert "[0] = 0" in sim.kernels.source.split("def _events__1(")[0]
        a, _ = api.simulate_network(net, 0.03, dt, seed=3, method=method)
        b, _ = api.simulate_network(net, 0.03, dt, seed=3, method=method, backend="numba")
        for pop in a:
            assert len(a[pop][0]) > 0
            assert np.array_equal(a[pop][0], b[pop][0]) and np.array_equal(a[pop][1], b[pop][1])


COUPLED = """
<ComponentType name="osc3">
  <Parameter name="tau" dimension="time"/><Parameter name="w" dimension="per_time"/>
  <Exposure name="a" dimension="none"/><Exposure name="c" dimension="none"/>
  <Dynamics>
    <StateVariable name="a" dimension="none" exposure="a"/><StateVariable name="b" dimension="none"/>
    <StateVariable name="c" dimension="none" exposure="c"/>
    <TimeDerivative variable="a" value="-w * b"/><TimeDerivative variable="b" value="w * a"/>
    <TimeDerivative variable="c" value="(0.2 - c) / tau"/>
    <OnStart><StateAssignment variable="a" value="1"/><StateAssignment variable="c" value="0.5"/></OnStart>
  </Dynamics>
</ComponentType>
<osc3 id="o" tau="3ms" w="0.6per_ms"/>
<network id="net"><population id="p" component="o" size="3"/></network>
"""


def test_state_sets_keep_coupled_states_together(lems_file, monkeypatch):
    """States whose rates read each other (a, b) share a loop, one that reads only itself
    (c) has its own; table-mode parts give the NumPy traces."""
    import nmlsim.backends.numba.kernels as nb
    sim_xml = """<Simulation id="sim1" length="20ms" step="0.01ms" target="net">
      <OutputFile id="of" fileName="x.dat"><OutputColumn id="a" quantity="p[0]/a"/>
      <OutputColumn id="c" quantity="p[1]/c"/></OutputFile></Simulation>"""
    sim = api.load(lems_file(COUPLED, sim_xml))
    monkeypatch.setattr(nb, "TABLE_ABOVE", 1)
    monkeypatch.setattr(nb, "PART_LINES", 1)
    res = {b: api.run(sim, write=False, backend=b, method="euler") for b in ("numpy", "numba")}
    K = res["numba"].simulator.kernels
    prog = K.prog
    g = next(g for g in prog.groups if g.root.tname == "osc3")
    js = [j for j, (gid, _) in enumerate(prog.rate_keys) if gid == g.gid]
    assert sorted(sorted(prog.rate_keys[j][1] for j in s) for s in K._state_sets(g.gid, js)) == [["a", "b"], ["c"]]
    assert np.array_equal(res["numpy"].traces["of"], res["numba"].traces["of"])
    assert np.ptp(res["numpy"].traces["of"][:, 1]) > 0.5 and np.ptp(res["numpy"].traces["of"][:, 2]) > 0.2


def test_first_compilation_spread_over_processes(tmp_path, monkeypatch):
    """compile_jobs forks a child per further CPU for a share of the functions (into Numba's
    cache, here a marker file), reporting each through a pipe; the functions the compiled loop
    calls come first, spread over the processes, and the loop is compiled here once they are all
    done; in the end every job is compiled (loaded) in this process: a child that fails costs
    time, not the result."""
    import os
    import types
    from nmlsim.backends.numba.kernels import compile_jobs
    monkeypatch.setenv("NMLSIM_COMPILE_JOBS", "2")
    parent = os.getpid()
    log = []

    class Job:
        def __init__(self, name):
            self.py_func = types.SimpleNamespace(__name__=name)
            self.overloads = {}
            self.here = set()

        def compile(self, sig):
            name = self.py_func.__name__
            if os.getpid() != parent:  # a child
                if name == "_bad":
                    raise RuntimeError("fails in the child")
                (tmp_path / name).write_text(str(os.getpid()))
                return
            if name == "_run" and not self.here:  # the loop's callees are in the "cache" by now
                log.append(sorted(p.name for p in tmp_path.iterdir()))
            self.here.add(sig)
    names = ["_run", "_dstep", "_events", "_derived", "_bad"]
    jobs = [(Job(n), (n,)) for n in names]
    source = "\n".join(f"def {n}(a):\n" + "    x = 1\n" * k for n, k in
                       (("_run", 50), ("_dstep", 40), ("_events", 30), ("_derived", 60), ("_bad", 10)))
    compile_jobs(jobs, "# header\n" + source, parallel=True)
    assert all(j.here == {(n,)} for (j, _), n in zip(jobs, names))  # every one compiled or loaded here
    # callees first: _derived (the largest) here, _dstep and _events in the child, which reports
    # them before the loop is compiled here; _bad after them in the child, which fails on it
    assert log == [["_dstep", "_events"]]
    assert not (tmp_path / "_derived").exists() and not (tmp_path / "_run").exists()
    # compiled already: nothing forked again
    for j, sg in jobs:
        j.overloads[tuple(sg)] = True
        j.here.clear()
    compile_jobs(jobs, source, parallel=True)
    assert all(j.here == set() for j, _ in jobs)


@pytest.mark.parametrize("value", ["two", "0", "-1"])
def test_bad_compile_jobs_setting_is_one_line(tmp_path, value):
    """NMLSIM_COMPILE_JOBS that is not a number of processes: one line, no traceback."""
    pytest.importorskip("numba")
    import os
    import subprocess
    import sys
    (tmp_path / "LEMS_x.xml").write_text(
        '<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Simulation.xml"/>'
        '<iafCell id="c" leakReversal="-70mV" thresh="-50mV" reset="-70mV" C="100pF" leakConductance="10nS"/>'
        '<network id="net"><population id="p" component="c" size="1"/></network>'
        '<Simulation id="sim" length="1ms" step="0.1ms" target="net"/></Lems>')
    env = dict(os.environ, NMLSIM_COMPILE_JOBS=value, NMLSIM_CACHE_DIR=str(tmp_path / "cache"))
    p = subprocess.run([sys.executable, "-m", "nmlsim", "run", "LEMS_x.xml", "--backend", "numba"],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert "NMLSIM_COMPILE_JOBS" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
