"""The CLI's subcommands. Each ``add_*`` function registers one command on the subparsers."""

from __future__ import annotations

import argparse
from pathlib import Path


def _network(path: str):
    from .network import load
    return load(path)


def add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="run the bit-exact golden model on spike inputs",
                       description="Run the integer golden model (DESIGN.md §2) on spike inputs.")
    p.add_argument("model", help="network directory (network.yaml + arrays.npz)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="uint8 0/1 spikes [samples, timesteps, input_size]")
    p.add_argument("--out", required=True, metavar="R.npz", help="result file to write")

    def run(args: argparse.Namespace) -> int:
        from .golden import simulate
        from .results import load_inputs
        net = _network(args.model)
        result = simulate(net, load_inputs(net, args.inputs))
        result.save(args.out)
        print(f"{args.out}: {len(result.pred)} samples, predictions {_preview(result.pred)}")
        return 0

    p.set_defaults(run=run)


def _preview(values, limit: int = 16) -> str:
    shown = " ".join(str(int(v)) for v in values[:limit])
    return shown + (" ..." if len(values) > limit else "")


REGISTRY = [add_simulate]
