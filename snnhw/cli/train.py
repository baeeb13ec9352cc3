"""``snnhw train RECIPE.yaml -o MODEL``: train, compress, export, verify against the golden model.

torch is imported only when the command runs, after the recipe has been checked, so a typo in a
recipe fails in milliseconds and ``snnhw --help`` never loads torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import out_dir

__all__ = ["add_parser", "run", "summary"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw train``."""
    p = sub.add_parser(
        "train", help="train and compress an SNN in PyTorch and export the integer network",
        description="Train a LIF network on bundled data, apply the recipe's compression stages, "
                    "export MODEL/network.yaml + arrays.npz, the test spikes "
                    "(test_inputs.npy, test_labels.npy) and metrics.json, and check that the "
                    "golden model reproduces every spike and membrane potential of the torch "
                    "integer model.")
    p.add_argument("recipe", help="recipe YAML (every field optional; see examples/recipes)")
    p.add_argument("-o", "--out", required=True, type=out_dir, metavar="MODEL",
                   help="model directory to write")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train and export; 0 if the golden model reproduces the torch model exactly, else 1."""
    from ..train.recipe import load_recipe
    recipe = load_recipe(args.recipe)
    from ..train.pipeline import run_recipe  # torch: only once the recipe is known to be good
    text = Path(args.recipe).read_text(encoding="utf-8")
    metrics = run_recipe(recipe, args.out, progress=False if args.no_progress else None,
                         recipe_text=text)
    print(summary(metrics, args.out))
    return 0 if metrics["spike_mismatches"] == metrics["v_mismatches"] == 0 else 1


def summary(metrics: dict, out: str) -> str:
    """Return the human-readable report ``snnhw train`` prints."""
    lines = [f"{out}: {metrics['name']} on {metrics['dataset']} ({metrics['encoding']}, "
             f"{metrics['timesteps']} steps), {metrics['test_samples']} test samples"]
    for stage in metrics["stages"]:
        lines.append(f"  {stage['stage']:>10}: accuracy {100 * stage['accuracy']:6.2f} %")
    memory = metrics["memory"]
    lines.append(f"  golden model accuracy {100 * metrics['golden_accuracy']:.2f} %, "
                 f"torch<->golden agreement {100 * metrics['agreement']:.2f} % "
                 f"({metrics['spike_mismatches']} of {metrics['spikes_compared']} spikes and "
                 f"{metrics['v_mismatches']} potentials differ)")
    lines.append(f"  weight memory {memory['bits']} bits = {100 * memory['ratio_fp32']:.2f} % of "
                 f"fp32, {100 * memory['ratio_int8']:.2f} % of dense 8-bit")
    for name, layer in memory["layers"].items():
        lines.append(f"  {name:>10}: {layer['unique_weights']} unique weights, "
                     f"sparsity {100 * layer['sparsity']:.1f} %, {layer['bits']} bits "
                     f"({layer['layout']})")
    state = metrics["state_memory"]
    lines.append(f"  state memory {state['bits']} bits = {100 * state['ratio']:.1f} % of V at "
                 f"v_bits ({state['v_bits_total']} bits)")
    return "\n".join(lines)
