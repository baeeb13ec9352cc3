"""How a layer's synapses are laid out in memory for P lanes (pure numpy, no HDL).

Post-synaptic neuron ``j`` lives in lane (bank) ``j % P`` at bank address ``j // P``. The synapses
of presynaptic neuron ``i`` (its column: what :meth:`Connectivity.synapses_of` answers) are packed
into consecutive words of the synapse memory; each word has P slots and slot ``p`` holds a
synapse whose target is in bank ``p``, so the P lanes of a word never touch the same accumulator
bank and can add in parallel.

Two layouts, chosen per layer:

- **addressed** (the layer has pruned synapses): a slot is ``{valid, index, address}``; only
  existing synapses are stored, so pruned ones take no space. A column pointer memory holds each
  column's first word and word count.
- **implicit** (nothing pruned): every column has exactly ``ceil(size / P)`` words and word ``w``
  of a column targets bank address ``w``, so a slot is just ``{index}``; no pointer memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..network.format import Layer
from .widths import bits_for

__all__ = ["Layout", "SynapseLayout"]


class Layout(Enum):
    """Which synapse layout a layer uses."""

    ADDRESSED = "addressed"  #: only existing synapses, each with its target's bank address
    IMPLICIT = "implicit"  #: every synapse, the target implied by the slot's position


@dataclass(frozen=True, eq=False)
class SynapseLayout:
    """A layer's synapse words and column pointers at a given lane count."""

    lanes: int
    size: int
    fan_in: int
    kind: Layout
    bank_depth: int  #: accumulator/membrane words per lane
    index_bits: int  #: codebook index width
    addr_bits: int  #: bank address width stored in a slot (0 in the implicit layout)
    slot_bits: int  #: valid + index + address (implicit: index only)
    words: np.ndarray  #: uint64-per-slot synapse words, shape [total_words, lanes]
    col_start: np.ndarray  #: [fan_in] first word of each column
    col_words: np.ndarray  #: [fan_in] word count of each column

    @classmethod
    def build(cls, layer: Layer, lanes: int) -> "SynapseLayout":
        """Lay out ``layer``'s synapses for ``lanes`` lanes."""
        connectivity = layer.connectivity
        size, fan_in = layer.size, layer.fan_in
        bank_depth = -(-size // lanes)
        index_bits = bits_for(len(layer.codebook))
        addressed = connectivity.synapse_count < size * fan_in
        addr_bits = bits_for(bank_depth) if addressed else 0
        slot_bits = (1 + index_bits + addr_bits) if addressed else max(1, index_bits)

        columns = []
        for i in range(fan_in):
            targets, indices = connectivity.synapses_of(i)
            if addressed:
                per_lane = [[] for _ in range(lanes)]
                for j, k in zip(targets.tolist(), indices.tolist()):
                    per_lane[j % lanes].append((j // lanes, k))
                count = max(len(slots) for slots in per_lane)
                column = np.zeros((count, lanes), dtype=np.uint64)
                for p, slots in enumerate(per_lane):
                    for w, (address, k) in enumerate(slots):
                        column[w, p] = 1 | (k << 1) | (address << (1 + index_bits))
            else:
                padded = np.zeros(bank_depth * lanes, dtype=np.uint64)
                padded[targets] = indices
                column = padded.reshape(bank_depth, lanes)
            columns.append(column)
        col_words = np.array([len(c) for c in columns], dtype=np.int64)
        col_start = np.concatenate([[0], np.cumsum(col_words)[:-1]]).astype(np.int64)
        words = np.concatenate(columns) if columns else np.zeros((0, lanes), np.uint64)
        return cls(lanes=lanes, size=size, fan_in=fan_in,
                   kind=Layout.ADDRESSED if addressed else Layout.IMPLICIT,
                   bank_depth=bank_depth, index_bits=index_bits, addr_bits=addr_bits,
                   slot_bits=slot_bits, words=words, col_start=col_start, col_words=col_words)

    @property
    def addressed(self) -> bool:
        return self.kind is Layout.ADDRESSED

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

    @property
    def pointer_bits(self) -> int:
        """Width of a column pointer (``start | count << start_bits``)."""
        return self.start_bits + self.count_bits

    @property
    def word_bytes(self) -> int:
        """Bytes a synapse word takes in the load image."""
        return -(-self.word_bits // 8)

    @property
    def stored_bits(self) -> int:
        """Bits of the synapse and pointer memories together."""
        return self.total_words * self.word_bits + (self.fan_in * self.pointer_bits
                                                    if self.addressed else 0)

    def packed_words(self) -> list[int]:
        """Synapse memory contents: one integer per word, slot p at bits [p*slot_bits, ...)."""
        return [sum(int(slot) << (p * self.slot_bits) for p, slot in enumerate(row))
                for row in self.words]

    def packed_pointers(self) -> list[int]:
        """Pointer memory contents (addressed layout): ``start | count << start_bits``."""
        return [int(s) | (int(c) << self.start_bits)
                for s, c in zip(self.col_start, self.col_words)]

    def image(self) -> bytes:
        """The synapse words as loaded at run time: each little-endian in whole bytes."""
        return b"".join(word.to_bytes(self.word_bytes, "little") for word in self.packed_words())
