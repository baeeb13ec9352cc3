"""What the Dask workers run: training prefixes, export, and the evaluation of one point.

A recipe's training is a chain of tasks, one per prefix of its stages (float training, then
each compression stage), each keyed by the fingerprint of what it depends on. Points whose
recipes share a prefix (the same float training, the same pruning before different
quantizations) share those tasks: Dask runs a key once. Results travel between workers as
Python objects, so no shared file system is needed; with ``cache`` set, exported models are
also kept on disk (``OUT/models/<key>``) for later runs.

torch is imported only inside the tasks, on the workers.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Checkpoint", "Trained", "fingerprint", "training_keys", "TRAINING_SOURCES",
           "MEASURE_SOURCES", "train_float", "train_stage", "export_model", "load_trained",
           "evaluate_point", "MODEL_FILES"]

#: What a finished model directory holds (the last one written last: its presence means done).
MODEL_FILES = ("network.yaml", "test_inputs.npy", "test_labels.npy", "metrics.json")


#: The parts of snnhw a trained model depends on (below ``snnhw/``)...
TRAINING_SOURCES = ("train", "network", "golden", "config.py", "yamlfile.py", "results.py",
                    "errors.py", "explore/tasks.py")
#: ... and those a point's measurements add. Unlike the flow's fingerprints (all of snnhw's
#: source), an edit elsewhere (the report, the CLI, the RTL generator) keeps hours of training.
MEASURE_SOURCES = TRAINING_SOURCES + ("plan", "energy.py", "boards/fit.py", "boards/config.py",
                                      "boards/top.py")


@functools.cache
def _source_digest(parts: tuple[str, ...]) -> str:
    from ..flow.stages import tree_digest
    root = Path(__file__).resolve().parent.parent
    return tree_digest([root / part for part in parts], suffixes=(".py",))


def fingerprint(params: Any, parts: tuple[str, ...] = TRAINING_SOURCES) -> str:
    """Fingerprint of ``params`` (JSON-able), snnhw's version and the source files ``parts``."""
    from .. import __version__
    return hashlib.sha256(json.dumps([__version__, _source_digest(parts), params],
                                     sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Checkpoint:
    """A model part-way through its recipe: after the float training and ``stages`` stages."""

    model: Any  #: the torch SNN
    epochs_done: int
    stages: list[dict]


@dataclass
class Trained:
    """An exported model with what every point on it needs: test split and golden run."""

    key: str  #: fingerprint of the training
    metrics: dict  #: ``metrics.json`` of the export
    network: Any  #: :class:`~snnhw.network.format.Network`
    inputs: np.ndarray  #: test spikes
    labels: np.ndarray  #: test labels
    golden: Any  #: :class:`~snnhw.results.Result` of the golden model on ``inputs``
    fresh: bool  #: trained by this run (False: read back from the model cache)


def _training_data(recipe: dict) -> dict:
    """The recipe's fields that the trained model depends on (not its name, not progress)."""
    data = copy.deepcopy(recipe)
    data.pop("name", None)
    data.get("train", {}).pop("progress", None)
    return data


def training_keys(recipe: dict) -> list[str]:
    """Fingerprints of the recipe's training prefixes: float, then after each stage, then the
    exported model (the last)."""
    data = _training_data(recipe)
    stages, export = data.pop("compress"), data.pop("export")
    keys = [fingerprint({"float": data})]
    for k in range(1, len(stages) + 1):
        # Stages read the export settings (a state stage quantizes still-float weights at
        # export.bits), so a prefix with stages depends on them too.
        keys.append(fingerprint({"prefix": data, "stages": stages[:k], "export": export}))
    keys.append(fingerprint({"model": data, "stages": stages, "export": export}))
    return keys


def _context(recipe_data: dict, checkpoint: Checkpoint):
    """Rebuild the training context of ``checkpoint`` (data and test spikes recomputed)."""
    from ..train.data import load_data
    from ..train.encode import encode
    from ..train.pipeline import Context
    from ..train.recipe import parse_recipe
    recipe = parse_recipe(recipe_data, "explore point")
    d = recipe.data
    data = load_data(d.dataset)
    test_spikes = encode(data.x_test, d.encoding, d.timesteps, seed=d.test_seed,
                         max_rate=d.max_rate)
    # A copy: a worker may hand the same parent object to several children.
    return Context(recipe, data, copy.deepcopy(checkpoint.model), test_spikes, False,
                   checkpoint.epochs_done, copy.deepcopy(checkpoint.stages))


def train_float(recipe_data: dict) -> Checkpoint:
    """Train the recipe's float model."""
    from ..train.pipeline import prepare
    from ..train.recipe import parse_recipe
    ctx = prepare(parse_recipe(recipe_data, "explore point"), progress=False)
    return Checkpoint(ctx.model, ctx.epochs_done, ctx.stages)


def train_stage(parent: Checkpoint, recipe_data: dict, stage: int) -> Checkpoint:
    """Apply compression stage number ``stage`` of the recipe to ``parent``."""
    from ..train.pipeline import apply_stages
    ctx = _context(recipe_data, parent)
    apply_stages(ctx, [ctx.recipe.compress[stage]])
    return Checkpoint(ctx.model, ctx.epochs_done, ctx.stages)


def export_model(parent: Checkpoint, recipe_data: dict, model_key: str,
                 cache: str | None) -> Trained:
    """Quantize what is still float, export, verify; keep the model in ``cache/key``."""
    import yaml

    from ..train.pipeline import compress, finish
    ctx = _context(recipe_data, parent)
    compress(ctx, [])
    text = yaml.safe_dump(recipe_data, sort_keys=False)
    if cache is None:
        with tempfile.TemporaryDirectory(prefix="snnhw-explore-") as tmp:
            finish(ctx, tmp, recipe_text=text)
            return load_trained(tmp, model_key, fresh=True)
    cache_dir = Path(cache)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{model_key}.{uuid.uuid4().hex}"
    finish(ctx, tmp, recipe_text=text)
    try:
        os.replace(tmp, cache_dir / model_key)  # atomic: a model directory is whole or absent
    except OSError:  # another worker exported the same model first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    return load_trained(cache_dir / model_key, model_key, fresh=True)


def load_trained(path: str | Path, model_key: str, fresh: bool = False) -> Trained:
    """Read an exported model directory and run the golden model on its test split."""
    from ..golden import simulate
    from ..network import load
    path = Path(path)
    network = load(path)
    inputs = np.load(path / "test_inputs.npy")
    labels = np.load(path / "test_labels.npy")
    metrics = json.loads((path / "metrics.json").read_text())
    return Trained(model_key, metrics, network, inputs, labels, simulate(network, inputs),
                   fresh)


def evaluate_point(trained: Trained, lanes: int, boards: tuple, point: str,
                   hook: Callable[[str], None] | None = None) -> dict:
    """Plan the core at ``lanes`` and measure one point: accuracy, memory, cycles, energy, and
    per board µs per image and the fit estimate. ``hook(point)`` runs first (tests use it to
    fail a point or kill its worker)."""
    if hook is not None:
        hook(point)
    started = time.monotonic()
    from ..boards.fit import estimate, place_synapses
    from ..energy import energy_per_inference
    from ..plan import CorePlan, cycle_bounds

    plan = CorePlan.build(trained.network, lanes)
    bits = plan.memory_bits
    # Layers run concurrently: a timestep takes the slowest layer's cycles.
    per_step = cycle_bounds(plan, trained.inputs, trained.golden.spikes).max(axis=0)
    cycles = float(per_step.sum(axis=1).mean())
    energy = energy_per_inference(plan, trained.inputs, trained.golden)
    metrics = trained.metrics
    result = {
        "accuracy": float(np.mean(trained.golden.pred == trained.labels)),
        "float_accuracy": metrics["float_accuracy"],
        "torch_accuracy": metrics["torch_accuracy"],
        "weight_memory_bits": bits["synapse"] + bits["pointer"] + bits["codebook"],
        "state_memory_bits": bits["membrane"] + bits["accumulator"],
        "memory_bits": bits["total"],
        "cycles_per_image": cycles,
        "cycles_per_timestep": float(per_step.mean()),
        "energy_pj_per_image": float(energy["total_pj"]),
        "synapses": int(sum(layer.stored_synapses for layer in plan.layers)),
        "training_seconds": metrics["seconds"],
        "model": trained.key,
        "trained_here": trained.fresh,
        "boards": {},
    }
    for board in boards:
        fit = estimate(place_synapses(plan, board), board)
        result["boards"][board.name] = {
            "clock_mhz": board.clock_hz / 1e6,
            "us_per_image": cycles / board.clock_hz * 1e6,
            "logic": fit.used["logic"], "logic_available": fit.available["logic"],
            "logic_unit": board.budget.logic_unit,
            "bram": fit.used["bram"], "bram_available": fit.available["bram"],
            "large_ram": fit.used["large_ram"],
            "fits": fit.fits, "over": fit.over,
        }
    result["seconds"] = round(time.monotonic() - started, 3)
    return result
