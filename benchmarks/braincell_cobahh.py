#!/usr/bin/env python
"""COBAHH benchmark (Brette et al. 2007, benchmark 3) with braincell 0.1.0, the reference of
``bench_ei.py --braincell-python PY`` (run by PY, a Python that has braincell; not nmlsim's).

Model follows Brian2's documented COBAHH example (dt = 0.1 ms). The network is
built the way braincell's own docs build an HH E-I network
(docs/examples/ei_network.ipynb): a ``braincell.SingleCompartment`` with
``SodiumFixed`` + ``Na_TM1991``, ``PotassiumFixed`` + ``K_TM1991`` and an ``IL``
leak, integrated with braincell's independent exponential Euler
(``solver='ind_exp_euler'``); synapses are ``brainpy.state.AlignPostProj`` with
``Expon`` conductances and ``COBA`` outputs; the time loop is
``brainstate.transform.for_loop`` inside ``brainstate.transform.jit``.

Differences from the braincell docs example (deliberate, to match the spec):
  * leak is 5e-5 S/cm^2 * area (the docs example uses 5 nS/cm^2, a typo);
  * connectivity is Bernoulli, each (pre, post) pair independently with
    p = 80/N, self-connections allowed (brainstate's EventFixedProb instead
    draws a fixed out-degree), delivered with a brainevent event-driven CSR;
  * spikes follow Brian2 semantics: v > -20 mV and not refractory (3 ms),
    no reset;
  * initial v, ge, gi as in the Brian2 example; m = h = n = 0.

Usage: python braincell_cobahh.py [N=4000] [T_seconds=1.0]
Prints one JSON line: {"wall", "loop", "rates": {"all"}, "peak_mb"}.
"""
import time

t0 = time.perf_counter()

import json
import resource
import sys

import numpy as np

N = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
T_SEC = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0

import jax

jax.config.update("jax_platforms", "cpu")

import brainstate
import brainunit as u
import brainevent
import brainpy
import braincell

# float64 everywhere (brainstate's idiom; this sets jax_enable_x64)
brainstate.environ.set(precision=64, dt=0.1 * u.ms)
# brainevent's default CPU kernels need numba; without it, its pure-JAX kernels
try:
    import numba  # noqa: F401
except ImportError:
    brainevent.config.set_backend('cpu', 'jax_raw')

# ---------------------------------------------------------------- parameters
area = (20000. * u.um ** 2).in_unit(u.cm ** 2)
Cm = (1. * u.uF / u.cm ** 2) * area
gl = (5e-5 * u.siemens / u.cm ** 2) * area
El = -60. * u.mV
EK = -90. * u.mV
ENa = 50. * u.mV
g_na = (100. * u.mS / u.cm ** 2) * area
g_kd = (30. * u.mS / u.cm ** 2) * area
VT = -63. * u.mV
V_th = -20. * u.mV
refractory = 3. * u.ms
taue, taui = 5. * u.ms, 10. * u.ms
Ee, Ei = 0. * u.mV, -80. * u.mV
we, wi = 6. * u.nS, 67. * u.nS

dt = brainstate.environ.get_dt()
n_steps = int(round(T_SEC * 1000. / 0.1))
ref_steps = int(round(u.get_magnitude(refractory / dt)))
N_E = int(N * 0.8)
N_I = N - N_E
p_conn = 80. / N

rng = np.random.default_rng(2007)

# initial conditions (Brian2 COBAHH example)
V0 = El + (rng.standard_normal(N) * 5. - 5.) * u.mV
ge0 = (rng.standard_normal(N) * 1.5 + 4.) * 10. * u.nS
gi0 = (rng.standard_normal(N) * 12. + 20.) * 10. * u.nS


# ---------------------------------------------------------------- neuron model
class HH(braincell.SingleCompartment):
    """Traub-Miles HH point neuron of the COBAHH benchmark (total, not per-area, quantities)."""

    def __init__(self, size, V_init):
        super().__init__(size, C=Cm, V_th=V_th, V_initializer=V_init, solver='ind_exp_euler')
        self.na = braincell.ion.SodiumFixed(size, E=ENa)
        self.na.add(INa=braincell.channel.Na_TM1991(size, g_max=g_na, V_sh=VT))
        self.k = braincell.ion.PotassiumFixed(size, E=EK)
        self.k.add(IK=braincell.channel.K_TM1991(size, g_max=g_kd, V_sh=VT))
        self.IL = braincell.channel.IL(size, E=El, g_max=gl)


# ---------------------------------------------------------------- connectivity
def bernoulli_csr(n_pre, n_post, p, weight, chunk=256):
    """Event-driven CSR; every (pre, post) pair connected independently with prob. p."""
    indices, counts = [], []
    for start in range(0, n_pre, chunk):
        stop = min(start + chunk, n_pre)
        mask = rng.random((stop - start, n_post)) < p
        rows, cols = np.nonzero(mask)
        indices.append(cols.astype(np.int32))
        counts.append(np.bincount(rows, minlength=stop - start))
    indices = np.concatenate(indices)
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int32)
    data = u.math.asarray([u.get_magnitude(weight)]) * u.get_unit(weight)  # homogeneous weight
    return brainevent.CSR((data, indices, indptr), shape=(n_pre, n_post))


class EventCSRConn(brainstate.nn.Module):
    """Spike propagation through a fixed event-driven CSR (like brainstate.nn.EventFixedProb)."""

    def __init__(self, csr):
        super().__init__()
        self.in_size = (csr.shape[0],)
        self.out_size = (csr.shape[1],)
        self.conn = csr

    def update(self, spk):
        return brainevent.BinaryArray(spk) @ self.conn


class EINet(brainstate.nn.Module):
    def __init__(self):
        super().__init__()
        self.n_exc, self.n_inh, self.num = N_E, N_I, N
        self.N = HH(N, V0)
        self.E = brainpy.state.AlignPostProj(
            comm=EventCSRConn(bernoulli_csr(N_E, N, p_conn, we)),
            syn=brainpy.state.Expon(N, tau=taue, g_initializer=ge0),
            out=brainpy.state.COBA(E=Ee),
            post=self.N,
        )
        self.I = brainpy.state.AlignPostProj(
            comm=EventCSRConn(bernoulli_csr(N_I, N, p_conn, wi)),
            syn=brainpy.state.Expon(N, tau=taui, g_initializer=gi0),
            out=brainpy.state.COBA(E=Ei),
            post=self.N,
        )

    def init_state(self, *args, **kwargs):
        self.spk = brainstate.ShortTermState(u.math.zeros(N, dtype=bool))
        self.last_spike = brainstate.ShortTermState(u.math.full(N, -10 ** 6, dtype=np.int32))

    def update(self, i):
        with brainstate.environ.context(t=i * dt, i=i):
            spk = self.spk.value
            self.E(spk[:self.n_exc])  # ge <- decay(ge) + we * (E spikes of last step)
            self.I(spk[self.n_exc:])  # gi <- decay(gi) + wi * (I spikes of last step)
            self.N(0. * u.nA)  # HH membrane + gates, exponential Euler
            # Brian2 semantics: threshold v > -20 mV, 3 ms refractory, no reset
            spk = (self.N.V.value > V_th) & ((i - self.last_spike.value) >= ref_steps)
            self.last_spike.value = u.math.where(spk, i, self.last_spike.value)
            self.spk.value = spk
            return spk.sum()


net = EINet()
brainstate.nn.init_all_states(net)


@brainstate.transform.jit
def simulate(indices):
    return brainstate.transform.for_loop(net.update, indices)


indices = np.arange(n_steps, dtype=np.int32)

t1 = time.perf_counter()
counts = jax.block_until_ready(simulate(indices))
t2 = time.perf_counter()

n_spikes = int(np.asarray(counts).sum())
rate = n_spikes / (N * T_SEC)
print(json.dumps({
    "wall": t2 - t0,
    "loop": t2 - t1,
    "rates": {"all": rate},
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
