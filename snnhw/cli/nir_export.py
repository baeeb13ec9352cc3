"""``snnhw export MODEL -o GRAPH.nir``: an integer network as a NIR graph."""

from __future__ import annotations

import argparse

from .args import out_file
from .nir_import import _dt

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw export``."""
    p = sub.add_parser(
        "export", help="write an integer network as a NIR graph",
        description="Write a network as a NIR graph (Affine/Linear/Conv2d + IF/LIF per layer, a "
                    "recurrent layer's back edge as snnTorch writes RLeaky) whose parameters "
                    "reproduce it; snnhw import gives it back exactly (docs/nir.md).")
    p.add_argument("model", help="network directory (network.yaml + arrays.npz)")
    p.add_argument("-o", "--out", required=True, type=out_file, metavar="GRAPH.nir",
                   help="NIR file to write")
    p.add_argument("--dt", type=_dt, default=None, metavar="DT",
                   help="time step for LIF: tau = DT / (1 - beta), r = tau / DT (default 1e-4)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export and say what was written."""
    from ..frontends.nir import DEFAULT_DT, export_graph
    from ..network import load
    net = load(args.model)
    export_graph(net, args.out, dt=args.dt or DEFAULT_DT)
    print(f"{args.out}: {len(net.layers)} layers of {net.name} as NIR "
          f"({', '.join(layer.name for layer in net.layers)})")
    return 0
