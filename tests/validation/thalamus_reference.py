"""The thalamic channels written straight from the spec (specs/thalamus.md §3-4) in NumPy,
independently of the NeuroML encoding, to check that encoding: one cell with one channel,
the leak and the Ca pool under the current steps of ``thalamus.channel_test``, forward Euler.

Units: V mV, t ms, densities mS/cm^2 and uA/cm^2, [Ca] mM.
"""
import numpy as np

R, F, T = 8.3144621, 96485.3, 309.15
RT_2F = 1e3 * R * T / (2 * F)  # mV
PHI_P, PHI_Q, PHI_P_RE = 3.55 ** 1.2, 3.0 ** 1.2, 5.0 ** 1.2
CA_PER_UA = 1e-2 / (2 * F * 0.5e-6) * 1e-3  # mM/ms per uA/cm^2 into a 0.5 um shell (spec: 1.0364e-4)


def _sig(x):
    return 1.0 / (1.0 + np.exp(x))


def gates(name, V, ca):
    """{gate: (inf, tau)} or {gate: (alpha, beta, phi)} of channel ``name`` at V, [Ca]."""
    if name.startswith("Na_Ba2002"):
        v = V + (30 if name.endswith("vsh30") else 40)
        return {"m": ("ab", 0.32 * (v - 13) / (1 - np.exp(-(v - 13) / 4)), 0.28 * (v - 40) / (np.exp((v - 40) / 5) - 1), 1),
                "h": ("ab", 0.128 * np.exp(-(v - 17) / 18), 4 / (1 + np.exp(-(v - 40) / 5)), 1)}
    if name.startswith("KDR_Ba2002"):
        v = V + (30 if "vsh30" in name else 40)
        phi = 1.0 if name.endswith("phi1") else 0.25
        return {"n": ("ab", 0.032 * (v - 15) / (1 - np.exp(-(v - 15) / 5)), 0.5 * np.exp(-(v - 10) / 40), phi)}
    if name == "CaL_IS2008":
        return {"p": ("it", _sig(-(V + 10) / 4), (0.4 + 0.7 / (np.exp(-(V + 5) / 15) + np.exp((V + 5) / 15))) / PHI_P),
                "q": ("it", _sig((V + 25) / 2), (300 + 100 / (np.exp((V + 40) / 9.5) + np.exp(-(V + 40) / 9.5))) / PHI_Q)}
    if name in ("CaT_HM1992", "CaHT_HM1992"):
        v = V - (-3 if name == "CaT_HM1992" else 25)
        tq = np.exp(-(v + 22) / 10.5) + 28 if v >= -80 else np.exp((v + 467) / 66.6)
        return {"p": ("it", _sig(-(v + 59) / 6.2),
                      (0.612 + 1 / (np.exp(-(v + 132) / 16.7) + np.exp((v + 16.8) / 18.2))) / PHI_P),
                "q": ("it", _sig((v + 83) / 4), tq / PHI_Q)}
    if name == "CaT_HP1992":
        v = V + 3
        return {"p": ("it", _sig(-(v + 52) / 7.4), (3 + 1 / (np.exp((v + 27) / 10) + np.exp(-(v + 102) / 15))) / PHI_P_RE),
                "q": ("it", _sig((v + 80) / 5), (85 + 1 / (np.exp((v + 48) / 4) + np.exp(-(v + 407) / 50))) / PHI_Q)}
    if name == "CAN_IS2008":
        return {"p": ("it", _sig(-(V + 43) / 5.2), 2.7 / (np.exp(-(V + 55) / 15) + np.exp((V + 55) / 15)) + 1.6)}
    if name == "AHP_De1994":
        return {"p": ("ab", 48 * ca * ca, 0.09, 1)}
    if name == "Ih_HM1992":
        return {"p": ("it", _sig((V + 75) / 5.5), 1 / (np.exp(-0.086 * V - 14.59) + np.exp(0.0701 * V - 1.87)))}
    return {}


def current(name, g, st, V, ca):
    """Density (uA/cm^2, inward positive) and whether it feeds the pool."""
    e_ca = RT_2F * np.log(2.0 / ca)
    if name.startswith("Na_"):
        return g * st["m"] ** 3 * st["h"] * (50 - V), False
    if name.startswith("KDR_"):
        return g * st["n"] ** 4 * (-90 - V), False
    if name in ("CaL_IS2008", "CaT_HM1992", "CaHT_HM1992", "CaT_HP1992"):
        return g * st["p"] ** 2 * st["q"] * (e_ca - V), True
    if name == "CAN_IS2008":
        return g * ca / (ca + 0.2) * st["p"] * (10 - V), True
    if name == "AHP_De1994":
        return g * st["p"] ** 2 * (-90 - V), True
    if name == "Ih_HM1992":
        return g * st["p"] * (-43 - V), False
    if name == "KLeak":
        return g * (-90 - V), False
    return 0.0, False


def simulate(name, g, *, area_cm2, v0, e_leak, pool_tau, steps, length_ms=300.0, dt=0.01):
    """V (mV) and [Ca] (mM) every step of the channel test; ``steps``: (delay, duration, nA)."""
    n = int(round(length_ms / dt))
    V, ca = v0, 2.4e-4
    st = {}
    for k, spec in gates(name, V, ca).items():
        st[k] = spec[1] / (spec[1] + spec[2]) if spec[0] == "ab" else spec[1]
    out = np.empty((n + 1, 2))
    out[0] = V, ca
    for i in range(n):
        t = i * dt
        inj = sum(a for d, w, a in steps if d <= t < d + w) * 1e-3 / area_cm2
        i_ch, to_pool = current(name, g, st, V, ca)
        dV = i_ch + 0.0075 * (e_leak - V) + inj
        dca = max(0.0, i_ch * CA_PER_UA if to_pool else 0.0) + (5e-5 - ca) / pool_tau
        new = {}
        for k, spec in gates(name, V, ca).items():
            if spec[0] == "ab":
                new[k] = st[k] + dt * spec[3] * (spec[1] * (1 - st[k]) - spec[2] * st[k])
            else:
                new[k] = st[k] + dt * (spec[1] - st[k]) / spec[2]
        V, ca, st = V + dt * dV, ca + dt * dca, new
        out[i + 1] = V, ca
    return out
