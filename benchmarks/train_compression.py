"""Train on the bundled digits and compare the compression methods: accuracy and weight memory.

A measurement, not a test (issue 3): trains one float LIF network, then applies each method to a
copy of it, exports every result to the integer format, runs the golden model on the saved test
spikes and prints one row per method. Accuracy is the golden model's (the deployed network's);
the torch<->golden spike agreement of every row is checked and printed.

    python benchmarks/train_compression.py [--epochs N] [--seed S] [--json OUT.json]

Targets (issue 3): 4-bit QAT within 1 point of float; ternary within 2; M = 4 with 80 % pruning
within 2 points at under 10 % of the fp32 weight memory; Hessian-aware mixed precision at least
50 % smaller than uniform 8-bit within 0.5 points of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from snnhw.train.pipeline import branch, compress, finish, prepare
from snnhw.train.recipe import parse_recipe


def rows(epochs: int) -> list[tuple[str, list[dict]]]:
    """Return (label, compress stages as recipe data) for every row of the table."""
    e = epochs
    # Recovering from pruning needs larger steps than other fine-tuning: train.lr, not finetune_lr.
    prune = {"sparsity": 0.8, "rounds": 4, "epochs": max(1, e // 2), "lr": 0.002}
    return [
        ("float (8-bit PTQ export)", []),
        ("QAT 8-bit", [{"qat": {"bits": 8, "epochs": e}}]),
        ("QAT 4-bit", [{"qat": {"bits": 4, "epochs": e}}]),
        ("QAT 2-bit", [{"qat": {"bits": 2, "epochs": e}}]),
        ("QAT ternary", [{"qat": {"bits": "ternary", "epochs": e}}]),
        ("PTQ 4-bit truncate", [{"ptq": {"bits": 4, "rounding": "truncate"}}]),
        ("PTQ 4-bit nearest", [{"ptq": {"bits": 4, "rounding": "nearest"}}]),
        ("PTQ 4-bit stochastic", [{"ptq": {"bits": 4, "rounding": "stochastic"}}]),
        ("state uniform 4-bit (+QAT 4)",
         [{"qat": {"bits": 4, "epochs": e}}, {"state": {"bits": 4, "epochs": e}}]),
        ("state uniform 2-bit (+QAT 4)",
         [{"qat": {"bits": 4, "epochs": e}}, {"state": {"bits": 2, "epochs": e}}]),
        ("Hessian mixed, 50 % of 8-bit", [{"hessian": {"budget": 0.5, "epochs": e}}]),
        ("uniform 4-bit (same budget)", [{"qat": {"bits": 4, "epochs": e}}]),
        ("Hessian mixed, 37.5 % of 8-bit", [{"hessian": {"budget": 0.375, "epochs": e}}]),
        ("uniform 3-bit (same budget)", [{"qat": {"bits": 3, "epochs": e}}]),
        ("prune 80 % magnitude", [{"prune": {"method": "magnitude", **prune}}]),
        ("prune 80 % FSC", [{"prune": {"method": "fsc", **prune}}]),
        ("cluster M=4", [{"cluster": {"values": 4, "bits": 8, "epochs": e}}]),
        ("prune 80 % FSC + cluster M=4",
         [{"prune": {"method": "fsc", **prune}},
          {"cluster": {"values": 4, "bits": 8, "epochs": e}}]),
        # CAT on a 4-bit grid (bits: 4) trains badly at present (84.9 %, see the issue note);
        # 8-bit values cost 4 x 8 codebook bits per layer, the indices stay 2-bit.
        ("joint: prune 80 % + QAT 4 + M=4",
         [{"prune": {"method": "fsc", **prune}}, {"qat": {"bits": 4, "epochs": e}},
          {"cluster": {"values": 4, "bits": 8, "epochs": e}}]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="epochs of each compression stage")
    parser.add_argument("--float-epochs", type=int, default=80)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="also write every row's metrics here")
    args = parser.parse_args(argv)

    base = {"name": "bench", "seed": args.seed, "model": {"hidden": [args.hidden]},
            "train": {"epochs": args.float_epochs, "progress": False}}
    started = time.monotonic()
    root = prepare(parse_recipe(base, "benchmark"))
    float_accuracy = root.stages[0]["accuracy"]
    print(f"digits, rate coding, {root.recipe.data.timesteps} steps, 64-{args.hidden}-10 LIF, "
          f"{len(root.data.y_test)} test samples; float accuracy {100 * float_accuracy:.2f} % "
          f"({time.monotonic() - started:.0f} s)", flush=True)
    header = (f"{'method':<34} {'acc %':>6} {'d pts':>6} {'weight bits':>11} {'% fp32':>7} "
              f"{'% int8':>7} {'unique/layer':>13} {'sparsity':>9} {'exact':>5} {'s':>4}")
    print(header)
    print("-" * len(header))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (label, stages) in enumerate(rows(args.epochs)):
            recipe = parse_recipe({**base, "compress": stages}, label)
            ctx = branch(root, recipe)
            t0 = time.monotonic()
            compress(ctx, recipe.compress)
            metrics = finish(ctx, Path(tmp) / f"row{n}")
            memory = metrics["memory"]
            layers = memory["layers"].values()
            unique = "/".join(str(layer["unique_weights"]) for layer in layers)
            sparsity = "/".join(f"{100 * layer['sparsity']:.0f}" for layer in layers)
            accuracy = metrics["golden_accuracy"]
            exact = metrics["spike_mismatches"] == 0 and metrics["agreement"] == 1.0
            print(f"{label:<34} {100 * accuracy:6.2f} {100 * (accuracy - float_accuracy):+6.2f} "
                  f"{memory['bits']:>11} {100 * memory['ratio_fp32']:7.2f} "
                  f"{100 * memory['ratio_int8']:7.2f} "
                  f"{unique:>13} {sparsity:>9} "
                  f"{'yes' if exact else 'NO':>5} {time.monotonic() - t0:4.0f}", flush=True)
            extra = next((s for s in metrics["stages"] if s["stage"] == "hessian"), None)
            if extra:
                print(f"{'':<4}traces {', '.join(f'{t:.3g}' for t in extra['traces'])}; bits "
                      f"{extra['bits']}; accuracy drop with each layer alone at "
                      f"{extra['probe_bits']} bits: "
                      f"{', '.join(f'{100 * d:.1f}' for d in extra['layer_alone_drop'])} pts")
            results.append({"method": label, **metrics})
    print(f"total {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["spike_mismatches"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
