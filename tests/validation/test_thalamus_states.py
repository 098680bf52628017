"""The four states of the thalamic network, 3 s each: the dominant frequency of population
activity in its band (issue 5) and population rates near the seed's measurements (spec §11.1).
About 2-3 min per state on one core."""
import numpy as np
import pytest

from nmlsim.analysis import dominant_frequency
from nmlsim.api import simulate_network
from nmlsim.library import thalamus as th

pytestmark = pytest.mark.slow

BANDS = {"delta": (1, 4), "spindle": (7, 14), "alpha": (8, 13), "gamma": (25, 50)}
#: seed's rates (Hz) per population, spec §11.1
SEED_RATES = {"delta": (6.3, 2.8, 16.3, 14.4), "spindle": (13.0, 7.7, 24.5, 14.4),
              "alpha": (11.6, 4.8, 21.4, 19.7), "gamma": (26.0, 5.6, 35.5, 28.7)}


@pytest.mark.parametrize("state", th.STATES)
def test_state_rhythm(state):
    net = th.build(state, seed=1)
    spikes, _ = simulate_network(net, 3.0, 1e-4, seed=1)
    times = np.concatenate([t for _, t in spikes.values()])
    lo, hi = BANDS[state]
    # the whole run (2-100 Hz, issue 5) and the last second (spec §11.1), both in the band
    assert lo <= dominant_frequency(times, 3.0) <= hi
    assert lo <= dominant_frequency(times, 3.0, t_start=2.0) <= hi
    for pid, seed_rate in zip(("HTC", "RTC", "IN", "RE"), SEED_RATES[state]):
        idx, t = spikes[pid]
        rate = len(t) / net.populations[pid].size / 3.0
        assert 0.5 * seed_rate <= rate <= 1.6 * seed_rate, (pid, rate, seed_rate)
