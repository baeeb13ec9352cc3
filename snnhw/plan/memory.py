"""The memories of a core: what each holds, its shape, and where synapse memories are placed."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Placement", "MemoryKind", "MemorySpec", "SPRAM_DEPTH", "SPRAM_WIDTH",
           "SPRAM_ADDR_BITS", "spram_tiles", "rom_slice_bits"]

#: Geometry of one iCE40 SB_SPRAM256KA (the large RAM of the iCE40UP5K).
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16
SPRAM_ADDR_BITS = (SPRAM_DEPTH - 1).bit_length()


def spram_tiles(depth: int, width: int) -> int:
    """SB_SPRAM256KA blocks for a depth x width memory: word slices times depth slices."""
    return -(-max(1, width) // SPRAM_WIDTH) * -(-max(2, depth) // SPRAM_DEPTH)


def rom_slice_bits(depth: int, width: int, modes: Sequence[tuple[int, int]]) -> int:
    """Bits per slice of a depth x width ROM split by width for the block RAM ``modes``
    (``(depth, width)`` pairs, at least one); ``width`` itself: one memory.

    A ROM deeper than a block RAM is read through a multiplexer between its blocks' outputs,
    after their clock-to-out (on ECP5 the longest path of a deep synapse ROM). The slices take
    the mode that leaves the fewest blocks to select between, then the fewest blocks: where one
    mode holds every word, slices as wide as that mode need no multiplexer at all, at a few more
    blocks than the tightest tiling.
    """
    if max(2, depth) <= min(modes)[0]:
        return max(1, width)  # the shallowest mode holds it: no multiplexer in any case

    def cost(mode: tuple[int, int]) -> tuple[int, int]:
        ways = -(-max(2, depth) // mode[0])  # blocks selected between per slice
        return ways, ways * -(-max(1, width) // mode[1])

    return min(max(1, width), min(modes, key=cost)[1])


class Placement(enum.Enum):
    """Where a layer's synapse memory lives."""

    #: block RAM used as a ROM, initialised with the bitstream
    BLOCK = "block"
    #: large single-port RAM (iCE40 SPRAM) with no initial contents: the core writes it from a
    #: byte stream (the plan's load image) before the first sample
    LARGE = "large"


class MemoryKind(enum.Enum):
    SYNAPSE = "synapse"  #: synapse words (codebook index and target per slot)
    POINTER = "pointer"  #: first word and word count of each column (addressed, delta)
    CODEBOOK = "codebook"  #: the layer's weight values
    #: per-neuron threshold, beta and bias (format version 2; the LIF unit's ROMs)
    PARAMETER = "parameter"
    MEMBRANE = "membrane"  #: V, or its state-level index, per neuron (one memory per layer)
    #: the timestep's input current per neuron (two banks per lane: timestep t+1 accumulates
    #: while t is swept)
    ACCUMULATOR = "accumulator"
    QUEUE = "queue"  #: the output event queue


#: The kinds counted as the layer's stored memory in reports (the queue is a FIFO buffer).
STORED = (MemoryKind.SYNAPSE, MemoryKind.POINTER, MemoryKind.CODEBOOK, MemoryKind.PARAMETER,
          MemoryKind.MEMBRANE, MemoryKind.ACCUMULATOR)


@dataclass(frozen=True)
class MemorySpec:
    """One memory of a layer engine."""

    kind: MemoryKind
    depth: int  #: words the layer needs
    width: int  #: bits per word
    rom: bool  #: contents fixed at configuration
    placement: Placement = Placement.BLOCK

    @property
    def bits(self) -> int:
        return self.depth * self.width

    @property
    def hw_depth(self) -> int:
        """Depth as generated: at least 2, since a memory of depth 1 has a 0-bit address."""
        return max(2, self.depth)
