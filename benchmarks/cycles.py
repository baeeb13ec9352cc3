"""Measured cycles per timestep against the event-driven bound, at P = 1, 2, 4, 8 lanes.

Co-simulates the example 64-128-10 network (50 % pruned) under Verilator with no idle cycles on the
input and no back-pressure, and prints, per lane count, the measured cycles per timestep and the
bound of the core's shape (accumulation of timestep t+1 overlapped with the sweep of t): per layer
max(sum over spiking inputs of max(1, ceil(synapses / P)), neurons) + 6 (snnhw.plan.cycles), the
spiking inputs being the neurons that spiked into the layer at that timestep (from the golden
model).
Layers run concurrently on successive timesteps, so the bound of a timestep is that of its busiest
layer. For comparison it prints the serial bound of the earlier shape, which swept only after
accumulating: ceil(active synapse events / P) + neurons, busiest layer; and the layout bound: the
first with each spiking input's column words in the plan's layout (the busiest lane's synapses
plus delta escapes; lane balancing, snnhw.plan.balance, lowers them) for ceil(synapses / P).
With --network, a trained network (``snnhw train`` output) instead of the example, at --lanes.
``--no-balance`` plans without lane balancing (the network's own neuron order);
``--fewest-bits`` gives the delta layout the gap width of the fewest bits (``words_slack=inf``)
instead of the plan's, which spends a few % more bits on fewer escapes (snnhw.plan.WORDS_SLACK).

    python benchmarks/cycles.py [--samples N] [--network MODEL] [--lanes P ...] [--no-balance]
                                [--fewest-bits]
"""

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from snnhw.golden import simulate
from snnhw.network import load
from snnhw.plan import WORDS_SLACK, CorePlan, cycle_bounds
from snnhw.plan.cycles import BOUND_FORMULA, LAYOUT_BOUND_FORMULA, SERIAL_BOUND_FORMULA
from snnhw.sim.runner import Simulator, compare

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--network", type=Path, default=EXAMPLE)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--no-balance", dest="balance", action="store_false")
    parser.add_argument("--fewest-bits", action="store_true")
    args = parser.parse_args()
    net = load(args.network)
    # The example's inputs, or a trained network's test split.
    stored = next(args.network / name for name in ("inputs.npy", "test_inputs.npy")
                  if (args.network / name).exists())
    inputs = np.load(stored)[:args.samples]
    golden = simulate(net, inputs)
    gap_rule = "the fewest bits" if args.fewest_bits else \
        f"the fewest bits within {WORDS_SLACK:.0%} of the fewest words"
    print(f"network {net.name}: {net.input_size}-" +
          "-".join(str(l.size) for l in net.layers) +
          f", {sum(l.synapse_count for l in net.layers)} synapses, "
          f"{inputs.shape[0]} samples x {inputs.shape[1]} timesteps, input rate "
          f"{inputs.mean():.2f}, hidden rate {golden.spikes[net.layers[0].name].mean():.2f}")
    print(f"bound: {BOUND_FORMULA}; serial bound (earlier shape): {SERIAL_BOUND_FORMULA}; "
          f"layout bound: {LAYOUT_BOUND_FORMULA}; lane balancing "
          f"{'on' if args.balance else 'off'}; delta gap width: {gap_rule}")
    print(f"{'P':>3} {'measured':>9} {'bound':>8} {'ratio':>6} {'layout bound':>13} "
          f"{'ratio':>6} {'serial bound':>13} {'ratio':>6} {'speed-up vs P=1':>16} {'sim s':>6}")
    base = None
    for lanes in args.lanes:
        with tempfile.TemporaryDirectory() as work:
            plan = CorePlan.build(net, lanes, balance=args.balance,
                                  words_slack=math.inf if args.fewest_bits else WORDS_SLACK)
            sim = Simulator(plan, work)
            start = time.monotonic()
            rtl, out, errors = sim.run(inputs)
            took = time.monotonic() - start
        assert not errors and not compare(golden, rtl, out), "co-simulation mismatch"
        bound = cycle_bounds(plan, inputs, golden.spikes).max(axis=0).mean()
        words = cycle_bounds(plan, inputs, golden.spikes, layout=True).max(axis=0).mean()
        serial = cycle_bounds(plan, inputs, golden.spikes, serial=True).max(axis=0).mean()
        measured = rtl.cycles.mean()
        base = base or measured
        print(f"{lanes:>3} {measured:>9.1f} {bound:>8.1f} {measured / bound:>6.2f} "
              f"{words:>13.1f} {measured / words:>6.2f} {serial:>13.1f} "
              f"{measured / serial:>6.2f} {base / measured:>16.2f} {took:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
