"""The internal graph: what every reader produces and every writer consumes.

Cells, synapses and inputs are LEMS components (:class:`nmlsim.lems.model.Component`)
resolved against a :class:`LemsModel`; connectivity is held as index arrays (SI units
for delays).  Nothing here knows XML or HDF5.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ModelError
from ..lems.model import Component, LemsModel

#: refuse populations larger than this before allocating anything
MAX_CELLS = 50_000_000


@dataclass
class Population:
    id: str
    component: Component
    size: int
    positions: Optional[np.ndarray] = None  # (size, 3), micrometres
    instance_ids: Optional[np.ndarray] = None  # NeuroML instance ids of populationList
    #: (SONATA population, node id of each cell) when this population is one node type of
    #: a larger SONATA population; outputs are written under the SONATA names
    origin: Optional[Tuple[str, np.ndarray]] = None
    #: an MPI rank's share of a population: the index of each cell in the whole population
    #: (None: this is the whole population)
    full_index: Optional[np.ndarray] = None
    #: the last ``halo`` cells of a rank's share are other ranks' cells that its cells are
    #: coupled to (gap junctions): copies whose v the exchange sets every step
    halo: int = 0

    def index_of(self, cell_id: int) -> int:
        """Array index of NeuroML cell id ``cell_id``."""
        if self.instance_ids is None:
            if not 0 <= cell_id < self.size:
                raise ModelError(f"cell {cell_id} is out of range for population '{self.id}' of size {self.size}")
            return cell_id
        hit = np.nonzero(self.instance_ids == cell_id)[0]
        if len(hit) == 0:
            raise ModelError(f"population '{self.id}' has no instance with id {cell_id}")
        return int(hit[0])


@dataclass
class SpikeSourcePopulation:
    """Cells that only replay given spike times (SONATA virtual nodes, spike-file inputs).

    ``times`` (seconds) and ``ids`` (0..size-1) are parallel arrays, sorted by time.
    """
    id: str
    size: int
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def set_spikes(self, ids, times) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        times = np.asarray(times, dtype=float)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.size):
            raise ModelError(f"spike input node id {int(ids.max() if ids.max() >= self.size else ids.min())} "
                             f"is out of range for population '{self.id}' of {self.size} nodes")
        if not np.all(np.isfinite(times)):
            raise ModelError(f"spike input for population '{self.id}' has non-finite times")
        if len(times) and times.min() < 0:
            raise ModelError(f"spike input for population '{self.id}' has a spike at {times.min() * 1e3:g} ms, "
                             "before the run starts at 0")
        all_ids = np.concatenate([self.ids, ids])
        all_t = np.concatenate([self.times, times])
        order = np.argsort(all_t, kind="stable")
        self.ids, self.times = all_ids[order], all_t[order]


@dataclass
class Projection:
    """Spiking connections through a synapse placed on the post cell."""
    id: str
    pre: str
    post: str
    synapse: Component
    pre_idx: np.ndarray
    post_idx: np.ndarray
    weight: np.ndarray
    delay: np.ndarray  # seconds
    source_port: Optional[str] = None
    #: where on multi-compartment cells (segment ids, fractions along); None: the soma
    pre_seg: Optional[np.ndarray] = None
    pre_frac: Optional[np.ndarray] = None
    post_seg: Optional[np.ndarray] = None
    post_frac: Optional[np.ndarray] = None
    #: a rank's share: the position of each connection in the whole projection (None: all);
    #: with ``stream_name``, the connections' own identities (a SONATA edge population's rows)
    full_index: Optional[np.ndarray] = None
    #: the name its connections' random streams are keyed by (default: the projection's id)
    stream_name: Optional[str] = None


@dataclass
class ElectricalProjection:
    id: str
    pre: str
    post: str
    synapse: Component
    pre_idx: np.ndarray
    post_idx: np.ndarray
    weight: np.ndarray
    pre_seg: Optional[np.ndarray] = None
    pre_frac: Optional[np.ndarray] = None
    post_seg: Optional[np.ndarray] = None
    post_frac: Optional[np.ndarray] = None
    #: a rank's share: the position of each connection in the whole projection (None: all)
    full_index: Optional[np.ndarray] = None


@dataclass
class ContinuousProjection:
    id: str
    pre: str
    post: str
    pre_component: Component
    post_component: Component
    pre_idx: np.ndarray
    post_idx: np.ndarray
    weight: np.ndarray
    pre_seg: Optional[np.ndarray] = None
    pre_frac: Optional[np.ndarray] = None
    post_seg: Optional[np.ndarray] = None
    post_frac: Optional[np.ndarray] = None
    #: a rank's share: the position of each connection in the whole projection (None: all)
    full_index: Optional[np.ndarray] = None


@dataclass
class InputList:
    """Inputs of one component attached to cells of one population."""
    id: str
    component: Component
    population: str
    target_idx: np.ndarray
    weight: np.ndarray
    seg: Optional[np.ndarray] = None  # segment ids on multi-compartment cells (None: the soma)
    frac: Optional[np.ndarray] = None
    #: a rank's share: the position of each entry in the whole list (None: all)
    full_index: Optional[np.ndarray] = None


@dataclass
class Network:
    id: str
    component: Component  # the <network> element (temperature etc.)
    model: LemsModel
    populations: Dict[str, Population] = field(default_factory=dict)
    projections: List[Projection] = field(default_factory=list)
    electrical: List[ElectricalProjection] = field(default_factory=list)
    continuous: List[ContinuousProjection] = field(default_factory=list)
    inputs: List[InputList] = field(default_factory=list)
    sources: Dict[str, SpikeSourcePopulation] = field(default_factory=dict)
    root: Optional[Component] = None  # the simulation target (network itself or a tissue around it)
    root_path: List[str] = field(default_factory=list)  # network's path inside root
    description: str = ""
    #: the simulation target was one component, not a network (jLEMS runs it as it is): the id
    #: of the one-instance population standing for it, whose paths ("v") are the target's
    bare: Optional[str] = None
    #: an MPI rank's share (graph/partition.py): the whole network it was cut from
    whole: Optional["Network"] = None
    #: the ranks of the cells, decided by a reader that kept only one rank's connections
    #: (io/sonata_reader.py), and that (rank, ranks): the share must be cut with these
    owner: Optional[Dict[str, np.ndarray]] = None
    read_for: Optional[Tuple[int, int]] = None

    def population(self, pid: str, *, where=None) -> Population:
        p = self.populations.get(pid)
        if p is None:
            raise ModelError(f"unknown population '{pid}'", **(where or {}))
        return p

    @property
    def n_cells(self) -> int:
        return sum(p.size for p in self.populations.values())


#: NeuroML network elements that become graph structure (index arrays) rather than LEMS instances
STRUCTURAL_TYPES = ("basePopulation", "projection", "electricalProjection", "continuousProjection",
                    "explicitInput", "inputList", "explicitConnection", "region")
