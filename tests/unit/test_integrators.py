"""Each integrator against analytic solutions, through the whole LEMS pipeline."""
import numpy as np
import pytest

from nmlsim import api
from nmlsim.compile.integrators import Differentiator
from nmlsim.lems.expr import parse

DECAY = """
<ComponentType name="decayer" extends="baseCell">
  <Parameter name="tau" dimension="time"/>
  <Parameter name="x0" dimension="none"/>
  <Parameter name="xinf" dimension="none"/>
  <Exposure name="x" dimension="none"/>
  <Dynamics>
    <StateVariable name="x" dimension="none" exposure="x"/>
    <TimeDerivative variable="x" value="(xinf - x) / tau"/>
    <OnStart><StateAssignment variable="x" value="x0"/></OnStart>
  </Dynamics>
</ComponentType>
<decayer id="d" tau="10ms" x0="{x0}" xinf="{xinf}"/>
<network id="net"><population id="p" component="d" size="{n}"/></network>
"""
SIM = """<Simulation id="sim1" length="50ms" step="{dt}" target="net">
  <OutputFile id="of" fileName="x.dat"><OutputColumn id="x" quantity="p[0]/x"/></OutputFile>
</Simulation>"""


def _run(lems_file, method, x0, xinf, n=1, dt="0.5ms"):
    path = lems_file(DECAY.format(x0=x0, xinf=xinf, n=n), SIM.format(dt=dt))
    sim = api.load(path)
    res = api.run(sim, method=method, write=False)
    return res.traces["of"]


@pytest.mark.parametrize("n", [1, 5])  # scalar fast path and NumPy path
def test_exp_euler_exact_for_linear_decay(lems_file, n):
    d = _run(lems_file, "exp_euler", 1.0, 0.0, n=n)
    t = d[:, 0]
    assert np.allclose(d[:, 1], np.exp(-t / 0.01), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [1, 5])
def test_brian2_charging_curve(lems_file, n):
    """Brian2's test equation dv/dt = (1 - v)/tau, v(0) = 0: v = 1 - exp(-t/tau)."""
    d = _run(lems_file, "exp_euler", 0.0, 1.0, n=n)
    assert np.allclose(d[:, 1], 1 - np.exp(-d[:, 0] / 0.01), atol=1e-12)
    d4 = _run(lems_file, "rk4", 0.0, 1.0, n=n)
    assert np.max(np.abs(d4[:, 1] - (1 - np.exp(-d4[:, 0] / 0.01)))) < 1e-7


@pytest.mark.parametrize("n", [1, 5])
def test_euler_is_the_forward_euler_recurrence(lems_file, n):
    d = _run(lems_file, "euler", 1.0, 0.0, n=n)
    k = np.arange(len(d))
    assert np.allclose(d[:, 1], (1 - 0.5e-3 / 0.01) ** k, rtol=1e-12)


def test_rk4_fourth_order(lems_file):
    errs = []
    for dt in ("2ms", "1ms"):
        d = _run(lems_file, "rk4", 1.0, 0.0, dt=dt)
        errs.append(np.max(np.abs(d[:, 1] - np.exp(-d[:, 0] / 0.01))))
    assert errs[0] / errs[1] == pytest.approx(16, rel=0.1)


PASSIVE = """
<iafCell id="pas" leakReversal="-70mV" thresh="100mV" reset="-70mV" C="100pF" leakConductance="10nS"/>
<pulseGenerator id="stim" delay="10ms" duration="100ms" amplitude="50pA"/>
<network id="net">
  <population id="p" component="pas" size="1"/>
  <explicitInput target="p[0]" input="stim" destination="synapses"/>
</network>
"""


@pytest.mark.parametrize("method,tol", [("exp_euler", 1e-9), ("rk4", 1e-9), ("euler", 1e-5)])
def test_passive_membrane(lems_file, method, tol):
    """v(t) = EL + I/gL (1 - exp(-(t - t_on)/tau)) while the pulse is on (tau = C/gL = 10 ms).

    As in jLEMS, a condition on t is tested with the end time of the step about to be
    taken, so the pulse with delay 10 ms acts from t_on = 10 ms - dt; with euler the clock is
    jLEMS's own, t += dt, which after 200 steps of 0.05 ms reads 0.009999999999999967: a step later."""
    sim_xml = SIM.format(dt="0.05ms").replace("p[0]/x", "p[0]/v").replace("50ms", "60ms")
    sim = api.load(lems_file(PASSIVE, sim_xml))
    d = api.run(sim, method=method, write=False).traces["of"]
    t, v = d[:, 0], d[:, 1]
    dt = 0.05e-3
    k = np.arange(1, 400)
    clock = np.cumsum(np.full(len(k), dt)) if method == "euler" else k * dt
    t_on = (k[np.argmax(clock >= 0.010)] - 1) * dt
    on = t >= t_on
    expected = -0.070 + 50e-12 / 10e-9 * (1 - np.exp(-(t[on] - t_on) / 0.010))
    assert np.max(np.abs(v[on] - expected)) < tol
    assert np.allclose(v[t < t_on + 1e-9], -0.070)


def test_differentiator_chains_through_derived_variables():
    defs = {"inf": parse("1 / (1 + exp(-v))"), "tau": parse("2"), "g": parse("q * q * 3")}
    d = Differentiator(lambda n: defs.get(n))
    assert d.diff(parse("(inf - q) / tau"), "q") == ("bin", "/", ("num", -1.0), ("name", "tau"))
    dg = d.diff(parse("g * (e - v)"), "q")
    from nmlsim.lems.expr import evaluate
    assert evaluate(dg, {"q": 0.5, "e": 1.0, "v": 0.0}) == pytest.approx(3.0)


COMMON_DENOMINATOR = """
<ComponentType name="gated" extends="baseCell">
  <Parameter name="tau0" dimension="time"/>
  <Parameter name="xinf" dimension="none"/>
  <Parameter name="g0" dimension="per_time"/>
  <Parameter name="s0" dimension="none"/>
  <Exposure name="x" dimension="none"/>
  <Exposure name="y" dimension="none"/>
  <Dynamics>
    <StateVariable name="x" dimension="none" exposure="x"/>
    <StateVariable name="y" dimension="none" exposure="y"/>
    <StateVariable name="s" dimension="none"/>
    <DerivedVariable name="tau" dimension="time" value="tau0 * (1 + s)"/>
    <DerivedVariable name="inf" dimension="none" value="xinf * (1 + s)"/>
    <DerivedVariable name="g" dimension="per_time" value="g0 * s"/>
    <TimeDerivative variable="x" value="(inf - x) / tau"/>
    <TimeDerivative variable="y" value="(1 - g * tau0 * y) / tau0"/>
    <OnStart><StateAssignment variable="s" value="s0"/></OnStart>
  </Dynamics>
</ComponentType>
<gated id="d" tau0="10ms" xinf="0.5" g0="100 per_s" s0="{s0}"/>
<network id="net"><population id="p" component="d" size="{n}"/></network>
"""


@pytest.mark.parametrize("backend,n", [("numpy", 1), ("numpy", 5), ("numba", 5)])
@pytest.mark.parametrize("s0", [0.0, 1.0])
def test_exp_euler_with_a_common_denominator(lems_file, backend, n, s0):
    """f = N/D with B = M/D steps as x + (N/M) expm1(B dt): exact for a gate whose tau and
    inf are derived variables; y' = (1 - g tau0 y)/tau0 with g = 0 (M = 0) is the Euler
    line y = t/tau0, with g > 0 the exponential approach to 1/(g tau0)."""
    if backend == "numba":
        pytest.importorskip("numba")
    sim_xml = SIM.format(dt="0.5ms").replace('<OutputColumn id="x" quantity="p[0]/x"/>',
                          '<OutputColumn id="x" quantity="p[0]/x"/><OutputColumn id="y" quantity="p[0]/y"/>')
    path = lems_file(COMMON_DENOMINATOR.format(n=n, s0=s0), sim_xml)
    d = api.run(api.load(path), method="exp_euler", write=False, backend=backend).traces["of"]
    t, x, y = d[:, 0], d[:, 1], d[:, 2]
    tau, inf = 0.01 * (1 + s0), 0.5 * (1 + s0)
    assert np.allclose(x, inf * (1 - np.exp(-t / tau)), rtol=1e-12, atol=1e-14)
    if s0 == 0.0:
        assert np.allclose(y, t / 0.01, rtol=1e-12, atol=1e-14)
    else:
        yinf = 1.0 / (100 * 0.01)
        assert np.allclose(y, yinf * (1 - np.exp(-t / 0.01)), rtol=1e-12, atol=1e-14)


def test_common_denominator_quotient():
    from nmlsim.compile.integrators import exp_euler_quotient
    q, m = exp_euler_quotient(parse("(inf - q) / tau"), parse("-1 / tau"))
    assert m == ("num", -1.0) and q == ("bin", "/", parse("inf - q"), ("num", -1.0))
    assert exp_euler_quotient(parse("(inf - q) / tau"), parse("-1 / tau2")) is None
    assert exp_euler_quotient(parse("a - q"), parse("-1")) is None
