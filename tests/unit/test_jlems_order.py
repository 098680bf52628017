"""``--method euler`` steps in jLEMS's order (compile/jlems_order.py): what a component reads
of another depends on where the two sit in jLEMS's walk of the tree, and conditions see jLEMS's
accumulated clock. Expected values are written from jLEMS's rules, not from nmlsim's output."""
import numpy as np
import pytest

from nmlsim import api

TREE = """
<ComponentType name="leafT">
  <Requirement name="x" dimension="none"/>
  <Exposure name="y" dimension="none"/>
  <Dynamics><DerivedVariable name="y" dimension="none" exposure="y" value="x"/></Dynamics>
</ComponentType>
<ComponentType name="relayT">
  <Requirement name="x" dimension="none"/>
  <Child name="leaf" type="leafT"/>
</ComponentType>
<ComponentType name="ramp" extends="baseCell">
  <Parameter name="tau" dimension="time"/>
  <Child name="relay" type="relayT"/>
  <Child name="near" type="leafT"/>
  <Exposure name="x" dimension="none"/>
  <Dynamics>
    <StateVariable name="x" dimension="none" exposure="x"/>
    <TimeDerivative variable="x" value="1 / tau"/>
  </Dynamics>
</ComponentType>
<ramp id="r" tau="1s"><relayT><leafT/></relayT><leafT/></ramp>
<network id="net"><population id="p" component="r" size="{n}"/></network>
"""
TREE_SIM = """<Simulation id="sim1" length="1ms" step="0.1ms" target="net">
  <OutputFile id="of" fileName="x.dat">
    <OutputColumn id="x" quantity="p[0]/x"/>
    <OutputColumn id="far" quantity="p[0]/relay/leaf/y"/>
    <OutputColumn id="near" quantity="p[0]/near/y"/>
  </OutputFile>
</Simulation>"""


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("n", [1, 3])
def test_requirement_copies_lag_one_step_per_relay(lems_file, backend, n):
    """x_k = k dt. jLEMS row r: a leaf right under the owner computed y from x_(r-1); a leaf
    under a relay that keeps its own copy of x, from x_(r-2) (the relay's copy is a step old)."""
    if backend == "numba":
        pytest.importorskip("numba")
    sim = api.load(lems_file(TREE.format(n=n), TREE_SIM))
    d = api.run(sim, method="euler", backend=backend, write=False).traces["of"]
    r = np.arange(len(d))
    dt = 1e-4
    assert np.allclose(d[:, 1], r * dt, atol=1e-15)
    assert np.allclose(d[:, 3], np.maximum(r - 1, 0) * dt, atol=1e-15)
    assert np.allclose(d[:, 2], np.maximum(r - 2, 0) * dt, atol=1e-15)
    # other methods keep the vector step: every reader sees x of the step's start
    e = api.run(sim, method="exp_euler", backend=backend, write=False).traces["of"]
    assert np.allclose(e[:, 2], e[:, 1]) and np.allclose(e[:, 3], e[:, 1])


PULSE = """
<ComponentType name="counter" extends="baseCell">
  <Attachments name="synapses" type="basePointCurrent"/>
  <Exposure name="q" dimension="charge"/>
  <Dynamics>
    <StateVariable name="q" dimension="charge" exposure="q"/>
    <DerivedVariable name="iSyn" dimension="current" select="synapses[*]/i" reduce="add"/>
    <TimeDerivative variable="q" value="iSyn"/>
  </Dynamics>
</ComponentType>
<counter id="c"/>
<pulseGenerator id="pg" delay="50ms" duration="50ms" amplitude="1nA"/>
<network id="net">
  <population id="p" component="c" size="1"/>
  <explicitInput target="p[0]" input="pg"/>
</network>
"""
PULSE_SIM = """<Simulation id="sim1" length="120ms" step="0.01ms" target="net">
  <OutputFile id="of" fileName="q.dat"><OutputColumn id="q" quantity="p[0]/q"/></OutputFile>
</Simulation>"""


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_conditions_use_jlems_accumulated_clock(lems_file, backend):
    """jLEMS's clock is t += dt: after 10000 steps of 1e-5 s it reads 0.09999999999999393, so
    the pulse is still on in the step that k*dt would call t = 0.1. The charge counts the
    steps whose clock lies in [delay, delay + duration)."""
    if backend == "numba":
        pytest.importorskip("numba")
    sim = api.load(lems_file(PULSE, PULSE_SIM))
    d = api.run(sim, method="euler", backend=backend, write=False).traces["of"]
    dt = 1e-5
    clock = np.cumsum(np.full(len(d) - 1, dt))  # the clock of steps 1, 2, ...
    on = int(np.count_nonzero((clock >= 0.05) & (clock < 0.1)))
    assert on == 5001  # k*dt would give 5000
    assert d[-1, 1] == pytest.approx(on * dt * 1e-9, rel=1e-9)


ABOVE = """
<iafTauCell id="above" leakReversal="-50mV" thresh="-55mV" reset="-70mV" tau="30ms"/>
<network id="net"><population id="p" component="above" size="1"/></network>
"""
ABOVE_SIM = """<Simulation id="sim1" length="1ms" step="0.005ms" target="net">
  <OutputFile id="of" fileName="v.dat"><OutputColumn id="v" quantity="p[0]/v"/></OutputFile>
</Simulation>"""


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_no_condition_on_states_before_the_first_step(lems_file, backend):
    """A cell starting above threshold: jLEMS tests conditions on the states a step produced, so
    row 0 is the initial state and the reset shows in row 1 (NeuroML2 ex0, as jnml writes it)."""
    if backend == "numba":
        pytest.importorskip("numba")
    sim = api.load(lems_file(ABOVE, ABOVE_SIM))
    d = api.run(sim, method="euler", backend=backend, write=False).traces["of"]
    assert d[0, 1] == pytest.approx(-0.050) and d[1, 1] == pytest.approx(-0.070)


DELAYED = """
<spikeGenerator id="gen" period="2ms"/>
<iafTauCell id="above" leakReversal="-50mV" thresh="-55mV" reset="-70mV" tau="30ms"/>
<iafCell id="rest" leakReversal="-70mV" thresh="-55mV" reset="-70mV" C="1nF" leakConductance="10nS"/>
<expOneSynapse id="syn" gbase="1nS" erev="0mV" tauDecay="5ms"/>
<network id="net">
  <population id="gen" component="gen" size="1"/>
  <population id="above" component="above" size="1"/>
  <population id="post" component="rest" size="2"/>
  <projection id="pg" presynapticPopulation="gen" postsynapticPopulation="post" synapse="syn">
    <connectionWD id="0" preCellId="../gen[0]" postCellId="../post[0]" weight="1" delay="0.5ms"/>
  </projection>
  <projection id="pa" presynapticPopulation="above" postsynapticPopulation="post" synapse="syn">
    <connectionWD id="0" preCellId="../above[0]" postCellId="../post[1]" weight="1" delay="0.5ms"/>
  </projection>
</network>
"""
DELAYED_SIM = """<Simulation id="sim1" length="3ms" step="0.01ms" target="net">
  <OutputFile id="of" fileName="g.dat">
    <OutputColumn id="from_gen" quantity="post[0]/synapses:syn:0/g"/>
    <OutputColumn id="from_above" quantity="post[1]/synapses:syn:0/g"/>
  </OutputFile>
</Simulation>"""


@pytest.mark.parametrize("backend", ["numpy", "numba", "numba-table"])
def test_delayed_events_arrive_before_the_step_jlems_clock_reaches(lems_file, backend, monkeypatch):
    """jLEMS stamps a delayed event with the clock of the step that sent it plus the delay and
    hands it over at the start of the first step whose clock reaches that, before any update:
    that row shows the jump already decayed by one step, the row before nothing. A cell above
    threshold fires in step 1; the spike generator in the first step whose clock passes 2 ms."""
    if backend.startswith("numba"):
        pytest.importorskip("numba")
    if backend == "numba-table":  # kernels in table mode: the engine's loop with the compiled event phase
        import nmlsim.backends.numba.kernels as nb
        monkeypatch.setattr(nb, "TABLE_ABOVE", 10)
        backend = "numba"
    sim = api.load(lems_file(DELAYED, DELAYED_SIM))
    res = api.run(sim, method="euler", backend=backend, write=False)
    d = res.traces["of"]
    assert (res.simulator.kernels is not None) == (backend == "numba")
    dt, delay, tau, w = 1e-5, 5e-4, 5e-3, 1e-9
    clock = np.concatenate([[0.0], np.cumsum(np.full(len(d) - 1, dt))])  # (np.cumsum adds in order)
    fired = {"from_above": 1, "from_gen": int(np.argmax(clock > 0.002))}
    for col, name in ((1, "from_gen"), (2, "from_above")):
        j = int(np.argmax(clock >= clock[fired[name]] + delay))
        assert d[j - 1, col] == 0.0, name
        assert d[j, col] == pytest.approx(w * (1 - dt / tau), rel=1e-12), name


ZERO_DELAY = """
<spikeGenerator id="gen" period="2ms"/>
<iafCell id="rest" leakReversal="-70mV" thresh="-55mV" reset="-70mV" C="1nF" leakConductance="10nS"/>
<expOneSynapse id="syn" gbase="1nS" erev="0mV" tauDecay="5ms"/>
<network id="net">
  {pops}
  <projection id="pg" presynapticPopulation="gen" postsynapticPopulation="post" synapse="syn">
    <connection id="0" preCellId="../gen[0]" postCellId="../post[0]"/>
  </projection>
</network>
"""
ZERO_SIM = """<Simulation id="sim1" length="3ms" step="0.01ms" target="net">
  <OutputFile id="of" fileName="g.dat"><OutputColumn id="g" quantity="post[0]/synapses:syn:0/g"/></OutputFile>
</Simulation>"""


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("receiver_first", [False, True])
def test_zero_delay_events_of_a_spike_generator_by_walk_order(lems_file, backend, receiver_first):
    """A spike generator fires in jLEMS's step f (the first whose clock passes its period) and
    hands its event over at once. A receiver later in the walk has not advanced yet: row f shows
    the jump decayed by that step. A receiver earlier in the walk has: its state jumps, but what it
    exposes (what is recorded, what others read) only at its next step, so row f shows nothing and
    row f + 1 the jump decayed (NeuroML2 ex16's inputs, declared after the cells; both as jnml 0.14
    writes them)."""
    if backend == "numba":
        pytest.importorskip("numba")
    gen, post = '<population id="gen" component="gen" size="1"/>', '<population id="post" component="rest" size="1"/>'
    pops = post + gen if receiver_first else gen + post
    sim = api.load(lems_file(ZERO_DELAY.format(pops=pops), ZERO_SIM))
    d = api.run(sim, method="euler", backend=backend, write=False).traces["of"]
    dt, tau, w = 1e-5, 5e-3, 1e-9
    clock = np.concatenate([[0.0], np.cumsum(np.full(len(d) - 1, dt))])
    f = int(np.argmax(clock > 0.002))
    assert d[f - 1, 1] == 0.0
    got = f + 1 if receiver_first else f
    assert np.all(d[:got, 1] == 0.0)
    assert d[got, 1] == pytest.approx(w * (1 - dt / tau), rel=1e-12)


GEN_END = """
<spikeGenerator id="gen" period="0.05ms"/>
<network id="net"><population id="gen" component="gen" size="1"/></network>
"""
GEN_END_SIM = """<Simulation id="sim1" length="0.99ms" step="0.01ms" target="net">
  <EventOutputFile id="ev" fileName="gen.spikes" format="TIME_ID">
    <EventSelection id="0" select="gen[0]" eventPort="spike"/>
  </EventOutputFile>
</Simulation>"""


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_no_spike_from_the_step_after_the_end(lems_file, backend):
    """jLEMS runs 99 steps of 0.01 ms: a generator of period 0.05 ms fires at 0.05 ... 0.95 ms, 19
    times; the spike due at 1.0 ms would be in a 100th step, which jLEMS does not take
    (StochasticityShowcase's 30 kHz generator wrote one spike more than jnml before)."""
    if backend == "numba":
        pytest.importorskip("numba")
    sim = api.load(lems_file(GEN_END, GEN_END_SIM))
    ev = api.run(sim, method="euler", backend=backend, write=False).events["ev"]
    times = np.array([t for _, t in ev])
    assert len(times) == 19 and times.max() <= 0.99e-3 + 1e-12


START = """
<ComponentType name="poolT">
  <Parameter name="c0" dimension="none"/>
  <Parameter name="k" dimension="per_time"/>
  <Exposure name="c" dimension="none"/>
  <Dynamics>
    <StateVariable name="c" dimension="none" exposure="c"/>
    <TimeDerivative variable="c" value="k"/>
    <OnStart><StateAssignment variable="c" value="c0"/></OnStart>
  </Dynamics>
</ComponentType>
<ComponentType name="gateT">
  <Requirement name="cc" dimension="none"/>
  <Exposure name="q" dimension="none"/>
  <Dynamics>
    <StateVariable name="q" dimension="none" exposure="q"/>
    <OnStart><StateAssignment variable="q" value="cc"/></OnStart>
  </Dynamics>
</ComponentType>
<ComponentType name="host" extends="baseCell">
  <Child name="pool" type="poolT"/>
  <Child name="gate" type="gateT"/>
  <Exposure name="cc" dimension="none"/>
  <Dynamics><DerivedVariable name="cc" dimension="none" exposure="cc" select="pool/c"/></Dynamics>
</ComponentType>
<host id="h"><pool c0="2" k="1000per_s"/><gate/></host>
<network id="net"><population id="p" component="h" size="2"/></network>
"""
START_SIM = """<Simulation id="sim1" length="0.5ms" step="0.1ms" target="net">
  <OutputFile id="of" fileName="s.dat">
    <OutputColumn id="cc" quantity="p[1]/cc"/>
    <OutputColumn id="q" quantity="p[1]/gate/q"/>
  </OutputFile>
</Simulation>"""


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_on_start_reads_the_initial_states(lems_file, backend):
    """The host reads its pool's concentration as updated in the step (a child advances first),
    but no step is taken before the OnStarts: the gate's q = cc starts at c0, not at c0 + dt·k
    (the pyloric network's KCa gates, q = inf of the pool's initial calcium). jnml's rows: cc
    shows c0 at row 0 and c0 + r·dt·k at row r; q keeps c0."""
    if backend == "numba":
        pytest.importorskip("numba")
    sim = api.load(lems_file(START, START_SIM))
    d = api.run(sim, method="euler", backend=backend, write=False).traces["of"]
    r = np.arange(len(d))
    assert np.allclose(d[:, 1], 2 + r * 0.1, atol=1e-12)
    assert np.allclose(d[:, 2], 2.0, atol=0)
