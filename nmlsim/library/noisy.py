"""A noisy, electrically coupled Hodgkin–Huxley network, integrated with Euler–Maruyama.

The seeds' NumPy HH network with white-noise currents, in NeuroML terms: ``n`` single-compartment
Traub–Miles cells (the COBAHH cell of :mod:`nmlsim.library.ei`) on a ring, each coupled to its
two neighbours by gap junctions (``g_gap``), each driven by a constant current just below its
firing threshold plus its own Ornstein–Uhlenbeck current (``ouNoiseCurrent`` of NoiseTypes.xml:
mean 0, ``sigma``, 5 ms correlation time), whose ``xi`` nmlsim integrates as a Wiener term. The
noise makes the cells fire irregularly; the junctions pull neighbours together.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..graph.network import ElectricalProjection, InputList, Network, Population
from .ei import C, hh_cell, traub_miles_channels

TYPES_FILE = Path(__file__).with_name("NoiseTypes.xml")


def model_with_types():
    """The NeuroML core model plus NoiseTypes.xml."""
    from ..io.lems_reader import LemsReader, core_model
    model = core_model()
    LemsReader(model).load(TYPES_FILE)
    return model


def build(n: int = 100, seed: int = 1, sigma_na: float = 0.1, g_gap_ns: float = 1.0,
          bias_na: float = 0.03) -> Network:
    """``n`` cells on a ring (gap junctions of ``g_gap_ns`` to each neighbour), a constant
    ``bias_na`` and an OU current of standard deviation ``sigma_na`` into each."""
    model = model_with_types()
    comps = traub_miles_channels() + [
        hh_cell("hh_cell", "-70mV"),
        C("gapJunction", "gap", conductance=f"{g_gap_ns:g}nS"),
        C("pulseGenerator", "bias", delay="0ms", duration="1e9ms", amplitude=f"{bias_na:g}nA"),
        C("ouNoiseCurrent", "noise", mean="0nA", sigma=f"{sigma_na:g}nA", tau="5ms")]
    for c in comps:
        model.add_component(c)
    netc = C("network", "net_noisy_hh")
    model.add_component(netc)
    net = Network(id=netc.id, component=netc, model=model, root=netc, root_path=[])
    net.populations["HH"] = Population("HH", model.components["hh_cell"], n)
    cells = np.arange(n, dtype=np.int64)
    right = (cells + 1) % n
    net.electrical.append(ElectricalProjection("ring", "HH", "HH", model.components["gap"], cells, right,
                                               np.ones(n)))
    net.inputs.append(InputList("bias_HH", model.components["bias"], "HH", cells, np.ones(n)))
    net.inputs.append(InputList("noise_HH", model.components["noise"], "HH", cells, np.ones(n)))
    net.description = (f"noisy_hh: {n} HH cells on a gap-junction ring ({g_gap_ns:g} nS), bias {bias_na:g} nA, "
                       f"OU noise sigma {sigma_na:g} nA (tau 5 ms); built by nmlsim.library.noisy")
    return net
