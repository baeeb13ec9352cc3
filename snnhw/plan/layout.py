"""How a layer's synapses are laid out in memory for P lanes (pure numpy, no HDL).

Post-synaptic neuron ``j`` lives in lane (bank) ``j % P`` at bank address ``j // P``, ``j``
counting in the order the core holds the layer's neurons (:attr:`snnhw.plan.LayerPlan.order`:
the plan may reorder a hidden layer's neurons to balance the lanes, :mod:`snnhw.plan.balance`);
the kernel layout below places runs of neurons instead (:meth:`SynapseLayout.place`). The
synapses of presynaptic neuron ``i`` (its column: what :meth:`Connectivity.synapses_of` answers)
are packed into consecutive words of the synapse memory; each word has P slots and slot ``p``
holds a synapse whose target is in bank ``p``, so the P lanes of a word never touch the same
accumulator bank and can add in parallel. Within a column, each lane's synapses come in
ascending address.

Four layouts; the plan picks, per layer, the one that stores the fewest bits (synapse words plus
column pointers). The delta layout's gap width is the one of the fewest bits among those whose
words (:attr:`SynapseLayout.spike_words`: what one spike of each input reads, cycles) are within
:data:`WORDS_SLACK` (5 %) of the fewest: the fewest bits alone take a gap so narrow that its
escapes cost up to ~12 % more words, and the plan trades bits for those cycles on purpose
(``words_slack=math.inf`` gives the fewest bits; ``benchmarks/layouts.py`` prints both):

- **implicit** (nothing pruned): every column has exactly ``ceil(size / P)`` words and word ``w``
  of a column targets bank address ``w``, so a slot is just ``{index}``; no pointer memory.
- **addressed**: a slot is ``valid | index << 1 | address << (1 + index_bits)``; only existing
  synapses are stored. A column pointer memory holds each column's first word and word count.
- **delta**: a slot is ``gap | index << gap_bits``, the gap (``gap_bits``, chosen per layer
  from the data) coding the distance from the lane's previous synapse in the column, so the
  slot shrinks with sparsity. Each lane keeps a running address ``a``, -1 at the column's first
  word; a slot with ``gap`` below all ones targets ``a + gap + 1`` and adds there; a slot with
  ``gap`` all ones is an escape: it adds nothing and advances ``a`` by
  ``(index + 1) * 2**gap_bits - 1`` (a gap too large for the field; also the padding of a lane
  shorter than the column). In both cases ``a`` becomes ``a + {index if escape else 0, gap} +
  (not escape)``, one adder. Column pointers as in the addressed layout.
- **kernel** (``kind: conv2d`` only): the kernel is stored once and the hardware generates each
  tap's target. Output neuron ``j = oc*H'*W' + pos`` lives in lane ``oc % P`` at bank address
  ``(oc // P)*H'*W' + pos`` (runs of ``group = H'*W'`` neurons per lane), so one output channel's
  taps all add in one lane. Input channel ``c`` has one column; slot ``p`` of its words holds
  one kept tap (oc, ky, kx) with ``oc % P == p``: ``valid | index << 1 | d << (1 + index_bits)
  | ky << .. | kx << ..``, ``d = ((oc // P)*H'*W' - (ky // s)*W' - kx // s) mod 2**addr_bits``.
  The pointer of input ``i = (c, y, x)`` is its channel's column (``start | count``) followed by
  the event's fields ``e | ymask << addr_bits | xmask << (addr_bits + K_h)``: ``e = ((y + pad)
  // s * W' + (x + pad) // s) mod 2**addr_bits``, and bit ``ky`` of ``ymask`` says whether row
  ``ky`` reaches an output row (``y + pad - ky`` a multiple of ``s`` in ``0 .. s*(H' - 1)``;
  ``xmask`` alike). A tap adds where both its mask bits are set, at bank address ``e + d`` (mod
  ``2**addr_bits``: ``oy = (y + pad) // s - ky // s`` when the tap reaches row oy). A spike
  costs every word of its channel's column, taps off the edge included.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..network.format import Layer
from .widths import bits_for

__all__ = ["Layout", "SynapseLayout", "WORDS_SLACK"]

#: How many more synapse words than the fewest (a fraction) the delta layout accepts for fewer
#: stored bits when the plan picks its gap width. A spike costs its column's words, so words
#: are cycles: the gap width of the fewest bits spends up to ~12 % more words on escapes (the
#: example's fc1 at one lane) where one more gap bit removes nearly all of them for ~10 % more
#: bits (docs/boards.md, "Cycles: escapes").
WORDS_SLACK = 0.05


class Layout(Enum):
    """Which synapse layout a layer uses."""

    IMPLICIT = "implicit"  #: every synapse, the target implied by the slot's position
    ADDRESSED = "addressed"  #: only existing synapses, each with its target's bank address
    DELTA = "delta"  #: only existing synapses, each with the gap from the lane's previous one
    KERNEL = "kernel"  #: a convolution's kept kernel taps, once; targets made by the hardware


@dataclass(frozen=True, eq=False)
class SynapseLayout:
    """A layer's synapse words and column pointers at a given lane count."""

    lanes: int
    size: int
    fan_in: int
    kind: Layout
    bank_depth: int  #: accumulator/membrane words per lane
    index_bits: int  #: codebook index width
    #: bank address width stored in a slot (addressed layout; kernel layout: of ``d`` and ``e``;
    #: else 0)
    addr_bits: int
    gap_bits: int  #: gap width stored in a slot (delta layout, else 0)
    slot_bits: int  #: bits per slot
    words: np.ndarray  #: uint64-per-slot synapse words, shape [total_words, lanes]
    col_start: np.ndarray  #: [fan_in] first word of each column
    col_words: np.ndarray  #: [fan_in] word count of each column
    #: neurons per lane run: neuron ``j`` in lane ``j // group % P`` at bank address
    #: ``j // (group * P) * group + j % group`` (kernel layout: H'*W', else 1)
    group: int = 1
    kernel: tuple[int, int] = (1, 1)  #: kernel layout: (K_h, K_w), else (1, 1)
    #: [fan_in] the event fields of each input's pointer (kernel layout: e | ymask | xmask)
    col_event: np.ndarray | None = None

    @classmethod
    def build(cls, layer: Layer, lanes: int, kind: Layout | None = None, *,
              words_slack: float = WORDS_SLACK) -> "SynapseLayout":
        """Lay out ``layer``'s synapses for ``lanes`` lanes, in layout ``kind``, or (None) in
        the one of :meth:`options` that stores the fewest bits (the first of a tie). The delta
        layout takes the gap width of the fewest bits among those whose words are at most
        ``1 + words_slack`` times the fewest (:data:`WORDS_SLACK`; ``math.inf``: the fewest
        bits alone)."""
        if kind is None:
            return min(cls.options(layer, lanes, words_slack=words_slack),
                       key=lambda lay: lay.stored_bits)
        if not cls.allows(layer, kind):
            raise ValueError(cls.refusal(layer, kind))
        if kind is Layout.KERNEL:
            return _kernel_layout(cls, layer, lanes)
        size, fan_in = layer.size, layer.fan_in
        bank_depth = -(-size // lanes)
        index_bits = bits_for(len(layer.codebook))
        addr_bits = bits_for(bank_depth) if kind is Layout.ADDRESSED else 0
        gap_bits = _best_gap_bits(layer, lanes, index_bits, words_slack) \
            if kind is Layout.DELTA else 0
        slot_bits = {Layout.IMPLICIT: max(1, index_bits), Layout.ADDRESSED: 1 + index_bits +
                     addr_bits, Layout.DELTA: gap_bits + index_bits}[kind]

        columns = []
        for i in range(fan_in):
            if kind is Layout.IMPLICIT:
                targets, indices = layer.connectivity.synapses_of(i)
                padded = np.zeros(bank_depth * lanes, dtype=np.uint64)
                padded[targets] = indices
                columns.append(padded.reshape(bank_depth, lanes))
                continue
            per_lane = []
            for addresses, indices in _lanes_of(layer, i, lanes):
                if kind is Layout.ADDRESSED:
                    per_lane.append([1 | (k << 1) | (a << (1 + index_bits))
                                     for a, k in zip(addresses, indices)])
                else:
                    per_lane.append(_delta_slots(addresses, indices, gap_bits, index_bits))
            # A lane shorter than the column pads with invalid slots (delta: escapes).
            padding = (1 << gap_bits) - 1 if kind is Layout.DELTA else 0
            column = np.full((max(map(len, per_lane)), lanes), padding, dtype=np.uint64)
            for p, slots in enumerate(per_lane):
                column[:len(slots), p] = slots
            columns.append(column)
        col_words = np.array([len(c) for c in columns], dtype=np.int64)
        col_start = np.concatenate([[0], np.cumsum(col_words)[:-1]]).astype(np.int64)
        words = np.concatenate(columns) if columns else np.zeros((0, lanes), np.uint64)
        return cls(lanes=lanes, size=size, fan_in=fan_in, kind=kind, bank_depth=bank_depth,
                   index_bits=index_bits, addr_bits=addr_bits, gap_bits=gap_bits,
                   slot_bits=slot_bits, words=words, col_start=col_start, col_words=col_words)

    @staticmethod
    def allows(layer: Layer, kind: Layout) -> bool:
        """Whether ``layer`` can be laid out in ``kind`` (implicit: only when every (post, pre)
        pair has a synapse, so never for a convolution that does not see its whole input;
        kernel: only a convolution)."""
        if kind is Layout.KERNEL:
            return layer.kind == "conv2d"
        return kind is not Layout.IMPLICIT or \
            int(layer.connectivity.fan_out().sum()) == layer.size * layer.fan_in

    @staticmethod
    def refusal(layer: Layer, kind: Layout) -> str:
        """Why ``layer`` cannot take layout ``kind`` (:meth:`allows`)."""
        if kind is Layout.KERNEL:
            return f"the kernel layout is a convolution's, but {layer.name} is {layer.kind}"
        return (f"the {kind.value} layout stores every synapse, but {layer.name} lacks some "
                f"(pruned, or a convolution's)")

    @classmethod
    def options(cls, layer: Layer, lanes: int, *,
                words_slack: float = WORDS_SLACK) -> list["SynapseLayout"]:
        """The layer in every layout it allows, in :class:`Layout` order (the delta layout at
        the gap width ``words_slack`` picks, :meth:`build`)."""
        return [cls.build(layer, lanes, kind, words_slack=words_slack)
                for kind in Layout if cls.allows(layer, kind)]

    @property
    def has_pointers(self) -> bool:
        """Columns of varying length, found through the pointer memory (all but implicit)."""
        return self.kind is not Layout.IMPLICIT

    def place(self, neuron: int) -> tuple[int, int]:
        """The (lane, bank address) of a post-synaptic neuron (:attr:`group`)."""
        run, within = divmod(neuron, self.group)
        return run % self.lanes, run // self.lanes * self.group + within

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
    def event_bits(self) -> int:
        """Width of a pointer's event fields (kernel layout: ``e | ymask | xmask``, else 0)."""
        return self.addr_bits + sum(self.kernel) if self.kind is Layout.KERNEL else 0

    @property
    def pointer_bits(self) -> int:
        """Width of a column pointer (``start | count << start_bits``, then the event fields)."""
        return self.start_bits + self.count_bits + self.event_bits

    @property
    def word_bytes(self) -> int:
        """Bytes a synapse word takes in the load image."""
        return -(-self.word_bits // 8)

    @property
    def spike_words(self) -> int:
        """Words one spike of every input reads, each input once: the accumulation cycles the
        layout costs (:func:`snnhw.plan.cycle_bounds` with ``layout``; at least one a spike)."""
        return int(np.maximum(1, self.col_words).sum())

    @property
    def stored_bits(self) -> int:
        """Bits of the synapse and pointer memories together."""
        return self.total_words * self.word_bits + (self.fan_in * self.pointer_bits
                                                    if self.has_pointers else 0)

    def packed_words(self) -> list[int]:
        """Synapse memory contents: one integer per word, slot p at bits [p*slot_bits, ...)."""
        return [sum(int(slot) << (p * self.slot_bits) for p, slot in enumerate(row))
                for row in self.words]

    def packed_pointers(self) -> list[int]:
        """Pointer memory contents (all but implicit): ``start | count << start_bits``, then
        the event fields (kernel layout)."""
        events = self.col_event if self.col_event is not None else np.zeros(self.fan_in, int)
        return [int(s) | (int(c) << self.start_bits) | (int(e) << (self.start_bits +
                                                                  self.count_bits))
                for s, c, e in zip(self.col_start, self.col_words, events)]

    def image(self) -> bytes:
        """The synapse words as loaded at run time: each little-endian in whole bytes."""
        return b"".join(word.to_bytes(self.word_bytes, "little") for word in self.packed_words())


def _kernel_layout(cls, layer: Layer, lanes: int) -> SynapseLayout:
    """A convolution in the kernel layout (module notes)."""
    conv = layer.connectivity
    channels, height, width = conv.geometry.input_shape
    outs, out_h, out_w = conv.output_shape
    (kh, kw), stride, pad = conv.kernel, conv.geometry.stride, conv.geometry.padding
    group = out_h * out_w
    bank_depth = -(-outs // lanes) * group
    index_bits, addr_bits = bits_for(len(layer.codebook)), bits_for(bank_depth)
    ky_bits, kx_bits = bits_for(kh), bits_for(kw)
    modulus = 1 << addr_bits

    columns = []
    for c in range(channels):
        per_lane = [[] for _ in range(lanes)]
        for oc, ky, kx in zip(*np.nonzero(conv.index[:, c] >= 0)):  # (oc, ky, kx) ascending
            d = (oc // lanes * group - ky // stride * out_w - kx // stride) % modulus
            per_lane[oc % lanes].append(
                1 | (int(conv.index[oc, c, ky, kx]) << 1) | (int(d) << (1 + index_bits)) |
                (int(ky) << (1 + index_bits + addr_bits)) |
                (int(kx) << (1 + index_bits + addr_bits + ky_bits)))
        column = np.zeros((max(map(len, per_lane)), lanes), dtype=np.uint64)
        for p, slots in enumerate(per_lane):
            column[:len(slots), p] = slots
        columns.append(column)
    channel_words = np.array([len(column) for column in columns], dtype=np.int64)
    channel_start = np.concatenate([[0], np.cumsum(channel_words)[:-1]]).astype(np.int64)

    def reaches(at: int, taps: int, outputs: int) -> int:
        """Mask of the kernel rows (columns) by which input row (column) ``at`` reaches an
        output row (column)."""
        return sum(1 << k for k in range(taps) if at + pad - k >= 0 and
                   (at + pad - k) % stride == 0 and (at + pad - k) // stride < outputs)

    c, y, x = np.unravel_index(np.arange(layer.fan_in), (channels, height, width))
    col_event = np.array([
        ((yy + pad) // stride * out_w + (xx + pad) // stride) % modulus |
        reaches(yy, kh, out_h) << addr_bits | reaches(xx, kw, out_w) << (addr_bits + kh)
        for yy, xx in zip(y.tolist(), x.tolist())], dtype=np.int64)
    return cls(lanes=lanes, size=layer.size, fan_in=layer.fan_in, kind=Layout.KERNEL,
               bank_depth=bank_depth, index_bits=index_bits, addr_bits=addr_bits, gap_bits=0,
               slot_bits=1 + index_bits + addr_bits + ky_bits + kx_bits,
               words=np.concatenate(columns), col_start=channel_start[c],
               col_words=channel_words[c], group=group, kernel=(kh, kw), col_event=col_event)


def _lanes_of(layer: Layer, column: int, lanes: int) -> list[tuple[list[int], list[int]]]:
    """Per lane, the (ascending bank addresses, codebook indices) of a column's synapses."""
    targets, indices = layer.connectivity.synapses_of(column)  # targets ascending
    return [(list(map(int, targets[targets % lanes == p] // lanes)),
             list(map(int, indices[targets % lanes == p]))) for p in range(lanes)]


def _delta_slots(addresses: list[int], indices: list[int], gap_bits: int,
                 index_bits: int) -> list[int]:
    """One lane's delta slots for its synapses at ascending ``addresses`` (module notes)."""
    escape = (1 << gap_bits) - 1
    slots, previous = [], -1
    for address, k in zip(addresses, indices):
        offset = address - previous  # >= 1; a normal slot reaches 1..escape
        while offset > escape:
            steps = min(offset >> gap_bits, 1 << index_bits)  # advance steps * 2**gap_bits - 1
            slots.append(escape | ((steps - 1) << gap_bits))
            offset -= (steps << gap_bits) - 1
        slots.append((offset - 1) | (k << gap_bits))
        previous = address
    return slots


def _delta_slot_counts(offsets: np.ndarray, gap_bits: int, index_bits: int) -> np.ndarray:
    """Slots :func:`_delta_slots` spends on each synapse, from its offset (vectorised)."""
    escape, counts, offsets = (1 << gap_bits) - 1, np.ones_like(offsets), offsets.copy()
    while True:
        far = offsets > escape
        if not far.any():
            return counts
        steps = np.minimum(offsets[far] >> gap_bits, 1 << index_bits)
        offsets[far] -= (steps << gap_bits) - 1
        counts[far] += 1


def _best_gap_bits(layer: Layer, lanes: int, index_bits: int, words_slack: float) -> int:
    """The gap width, from 1 up to the width at which no gap needs an escape, that stores the
    delta layout in the fewest bits (the narrowest of a tie) among those whose spike words are
    at most ``1 + words_slack`` times the fewest (the widest's: no escapes)."""
    # Sorted by post neuron, so by address in every lane.
    post, pre = np.nonzero(layer.connectivity.unrolled() >= 0)
    lane, address = post % lanes, post // lanes
    group = pre * lanes + lane  # (column, lane)
    order = np.lexsort((address, group))
    group, address = group[order], address[order]
    first = np.ones(len(group), bool)
    first[1:] = group[1:] != group[:-1]
    previous = np.where(first, -1, np.concatenate([[-1], address[:-1]]))
    offsets = (address - previous).astype(np.int64)
    bank_depth = -(-layer.size // lanes)

    def cost(gap_bits: int) -> tuple[int, int, int]:
        """(spike words, stored bits, gap_bits) at a gap width."""
        per_group = np.bincount(group, _delta_slot_counts(offsets, gap_bits, index_bits),
                                minlength=layer.fan_in * lanes).astype(np.int64)
        col_words = per_group.reshape(layer.fan_in, lanes).max(axis=1, initial=0)
        total = int(col_words.sum())
        pointers = max(1, bits_for(total + 1)) + max(1, bits_for(int(col_words.max(
            initial=0)) + 1))
        return (int(np.maximum(1, col_words).sum()),
                total * lanes * (gap_bits + index_bits) + layer.fan_in * pointers, gap_bits)

    costs = [cost(g) for g in range(1, bits_for(bank_depth + 1) + 1)]
    most = (1 + words_slack) * min(words for words, _, _ in costs)
    return min((bits, gap_bits) for words, bits, gap_bits in costs if words <= most)[1]
