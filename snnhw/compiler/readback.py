"""Read a compile output directory back: ``report.json`` + ``mem/*.hex`` to index matrices.

The co-simulation runs the Amaranth core with the memory contents it was generated with, so it
never reads the ``mem/*.hex`` files a user loads into an FPGA flow. This module decodes those
files by the layout the report describes, independently of :class:`~snnhw.plan.SynapseLayout`'s
packing code, so that a test can check that they hold exactly the network's synapses and
codebooks (the golden model of the read-back network is then the golden model of the original).

Synapse words hold ``lanes`` slots of ``slot_bits`` each, slot ``p`` at bits
``[p * slot_bits, (p + 1) * slot_bits)``:

- addressed layout: a slot is ``valid | index << 1 | addr << (1 + index_bits)``; slot ``p``
  with bank address ``a`` targets neuron ``a * lanes + p``; column ``i``'s words are the
  ``count`` words from ``start``, where pointer word ``i`` is ``start | count << start_bits``;
- delta layout: a slot is ``gap | index << gap_bits`` (``gap_bits`` from the report); columns
  as in the addressed layout. Each lane keeps a running address ``a``, -1 at the column's
  first word; a slot whose gap is not all ones targets bank address ``a + gap + 1`` (neuron
  ``address * lanes + p``) and moves ``a`` there; one whose gap is all ones (an escape) adds
  nothing and advances ``a`` by ``(index + 1) * 2**gap_bits - 1``;
- implicit layout (every synapse kept): a slot is the codebook index; column ``i`` is the
  ``bank_depth = ceil(size / lanes)`` words from ``i * bank_depth``, word ``w``'s slot ``p``
  targeting neuron ``w * lanes + p``.
- kernel layout (a convolution's taps once; the report gives ``kernel = [K_h, K_w]`` and
  ``group = H'*W'``): bank address ``a`` of lane ``p`` is neuron ``(a // group * lanes + p) *
  group + a % group``, ``addr_bits = bits_for(bank_depth)`` with ``bank_depth = ceil(size /
  group / lanes) * group``; a slot is ``valid | index << 1 | d << 2.. | ky | kx`` and pointer
  ``i`` is ``start | count << start_bits | e | ymask | xmask`` (count in the bits the report's
  pointer width leaves); a valid slot adds to input ``i``'s column where bit ``ky`` of
  ``ymask`` and bit ``kx`` of ``xmask`` are set, at address ``(e + d) mod 2**addr_bits``
  (:mod:`snnhw.plan.layout`).

Codebook entries are two's complement at ``weight_bits``.

The memories hold each layer's neurons in the core's order: where a layer's report entry has a
``neuron_order`` (lane balancing), position ``k`` holds network neuron ``neuron_order[k]``, in
its rows, in the next layer's columns and in a recurrent layer's own columns; :func:`read_back`
returns the matrices in network order. Where the report has ``kept_inputs`` (the core numbers
only the network inputs with a synapse, :mod:`snnhw.plan.inputs`), the first layer's column
``k`` is network input ``kept_inputs[k]``; :func:`read_back` returns all ``input_size`` columns.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..plan.balance import permuted_index
from ..plan.widths import bits_for

__all__ = ["LayerImage", "read_back", "decode_kernel"]


@dataclass(frozen=True)
class LayerImage:
    """One layer as its memory images describe it.

    Parameters
    ----------
    name : str
    index : numpy.ndarray
        int32 [size, fan_in]: codebook index of each synapse, -1 where pruned (as
        :attr:`snnhw.network.Layer.index`; a conv2d layer's unrolled matrix,
        :meth:`~snnhw.network.connectivity.Conv2d.unrolled`, which is what its memory stores).
    codebook : tuple of int
        The weight of each codebook index, sign-extended from ``weight_bits``.
    weight_bits : int
    """

    name: str
    index: np.ndarray
    codebook: tuple[int, ...]
    weight_bits: int


def _mask(bits: int) -> int:
    return (1 << bits) - 1


def _read_hex(path: Path, bits: int, count: int | None = None) -> list[int]:
    """The words of a ``$readmemh`` image, each checked to fit ``bits`` (and ``count`` lines)."""
    if not path.is_file():
        raise ValueError(f"{path}: missing")
    words = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            word = int(line, 16)
        except ValueError:
            raise ValueError(f"{path}, line {number}: not a hex word: {line!r}") from None
        if word >> bits:
            raise ValueError(f"{path}, line {number}: {line!r} is wider than {bits} bits")
        words.append(word)
    if count is not None and len(words) != count:
        raise ValueError(f"{path}: {len(words)} words, the report says {count}")
    return words


def _read_layer(mem: Path, lanes: int, entry: dict) -> LayerImage:
    name, size, fan_in = entry["name"], entry["size"], entry["fan_in"]
    weight_bits, entries = entry["weight_bits"], entry["codebook_entries"]
    total, word_bits = entry["synapse_words"], entry["synapse_word_bits"]
    bank_depth = -(-size // lanes)
    index_bits = bits_for(entries)
    layout, gap_bits = entry["layout"], entry["gap_bits"]
    if layout not in ("implicit", "addressed", "delta", "kernel"):
        raise ValueError(f"layer {name}: unknown layout {layout!r}")
    if layout == "kernel":
        group, (kh, kw) = entry["group"], entry["kernel"]
        bank_depth = -(-size // group // lanes) * group
        slot_bits = 1 + index_bits + bits_for(bank_depth) + bits_for(kh) + bits_for(kw)
    else:
        slot_bits = {"implicit": max(1, index_bits), "delta": gap_bits + index_bits,
                     "addressed": 1 + index_bits + bits_for(bank_depth)}[layout]
    if word_bits != slot_bits * lanes:
        raise ValueError(f"layer {name}: synapse words of {word_bits} bits, but {lanes} slots "
                         f"of {slot_bits} bits")

    raw = _read_hex(mem / f"{name}.codebook.hex", weight_bits, entries)
    sign = 1 << (weight_bits - 1)
    codebook = tuple((c ^ sign) - sign for c in raw)
    words = _read_hex(mem / f"{name}.synapses.hex", word_bits, total)

    index = np.full((size, fan_in), -1, dtype=np.int32)
    place = _placer(index, name, entries)

    if layout != "implicit":
        start_bits = max(1, bits_for(total + 1))
        # The report gives the pointer memory's bits; a pointer word is fan_in-th of them.
        pointer_bits = entry["memory_bits"]["pointer"] // max(1, fan_in)
        pointers = _read_hex(mem / f"{name}.pointers.hex", pointer_bits, fan_in)
    if layout == "kernel":
        count_bits = pointer_bits - start_bits - bits_for(bank_depth) - kh - kw
        if count_bits < 1:
            raise ValueError(f"layer {name}: pointers of {pointer_bits} bits leave no count")
        index = decode_kernel(name, words, pointers, size=size, lanes=lanes, group=group,
                              kernel=(kh, kw), entries=entries, start_bits=start_bits,
                              count_bits=count_bits)
    elif layout != "implicit":
        for column, pointer in enumerate(pointers):
            start, count = pointer & _mask(start_bits), pointer >> start_bits
            if start + count > total:
                raise ValueError(f"layer {name}, pointer {column}: words {start}..{start + count}"
                                 f" of {total}")
            running = [-1] * lanes  # delta: each lane's running address
            for w in range(start, start + count):
                for p in range(lanes):
                    slot = (words[w] >> (p * slot_bits)) & _mask(slot_bits)
                    if layout == "delta":
                        gap, k = slot & _mask(gap_bits), slot >> gap_bits
                        if gap == _mask(gap_bits):
                            running[p] += ((k + 1) << gap_bits) - 1
                        else:
                            running[p] += gap + 1
                            place(running[p] * lanes + p, column, k, f"word {w} slot {p}")
                    elif slot & 1:
                        k = (slot >> 1) & _mask(index_bits)
                        address = slot >> (1 + index_bits)
                        place(address * lanes + p, column, k, f"word {w} slot {p}")
                    elif slot:
                        raise ValueError(f"layer {name}, word {w} slot {p}: invalid slot with "
                                         f"bits set ({slot:#x})")
    else:
        if total != fan_in * bank_depth:
            raise ValueError(f"layer {name}: {total} implicit words, expected {fan_in} columns "
                             f"of {bank_depth}")
        for column in range(fan_in):
            for d in range(bank_depth):
                w = column * bank_depth + d
                for p in range(lanes):
                    k = (words[w] >> (p * slot_bits)) & _mask(slot_bits)
                    if d * lanes + p < size:
                        place(d * lanes + p, column, k, f"word {w} slot {p}")
                    elif k:
                        raise ValueError(f"layer {name}, word {w} slot {p}: padding is {k}")
    return LayerImage(name=name, index=index, codebook=codebook, weight_bits=weight_bits)


def _placer(index: np.ndarray, name: str, entries: int):
    """``place(neuron, column, k, where)``: set one synapse of ``index``, refusing a neuron or
    codebook index out of range and a synapse given twice."""
    size = index.shape[0]

    def place(neuron: int, column: int, k: int, where: str) -> None:
        if neuron >= size:
            raise ValueError(f"layer {name}, {where}: neuron {neuron} of {size}")
        if k >= entries:
            raise ValueError(f"layer {name}, {where}: codebook index {k} of {entries}")
        if index[neuron, column] != -1:
            raise ValueError(f"layer {name}, {where}: synapse {column} -> {neuron} twice")
        index[neuron, column] = k
    return place


def decode_kernel(name: str, words: list[int], pointers: list[int], *, size: int, lanes: int,
                  group: int, kernel: tuple[int, int], entries: int, start_bits: int,
                  count_bits: int) -> np.ndarray:
    """The unrolled index matrix (int32 [size, fan_in]) of a kernel-layout layer's synapse words
    and pointers, read as the engine reads them (module notes): per input, its channel's column,
    each valid slot checked against the event's masks and added at ``e + d``."""
    (kh, kw), index_bits = kernel, bits_for(entries)
    addr_bits = bits_for(-(-size // group // lanes) * group)
    slot_bits = 1 + index_bits + addr_bits + bits_for(kh) + bits_for(kw)
    index = np.full((size, len(pointers)), -1, dtype=np.int32)
    place = _placer(index, name, entries)
    for column, pointer in enumerate(pointers):
        start = pointer & _mask(start_bits)
        count = (pointer >> start_bits) & _mask(count_bits)
        event = pointer >> (start_bits + count_bits)
        e, ymask = event & _mask(addr_bits), (event >> addr_bits) & _mask(kh)
        xmask = event >> (addr_bits + kh)
        if start + count > len(words):
            raise ValueError(f"layer {name}, pointer {column}: words {start}..{start + count} "
                             f"of {len(words)}")
        for w in range(start, start + count):
            for p in range(lanes):
                slot = (words[w] >> (p * slot_bits)) & _mask(slot_bits)
                k = (slot >> 1) & _mask(index_bits)
                d = (slot >> (1 + index_bits)) & _mask(addr_bits)
                ky = (slot >> (1 + index_bits + addr_bits)) & _mask(bits_for(kh))
                kx = slot >> (1 + index_bits + addr_bits + bits_for(kh))
                if slot & 1 and ymask >> ky & 1 and xmask >> kx & 1:
                    address = (e + d) & _mask(addr_bits)
                    neuron = (address // group * lanes + p) * group + address % group
                    place(neuron, column, k, f"word {w} slot {p}")
                elif not slot & 1 and slot:
                    raise ValueError(f"layer {name}, word {w} slot {p}: invalid slot with "
                                     f"bits set ({slot:#x})")
    return index


def read_back(out_dir: str | os.PathLike) -> list[LayerImage]:
    """Decode every layer's memory images in a ``snnhw compile`` output directory.

    Raises ``ValueError`` naming the file (and line or word) where an image is malformed or
    inconsistent with ``report.json``.
    """
    out_dir = Path(out_dir)
    report = json.loads((out_dir / "report.json").read_text())
    images, previous = [], None
    for entry in report["layers"]:
        image = _read_layer(out_dir / "mem", report["lanes"], entry)
        order = entry.get("neuron_order")
        # Back to network order: the plan's permutation with the inverse orders.
        images.append(replace(image, index=permuted_index(
            image.index, _inverse(order), _inverse(previous), entry["kind"] == "recurrent")))
        previous = order
    kept = report.get("kept_inputs")
    if kept is not None:  # the first layer's columns are the core's inputs: widen to the network's
        first = images[0]
        index = np.full((first.index.shape[0], report["input_size"]), -1, first.index.dtype)
        index[:, kept] = first.index
        images[0] = replace(first, index=index)
    return images


def _inverse(order: list[int] | None) -> np.ndarray | None:
    return None if order is None else np.argsort(order)
