"""``snnhw flow [RECIPE.yaml | --nir GRAPH.nir ...] -o OUT``: the whole job, from a recipe (or a
NIR graph) to a verified core."""

from __future__ import annotations

import argparse

from ..flow.flow import DEFAULT_LANES, DEFAULT_SAMPLES, STEP_NAMES
from .args import clock, lanes, out_dir, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw flow``."""
    p = sub.add_parser(
        "flow", help="the whole job: train, compress, export, verify, compile, co-simulate, report",
        description="Train and compress an SNN from a recipe (default: the built-in digits "
                    "recipe), export the integer network, measure the golden model, compile the "
                    "core, co-simulate the whole test split under Verilator bit-exactly, "
                    "optionally build a bitstream, and write OUT/report.html. Re-runs skip "
                    "steps whose inputs did not change.")
    p.add_argument("recipe", nargs="?", help="recipe YAML (default: built-in digits recipe)")
    p.add_argument("-o", "--out", required=True, type=out_dir, metavar="OUT",
                   help="output directory")
    p.add_argument("--samples", type=positive_int, default=DEFAULT_SAMPLES, metavar="N",
                   help="test samples to co-simulate (default: the whole test split)")
    p.add_argument("--lanes", type=lanes, default=DEFAULT_LANES, metavar="P",
                   help=f"synapses per cycle per layer (default {DEFAULT_LANES})")
    p.add_argument("--board", metavar="NAME", help="also build a bitstream for this board")
    p.add_argument("--clock", type=clock, default="auto", metavar="MHZ",
                   help="with --board: the core's clock, as snnhw build --clock (MHZ, 'board' "
                        "or 'auto': the highest that meets timing; default auto)")
    p.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                   help="with --board: placement seeds to try, as snnhw build --seeds "
                        "(default 1)")
    # Not given: None, and the flow picks its own first and last step.
    p.add_argument("--from", dest="first_step", choices=STEP_NAMES, metavar="STEP",
                   help=f"first step to run, one of {', '.join(STEP_NAMES)}; the steps before "
                        f"it must have run into OUT already (default {STEP_NAMES[0]})")
    p.add_argument("--to", dest="last_step", choices=STEP_NAMES, metavar="STEP",
                   help=f"last step to run (default {STEP_NAMES[-1]})")
    p.add_argument("--nir", metavar="GRAPH.nir",
                   help="start from this NIR graph instead of training: the train step imports "
                        "it (snnhw import), with --inputs as test split and calibration data")
    p.add_argument("--inputs", metavar="X.npy",
                   help="with --nir: 0/1 spikes [samples, timesteps, inputs] (the test split)")
    p.add_argument("--labels", metavar="Y.npy", help="with --nir: integer labels [samples]")
    p.add_argument("--reset", choices=("subtract", "zero", "none"),
                   help="with --nir: reset mechanism, as snnhw import --reset")
    p.add_argument("--reset-timing", choices=("immediate", "deferred", "immediate_snntorch"),
                   help="with --nir: reset timing, as snnhw import --reset-timing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the flow; it prints each step as it goes."""
    from ..flow.flow import run_flow
    if args.nir is not None and args.recipe is not None:
        from ..errors import SnnhwError
        raise SnnhwError(f"{args.recipe}: a recipe trains a network; --nir imports one instead "
                         f"(give one of them)")
    run_flow(args.recipe, args.out, samples=args.samples, lanes=args.lanes, board=args.board,
             clock=args.clock, seeds=args.seeds,
             first_step=args.first_step, last_step=args.last_step, nir=args.nir,
             inputs=args.inputs, labels=args.labels, reset=args.reset,
             reset_timing=args.reset_timing)
    return 0
