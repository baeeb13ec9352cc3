"""Co-simulation speed: the per-cycle cocotb testbench against the stimulus/capture harness.

Runs the example 64-128-10 network (its inputs repeated to get enough samples) through both, in
one process, and prints the simulated cycles per second of each (cycles from the results'
``cycles`` arrays, over the wall time of ``run``, simulator start-up included), their ratio, the
harness's own split of its time (stimulus load, run, capture read-back), and the Verilator build
times separately. Both results must match the golden model exactly, and with no stalls the two
testbenches must count the same cycles for the samples both ran.

    python benchmarks/cosim_speed.py [--lanes P] [--per-cycle-samples N] [--samples N]
                                     [--gap G] [--backpressure B] [--work DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from snnhw.golden import simulate
from snnhw.network import load
from snnhw.plan import CorePlan
from snnhw.sim.harness_runner import BatchSimulator
from snnhw.sim.runner import Simulator, compare

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--per-cycle-samples", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64, help="harness memory size in samples")
    parser.add_argument("--gap", type=float, default=0.0)
    parser.add_argument("--backpressure", type=float, default=0.0)
    parser.add_argument("--work", type=Path, help="keep the builds here (reused next time)")
    args = parser.parse_args()
    net = load(EXAMPLE)
    example = np.load(EXAMPLE / "inputs.npy")
    inputs = np.concatenate([example] * -(-args.samples // len(example)))[:args.samples]
    golden = simulate(net, inputs)
    plan = CorePlan.build(net, args.lanes)
    stalls = dict(gap=args.gap, backpressure=args.backpressure, seed=1)
    print(f"network {net.name}, P = {args.lanes}, {inputs.shape[1]} timesteps, "
          f"gap {args.gap}, back-pressure {args.backpressure}")

    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or scratch
        per_cycle, build_pc = _timed(lambda: Simulator(plan, Path(work) / "per-cycle"))
        first = inputs[:args.per_cycle_samples]
        (rtl_pc, out_pc, errors_pc), took_pc = _timed(lambda: per_cycle.run(first, **stalls))
        harness, build_h = _timed(lambda: BatchSimulator(plan, Path(work) / "harness",
                                                         batch=args.batch))
        (rtl_h, out_h, errors_h), took_h = _timed(lambda: harness.run(inputs, **stalls))

    golden_first = simulate(net, first)
    assert not errors_pc and not compare(golden_first, rtl_pc, out_pc), "per-cycle mismatch"
    assert not errors_h and not compare(golden, rtl_h, out_h), "harness mismatch"
    if args.gap == 0 and args.backpressure == 0:
        assert (rtl_pc.cycles == rtl_h.cycles[:len(first)]).all(), "cycle counts differ"

    cycles_pc, cycles_h = int(rtl_pc.cycles.sum()), int(rtl_h.cycles.sum())
    speed_pc, speed_h = cycles_pc / took_pc, cycles_h / took_h
    timing = harness.timing
    print(f"{'testbench':<11} {'samples':>7} {'cycles':>10} {'run s':>7} {'cycles/s':>11} "
          f"{'build s':>8}")
    print(f"{'per-cycle':<11} {len(first):>7} {cycles_pc:>10} {took_pc:>7.2f} {speed_pc:>11,.0f} "
          f"{build_pc:>8.1f}")
    print(f"{'harness':<11} {len(inputs):>7} {cycles_h:>10} {took_h:>7.2f} {speed_h:>11,.0f} "
          f"{build_h:>8.1f}")
    print(f"speed-up {speed_h / speed_pc:.1f}x; harness time: stimulus load {timing.load:.3f} s, "
          f"run {timing.run:.3f} s ({cycles_h / timing.run:,.0f} cycles/s), capture read "
          f"{timing.read:.3f} s, rest (simulator start, decode) "
          f"{timing.total - timing.load - timing.run - timing.read:.2f} s")


if __name__ == "__main__":
    main()
