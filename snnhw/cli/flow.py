"""``snnhw flow [RECIPE.yaml] -o OUT``: the whole job, from a recipe to a verified core."""

from __future__ import annotations

import argparse

from ..flow.flow import DEFAULT_LANES, DEFAULT_SAMPLES, STEP_NAMES
from .args import lanes, out_dir, positive_int

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
    # Not given: None, and the flow picks its own first and last step.
    p.add_argument("--from", dest="first_step", choices=STEP_NAMES, metavar="STEP",
                   help=f"first step to run, one of {', '.join(STEP_NAMES)}; the steps before "
                        f"it must have run into OUT already (default {STEP_NAMES[0]})")
    p.add_argument("--to", dest="last_step", choices=STEP_NAMES, metavar="STEP",
                   help=f"last step to run (default {STEP_NAMES[-1]})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the flow; it prints each step as it goes."""
    from ..flow.flow import run_flow
    if args.board is not None:
        from ..boards.config import find_board
        find_board(args.board)  # a bad board fails now, not after minutes of training
    run_flow(args.recipe, args.out, samples=args.samples, lanes=args.lanes, board=args.board,
             first_step=args.first_step, last_step=args.last_step)
    return 0
