"""``snnhw import GRAPH.nir -o MODEL``: a NIR graph quantized into an integer network."""

from __future__ import annotations

import argparse
import json


from ..errors import SnnhwError

from .args import out_dir, positive_int

__all__ = ["add_parser", "run"]


def _weight_bits(text: str) -> int:
    from ..network.format import MAX_WEIGHT_BITS
    return _int_in(text, 2, MAX_WEIGHT_BITS)


def _beta_frac_bits(text: str) -> int:
    from ..network.format import MAX_BETA_FRAC_BITS
    return _int_in(text, 1, MAX_BETA_FRAC_BITS)


def _int_in(text: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {text!r}") \
            from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {value}")
    return value


def _dt(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw import``."""
    p = sub.add_parser(
        "import", help="quantize a NIR graph into an integer network",
        description="Read a NIR graph (a chain of Input, Linear/Affine, LIF/IF, Output) and "
                    "quantize it into an integer network directory (docs/nir.md).")
    p.add_argument("graph", metavar="GRAPH.nir", help="NIR file")
    p.add_argument("-o", "--out", required=True, type=out_dir, metavar="MODEL",
                   help="network directory to write")
    p.add_argument("--timesteps", type=positive_int, default=None, metavar="T",
                   help="timesteps per sample (default: an snnhw export's, else 16); v_bits "
                        "is sized so that V does not saturate over T steps")
    p.add_argument("--weight-bits", type=_weight_bits, default=8, metavar="B",
                   help="signed weight width (default 8)")
    p.add_argument("--codebook", type=positive_int, default=None, metavar="M",
                   help="M weight values per layer (k-means) instead of the uniform grid")
    p.add_argument("--beta-frac-bits", type=_beta_frac_bits, default=16, metavar="F",
                   help="fraction bits of the fixed-point beta (default 16)")
    p.add_argument("--beta-rounding", choices=("floor", "nearest"), default="nearest",
                   help="rounding of beta * V (default nearest)")
    p.add_argument("--dt", type=_dt, default=None, metavar="DT",
                   help="time step for LIF: beta = 1 - DT/tau, gain r*DT/tau (default 1e-4, "
                        "snnTorch's export convention)")
    p.add_argument("--reset", choices=("subtract", "zero", "none"), default=None,
                   help="reset mechanism (NIR: zero; snnTorch's export drops its subtract)")
    p.add_argument("--reset-timing", choices=("immediate", "deferred", "immediate_snntorch"),
                   default=None, help="when the reset applies (NIR: immediate; snnTorch's "
                                      "default reset_delay=True is deferred)")
    p.add_argument("--name", default=None, help="network name (default: the export's, else nir)")
    p.add_argument("--calibration", metavar="X.npy", default=None,
                   help="0/1 spikes [samples, timesteps, inputs]: run the float graph and the "
                        "integer network side by side, write MODEL/import.json and print it")
    p.add_argument("--labels", metavar="Y.npy", default=None,
                   help="with --calibration: integer labels [samples]; adds both accuracies")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Import, check, save, print what was made (and the agreement)."""
    from ..frontends.nir import DEFAULT_DT, calibrate, from_graph, load_labels, read_graph
    from ..network import save
    from ..network.format import Reset, ResetTiming, Rounding, atomic_write
    from ..results import load_inputs
    from pathlib import Path

    if args.labels and not args.calibration:
        raise SnnhwError("--labels: needs --calibration (the inputs the labels belong to)")
    graph = read_graph(args.graph)
    options = dict(dt=args.dt or DEFAULT_DT,
                   reset=Reset(args.reset) if args.reset else None,
                   reset_timing=ResetTiming(args.reset_timing) if args.reset_timing else None)
    net = from_graph(graph, name=args.name, timesteps=args.timesteps,
                     weight_bits=args.weight_bits, codebook=args.codebook,
                     beta_frac_bits=args.beta_frac_bits,
                     beta_rounding=Rounding(args.beta_rounding), where=args.graph, **options)
    report = None
    if args.calibration:
        inputs = load_inputs(net, args.calibration)
        labels = load_labels(args.labels, len(inputs)) if args.labels else None
        report = calibrate(graph, net, inputs, labels, where=args.graph,
                           source=args.calibration, **options)
    save(net, args.out)
    if report is not None:
        atomic_write(Path(args.out) / "import.json", (json.dumps(report, indent=2) + "\n")
                     .encode())
    print(f"{args.out}: {net.name}, {net.input_size} inputs, {net.timesteps} timesteps")
    for layer in net.layers:
        n = layer.neuron
        kind = "" if layer.kind == "dense" else f" {layer.kind}"
        print(f"  {layer.name:>10}: {layer.size}x{layer.fan_in}{kind}, codebook "
              f"{len(layer.codebook)}, "
              f"v_bits {n.v_bits}, reset {n.reset.value} {n.reset_timing.value}, "
              f"fire {n.fire.value}, leak "
              f"{'beta' if n.beta is not None else ('shift' if n.leak_shift else 'none')}")
    if report is not None:
        layers = ", ".join(f"{name} {value:.4f}"
                           for name, value in report["layer_spike_agreement"].items())
        print(f"  float vs integer on {report['samples']} samples: spikes {layers}; "
              f"predictions {report['prediction_agreement']:.4f}" +
              (f"; accuracy {report['float_accuracy']:.4f} float, "
               f"{report['integer_accuracy']:.4f} integer" if "float_accuracy" in report else ""))
    return 0
