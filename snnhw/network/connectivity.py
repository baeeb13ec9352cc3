"""A layer's connectivity: which synapses a presynaptic spike reaches, by layer ``kind``.

The plan (synapse layouts, cycle bounds) and the golden model ask a layer's connectivity, never
its index array directly, so a new kind of layer (recurrent, conv2d) is a new class here and an
entry in :data:`CONNECTIVITY`, not an edit in every consumer.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["Connectivity", "Dense", "Recurrent", "CONNECTIVITY"]


class Connectivity(Protocol):
    """What every kind of layer answers about its synapses."""

    kind: str

    @property
    def size(self) -> int:
        """Post-synaptic neurons."""

    @property
    def fan_in(self) -> int:
        """Pre-synaptic neurons."""

    @property
    def synapse_count(self) -> int:
        """Synapses that exist (not pruned)."""

    def synapses_of(self, pre: int) -> tuple[np.ndarray, np.ndarray]:
        """The synapses a spike of pre-synaptic neuron ``pre`` reaches: (post-synaptic neurons
        in increasing order, their codebook indices)."""

    def fan_out(self) -> np.ndarray:
        """Synapses of each pre-synaptic neuron, int64 [fan_in]."""

    def weights(self, codebook: tuple[int, ...]) -> np.ndarray:
        """The integer weight matrix int64 [size, fan_in], 0 where there is no synapse."""

    @property
    def external_fan_in(self) -> int:
        """Pre-synaptic neurons of the previous layer (or the input): ``fan_in`` less the
        layer's own neurons where it feeds back on itself."""

    def presynaptic(self, inputs: np.ndarray, own: np.ndarray) -> np.ndarray:
        """The 0/1 pre-synaptic spikes [..., timesteps, fan_in] of every timestep, given the
        previous layer's ``inputs`` [..., timesteps, external_fan_in] and the layer's ``own``
        spikes [..., timesteps, size]."""


class Dense:
    """Every pre-synaptic neuron may reach every post-synaptic one: ``index[j, i]`` selects the
    codebook entry of synapse i -> j, -1 where it was pruned."""

    kind = "dense"

    def __init__(self, index: np.ndarray):
        self.index = index

    @property
    def size(self) -> int:
        return int(self.index.shape[0])

    @property
    def fan_in(self) -> int:
        return int(self.index.shape[1])

    @property
    def synapse_count(self) -> int:
        return int(np.count_nonzero(self.index >= 0))

    def synapses_of(self, pre: int) -> tuple[np.ndarray, np.ndarray]:
        column = self.index[:, pre]
        targets = np.flatnonzero(column >= 0)
        return targets, column[targets].astype(np.int64)

    def fan_out(self) -> np.ndarray:
        return (self.index >= 0).sum(axis=0).astype(np.int64)

    def weights(self, codebook: tuple[int, ...]) -> np.ndarray:
        table = np.asarray(tuple(codebook) + (0,), dtype=np.int64)
        return table[self.index]  # index -1 picks the appended 0

    @property
    def external_fan_in(self) -> int:
        return self.fan_in

    def presynaptic(self, inputs: np.ndarray, own: np.ndarray) -> np.ndarray:
        return inputs


class Recurrent(Dense):
    """A dense layer whose neurons also receive their own layer's spikes of the previous
    timestep (snnTorch ``RLeaky(all_to_all=True)``): ``index`` is ``[size, external + size]``,
    its last ``size`` columns the square recurrent matrix (column ``external + k`` holds the
    synapses of the layer's own neuron ``k``). Both matrices share the layer's codebook."""

    kind = "recurrent"

    @property
    def external_fan_in(self) -> int:
        return self.fan_in - self.size

    def presynaptic(self, inputs: np.ndarray, own: np.ndarray) -> np.ndarray:
        previous = np.zeros_like(own)
        previous[..., 1:, :] = own[..., :-1, :]  # own spikes of t arrive at t + 1; none at 0
        return np.concatenate([inputs, previous.astype(inputs.dtype)], axis=-1)


#: Connectivity class of each layer ``kind`` the format knows.
CONNECTIVITY: dict[str, type] = {"dense": Dense, "recurrent": Recurrent}
