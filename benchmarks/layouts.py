"""Bits of each synapse layout, per layer: where pruning pays (issue 11, item 4).

For random 80 %-pruned layers of 4 weight values (the shapes of the digits and MNIST networks)
and for trained networks given with ``--network`` (``snnhw train`` output directories), prints
per layer and lane count the bits of the synapse and pointer memories in every layout
(:class:`snnhw.plan.Layout`) and the one the plan chooses, of the layer as the plan holds it (its
neurons in the plan's order; ``--no-balance``: the network's), next to the layer stored dense: every
synapse, pruned or not, as a codebook index of the layer's width (``size * fan_in *
index_bits``, no pointers). The codebook is the same in every layout and is left out. ``entropy``
is the zeroth-order entropy of the layer's index matrix (pruned = one more symbol) in bits per
weight position times the positions: what a lossless code of the symbols alone would need.
The layouts' bits are those of the fewest bits (the delta layout at its fewest-bits gap width);
``chosen`` is the plan's pick, the fewest bits among the layouts within ``WORDS_SLACK`` of the
fewest words (:mod:`snnhw.plan.layout`), with its gap width, bits and words (``words``: what one
spike of every input reads, the cycles it costs), next to the fewest bits' words: the bits the
plan spends on purpose for fewer cycles, and the words they buy.
A second table says where the delta layout's bits go (at the fewest-bits gap width): column
pointers, slots of synapses, escape slots (gaps too long for the gap field) and lane padding
(lanes shorter than their column).

    python benchmarks/layouts.py [--network MODEL ...] [--lanes 1 2 4] [--seed S] [--no-balance]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from snnhw.network import Layer, Network, load
from snnhw.plan import CorePlan, Layout, SynapseLayout, bits_for
from snnhw.random_networks import random_network

#: (label, input size, layer sizes) of the random networks, 80 % pruned, 4 values.
RANDOM = [("digits 64-64-10", 64, [64, 10]), ("MNIST 784-128-10", 784, [128, 10])]


def dense_bits(layer: Layer) -> int:
    """The layer with every synapse stored, each an index into its codebook (no pointers)."""
    return layer.size * layer.fan_in * max(1, bits_for(len(layer.codebook)))


def entropy_bits(layer: Layer) -> float:
    _, counts = np.unique(layer.index, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum() * layer.index.size)


def rows(label: str, net: Network, lanes: list[int], balance: bool) -> list[dict]:
    """Per layer and lane count, the layer as the plan holds it (its neurons in the plan's
    order, :mod:`snnhw.plan.balance`, unless ``balance`` is off) in every layout."""
    out = []
    plans = {p: CorePlan.build(net, p, balance=balance) for p in lanes}
    fewest_bits = {p: CorePlan.build(net, p, balance=balance, words_slack=math.inf)
                   for p in lanes}
    for number, layer in enumerate(net.layers):
        for p in lanes:
            held = fewest_bits[p].layers[number]
            options = {lay.kind: lay for lay in SynapseLayout.options(held.layer, p,
                                                                      words_slack=math.inf)}
            out.append({"network": label, "layer": layer.name,
                        "shape": f"{layer.fan_in}x{layer.size}", "density": 1 - layer.sparsity,
                        "lanes": p, "dense": dense_bits(layer), "entropy": entropy_bits(layer),
                        **{kind: options[kind].stored_bits if kind in options else None
                           for kind in Layout},
                        "gap_bits": options[Layout.DELTA].gap_bits,
                        "chosen": plans[p].layers[number].synapses, "fewest": held.synapses,
                        "delta_parts": delta_breakdown(options[Layout.DELTA])})
    return out


def delta_breakdown(lay: SynapseLayout) -> dict[str, int]:
    """Bits of a delta layout by what they store (module notes)."""
    escape = (1 << lay.gap_bits) - 1
    is_escape = (lay.words & np.uint64(escape)) == escape
    padding = 0
    for start, count in zip(lay.col_start, lay.col_words):
        for lane in is_escape[start:start + count].T:  # trailing escapes: the lane's padding
            padding += int(np.argmin(lane[::-1])) if not lane.all() else len(lane)
    escapes = int(is_escape.sum()) - padding
    return {"pointers": lay.fan_in * lay.pointer_bits,
            "synapses": (lay.words.size - escapes - padding) * lay.slot_bits,
            "escapes": escapes * lay.slot_bits, "padding": padding * lay.slot_bits}


def print_breakdown(table: list[dict]) -> None:
    header = (f"{'network':<18} {'layer':<5} {'P':>2} {'delta':>7} {'pointers':>15} "
              f"{'synapses':>15} {'escapes':>15} {'padding':>15}")
    print(header)
    print("-" * len(header))
    for r in table:
        parts = r["delta_parts"]
        print(f"{r['network']:<18} {r['layer']:<5} {r['lanes']:>2} {r[Layout.DELTA]:>7} " +
              " ".join(f"{parts[k]:>7} ({parts[k] / r['dense']:.3f})" for k in parts))


def print_table(table: list[dict]) -> None:
    header = (f"{'network':<18} {'layer':<5} {'shape':>8} {'dens':>5} {'P':>2} {'dense':>7} "
              f"{'entropy':>7} {'implicit':>8} {'addressed':>9} {'delta':>7} {'gap':>3} "
              f"{'words':>6} {'chosen':>9} {'gap':>3} {'bits':>7} {'words':>6} "
              f"{'chosen/dense':>12}")
    print(header)
    print("-" * len(header))
    totals: dict[tuple[str, int], list[int]] = {}
    for r in table:
        implicit = r[Layout.IMPLICIT]
        chosen, fewest = r["chosen"], r["fewest"]
        print(f"{r['network']:<18} {r['layer']:<5} {r['shape']:>8} {r['density']:5.2f} "
              f"{r['lanes']:>2} {r['dense']:>7} {r['entropy']:7.0f} "
              f"{'-' if implicit is None else implicit:>8} {r[Layout.ADDRESSED]:>9} "
              f"{r[Layout.DELTA]:>7} {r['gap_bits']:>3} {fewest.spike_words:>6} "
              f"{chosen.kind.value:>9} {chosen.gap_bits:>3} {chosen.stored_bits:>7} "
              f"{chosen.spike_words:>6} {chosen.stored_bits / r['dense']:12.3f}")
        total = totals.setdefault((r["network"], r["lanes"]), [0, 0, 0, 0])
        total[0] += r["dense"]
        total[1] += r[Layout.ADDRESSED]
        total[2] += fewest.stored_bits
        total[3] += chosen.stored_bits
    for (network, p), (dense, addressed, fewest, chosen) in totals.items():
        print(f"{network:<18} all layers, P={p}: dense {dense}, addressed {addressed} "
              f"({addressed / dense:.3f}x), fewest bits {fewest} ({fewest / dense:.3f}x), "
              f"chosen {chosen} ({chosen / dense:.3f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", action="append", default=[], metavar="MODEL",
                        help="a network directory (e.g. from snnhw train); repeatable")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-balance", dest="balance", action="store_false",
                        help="hold every layer's neurons in the network's order")
    args = parser.parse_args(argv)
    table = []
    for label, inputs, sizes in RANDOM:
        net = random_network(np.random.default_rng(args.seed), inputs, sizes, codebook_size=4,
                             density=0.2)
        table += rows(f"random {label}", net, args.lanes, args.balance)
    for path in args.network:
        net = load(path)
        table += rows(net.name, net, args.lanes, args.balance)
    print_table(table)
    print("\nthe delta layout's bits (and their fraction of dense)")
    print_breakdown(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
