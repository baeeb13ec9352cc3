"""The training pipeline: float training, then the recipe's compression stages in order, export.

Each stage is a function ``(context, stage config) -> dict`` of what it did; after each, the test
accuracy of the torch model is recorded, so ``metrics.json`` shows what every stage cost. Export
then checks the claim the whole project rests on: the golden model, run on the very spike files
written next to the network, reproduces every spike and every membrane potential of the torch
model's integer mode.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..golden import simulate
from ..network.connectivity import ConvGeometry
from ..network.format import Network, Reset, atomic_write, save, signed_range
from . import hessian, prune
from .cluster import ClusterQuantizer
from .data import Data, load_data
from ..network.encoder import Encoder
from .encode import encode, encoded_features, feature_bytes
from .export import exact_run, memory_report, state_memory_report, to_network
from .fit import accuracy, fit
from .model import ConvLayer, SNN
from .quant import make_quantizer
from .recipe import (STAGES, Bits, ClusterStage, Distill, HessianStage, LevelPlacement, PruneStage,
                     SearchStage,
                     PtqStage, QatStage, Recipe, StateScheme, StateStage, recipe_to_dict)
from .state import ThresholdLevels, min_threshold_for

__all__ = ["Context", "run_recipe", "prepare", "branch", "apply_stages", "compress", "finish",
           "build_model", "reproducible", "verify", "STAGE_RUNNERS"]


@dataclass
class Context:
    """Everything a stage works on: the recipe, data, model and the running epoch count."""

    recipe: Recipe
    data: Data
    model: SNN
    test_spikes: np.ndarray
    progress: bool
    #: epochs trained so far, over all stages: seeds each epoch's rate-coded training spikes
    epochs_done: int = 0
    stages: list[dict] = field(default_factory=list)
    #: the float network as float training left it: the teacher of stages that distill
    teacher: SNN | None = None

    def __post_init__(self) -> None:
        reproducible(self.recipe)

    def train_spikes(self, epoch: int) -> np.ndarray:
        d = self.recipe.data
        # Rate coding redraws the spikes every epoch (a cheap augmentation); the others are fixed.
        seed = self.recipe.seed * 1_000_003 + self.epochs_done + epoch
        return encode(self.data.x_train, d.encoding, d.timesteps, seed=seed, max_rate=d.max_rate,
                      lfsr_seed=None if d.on_chip_seed is None else seed % 0xFFFF + 1)

    def tune(self, epochs: int, lr: float | None, desc: str,
             extra_params: list[dict] | None = None, distill: Distill | None = None) -> None:
        """Fine-tune the model for ``epochs`` more epochs (default rate: train.finetune_lr),
        distilling from the float teacher if ``distill`` is set."""
        t = self.recipe.train
        fit(self.model, self.train_spikes, self.data.y_train, epochs=epochs,
            batch_size=t.batch_size, lr=t.finetune_lr if lr is None else lr,
            seed=self.recipe.seed + self.epochs_done, progress=self.progress, desc=desc,
            extra_params=extra_params, teacher=self.teacher, distill=distill)
        self.epochs_done += epochs

    def score_spikes(self, samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Return a fixed subset of training spikes and labels for saliency estimates."""
        n = min(samples, len(self.data.y_train))
        return self.train_spikes(-1)[:n], self.data.y_train[:n]

    def test_accuracy(self, model: SNN | None = None) -> float:
        model = model or self.model
        return accuracy(model, self.test_spikes, self.data.y_test, exact=model.is_integer)


def reproducible(recipe: Recipe) -> None:
    """Make torch compute the same network for the same recipe and seed, bit for bit.

    Every random draw is already seeded by the recipe (weights in build_model, batch order in
    fit, spikes in Context.train_spikes, rounding and Hessian probes by their stages); what is
    left is global torch state: the thread count (it decides how float sums are split) and
    algorithms that are allowed to be nondeterministic. Called for every Context.
    """
    torch.set_num_threads(recipe.train.threads)
    torch.use_deterministic_algorithms(True)


def build_model(recipe: Recipe, input_size: int, classes: int) -> SNN:
    """Return the untrained network a recipe describes (weights seeded by ``recipe.seed``)."""
    m = recipe.model
    torch.manual_seed(recipe.seed)
    side = int(round(input_size ** 0.5))  # conv layers see the square image, one channel
    shape, convs = (1, side, side), []
    for conv in m.conv:
        convs.append(ConvLayer(conv.channels, conv.kernel,
                               ConvGeometry(shape, conv.stride, conv.padding)))
        shape = convs[-1].output_shape
    return SNN([input_size, *(c.size for c in convs), *m.hidden, classes], recurrent=m.recurrent,
               conv=convs,
               leak_shift=m.leak_shift, v_bits=m.v_bits,
               reset=Reset(m.reset.value), min_threshold=m.min_threshold,
               slope=m.surrogate_slope)


def _per_layer(bits: Bits | list[Bits], layers: int) -> list[Bits]:
    return list(bits) if isinstance(bits, list) else [bits] * layers


# -- stages -------------------------------------------------------------------------------------


def _prune(ctx: Context, stage: PruneStage) -> dict:
    spikes, labels = ctx.score_spikes(stage.score_samples)
    targets = prune.schedule(stage.sparsity, stage.rounds)
    for r, target in enumerate(targets):
        scores = prune.scores_for(stage.method, ctx.model, spikes, labels)
        if stage.input_columns:  # on the same ramp as the sparsity
            prune.prune_columns(ctx.model.layers[0], scores[0],
                                stage.input_columns * target / stage.sparsity)
        for layer, score in zip(ctx.model.layers, scores):
            prune.prune_layer(layer, score, target)
        ctx.tune(stage.epochs, stage.lr, f"prune {stage.method.value} {r + 1}/{stage.rounds}",
                 distill=stage.distill)
    first = ctx.model.layers[0].mask
    return {"method": stage.method.value, "sparsity": stage.sparsity,
            "empty_input_columns": int((first.sum(dim=0) == 0).sum()),
            "mask_sparsity": [1.0 - float(l.mask.mean()) for l in ctx.model.layers]}


def _set_quantizers(ctx: Context, bits: list[Bits], **kwargs: Any) -> None:
    for layer, b in zip(ctx.model.layers, bits):
        layer.quantizer = make_quantizer(b, **kwargs)


def _qat(ctx: Context, stage: QatStage) -> dict:
    bits = _per_layer(stage.bits, len(ctx.model.layers))
    _set_quantizers(ctx, bits)
    before = ctx.test_accuracy()
    ctx.tune(stage.epochs, stage.lr, f"qat {bits}", distill=stage.distill)
    return {"bits": bits, "accuracy_before_training": before}


def _ptq(ctx: Context, stage: PtqStage) -> dict:
    bits = _per_layer(stage.bits, len(ctx.model.layers))
    generator = torch.Generator().manual_seed(stage.seed)
    _set_quantizers(ctx, bits, rounding=stage.rounding, generator=generator)
    for layer in ctx.model.layers:
        layer.freeze()  # stochastic rounding draws once, here
    return {"bits": bits, "rounding": stage.rounding.value}


def _cluster(ctx: Context, stage: ClusterStage) -> dict:
    codebooks = []
    for layer in ctx.model.layers:
        layer.quantizer = ClusterQuantizer(layer.weight * layer.mask, layer.mask,
                                           stage.values, stage.bits)
        codebooks.append(layer.quantizer.codebook)
    lr = stage.codebook_lr or stage.lr or ctx.recipe.train.finetune_lr
    before = ctx.test_accuracy()  # every weight clustered
    for r in range(stage.rounds):
        for layer in ctx.model.layers:
            layer.quantizer.cluster_fraction(layer.weight, layer.mask, (r + 1) / stage.rounds)
        ctx.tune(stage.epochs, stage.lr, f"cluster M={stage.values} {r + 1}/{stage.rounds}",
                 extra_params=[{"params": codebooks, "lr": lr}], distill=stage.distill)
    return {"values": stage.values, "bits": stage.bits, "rounds": stage.rounds,
            "accuracy_before_training": before}


def _hessian(ctx: Context, stage: HessianStage) -> dict:
    model = ctx.model
    spikes, labels = ctx.score_spikes(stage.samples)
    traces = hessian.hutchinson_traces(model, spikes, labels, stage.probes, ctx.recipe.seed)
    counts = [int(layer.mask.sum()) for layer in model.layers]
    budget = hessian.budget_bits(counts, stage.budget)
    bits = hessian.allocate_bits(traces, counts, hessian.perturbations(model, stage.choices),
                                 stage.choices, budget)
    # The check the paper's claim rests on: quantize one layer alone, measure the drop.
    reference = ctx.test_accuracy()
    drops = []
    for n in range(len(model.layers)):
        probe = copy.deepcopy(model)
        probe.layers[n].quantizer = make_quantizer(stage.probe_bits)
        drops.append(reference - accuracy(probe, ctx.test_spikes, ctx.data.y_test))
    _set_quantizers(ctx, bits)
    before = ctx.test_accuracy()
    ctx.tune(stage.epochs, stage.lr, f"hessian qat {bits}", distill=stage.distill)
    return {"traces": traces, "bits": bits, "budget_bits": budget,
            "allocated_bits": sum(n * b for n, b in zip(counts, bits)),
            "probe_bits": stage.probe_bits, "layer_alone_drop": drops,
            "accuracy_before_training": before}


def _search(ctx: Context, stage: SearchStage) -> dict:
    """Q-SpiNN's greedy per-layer precision search on held-out training samples, then QAT."""
    model, choices = ctx.model, sorted(set(stage.choices))
    labels = ctx.data.y_train
    held = max(1, round(stage.holdout * len(labels)))
    spikes, labels = ctx.train_spikes(-1)[-held:], labels[-held:]
    counts = [int(layer.mask.sum()) for layer in model.layers]
    budget = hessian.budget_bits(counts, stage.budget)
    tried = []

    def cost(bits: list[int], layer: int) -> float:  # held-out accuracy lost, post-training
        trial = list(bits)
        trial[layer] = choices[choices.index(bits[layer]) - 1]
        probe = copy.deepcopy(model)
        for probe_layer, b in zip(probe.layers, trial):
            probe_layer.quantizer = make_quantizer(b)
        tried.append({"bits": trial, "accuracy": accuracy(probe, spikes, labels)})
        return -tried[-1]["accuracy"]

    bits = hessian.lower_greedily(counts, choices, budget, cost)
    _set_quantizers(ctx, bits)
    before = ctx.test_accuracy()
    ctx.tune(stage.epochs, stage.lr, f"search qat {bits}", distill=stage.distill)
    return {"bits": bits, "budget_bits": budget,
            "allocated_bits": sum(n * b for n, b in zip(counts, bits)),
            "holdout_samples": held, "tried": tried, "accuracy_before_training": before}


def _state(ctx: Context, stage: StateStage) -> dict:
    """State QAT (SQUAT). A later state stage replaces an earlier one's state settings."""
    model = ctx.recipe.model
    threshold_scheme = stage.scheme is StateScheme.THRESHOLD
    if threshold_scheme:
        scheme = ThresholdLevels(stage.bits, stage.lower, stage.upper, stage.ratio,
                                 rounded=stage.placement is LevelPlacement.ROUNDED)
        floor = max(model.min_threshold, min_threshold_for(stage.bits, stage.lower, stage.upper))
    else:
        v_max = signed_range(stage.bits)[1]
        fixed = max(1, math.floor(v_max / (1.0 + stage.upper)))
    for layer in ctx.model.layers:
        if layer.quantizer is None:
            layer.quantizer = make_quantizer(ctx.recipe.export.bits)
        if threshold_scheme:  # the model's datapath, a threshold with room for the levels
            layer.v_bits, layer.leak_shift = model.v_bits, model.leak_shift
            layer.fixed_threshold, layer.min_threshold = None, floor
            layer.state_scheme = scheme
        else:
            layer.v_bits, layer.fixed_threshold = stage.bits, fixed
            # A leak shift wider than the state would shift everything out: cap it.
            layer.leak_shift = min(model.leak_shift, stage.bits - 1)
            layer.min_threshold, layer.state_scheme = model.min_threshold, None
    before = ctx.test_accuracy()
    ctx.tune(stage.epochs, stage.lr, f"state {stage.scheme.value} {stage.bits}b",
             distill=stage.distill)
    thresholds = [layer.integer_weights()[1] for layer in ctx.model.layers]
    info = {"bits": stage.bits, "scheme": stage.scheme.value, "thresholds": thresholds,
            "accuracy_before_training": before}
    if threshold_scheme:
        info["placement"] = stage.placement.value
        info["levels"] = [list(layer.state_levels(t)) for layer, t in
                          zip(ctx.model.layers, thresholds)]
    return info


STAGE_RUNNERS: dict[type, Callable[[Context, Any], dict]] = {
    PruneStage: _prune, QatStage: _qat, PtqStage: _ptq, ClusterStage: _cluster,
    HessianStage: _hessian, SearchStage: _search, StateStage: _state,
}


# -- the run ------------------------------------------------------------------------------------


def _record(ctx: Context, name: str, info: dict, started: float) -> None:
    entry = {"stage": name, "accuracy": ctx.test_accuracy(),
             "integer": ctx.model.is_integer, "seconds": round(time.monotonic() - started, 2)}
    entry.update(info)
    ctx.stages.append(entry)


def _stage_name(stage: Any) -> str:
    return next(name for name, cls in STAGES.items() if isinstance(stage, cls))


def verify(net: Network, model: SNN, spikes: np.ndarray) -> dict:
    """Compare the golden model with the torch integer mode on every spike and every V."""
    golden = simulate(net, spikes)
    torch_spikes, torch_v = exact_run(model, spikes)

    def differ(ours: dict, theirs: dict) -> int:
        return sum(int(np.count_nonzero(ours[name] != theirs[name])) for name in theirs)

    torch_pred = np.argmax(torch_spikes[net.layers[-1].name].sum(axis=1, dtype=np.int64), axis=1)
    return {"golden_pred": golden.pred, "torch_pred": torch_pred,
            "spike_mismatches": differ(torch_spikes, golden.spikes),
            "v_mismatches": differ(torch_v, golden.v_trace),
            "spikes_compared": int(sum(s.size for s in golden.spikes.values()))}


#: training samples whose spikes set the initial firing rates (SNN.calibrate)
CALIBRATION_SAMPLES = 512
#: the initial firing rate of networks of two or more hidden layers when the recipe sets none
DEFAULT_INIT_RATE = 0.1


def init_rate(recipe: Recipe) -> float | None:
    """The firing rate :func:`prepare` calibrates each layer to before training, or None (the
    fixed initialisation): ``model.init_rate``, else :data:`DEFAULT_INIT_RATE` where the network
    has two or more hidden layers (conv ones included), whose fixed initialisation saturates
    and does not train."""
    m = recipe.model
    if m.init_rate is not None:
        return m.init_rate
    return DEFAULT_INIT_RATE if len(m.conv) + len(m.hidden) >= 2 else None


def prepare(recipe: Recipe, progress: bool | None = None) -> Context:
    """Load the data, encode the test set once, build the model, calibrate its initial firing
    rates (``model.init_rate``) and train it in float."""
    started = time.monotonic()
    progress = recipe.train.progress if progress is None else progress
    d = recipe.data
    data = load_data(d.dataset)
    test_spikes = encode(data.x_test, d.encoding, d.timesteps, seed=d.test_seed,
                         max_rate=d.max_rate, lfsr_seed=d.on_chip_seed)
    model = build_model(recipe, encoded_features(d.encoding, data.features), data.classes)
    ctx = Context(recipe, data, model, test_spikes, progress)
    rate = init_rate(recipe)
    rates = None if rate is None else model.calibrate(torch.from_numpy(
        ctx.train_spikes(0)[:CALIBRATION_SAMPLES].astype(np.float32)), rate)
    ctx.tune(recipe.train.epochs, recipe.train.lr, "float")
    ctx.teacher = copy.deepcopy(model)
    _record(ctx, "float", {"epochs": recipe.train.epochs, "init_rates": rates}, started)
    return ctx


def branch(ctx: Context, recipe: Recipe | None = None) -> Context:
    """Return a copy of ``ctx`` (model included) that can be compressed independently.

    Lets a benchmark train the float model once and compare compression recipes from it.
    """
    return replace(ctx, recipe=recipe or ctx.recipe, model=copy.deepcopy(ctx.model),
                   stages=copy.deepcopy(ctx.stages))


def apply_stages(ctx: Context, stages: list[Any]) -> None:
    """Apply compression stages in order, recording the accuracy after each."""
    for stage in stages:
        # parse_recipe rejects any stage after ptq (recipe._check_order), the only stage that
        # freezes layers, so a frozen layer here is a bug, not a recipe mistake.
        assert not any(layer.frozen is not None for layer in ctx.model.layers), stage
        started = time.monotonic()
        info = STAGE_RUNNERS[type(stage)](ctx, stage)
        _record(ctx, _stage_name(stage), info, started)


def compress(ctx: Context, stages: list[Any]) -> None:
    """Apply compression stages in order, then quantize the layers still float (PTQ)."""
    apply_stages(ctx, stages)
    model, export = ctx.model, ctx.recipe.export
    if not model.is_integer:  # the format is integer: quantize what is still float (PTQ)
        started = time.monotonic()
        float_layers = [n for n, layer in enumerate(model.layers) if layer.is_float]
        generator = torch.Generator().manual_seed(ctx.recipe.seed)
        for n in float_layers:
            layer = model.layers[n]
            layer.quantizer = make_quantizer(export.bits, export.rounding, generator)
            layer.freeze()
        _record(ctx, "export_ptq", {"bits": export.bits, "layers": float_layers,
                                    "rounding": export.rounding.value}, started)


def finish(ctx: Context, out: str | Path, recipe_text: str | None = None) -> dict:
    """Export to ``out``, verify against the golden model, write and return the metrics."""
    recipe, data = ctx.recipe, ctx.data
    net = to_network(ctx.model, recipe.name, recipe.data.timesteps)
    out = Path(out)
    if recipe.data.on_chip_seed is not None:  # the board encodes the bytes the host sends
        net.encoder = Encoder(recipe.data.encoding.value, recipe.data.on_chip_seed)
    save(net, out)
    np.save(out / "test_inputs.npy", ctx.test_spikes)
    if net.encoder is not None:
        np.save(out / "test_features.npy", feature_bytes(data.x_test))
    np.save(out / "test_labels.npy", data.y_test)
    check = verify(net, ctx.model, ctx.test_spikes)
    labels = data.y_test
    metrics = {
        "name": recipe.name,
        "dataset": data.name,
        "encoding": recipe.data.encoding.value,
        "timesteps": recipe.data.timesteps,
        "train_samples": int(len(data.y_train)),
        "test_samples": int(len(labels)),
        "float_accuracy": ctx.stages[0]["accuracy"],
        "stages": ctx.stages,
        "torch_accuracy": float(np.mean(check["torch_pred"] == labels)),
        "golden_accuracy": float(np.mean(check["golden_pred"] == labels)),
        "agreement": float(np.mean(check["torch_pred"] == check["golden_pred"])),
        "spike_mismatches": check["spike_mismatches"],
        "spikes_compared": check["spikes_compared"],
        "v_mismatches": check["v_mismatches"],
        "memory": memory_report(net),
        "state_memory": state_memory_report(net),
        "thresholds": [layer.neuron.threshold for layer in net.layers],
        "seconds": round(sum(stage["seconds"] for stage in ctx.stages), 2),
        "recipe": recipe_to_dict(recipe),
    }
    atomic_write(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    if recipe_text is not None:
        atomic_write(out / "recipe.yaml", recipe_text.encode())
    return metrics


def run_recipe(recipe: Recipe, out: str | Path, *, progress: bool | None = None,
               recipe_text: str | None = None) -> dict:
    """Train, compress and export ``recipe`` into the model directory ``out``; return metrics."""
    ctx = prepare(recipe, progress)
    compress(ctx, recipe.compress)
    return finish(ctx, out, recipe_text)
