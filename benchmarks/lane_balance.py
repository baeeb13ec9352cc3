"""Where a layer's accumulation cycles go beyond the ideal bound, per lane count (pure numpy).

A spike of presynaptic neuron i costs its column's synapse words (one cycle each, at least one):
ideally max(1, ceil(synapses / P)); with neuron j in lane j % P, the words are the largest lane's
share of the column (lane imbalance) plus, in the delta layout, escape slots. For the example
network and an 80 %-pruned random MNIST-shaped 784-128-10 network (or trained networks given with
``--network``), this prints per layer and P the golden-model spike-weighted accumulation cycles
per timestep: ideal, with the lanes' imbalance (addressed words), and with the layout the plan
chooses, next to the sweep (neurons per timestep); and the same with the plan's lane balancing
(:mod:`snnhw.plan.balance`) when the plan does it.

    python benchmarks/lane_balance.py [--network MODEL ...] [--samples N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from snnhw.golden import simulate
from snnhw.network import load
from snnhw.plan import CorePlan
from snnhw.random_networks import random_inputs, random_network

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"


def lane_words(layer, lanes: int) -> np.ndarray:
    """Per column, the largest lane's synapse count (the addressed layout's words)."""
    present = layer.connectivity.unrolled() >= 0  # [size, fan_in]
    lane = np.arange(layer.size) % lanes
    return np.stack([present[lane == p].sum(axis=0) for p in range(lanes)]).max(axis=0)


def rows(net, inputs, lanes: int, balance: bool):
    golden = simulate(net, inputs)
    plan = CorePlan.build(net, lanes, balance=balance)
    pre = inputs.astype(np.int64)
    for lp in plan.layers:
        layer = lp.layer
        own = plan.in_plan_order(lp.name, golden.spikes[lp.name]).astype(np.int64)
        pre = layer.connectivity.presynaptic(pre, own)
        per_timestep = pre.sum(axis=(0, 1)) / (pre.shape[0] * pre.shape[1])  # [fan_in]
        ideal = np.maximum(1, -(-layer.connectivity.fan_out() // lanes))
        yield (lp.name, layer.size, per_timestep @ ideal,
               per_timestep @ np.maximum(1, lane_words(layer, lanes)),
               per_timestep @ np.maximum(1, lp.synapses.col_words), lp.synapses.kind.value)
        pre = own


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", nargs="*", default=[], help="trained network directories")
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    mnist = random_network(rng, 784, [128, 10], density=0.2, name="random-mnist-784-128-10")
    nets = [(load(EXAMPLE), np.load(EXAMPLE / "inputs.npy")[:args.samples]),
            (mnist, random_inputs(rng, mnist, args.samples, rate=0.1))]
    for path in args.network:
        stored = next(Path(path) / name for name in ("inputs.npy", "test_inputs.npy")
                      if (Path(path) / name).exists())  # the example's or the test split
        nets.append((load(path), np.load(stored)[:args.samples]))
    print("accumulation cycles per timestep (spike-weighted, golden model), per layer:")
    print(f"{'network':<26} {'layer':<6} {'P':>2} {'balance':>7} {'sweep':>6} {'ideal':>8} "
          f"{'lanes':>8} {'layout':>8} {'layout/ideal':>12}  layout kind")
    for net, inputs in nets:
        for lanes in (1, 2, 4, 8):
            for balance in ((False, True) if lanes > 1 else (False,)):
                for name, size, ideal, lane, layout, kind in rows(net, inputs, lanes, balance):
                    print(f"{net.name:<26} {name:<6} {lanes:>2} {'yes' if balance else 'no':>7} "
                          f"{size:>6} {ideal:>8.1f} {lane:>8.1f} {layout:>8.1f} "
                          f"{layout / ideal:>12.3f}  {kind}")


if __name__ == "__main__":
    main()
