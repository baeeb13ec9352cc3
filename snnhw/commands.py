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


def _lanes(text: str) -> int:
    from .compiler import check_lanes
    try:
        value = int(text)
    except ValueError:
        value = text
    return check_lanes(value)


def add_compile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="generate the core's Verilog, memory images and report",
                       description="Compile a network into a Verilog core: OUT/<top>.v, "
                                   "OUT/<top>_inst.v, OUT/mem/*.hex, OUT/report.json.")
    p.add_argument("model", help="network directory (network.yaml + arrays.npz)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output directory")
    p.add_argument("--lanes", default="1", metavar="P", help="synapses per cycle per layer")
    p.add_argument("--no-lint", action="store_true",
                   help="skip verilator --lint-only -Wall on the generated Verilog")

    def run(args: argparse.Namespace) -> int:
        from .compiler import compile_network, lint
        net = _network(args.model)
        report = compile_network(net, args.out, lanes=_lanes(args.lanes))
        verilog = Path(args.out) / f"{report['top']}.v"
        if not args.no_lint:
            lint(verilog)
        print(f"{verilog}: {report['lanes']} lane(s), lint {'skipped' if args.no_lint else 'clean'}")
        for layer in report["layers"]:
            bits = layer["memory_bits"]
            print(f"  {layer['name']:>10}: {layer['size']}x{layer['fan_in']}, "
                  f"{layer['synapses']} synapses ({layer['layout']}), "
                  f"synapse memory {bits['synapse']} bits, codebook {bits['codebook']} bits, "
                  f"membrane {bits['membrane']} bits")
        print(f"  total memory {report['memory_bits']['total']} bits; report in "
              f"{Path(args.out) / 'report.json'}")
        return 0

    p.set_defaults(run=run)


def add_cosim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cosim", help="co-simulate the core under Verilator against the golden model",
                       description="Build the core under Verilator, run it on spike inputs through "
                                   "cocotb, and compare every spike and membrane potential of "
                                   "every layer at every timestep with the golden model.")
    p.add_argument("model", help="network directory (network.yaml + arrays.npz)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="uint8 0/1 spikes [samples, timesteps, input_size]")
    p.add_argument("--out", required=True, metavar="R.npz", help="result file to write")
    p.add_argument("--lanes", default="1", metavar="P", help="synapses per cycle per layer")
    p.add_argument("--waves", action="store_true",
                   help="on a mismatch, leave a VCD of the first failing sample")
    p.add_argument("--work-dir", metavar="DIR",
                   help="build directory (default: R.npz's name + '.cosim' beside it)")
    p.add_argument("--show", type=int, default=10, metavar="N", help="mismatches to print")

    def run(args: argparse.Namespace) -> int:
        import time

        from .results import load_inputs
        from .sim.runner import cosim
        net = _network(args.model)
        inputs = load_inputs(net, args.inputs)
        lanes = _lanes(args.lanes)
        out = Path(args.out)
        work = Path(args.work_dir) if args.work_dir else out.with_name(out.stem + ".cosim")
        print(f"co-simulating {inputs.shape[0]} sample(s) x {inputs.shape[1]} timesteps "
              f"of {net.name} at {lanes} lane(s) under Verilator (build in {work}) ...",
              flush=True)
        start = time.monotonic()
        report = cosim(net, inputs, work, lanes=lanes, waves=args.waves)
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
        print(f"MISMATCH: {len(report.mismatches)} value(s) differ from the golden model; first:")
        for mismatch in report.mismatches[:args.show]:
            print(f"  {mismatch}")
        if report.waves:
            print(f"waves of the first failing sample: {report.waves}")
        print(f"simulator log: {report.log}")
        return 1

    p.set_defaults(run=run)


def add_flow(sub: argparse._SubParsersAction) -> None:
    from .flow.flow import DEFAULT_LANES, DEFAULT_SAMPLES
    p = sub.add_parser(
        "flow", help="the whole job: train, compress, export, verify, compile, co-simulate, report",
        description="Train and compress an SNN from a recipe (default: the built-in digits "
                    "recipe), export the integer network, measure the golden model, compile the "
                    "core, co-simulate test samples under Verilator bit-exactly, optionally "
                    "build a bitstream, and write OUT/report.html. Re-runs skip stages whose "
                    "inputs did not change.")
    p.add_argument("recipe", nargs="?", help="recipe YAML (default: built-in digits recipe)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output directory")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help=f"test samples to co-simulate (default {DEFAULT_SAMPLES})")
    p.add_argument("--lanes", default=str(DEFAULT_LANES), metavar="P",
                   help=f"synapses per cycle per layer (default {DEFAULT_LANES})")
    p.add_argument("--board", metavar="NAME", help="also build a bitstream for this board")

    def run(args: argparse.Namespace) -> int:
        from .flow.flow import run_flow
        run_flow(args.recipe, args.out, samples=args.samples, lanes=_lanes(args.lanes),
                 board=args.board)
        return 0

    p.set_defaults(run=run)


def _preview(values, limit: int = 16) -> str:
    shown = " ".join(str(int(v)) for v in values[:limit])
    return shown + (" ..." if len(values) > limit else "")


def _registry() -> list:
    # These modules import this one's helpers; they load torch / the board flow only when run.
    from .boards.command import add_build
    from .train.cli import add_train
    return [add_flow, add_train, add_compile, add_simulate, add_cosim, add_build]
