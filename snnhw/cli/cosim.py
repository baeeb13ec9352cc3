"""``snnhw cosim MODEL --inputs X.npy --out R.npz``: Verilator against the golden model."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .args import core_plan, lanes, nonnegative_int, out_dir, out_file

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw cosim``."""
    p = sub.add_parser("cosim",
                       help="co-simulate the core under Verilator against the golden model",
                       description="Build the core under Verilator, run it on spike inputs through "
                                   "cocotb, and compare every spike and membrane potential of "
                                   "every layer at every timestep with the golden model.")
    p.add_argument("model", help="network directory (network.yaml + arrays.npz)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="uint8 0/1 spikes [samples, timesteps, input_size]")
    p.add_argument("--out", required=True, type=out_file, metavar="R.npz",
                   help="result file to write")
    p.add_argument("--lanes", type=lanes, default=1, metavar="P",
                   help="synapses per cycle per layer")
    p.add_argument("--waves", action="store_true",
                   help="on a mismatch, leave a VCD of the first failing sample")
    p.add_argument("--work-dir", type=out_dir, metavar="DIR",
                   help="build directory (default: R.npz's name + '.cosim' beside it)")
    p.add_argument("--no-progress", action="store_true",
                   help="hide the progress bar (shown for batches of more than a few hundred "
                        "samples)")
    p.add_argument("--show", type=nonnegative_int, default=10, metavar="N",
                   help="mismatches to print")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Co-simulate, save the RTL's results; 0 if bit-exact, 1 with the first mismatches if not."""
    from ..errors import SnnhwError
    from ..network import load
    from ..plan import TIMESTEP_BITS
    from ..results import load_inputs
    from tqdm.auto import tqdm

    from ..sim.runner import PROGRESS_SAMPLES, cosim
    net = load(args.model)
    plan = core_plan(args.model, net, args.lanes)
    inputs = load_inputs(net, args.inputs)
    # Everything the Verilator build (a minute) would fail on afterwards is checked before it.
    most = (1 << TIMESTEP_BITS) - 1
    if inputs.shape[1] > most:
        raise SnnhwError(f"{args.inputs}: expected at most {most} timesteps (the core counts "
                         f"timesteps in {TIMESTEP_BITS} bits), got {inputs.shape[1]}")
    out = Path(args.out)
    work = Path(args.work_dir) if args.work_dir else out.with_name(out.stem + ".cosim")
    if work.exists() and not work.is_dir():
        raise SnnhwError(f"{work}: expected a build directory (--work-dir, default R.npz's name "
                         f"+ '.cosim'), but it is an existing file")
    print(f"co-simulating {inputs.shape[0]} sample(s) x {inputs.shape[1]} timesteps "
          f"of {net.name} at {args.lanes} lane(s) under Verilator (build in {work}) ...",
          flush=True)
    start = time.monotonic()
    show = len(inputs) > PROGRESS_SAMPLES and not args.no_progress
    with tqdm(total=len(inputs), unit="sample", desc="co-simulation", leave=False,
              disable=not show) as bar:
        report = cosim(plan, inputs, work, waves=args.waves,
                       progress=lambda done, total: bar.update(done - bar.n))
    report.rtl.save(out)
    took = time.monotonic() - start
    cycles = report.rtl.cycles
    print(f"{out}: {inputs.shape[0]} samples in {took:.1f} s; "
          f"mean {cycles.mean():.1f} cycles per timestep")
    for error in report.errors:
        print(f"protocol error: {error}")
    if report.ok:
        print(f"bit-exact: every spike and membrane potential of {len(net.layers)} layer(s) "
              f"matches the golden model")
        return 0
    print(f"MISMATCH: {report.summary}" + ("; first:" if report.mismatches else ""))
    for mismatch in report.mismatches[:args.show]:
        print(f"  {mismatch}")
    if report.waves:
        print(f"waves of the first failing sample: {report.waves}")
    print(f"simulator log: {report.log}")
    return 1
