"""``snnhw compile MODEL -o OUT``: the core's Verilog, memory images, report; lint."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import core_plan, lanes, out_dir

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw compile``."""
    p = sub.add_parser("compile", help="generate the core's Verilog, memory images and report",
                       description="Compile a network into a Verilog core: OUT/<top>.v, "
                                   "OUT/<top>_inst.v, OUT/mem/*.hex, OUT/report.json.")
    p.add_argument("model", help="network directory (network.yaml + arrays.npz)")
    p.add_argument("-o", "--out", required=True, type=out_dir, metavar="OUT",
                   help="output directory")
    p.add_argument("--lanes", type=lanes, default=1, metavar="P",
                   help="synapses per cycle per layer")
    p.add_argument("--no-lint", action="store_true",
                   help="skip verilator --lint-only -Wall on the generated Verilog")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compile, lint, print the memory of every layer."""
    from ..compiler import compile_network, lint
    from ..network import load
    report = compile_network(core_plan(args.model, load(args.model), args.lanes), args.out)
    verilog = Path(args.out) / f"{report.top}.v"
    if not args.no_lint:
        lint(verilog)
    print(f"{verilog}: {report.lanes} lane(s), lint {'skipped' if args.no_lint else 'clean'}")
    if report.kept_inputs is not None:
        print(f"  inputs: {report.core_inputs} of the network's {report.input_size} have a "
              f"synapse; the core numbers only those (report.json kept_inputs)")
    for layer in report.layers:
        bits = layer.memory_bits
        print(f"  {layer.name:>10}: {layer.size}x{layer.fan_in}, "
              f"{layer.synapses} synapses ({layer.layout}"
              f"{', conv unrolled' if layer.storage == 'unrolled' else ''}), "
              f"synapse memory {bits['synapse']} bits, pointers {bits['pointer']} bits, "
              f"codebook {bits['codebook']} bits, membrane {bits['membrane']} bits")
    print(f"  total memory {report.memory_bits['total']} bits; report in "
          f"{Path(args.out) / 'report.json'}")
    return 0
