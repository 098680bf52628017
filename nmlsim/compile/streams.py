"""Random numbers keyed by instance: the same draws whatever the partition of a network.

Every instance (a cell, a compartment, a synapse of one connection, an input of one list
entry) owns a stream identified by what it *is* — the name of the population, projection or
input list it comes from and its index there — not by where it sits in a group's arrays. Its
j-th draw is the j-th output of a SplitMix64 generator (Steele, Lea & Flood 2014) whose state
starts at ``mix64(identity + mix64(seed))``: a counter-based generator, so a draw needs only
(stream, counter) and an instance draws the same numbers when its group holds other
instances, when populations are fused into one group, when the network is partitioned
across MPI ranks, and on either backend (the compiled loop computes the same function).

An instance draws whenever its code evaluates ``random()``: every instance on every pass of
a test or a derived value, only the instances that fired in an action.
"""
from __future__ import annotations

import zlib

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_UNIT = 1.0 / (1 << 53)


def mix64(z):
    """SplitMix64's finaliser (uint64 in, uint64 out; arrays or scalars)."""
    with np.errstate(over="ignore"):
        z = np.asarray(z, dtype=np.uint64)
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def identities(name: str, index) -> np.ndarray:
    """Stream identities of instances ``index`` of the thing called ``name``."""
    idx = np.asarray(index, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return mix64((np.uint64(zlib.crc32(name.encode())) << np.uint64(32)) ^ mix64(idx))


def seeded(ids: np.ndarray, seed: int) -> np.ndarray:
    """The generator states (before the first draw) of streams ``ids`` under ``seed``."""
    with np.errstate(over="ignore"):
        return mix64(np.asarray(ids, dtype=np.uint64) + mix64(np.uint64(int(seed) % (1 << 64))))


def uniform(state: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """Draw number ``counter`` (1, 2, ...) of streams at ``state``: uniform in [0, 1)."""
    with np.errstate(over="ignore"):
        z = mix64(state + counter.astype(np.uint64) * GOLDEN)
    return (z >> _S11).astype(np.float64) * _UNIT


def normal(state: np.ndarray, counter: np.ndarray) -> np.ndarray:
    """A standard normal from draws ``2c - 1`` and ``2c`` (Box–Muller)."""
    c = counter.astype(np.int64)
    u1 = uniform(state, 2 * c - 1)
    u2 = uniform(state, 2 * c)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


class Streams:
    """The streams of one group: generator states and draw counters per instance."""

    def __init__(self, ids: np.ndarray, seed: int):
        self.state = seeded(ids, seed)
        self.count = np.zeros(len(ids), dtype=np.int64)

    def reset(self) -> None:
        self.count[...] = 0

    def draw(self, mask=None) -> np.ndarray:
        """One draw for every instance; the counters of ``mask`` (default: all) advance, the
        others' values are computed and not taken (the caller keeps only ``mask``)."""
        if mask is None:
            self.count += 1
        else:
            self.count[np.broadcast_to(mask, self.count.shape)] += 1
        return uniform(self.state, np.maximum(self.count, 1))

    def draw_one(self, i: int = 0) -> float:
        self.count[i] += 1
        return float(uniform(self.state[i:i + 1], self.count[i:i + 1])[0])


#: ``_rkey(S, C, i, x)``: instance i's next draw times x (S: the states as int64 bits, C: counters)
NUMBA_SOURCE = """

@numba.njit(cache=True, inline="always")
def _rkey(S, C, i, x):
    C[i] += 1
    z = _np.uint64(S[i]) + _np.uint64(C[i]) * _np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _np.uint64(30))) * _np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _np.uint64(27))) * _np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> _np.uint64(31))
    return _np.float64(z >> _np.uint64(11)) * (1.0 / 9007199254740992.0) * x
"""
