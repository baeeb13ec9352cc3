"""``snnhw simulate MODEL --inputs X.npy --out R.npz``: run the golden model."""

from __future__ import annotations

import argparse

from .args import out_file

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw simulate``."""
    p = sub.add_parser("simulate", help="run the bit-exact golden model on spike inputs",
                       description="Run the integer golden model (DESIGN.md §2) on spike inputs.")
    p.add_argument("model", help="network directory (network.yaml + arrays.npz)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="uint8 0/1 spikes [samples, timesteps, input_size]")
    p.add_argument("--out", required=True, type=out_file, metavar="R.npz",
                   help="result file to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Simulate, save the result, print the first predictions."""
    from ..golden import simulate
    from ..network import load
    from ..results import load_inputs
    net = load(args.model)
    result = simulate(net, load_inputs(net, args.inputs))
    result.save(args.out)
    print(f"{args.out}: {len(result.pred)} samples, predictions {_preview(result.pred)}")
    return 0


def _preview(values, limit: int = 16) -> str:
    shown = " ".join(str(int(v)) for v in values[:limit])
    return shown + (" ..." if len(values) > limit else "")
