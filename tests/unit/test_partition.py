"""Networks cut into rank shares (graph/partition.py), instance-keyed random streams
(compile/streams.py) and the spike exchange (engine/exchange.py) — in one process: the ranks
are threads that meet at a barrier, so these run without MPI (tests/integration/test_mpi.py
runs real processes)."""
import threading

import numpy as np
import pytest

from conftest import BACKENDS, needs_shared
from nmlsim import api
from nmlsim.compile import streams
from nmlsim.graph.partition import assign, exchange_id, share

# Izhikevich cells driven by Poisson synapses (random draws), connected with zero and 2 ms
# delays through merged and per-connection synapses, two of them joined by a gap junction
NET = """
<izhikevich2007Cell id="rs" v0="-60mV" C="100pF" k="0.7nS_per_mV" vr="-60mV" vt="-40mV" vpeak="35mV"
    a="0.03per_ms" b="-2nS" c="-50mV" d="100pA"/>
<expOneSynapse id="ampa" gbase="2nS" erev="0mV" tauDecay="3ms"/>
<expTwoSynapse id="gaba" gbase="4nS" erev="-80mV" tauRise="1ms" tauDecay="8ms"/>
<expOneSynapse id="drive_syn" gbase="10nS" erev="0mV" tauDecay="2ms"/>
<poissonFiringSynapse id="drive" averageRate="500Hz" synapse="drive_syn" spikeTarget="./drive_syn"/>
<gapJunction id="gj" conductance="1nS"/>
<network id="net" type="networkWithTemperature" temperature="32degC">
    <population id="E" component="rs" size="9"/>
    <population id="I" component="rs" size="4"/>
    <projection id="EI" presynapticPopulation="E" postsynapticPopulation="I" synapse="ampa">
        {ei}
    </projection>
    <projection id="IE" presynapticPopulation="I" postsynapticPopulation="E" synapse="gaba">
        {ie}
    </projection>
    <electricalProjection id="gjs" presynapticPopulation="E" postsynapticPopulation="E">
        <electricalConnectionInstance id="0" preCell="../E/0/rs" postCell="../E/8/rs" preSegment="0"
            postSegment="0" synapse="gj"/>
    </electricalProjection>
    <inputList id="noise" component="drive" population="E">
        {inputs}
    </inputList>
</network>
"""
SIM = """<Simulation id="sim1" length="0.15s" step="0.05ms" target="net" seed="7">
    <OutputFile id="f" fileName="v.dat">
        <OutputColumn id="a" quantity="E[0]/v"/><OutputColumn id="b" quantity="E[8]/v"/>
        <OutputColumn id="c" quantity="I[3]/v"/><OutputColumn id="d" quantity="temperature"/>
    </OutputFile>
    <EventOutputFile id="ev" fileName="ev.spikes" format="ID_TIME">
        <EventSelection id="0" select="E[1]" eventPort="spike"/><EventSelection id="1" select="I[2]" eventPort="spike"/>
        <EventSelection id="2" select="E[7]" eventPort="spike"/>
    </EventOutputFile>
</Simulation>"""


def _model(lems_file, delay_ms):
    ei = "\n".join(f'<connectionWD id="{k}" preCellId="../E[{k % 9}]" postCellId="../I[{k % 4}]" weight="1" '
                   f'delay="{delay_ms if k % 2 else 2}ms"/>' for k in range(18))
    ie = "\n".join(f'<connectionWD id="{k}" preCellId="../I[{k % 4}]" postCellId="../E[{(3 * k) % 9}]" weight="0.5" '
                   f'delay="2ms"/>' for k in range(12))
    inputs = "\n".join(f'<input id="{i}" target="../E[{i}]" destination="synapses"/>' for i in range(9))
    return lems_file(NET.format(ei=ei, ie=ie, inputs=inputs), SIM)


class _World:
    def __init__(self, n):
        self.n, self.barrier, self.slots = n, threading.Barrier(n, timeout=120), [None] * n


class ThreadComm:
    """What the engine needs of an MPI communicator, for ranks that are threads."""

    def __init__(self, world, rank):
        self.world, self.rank, self.size = world, rank, world.n

    def allgather(self, x):
        w = self.world
        w.barrier.wait()
        w.slots[self.rank] = x
        w.barrier.wait()
        out = list(w.slots)
        w.barrier.wait()
        return out

    def gather(self, x, root=0):
        out = self.allgather(x)
        return out if self.rank == root else None

    def bcast(self, x, root=0):
        return self.allgather(x)[root]

    def allreduce(self, x, op=None):
        return sum(self.allgather(x))

    def Abort(self, code=1):
        raise SystemExit(code)


def run_on_ranks(path, n, **kw):
    world, out, errors = _World(n), [None] * n, []

    def rank(r):
        try:
            out[r] = api.run(api.load(path), write=False, comm=ThreadComm(world, r), **kw)
        except BaseException as e:  # noqa: B902 (reported below)
            errors.append(e)
            world.barrier.abort()
    threads = [threading.Thread(target=rank, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out[0]


@pytest.mark.parametrize("delay_ms", [0, 2])  # zero delays: an exchange every step; 2 ms: every 40
@pytest.mark.parametrize("backend", BACKENDS)
def test_ranks_give_one_process_results(lems_file, delay_ms, backend):
    path = _model(lems_file, delay_ms)
    ref = api.run(api.load(path), write=False, backend=backend, record_spikes=True)
    assert sum(len(t) for _, t in ref.spikes.values()) > 20
    for n in (1, 2, 3):
        res = run_on_ranks(path, n, backend=backend, record_spikes=True)
        for name, data in ref.traces.items():
            assert np.array_equal(res.traces[name], data), (n, name)
        assert res.events == ref.events, n
        for pid, (idx, t) in ref.spikes.items():
            assert np.array_equal(res.spikes[pid][0], idx) and np.array_equal(res.spikes[pid][1], t), (n, pid)
        assert res.simulator.exchange.window == (40 if delay_ms else 1)  # (2 ms: 40 steps of 0.05 ms)


def test_unmerged_synapses_on_ranks(lems_file):
    path = _model(lems_file, 2)
    ref = api.run(api.load(path), write=False, merge_synapses=False, record_spikes=True)
    res = run_on_ranks(path, 3, merge_synapses=False, record_spikes=True)
    for pid, (idx, t) in ref.spikes.items():
        assert np.array_equal(res.spikes[pid][0], idx) and np.array_equal(res.spikes[pid][1], t), pid


def test_assign_balances_and_keeps_coupled_cells_together(lems_file):
    net = api.load(_model(lems_file, 0)).network
    owner = assign(net, 3)
    for pid, pop in net.populations.items():
        counts = np.bincount(owner[pid], minlength=3)
        assert counts.sum() == pop.size and counts.max() - counts.min() <= 2, (pid, counts)
    for runs in (owner["I"], owner["E"][:8]):  # contiguous runs (each population's starting elsewhere)
        assert np.count_nonzero(np.diff(runs)) <= 2
    assert owner["E"][0] == owner["E"][8]  # the gap junction's two cells, where the first falls


def test_share_holds_its_cells_and_the_connections_onto_them(lems_file):
    net = api.load(_model(lems_file, 2)).network
    owner = assign(net, 2)
    total = {p.id: 0 for p in net.projections}
    for r in range(2):
        part = share(net, owner, r)
        for pid, pop in part.populations.items():
            assert np.array_equal(pop.full_index, np.nonzero(owner[pid] == r)[0])
        for proj in part.projections:
            whole = next(p for p in net.projections if p.id == proj.id)
            assert proj.pre == exchange_id(whole.pre) and part.sources[proj.pre].size == net.populations[whole.pre].size
            # the whole projection's connections onto this rank's cells, in their order
            fi = np.arange(len(whole.pre_idx)) if proj.full_index is None else proj.full_index
            assert np.array_equal(proj.pre_idx, whole.pre_idx[fi])
            assert np.array_equal(part.populations[proj.post].full_index[proj.post_idx], whole.post_idx[fi])
            assert np.all(np.diff(fi) > 0)
            total[proj.id] += len(proj.pre_idx)
    assert total == {p.id: len(p.pre_idx) for p in net.projections}


def test_streams_are_uniform_and_keyed_by_instance():
    ids = streams.identities("pop", np.arange(20000))
    st = streams.Streams(ids, 3)
    u = np.concatenate([st.draw() for _ in range(5)])
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002 and u.min() >= 0 and u.max() < 1
    # instance 5's draws do not depend on which other instances share its group, nor on their draws
    alone = streams.Streams(ids[5:6], 3)
    mask = np.zeros(20000, dtype=bool)
    mask[5] = True
    st.reset()
    st.draw()
    st.draw(mask)
    alone.draw()
    assert st.draw()[5] == (alone.draw(), alone.draw())[1][0]
    assert not np.array_equal(streams.Streams(ids, 4).draw(), streams.Streams(ids, 3).draw())
    z = streams.normal(st.state, np.full(20000, 3))
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
def test_compiled_draws_are_the_engines():
    import numba
    ns = {"numba": numba, "_np": np}
    exec(streams.NUMBA_SOURCE.replace("cache=True, ", ""), ns)
    st = streams.Streams(streams.identities("x", np.arange(7)), 11)
    C = np.zeros(7, dtype=np.int64)
    mine = np.array([[ns["_rkey"](st.state.view(np.int64), C, i, 1.0) for i in range(7)] for _ in range(3)])
    assert np.array_equal(mine, np.array([st.draw() for _ in range(3)]))


@pytest.mark.parametrize("model", ["coba_lif/sonata/simulation_config.json", "ei_hh/LEMS_ei_hh_h5.xml"])
def test_ranks_read_only_their_connections(model):
    """A rank's reader of a SONATA circuit or a NeuroML HDF5 network keeps the connections onto
    its own cells (ranks decided from a first pass over the targets), and the run gives one
    process's spikes."""
    from conftest import REPO
    cfg = REPO / "models" / model
    whole = api.load(cfg)
    total = sum(len(p.pre_idx) for p in whole.network.projections)
    ref = whole.run(duration=0.02)
    world, out, kept = _World(2), [None, None], [0, 0]

    def rank(r):
        comm = ThreadComm(world, r)
        sim = api.load(cfg, comm=comm)
        kept[r] = sum(len(p.pre_idx) for p in sim.network.projections)
        out[r] = sim.run(duration=0.02, comm=comm)
    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(kept) == total and max(kept) < 0.6 * total
    assert sum(len(t) for _, t in ref.spikes.values()) > 100
    for pop, (ids, t) in ref.spikes.items():
        assert np.array_equal(out[0].spikes[pop][0], ids) and np.array_equal(out[0].spikes[pop][1], t), pop


def test_euler_ranks_agree_with_each_other(lems_file):
    """--method euler across ranks: zero-delay events do not follow jLEMS's walk order (they
    arrive at the end of the event phase), so one process may differ — but every K agrees."""
    path = _model(lems_file, 0)
    runs = [run_on_ranks(path, n, method="euler", record_spikes=True) for n in (1, 2, 3)]
    for res in runs[1:]:
        for name, data in runs[0].traces.items():
            assert np.array_equal(res.traces[name], data), name
        assert res.events == runs[0].events


@pytest.mark.parametrize("backend", BACKENDS)
def test_gap_junctions_across_ranks(backend):
    """noisy_hh: 100 HH cells on a gap-junction ring with white noise. With exp_euler the ring is
    cut across ranks, each holding copies (halo cells) of its neighbours' boundary cells whose v
    follows the owner's every step: one process's bytes for every K."""
    from conftest import REPO
    path = REPO / "models" / "noisy_hh" / "LEMS_noisy_hh.xml"
    ref = api.run(api.load(path), write=False, duration=0.03, backend=backend, record_spikes=True)
    for n in (2, 3):
        res = run_on_ranks(path, n, duration=0.03, backend=backend, record_spikes=True)
        pops = res.simulator.built.net.populations
        assert pops["HH"].halo == 2 and pops["HH"].size < 60  # (the ring is cut: two copies per rank)
        for name, data in ref.traces.items():
            assert np.array_equal(res.traces[name], data), (n, name)
        for pid, (idx, t) in ref.spikes.items():
            assert np.array_equal(res.spikes[pid][0], idx) and np.array_equal(res.spikes[pid][1], t), (n, pid)


def test_coupled_units_stay_whole_where_the_peer_is_not_explicit():
    """With --method euler (jLEMS's walk) the ring stays on one rank; with exp_euler it is cut."""
    from conftest import REPO
    net = api.load(REPO / "models" / "noisy_hh" / "LEMS_noisy_hh.xml").network
    assert len(set(assign(net, 3)["HH"])) == 1
    assert sorted(np.bincount(assign(net, 3, split_coupled=True)["HH"], minlength=3)) == [33, 33, 34]


@needs_shared
@pytest.mark.parametrize("case,lems", [
    ("nml2_ex19_gapjunctions", "LEMS_NML2_Ex19_GapJunctions.xml"),
    ("nml2_ex20_analogsynapses", "LEMS_NML2_Ex20_AnalogSynapses.xml"),  # graded synapses
])
def test_couplings_of_one_cell_populations_across_ranks(case, lems):
    """Small NeuroML examples: one-cell populations spread over the ranks, their gap junctions or
    graded synapses joining cells on two ranks through halo copies — one process's traces."""
    from conftest import CORPUS
    path = CORPUS / case / "LEMSexamples" / lems
    ref = api.run(api.load(path), write=False, duration=0.05)
    res = run_on_ranks(path, 2, duration=0.05)
    assert any(p.halo for p in res.simulator.built.net.populations.values())
    for name, data in ref.traces.items():
        assert np.array_equal(res.traces[name], data), name


def test_launcher_without_mpi4py_is_a_one_line_error(tmp_path):
    """Started as a rank (the launcher's variables set) where mpi4py cannot be imported."""
    import os
    import subprocess
    import sys
    from conftest import REPO
    fake = tmp_path / "mpi4py"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('no MPI here')\n")
    env = dict(os.environ, PMI_RANK="0", PMI_SIZE="2", PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    env.pop("NMLSIM_NO_MPI", None)
    p = subprocess.run([sys.executable, "-m", "nmlsim.cli", "run", "LEMS_coba_lif.xml", "--duration", "0.001"],
                       cwd=REPO / "models" / "coba_lif", capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and "mpi4py is not installed" in p.stderr, p.stderr


def test_bad_row_in_a_sliced_hdf5_read(tmp_path):
    """A rank reading its slice of an HDF5 network meets a post_cell_id no cell has: the file
    and the row are named, as a whole read names them."""
    import shutil

    import h5py
    from conftest import REPO
    from nmlsim.errors import FormatError
    src = REPO / "models" / "ei_hh"
    for f in ("LEMS_ei_hh_h5.xml", "ei_hh.cells.nml", "ei_hh.net.h5"):
        shutil.copy(src / f, tmp_path / f)
    with h5py.File(tmp_path / "ei_hh.net.h5", "r+") as h:
        proj = next(k for k in h["neuroml/network"] if k.startswith("projection_"))
        ds = h["neuroml/network"][proj][proj.split("_", 1)[1]]
        k = next(j for j in range(ds.shape[1]) if ds.attrs[f"column_{j}"] in (b"post_cell_id", "post_cell_id"))
        row = ds[7]
        row[k] = 99999
        ds[7] = row
    world = _World(2)
    with pytest.raises(FormatError, match=r"ei_hh.net.h5.*row 7: post_cell_id 99999"):
        api.load(tmp_path / "LEMS_ei_hh_h5.xml", comm=ThreadComm(world, 0))
