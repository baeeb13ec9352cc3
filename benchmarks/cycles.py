"""Measured cycles per timestep against the event-driven bound, at P = 1, 2, 4 lanes.

Co-simulates the example 64-128-10 network (50 % pruned) under Verilator with no idle cycles on the
input and no back-pressure, and prints, per lane count, the measured cycles per timestep and the
bound: per layer ceil(active synapse events / P) + neurons (the sweep), where the active synapse
events are the synapses of the neurons that spiked into the layer at that timestep (from the golden
model). Layers run concurrently on successive timesteps, so the bound of a timestep is that of its
busiest layer; the sum over layers (no overlap) is printed too.

    python benchmarks/cycles.py [--samples N]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from snnhw.golden import simulate
from snnhw.hw.layout import cycle_bounds
from snnhw.network import load
from snnhw.sim.runner import Simulator, compare

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    net = load(EXAMPLE)
    inputs = np.load(EXAMPLE / "inputs.npy")[:args.samples]
    golden = simulate(net, inputs)
    print(f"network {net.name}: {net.input_size}-" +
          "-".join(str(l.size) for l in net.layers) +
          f", {sum(l.synapse_count for l in net.layers)} synapses, "
          f"{inputs.shape[0]} samples x {inputs.shape[1]} timesteps, input rate "
          f"{inputs.mean():.2f}, hidden rate {golden.spikes[net.layers[0].name].mean():.2f}")
    print(f"{'P':>3} {'measured':>9} {'bound':>8} {'ratio':>6} {'serial bound':>13} "
          f"{'ratio':>6} {'speed-up vs P=1':>16} {'sim s':>6}")
    base = None
    for lanes in (1, 2, 4):
        with tempfile.TemporaryDirectory() as work:
            sim = Simulator(net, work, lanes=lanes)
            start = time.monotonic()
            rtl, out, errors = sim.run(inputs)
            took = time.monotonic() - start
        assert not errors and not compare(golden, rtl, out), "co-simulation mismatch"
        per_layer = cycle_bounds(net, inputs, golden.spikes, lanes)
        busiest, serial = per_layer.max(axis=0), per_layer.sum(axis=0)
        measured = rtl.cycles.mean()
        base = base or measured
        print(f"{lanes:>3} {measured:>9.1f} {busiest.mean():>8.1f} "
              f"{measured / busiest.mean():>6.2f} {serial.mean():>13.1f} "
              f"{measured / serial.mean():>6.2f} {base / measured:>16.2f} {took:>6.1f}")


if __name__ == "__main__":
    main()
