"""How a layer's synapses are laid out in memory for P lanes (pure numpy, no HDL).

Post-synaptic neuron ``j`` lives in lane (bank) ``j % P`` at bank address ``j // P``. The synapses
of presynaptic neuron ``i`` (one column of the index matrix) are packed into consecutive words of
the synapse memory; each word has P slots and slot ``p`` holds a synapse whose target is in bank
``p``, so the P lanes of a word never touch the same accumulator bank and can add in parallel.

Two layouts, chosen per layer:

- **addressed** (the layer has pruned synapses): a slot is ``{valid, index, address}``; only
  existing synapses are stored, so pruned ones take no space. A column pointer memory holds each
  column's first word and word count.
- **implicit** (nothing pruned): every column has exactly ``ceil(size / P)`` words and word ``w``
  of a column targets bank address ``w``, so a slot is just ``{index}``; no pointer memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..network.format import Layer, Network, Neuron

__all__ = ["LayerLayout", "bits_for", "signed_bits_for", "membrane_bits", "cycle_bounds",
           "synapse_image"]


def bits_for(count: int) -> int:
    """Bits of an unsigned field that holds values 0..count-1 (0 bits when count <= 1)."""
    return max(0, int(count) - 1).bit_length()


def signed_bits_for(lo: int, hi: int) -> int:
    """Bits of a signed field that holds every value in lo..hi."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def membrane_bits(neuron: Neuron) -> int:
    """Bits the membrane memory stores per neuron: V, or the index of its state level."""
    if neuron.state_levels is None:
        return neuron.v_bits
    return max(1, bits_for(len(neuron.state_levels)))


@dataclass(frozen=True)
class LayerLayout:
    """Memory images and field widths for one layer at a given lane count."""

    lanes: int
    size: int
    fan_in: int
    addressed: bool
    bank_depth: int  #: accumulator/membrane words per lane
    index_bits: int  #: codebook index width
    addr_bits: int  #: bank address width stored in a slot (0 in the implicit layout)
    slot_bits: int  #: valid + index + address (implicit: index only)
    words: np.ndarray  #: uint64-per-slot synapse words, shape [total_words, lanes]
    col_start: np.ndarray  #: [fan_in] first word of each column
    col_words: np.ndarray  #: [fan_in] word count of each column
    acc_bits: int  #: signed accumulator width: no layer input can overflow it

    @classmethod
    def build(cls, layer: Layer, lanes: int) -> "LayerLayout":
        size, fan_in, index = layer.size, layer.fan_in, layer.index
        bank_depth = -(-size // lanes)
        index_bits = bits_for(len(layer.codebook))
        addressed = bool((index < 0).any())
        addr_bits = bits_for(bank_depth) if addressed else 0
        slot_bits = (1 + index_bits + addr_bits) if addressed else max(1, index_bits)

        columns = []
        for i in range(fan_in):
            if addressed:
                per_lane = [[] for _ in range(lanes)]
                for j in np.flatnonzero(index[:, i] >= 0):
                    per_lane[j % lanes].append((j // lanes, int(index[j, i])))
                count = max(len(slots) for slots in per_lane)
                column = np.zeros((count, lanes), dtype=np.uint64)
                for p, slots in enumerate(per_lane):
                    for w, (address, k) in enumerate(slots):
                        column[w, p] = 1 | (k << 1) | (address << (1 + index_bits))
            else:
                padded = np.zeros(bank_depth * lanes, dtype=np.uint64)
                padded[:size] = index[:, i]
                column = padded.reshape(bank_depth, lanes)
            columns.append(column)
        col_words = np.array([len(c) for c in columns], dtype=np.int64)
        col_start = np.concatenate([[0], np.cumsum(col_words)[:-1]]).astype(np.int64)
        words = np.concatenate(columns) if columns else np.zeros((0, lanes), np.uint64)

        weights = layer.dense_weights()
        current_lo = int(np.minimum(weights, 0).sum(axis=1).min())
        current_hi = int(np.maximum(weights, 0).sum(axis=1).max())
        return cls(lanes=lanes, size=size, fan_in=fan_in, addressed=addressed,
                   bank_depth=bank_depth, index_bits=index_bits, addr_bits=addr_bits,
                   slot_bits=slot_bits, words=words, col_start=col_start, col_words=col_words,
                   acc_bits=signed_bits_for(current_lo, current_hi))

    @property
    def total_words(self) -> int:
        return int(self.words.shape[0])

    @property
    def word_bits(self) -> int:
        return self.slot_bits * self.lanes

    @property
    def start_bits(self) -> int:
        return max(1, bits_for(self.total_words + 1))

    @property
    def count_bits(self) -> int:
        return max(1, bits_for(int(self.col_words.max(initial=0)) + 1))

    def packed_words(self) -> list[int]:
        """Synapse memory init: one integer per word, slot p at bits [p*slot_bits, ...)."""
        return [sum(int(slot) << (p * self.slot_bits) for p, slot in enumerate(row))
                for row in self.words]

    @property
    def word_bytes(self) -> int:
        """Bytes a synapse word takes in the load image."""
        return -(-self.word_bits // 8)

    def image(self) -> bytes:
        """The synapse words as loaded at run time: each little-endian in whole bytes."""
        return b"".join(word.to_bytes(self.word_bytes, "little") for word in self.packed_words())

    def packed_pointers(self) -> list[int]:
        """Pointer memory init (addressed layout): ``start | count << start_bits``."""
        return [int(s) | (int(c) << self.start_bits)
                for s, c in zip(self.col_start, self.col_words)]

    def memory_bits(self, state_bits: int, codebook_bits: int) -> dict[str, int]:
        """Bits of each memory of the layer, as they would be stored."""
        return {
            "synapse": self.total_words * self.word_bits,
            "pointer": (self.fan_in * (self.start_bits + self.count_bits)
                        if self.addressed else 0),
            "codebook": codebook_bits,
            "membrane": self.lanes * self.bank_depth * state_bits,
            "accumulator": self.lanes * self.bank_depth * self.acc_bits,
        }


def synapse_image(net: Network, lanes: int, layers) -> bytes:
    """The load image of a core whose ``layers`` (names) keep their synapses in run-time RAM:
    those layers' synapse words, in network order (see :mod:`snnhw.hw.synapses`)."""
    chosen = set(layers)
    return b"".join(LayerLayout.build(layer, lanes).image() for layer in net.layers
                    if layer.name in chosen)


def cycle_bounds(net: Network, inputs: np.ndarray, spikes: dict[str, np.ndarray],
                 lanes: int) -> np.ndarray:
    """Per layer, sample and timestep: ceil(active synapse events / P) + neurons (the sweep).

    The active synapse events of a layer are the synapses of the neurons that spiked into it at
    that timestep (``inputs`` for the first layer, then ``spikes[previous layer]``, e.g. from the
    golden model). Returns int64 [layers, samples, timesteps]; layers run concurrently, so a
    timestep's bound for the whole core is the maximum over layers.
    """
    per_layer = []
    pre = inputs.astype(np.int64)
    for layer in net.layers:
        events = pre @ (layer.index >= 0).sum(axis=0)
        per_layer.append(-(-events // lanes) + layer.size)
        pre = spikes[layer.name][:len(inputs)].astype(np.int64)
    return np.stack(per_layer)
