"""The deployable integer network (DESIGN.md §1): a directory with ``network.yaml`` + ``arrays.npz``.

Everything downstream of training (golden model, RTL generator, co-simulation, board builds) reads
only this. Loading validates everything; saving validates first and writes nothing if that fails.
"""

from __future__ import annotations

import enum
import io
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config import shown
from ..errors import NetworkFormatError, SnnhwError
from ..yamlfile import read_yaml
from .connectivity import CONNECTIVITY, ConvGeometry
from .encoder import Encoder, EncoderKind

__all__ = ["FORMAT", "VERSION", "VERSIONS", "NEURON_MODELS", "MAX_ARRAY_ELEMENTS", "NETWORK_NAME",
           "Reset", "Fire", "ResetTiming", "Rounding", "Neuron", "Layer", "Network", "load", "save",
           "npy_header", "required_version"]

FORMAT = "snnhw-network"
#: The newest format version; :func:`save` writes the oldest version that holds the network
#: (:func:`required_version`), so a network of version-1 semantics stays a version-1 file.
VERSION = 2
#: Every version :func:`load` reads. Version 2 adds the neuron fields ``fire``, ``reset_timing``,
#: ``beta``, ``beta_bits``, ``beta_frac_bits``, ``beta_rounding``, ``bias``, ``reset: none`` and
#: per-neuron ``threshold`` / ``beta`` / ``bias`` arrays; a version-1 file means exactly what it
#: meant before.
VERSIONS = (1, 2)
MANIFEST = "network.yaml"
ARRAYS = "arrays.npz"

MAX_WEIGHT_BITS = 16
MAX_CODEBOOK = 1 << MAX_WEIGHT_BITS
MIN_V_BITS, MAX_V_BITS = 2, 32
MAX_STATE_LEVELS = 256
#: The most fraction bits of a fixed-point beta (the product beta * V stays below 2**57).
MAX_BETA_FRAC_BITS = 24
#: Neuron models the format knows; each backend (golden model, torch, hardware) looks the name
#: up in its own table and refuses, in one line, a model it does not implement.
NEURON_MODELS = ("lif",)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: What a network's name may be made of: it reaches file names and generated Verilog.
NETWORK_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
#: The most elements an array file may declare (2 GB of uint8 spikes): a header that asks for
#: more is refused before numpy tries to allocate it (a MemoryError, or the machine swapping).
MAX_ARRAY_ELEMENTS = 1 << 31


def signed_range(bits: int) -> tuple[int, int]:
    """The smallest and largest value of a ``bits``-wide two's complement integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


class Reset(enum.Enum):
    """What a spike does to the membrane potential."""

    SUBTRACT = "subtract"  #: V -= threshold
    ZERO = "zero"  #: V = 0
    NONE = "none"  #: V keeps its value (format version 2)


class Fire(enum.Enum):
    """The firing comparison of V with the threshold (format version 2 adds ``>``)."""

    GE = ">="  #: spike when V >= threshold (version 1's only comparison)
    GT = ">"  #: spike when V > threshold (snnTorch, NIR)


class ResetTiming(enum.Enum):
    """When a spike's reset reaches V (the golden model's docstring has the exact rules)."""

    IMMEDIATE = "immediate"  #: in the step of the spike (version 1's only timing)
    DEFERRED = "deferred"  #: at the start of the next step, unscaled (snnTorch reset_delay=True)
    #: snnTorch's reset_delay=False with subtraction: immediate, but a V still above threshold
    #: after its reset compares V - threshold with the threshold in the next step
    IMMEDIATE_SNNTORCH = "immediate_snntorch"


class Rounding(enum.Enum):
    """How the fixed-point product beta * V is brought back to V's units."""

    FLOOR = "floor"  #: (beta * V) >> frac
    NEAREST = "nearest"  #: (beta * V + 2**(frac-1)) >> frac: nearest, halves rounded up


@dataclass(frozen=True)
class Neuron:
    """Fixed-point LIF parameters of a layer's neurons (DESIGN.md §2; the golden model's
    :func:`~snnhw.golden.model.lif_step` docstring has the exact update).

    Parameters
    ----------
    threshold : int or tuple of int
        A neuron spikes when V >= threshold (or V > threshold, see ``fire``);
        1 <= threshold <= 2**(v_bits-1) - 1. A tuple gives one threshold per neuron (version 2).
    leak_shift : int
        V -= V >> leak_shift each timestep (arithmetic shift); 0 means no shift leak.
    reset : Reset
        Reset by subtraction of the threshold, to zero, or none (version 2).
    v_bits : int
        Width of the signed, saturating membrane potential.
    state_levels : tuple of int, optional
        The state codebook: sorted, distinct levels in the v_bits range, including 0. When set,
        V is snapped to the nearest level (ties to the lower) at the end of every update, so the
        membrane memory stores only a level index (threshold-centred state quantization).
    model : str
        The neuron model (one of :data:`NEURON_MODELS`); ``lif``, the update of
        :func:`~snnhw.golden.model.lif_step`, so ``network.yaml`` does not name it.
    fire : Fire
        The firing comparison, ``>=`` (version 1) or ``>`` (version 2).
    reset_timing : ResetTiming
        ``immediate`` (version 1), ``deferred`` or ``immediate_snntorch`` (version 2; both only
        with a reset: ``immediate_snntorch`` only with ``subtract``; ``none`` only with
        ``immediate``, which it does not depend on).
    beta : int or tuple of int, optional
        The fixed-point leak multiplier (version 2): the leak is
        ``V = round(beta * V / 2**beta_frac_bits)`` instead of the shift; then ``leak_shift``
        must be 0. An integer in 0..min(2**beta_bits - 1, 2**beta_frac_bits), or one per neuron.
    beta_bits : int
        Unsigned width of ``beta`` (1..beta_frac_bits + 1); only with ``beta``.
    beta_frac_bits : int
        Fraction bits of ``beta`` (1..24); only with ``beta``.
    beta_rounding : Rounding
        ``floor`` or ``nearest`` (halves up); only with ``beta``.
    bias : int or tuple of int
        Added to every neuron's current every timestep (version 2), an integer in the v_bits
        range, or one per neuron.
    """

    threshold: int | tuple[int, ...]
    leak_shift: int
    reset: Reset
    v_bits: int
    state_levels: tuple[int, ...] | None = None
    model: str = "lif"
    fire: Fire = Fire.GE
    reset_timing: ResetTiming = ResetTiming.IMMEDIATE
    beta: int | tuple[int, ...] | None = None
    beta_bits: int = 0
    beta_frac_bits: int = 0
    beta_rounding: Rounding = Rounding.FLOOR
    bias: int | tuple[int, ...] = 0

    @property
    def v_min(self) -> int:
        return signed_range(self.v_bits)[0]

    @property
    def v_max(self) -> int:
        return signed_range(self.v_bits)[1]

    def extensions(self) -> list[tuple[str, str]]:
        """The version-2 features this neuron uses, as (field, value) pairs; empty for a
        version-1 neuron. Every backend that lacks them refuses the first in one line."""
        found = []
        if isinstance(self.threshold, tuple):
            found.append(("threshold", "per-neuron array"))
        if self.reset is Reset.NONE:
            found.append(("reset", "'none'"))
        if self.fire is not Fire.GE:
            found.append(("fire", repr(self.fire.value)))
        if self.reset_timing is not ResetTiming.IMMEDIATE:
            found.append(("reset_timing", repr(self.reset_timing.value)))
        if self.beta is not None:
            found.append(("beta", "fixed-point multiplier"))
        if isinstance(self.bias, tuple) or self.bias != 0:
            found.append(("bias", "per-neuron array" if isinstance(self.bias, tuple)
                          else repr(self.bias)))
        return found

    def values(self, field: str, size: int) -> np.ndarray:
        """``threshold``, ``beta`` or ``bias`` as an int64 array of ``size`` neurons."""
        value = getattr(self, field)
        if isinstance(value, tuple):
            return np.asarray(value, dtype=np.int64)
        return np.full(size, 0 if value is None else value, dtype=np.int64)


@dataclass(eq=False)
class Layer:
    """A fully connected layer: ``index[j, i]`` selects ``codebook[k]`` for synapse i -> j.

    Parameters
    ----------
    name : str
        Identifier, unique in the network; used in file keys and port names.
    index : numpy.ndarray
        Integer array ``[size, fan_in]``; ``k >= 0`` selects ``codebook[k]``, ``-1`` is no synapse.
    codebook : tuple of int
        The only weight values this layer can use.
    weight_bits : int
        Signed width that every codebook entry fits in.
    neuron : Neuron
        The layer's LIF parameters.
    kind : str
        The connectivity (one of :data:`~snnhw.network.connectivity.CONNECTIVITY`): ``dense``,
        or ``recurrent``: ``index`` is ``[size, external + size]``, its last ``size`` columns the
        square matrix through which the layer's own spikes of timestep t reach it at t + 1;
        or ``conv2d``: ``index`` is the kernel ``[out_channels, in_channels, K, K]`` and
        ``conv`` says where it slides (:class:`~snnhw.network.connectivity.Conv2d`).
    conv : ConvGeometry, optional
        The input shape, stride and padding of a ``conv2d`` layer (None for the other kinds).
    """

    name: str
    index: np.ndarray
    codebook: tuple[int, ...]
    weight_bits: int
    neuron: Neuron
    kind: str = "dense"
    conv: ConvGeometry | None = None

    @property
    def size(self) -> int:
        return self.connectivity.size

    @property
    def fan_in(self) -> int:
        return self.connectivity.fan_in

    @property
    def external_fan_in(self) -> int:
        """Pre-synaptic neurons outside the layer: the previous layer's size (or the input's)."""
        return self.connectivity.external_fan_in

    @property
    def weights_key(self) -> str:
        return f"{self.name}.index"

    @property
    def connectivity(self):
        """Which synapses each presynaptic spike reaches
        (:class:`~snnhw.network.connectivity.Connectivity`)."""
        if self.kind == "conv2d":
            return CONNECTIVITY[self.kind](self.index, self.conv)
        return CONNECTIVITY[self.kind](self.index)

    @property
    def synapse_count(self) -> int:
        """Number of synapses that exist (not pruned)."""
        return self.connectivity.synapse_count

    @property
    def sparsity(self) -> float:
        """Fraction of the stored weights (the matrix, or a convolution's kernel) that is zero:
        pruned synapses and synapses whose weight is a zero codebook entry alike (both add
        nothing to DESIGN.md §2's sum). The one definition every report uses."""
        weights = self.connectivity.stored_weights(self.codebook)
        return float(1.0 - np.count_nonzero(weights) / weights.size)

    def dense_weights(self) -> np.ndarray:
        """Return the integer weight matrix ``[size, fan_in]``, 0 where pruned."""
        return self.connectivity.weights(self.codebook)


@dataclass(eq=False)
class Network:
    """An integer SNN: layers evaluated in order at every timestep (DESIGN.md §1-2)."""

    name: str
    input_size: int
    layers: list[Layer]
    timesteps: int = 16
    readout: str = "spike_count"
    #: how feature bytes become input spikes on the chip (``None``: spikes are sent as events)
    encoder: Encoder | None = None

    @property
    def output_size(self) -> int:
        return self.layers[-1].size

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def validate(self, source: str = "network") -> None:
        """Raise :class:`NetworkFormatError` naming ``source`` and the field if anything is wrong."""
        _check_network(self, source, f"{source}/{ARRAYS}")


# -- validation ---------------------------------------------------------------------------------


def _fail(where: str, expected: str, got: Any) -> None:
    # shown(): a 70,000-entry codebook must not become a 200 KB "one-line" message.
    raise NetworkFormatError(f"{where}: expected {expected}, got {shown(got)}")


def _named(where: str, name: Any) -> str:
    """``where`` followed by a layer's name in parentheses, if it is a short identifier."""
    if isinstance(name, str) and _IDENTIFIER.match(name) and len(name) <= 64:
        return f"{where} ({name})"
    return where


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_int(where: str, value: Any, lo: int, hi: int | None = None) -> int:
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        _fail(where, f"an integer in {lo}..{hi}" if hi is not None else f"an integer >= {lo}",
              value)
    return int(value)


def _check_network(net: Network, yaml_where: str, npz_where: str,
                   keys: list[str] | None = None) -> None:
    """Validate ``net``; ``keys`` are the npz keys the manifest uses (default: canonical)."""
    if not isinstance(net.name, str) or not NETWORK_NAME.match(net.name):
        _fail(f"{yaml_where}: name", "a non-empty name of letters, digits, '_', '.' and '-'",
              net.name)
    _check_int(f"{yaml_where}: timesteps", net.timesteps, 1)
    _check_int(f"{yaml_where}: input_size", net.input_size, 1)
    if net.readout != "spike_count":
        _fail(f"{yaml_where}: readout", "'spike_count'", net.readout)
    if net.encoder is not None and not isinstance(net.encoder, Encoder):
        _fail(f"{yaml_where}: encoder", "an Encoder or none", net.encoder)
    if not net.layers:
        _fail(f"{yaml_where}: layers", "at least one layer", net.layers)
    fan_in = net.input_size
    seen: set[str] = set()
    for number, layer in enumerate(net.layers):
        where = f"{yaml_where}: layers[{number}]"
        if not isinstance(layer.name, str) or not _IDENTIFIER.match(layer.name):
            _fail(f"{where}.name", "an identifier ([A-Za-z_][A-Za-z0-9_]*)", layer.name)
        if layer.name in seen:
            _fail(f"{where}.name", "a name not used by an earlier layer", layer.name)
        seen.add(layer.name)
        where = _named(where, layer.name)
        key = keys[number] if keys is not None else layer.weights_key
        _check_layer(layer, where, f"{npz_where}: {key}", fan_in)
        fan_in = layer.size


def _check_state_levels(neuron: Neuron, where: str) -> None:
    levels = neuron.state_levels
    if not isinstance(levels, tuple) or not 2 <= len(levels) <= MAX_STATE_LEVELS:
        _fail(where, f"a list of 2..{MAX_STATE_LEVELS} integers", levels)
    for k, level in enumerate(levels):
        if not _is_int(level) or not neuron.v_min <= level <= neuron.v_max:
            _fail(f"{where}[{k}]", f"an integer in {neuron.v_min}..{neuron.v_max} "
                  f"(v_bits {neuron.v_bits})", level)
        if k and level <= levels[k - 1]:
            _fail(f"{where}[{k}]", f"a level above the previous one ({levels[k - 1]})", level)
    if 0 not in levels:
        _fail(where, "a list that contains 0 (every sample starts from V = 0)", list(levels))


def _check_layer(layer: Layer, where: str, array_where: str, fan_in: int) -> None:
    if layer.kind not in CONNECTIVITY:
        _fail(f"{where}.kind", " or ".join(repr(kind) for kind in CONNECTIVITY), layer.kind)
    wb = _check_int(f"{where}.weight_bits", layer.weight_bits, 1, MAX_WEIGHT_BITS)
    codebook = layer.codebook
    if not isinstance(codebook, tuple) or not 1 <= len(codebook) <= MAX_CODEBOOK:
        _fail(f"{where}.codebook", f"a list of 1..{MAX_CODEBOOK} integers", codebook)
    lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
    for k, value in enumerate(codebook):
        if not _is_int(value) or not lo <= value <= hi:
            _fail(f"{where}.codebook[{k}]",
                  f"an integer that fits weight_bits {wb} ({lo}..{hi})", value)
    neuron = layer.neuron
    vb = _check_int(f"{where}.neuron.v_bits", neuron.v_bits, MIN_V_BITS, MAX_V_BITS)
    if not isinstance(neuron.threshold, tuple):
        _check_int(f"{where}.neuron.threshold", neuron.threshold, 1, (1 << (vb - 1)) - 1)
    _check_int(f"{where}.neuron.leak_shift", neuron.leak_shift, 0, vb - 1)
    if not isinstance(neuron.reset, Reset):
        _fail(f"{where}.neuron.reset", "'subtract', 'zero' or 'none'", neuron.reset)
    if neuron.model not in NEURON_MODELS:
        _fail(f"{where}.neuron.model", " or ".join(repr(m) for m in NEURON_MODELS), neuron.model)
    if neuron.state_levels is not None:
        _check_state_levels(neuron, f"{where}.neuron.state_levels")

    index = layer.index
    if not isinstance(index, np.ndarray) or index.dtype.kind not in "iu":
        _fail(array_where, "an integer array",
              getattr(index, "dtype", type(index)).__str__())
    if layer.kind != "conv2d" and layer.conv is not None:
        _fail(f"{where}.input_shape", f"no value for kind {layer.kind!r} (only conv2d layers "
              f"have a shape, stride and padding)", layer.conv)
    if layer.kind == "conv2d":
        _check_conv(layer, where, array_where, fan_in)
    elif layer.kind == "recurrent":
        # The recurrent matrix is the last `size` columns: square, one column per own neuron.
        if index.ndim != 2 or index.shape[0] < 1 or index.shape[1] != fan_in + index.shape[0]:
            rows = index.shape[0] if index.ndim == 2 else "size"
            _fail(array_where, f"shape [size, {fan_in} + size] (fan-in {fan_in}, then a square "
                  f"recurrent matrix of {rows} columns, one per neuron of the layer)",
                  tuple(index.shape))
    elif index.ndim != 2 or index.shape[1] != fan_in or index.shape[0] < 1:
        _fail(array_where, f"shape [size, {fan_in}] (fan-in {fan_in})", tuple(index.shape))
    if index.size:
        bad = (index < -1) | (index >= len(codebook))
        if bad.any():
            at = tuple(int(x) for x in np.argwhere(bad)[0])
            _fail(f"{array_where}[{', '.join(map(str, at))}]",
                  f"-1 (pruned) or a codebook index in 0..{len(codebook) - 1}", int(index[at]))
    _check_neuron_v2(neuron, f"{where}.neuron", layer.size)


def _check_conv(layer: Layer, where: str, array_where: str, fan_in: int) -> None:
    """The geometry and kernel shape of a conv2d layer whose input has ``fan_in`` neurons."""
    conv, index = layer.conv, layer.index
    if not isinstance(conv, ConvGeometry):
        _fail(f"{where}.input_shape", "[channels, height, width] for kind 'conv2d'", conv)
    shape = conv.input_shape
    if not isinstance(shape, tuple) or len(shape) != 3:
        _fail(f"{where}.input_shape", "[channels, height, width]", shape)
    for k, n in enumerate(shape):
        _check_int(f"{where}.input_shape[{k}]", n, 1)
    if int(np.prod(shape, dtype=object)) != fan_in:
        _fail(f"{where}.input_shape", f"channels * height * width = {fan_in} (the previous "
              f"layer's size, or the input's)", list(shape))
    stride = _check_int(f"{where}.stride", conv.stride, 1)
    pad = _check_int(f"{where}.padding", conv.padding, 0)
    if (index.ndim != 4 or index.shape[1] != shape[0] or min(index.shape) < 1
            or index.shape[2] != index.shape[3]):
        _fail(array_where, f"a kernel of shape [out_channels, {shape[0]}, K, K] (input "
              f"channels {shape[0]})", tuple(index.shape))
    kernel = index.shape[2]
    for axis, name in ((0, "height"), (1, "width")):
        extent = shape[1 + axis]
        if kernel > extent + 2 * pad:
            _fail(array_where, f"a kernel size of at most {extent + 2 * pad} (input {name} "
                  f"{extent} + 2 * padding {pad}); stride {stride}", tuple(index.shape))


def _check_per_neuron(where: str, value: Any, size: int, lo: int, hi: int) -> None:
    """An integer in lo..hi, or a tuple of ``size`` of them (one per neuron)."""
    if not isinstance(value, tuple):
        _check_int(where, value, lo, hi)
        return
    if len(value) != size:
        raise NetworkFormatError(f"{where}: expected one value per neuron ({size}), got "
                                 f"{len(value)} values")
    for k, item in enumerate(value):
        _check_int(f"{where}[{k}]", item, lo, hi)


def _check_neuron_v2(neuron: Neuron, where: str, size: int) -> None:
    """The version-2 fields of ``neuron`` (layer of ``size`` neurons)."""
    if isinstance(neuron.threshold, tuple):
        _check_per_neuron(f"{where}.threshold", neuron.threshold, size, 1, neuron.v_max)
    if not isinstance(neuron.fire, Fire):
        _fail(f"{where}.fire", "'>=' or '>'", neuron.fire)
    if not isinstance(neuron.reset_timing, ResetTiming):
        _fail(f"{where}.reset_timing", " or ".join(repr(t.value) for t in ResetTiming),
              neuron.reset_timing)
    if not isinstance(neuron.beta_rounding, Rounding):
        _fail(f"{where}.beta_rounding", "'floor' or 'nearest'", neuron.beta_rounding)
    timing = neuron.reset_timing
    if neuron.reset is Reset.NONE and timing is not ResetTiming.IMMEDIATE:
        _fail(f"{where}.reset_timing", "'immediate' with reset 'none' (there is no reset to "
              "time)", timing.value)
    if timing is ResetTiming.IMMEDIATE_SNNTORCH and neuron.reset is not Reset.SUBTRACT:
        _fail(f"{where}.reset_timing", f"'immediate' or 'deferred' with reset "
              f"{neuron.reset.value!r} ('immediate_snntorch' is a subtract timing)", timing.value)
    _check_per_neuron(f"{where}.bias", neuron.bias, size, neuron.v_min, neuron.v_max)
    if neuron.beta is None:
        for field, default in (("beta_bits", 0), ("beta_frac_bits", 0),
                               ("beta_rounding", Rounding.FLOOR)):
            if getattr(neuron, field) != default:
                value = getattr(neuron, field)
                _fail(f"{where}.{field}", "no value without 'beta'",
                      value.value if isinstance(value, Rounding) else value)
        return
    if neuron.leak_shift:
        _fail(f"{where}.leak_shift", "0 with 'beta' (the leak is the shift or the multiply)",
              neuron.leak_shift)
    frac = _check_int(f"{where}.beta_frac_bits", neuron.beta_frac_bits, 1, MAX_BETA_FRAC_BITS)
    width = _check_int(f"{where}.beta_bits", neuron.beta_bits, 1, frac + 1)
    _check_per_neuron(f"{where}.beta", neuron.beta, size, 0, min((1 << width) - 1, 1 << frac))


# -- files --------------------------------------------------------------------------------------

_TOP_KEYS = {"format", "version", "name", "timesteps", "input_size", "layers", "readout",
             "encoder"}
_ENCODER_KEYS = {"kind", "seed"}
_LAYER_KEYS = {"name", "kind", "size", "weights", "codebook", "weight_bits", "neuron"}
#: The fields of a conv2d layer (``stride`` and ``padding`` default to 1 and 0).
_CONV_KEYS = {"input_shape", "stride", "padding"}
_NEURON_KEYS = {"threshold", "leak_shift", "reset", "v_bits", "state_levels"}
#: Neuron fields of version 2 (all optional; each absent one has version 1's meaning).
_NEURON_KEYS_V2 = _NEURON_KEYS | {"fire", "reset_timing", "beta", "beta_bits", "beta_frac_bits",
                                  "beta_rounding", "bias"}
#: Neuron fields that version 2 lets name an integer array in arrays.npz (one value per neuron).
_PER_NEURON = ("threshold", "beta", "bias")


def _check_keys(where: str, mapping: Any, allowed: set[str], required: set[str]) -> None:
    if not isinstance(mapping, dict):
        _fail(where, "a mapping", type(mapping).__name__)
    for key in mapping:
        if key not in allowed:
            raise NetworkFormatError(f"{where}: unknown field {shown(key)} "
                                     f"(expected one of {', '.join(sorted(allowed))})")
    for key in sorted(required):
        if key not in mapping:
            raise NetworkFormatError(f"{where}: missing field {key!r}")


def load(path: str | os.PathLike) -> Network:
    """Load and validate a network directory; raise :class:`NetworkFormatError` if it is bad."""
    path = Path(path)
    yaml_path, npz_path = path / MANIFEST, path / ARRAYS
    if not path.is_dir():
        problem = "it is not a directory" if path.exists() else "it does not exist"
        raise NetworkFormatError(f"{path}: expected a network directory with {MANIFEST} and "
                                 f"{ARRAYS}, but {problem}")
    manifest = read_yaml(yaml_path, NetworkFormatError)
    where = str(yaml_path)
    _check_keys(where, manifest, _TOP_KEYS, _TOP_KEYS - {"readout", "timesteps", "encoder"})
    if manifest["format"] != FORMAT:
        _fail(f"{where}: format", repr(FORMAT), manifest["format"])
    # `true == 1` and `1.0 == 1` in Python; the version must be the integer itself.
    version = manifest["version"]
    if not _is_int(version) or version not in VERSIONS:
        _fail(f"{where}: version", f"{' or '.join(map(str, VERSIONS))} (the versions this "
              f"snnhw reads)", version)
    _check_int(f"{where}: input_size", manifest["input_size"], 1)
    arrays = _load_arrays(npz_path)
    layers_yaml = manifest["layers"]
    if not isinstance(layers_yaml, list) or not layers_yaml:
        _fail(f"{where}: layers", "a non-empty list of layers", layers_yaml)

    layers = []
    fan_in = manifest["input_size"]
    used_keys = set()
    for number, entry in enumerate(layers_yaml):
        lwhere = f"{where}: layers[{number}]"
        if isinstance(entry, dict):
            lwhere = _named(lwhere, entry.get("name"))
        conv = isinstance(entry, dict) and entry.get("kind") == "conv2d"
        _check_keys(lwhere, entry, _LAYER_KEYS | (_CONV_KEYS if conv else set()),
                    _LAYER_KEYS - {"kind"} | ({"input_shape"} if conv else set()))
        _check_keys(f"{lwhere}.neuron", entry["neuron"],
                    _NEURON_KEYS if version == 1 else _NEURON_KEYS_V2,
                    _NEURON_KEYS - {"state_levels"})
        key = entry["weights"]
        if not isinstance(key, str) or key not in arrays:
            _fail(f"{lwhere}.weights", f"the name of an array in {npz_path}", key)
        used_keys.add(key)
        index = arrays[key]
        size = _check_int(f"{lwhere}.size", entry["size"], 1)
        if conv:
            shape = entry["input_shape"]
            if not isinstance(shape, list):
                _fail(f"{lwhere}.input_shape", "[channels, height, width]", shape)
            geometry = ConvGeometry(tuple(shape), entry.get("stride", 1), entry.get("padding", 0))
        elif getattr(index, "ndim", 0) >= 1 and index.shape[0] != size:
            columns = f"{fan_in} + {size}" if entry.get("kind") == "recurrent" else fan_in
            _fail(f"{npz_path}: {key}", f"shape [{size}, {columns}] (size {size}, fan-in {fan_in})",
                  tuple(index.shape))
        codebook = entry["codebook"]
        if not isinstance(codebook, list):
            _fail(f"{lwhere}.codebook", "a list of integers", codebook)
        layer = Layer(
            name=entry["name"], kind=entry.get("kind", "dense"), index=index,
            conv=geometry if conv else None, codebook=tuple(codebook),
            weight_bits=entry["weight_bits"],
            neuron=_load_neuron(entry["neuron"], f"{lwhere}.neuron", version, arrays,
                                str(npz_path), used_keys))
        if conv:  # the kernel's shape and the geometry fix the size: check both agree
            _check_layer(layer, lwhere, f"{npz_path}: {key}", fan_in)
            if layer.size != size:
                _fail(f"{lwhere}.size", f"{layer.size} (output shape "
                      f"{list(layer.connectivity.output_shape)})", size)
        layers.append(layer)
        fan_in = size
    extra = sorted(set(arrays) - used_keys)
    if extra:
        raise NetworkFormatError(f"{npz_path}: unexpected array {extra[0]!r} "
                                 f"(not named by any layer's 'weights' in {yaml_path})")

    net = Network(name=manifest["name"], input_size=manifest["input_size"], layers=layers,
                  timesteps=manifest.get("timesteps", 16),
                  readout=manifest.get("readout", "spike_count"),
                  encoder=_load_encoder(manifest.get("encoder"), f"{where}: encoder"))
    # Array errors name the npz key the manifest used.
    _check_network(net, where, str(npz_path), [e["weights"] for e in layers_yaml])
    for layer in net.layers:
        layer.index = layer.index.astype(np.int32, copy=False)
    return net


def _load_encoder(fields: Any, where: str) -> Encoder | None:
    """The optional ``encoder`` mapping (any format version: it does not change the arithmetic
    of the network, only where its input spikes come from)."""
    if fields is None:
        return None
    _check_keys(where, fields, _ENCODER_KEYS, {"kind"})
    kind = _enum(f"{where}.kind", EncoderKind, fields["kind"])
    return Encoder(kind, _check_int(f"{where}.seed", fields.get("seed", 1), 1, 0xFFFF))


def _enum(where: str, kind: type[enum.Enum], value: Any) -> Any:
    try:
        return kind(value)
    except (ValueError, TypeError):
        _fail(where, " or ".join(repr(member.value) for member in kind), value)


def _load_neuron(fields: dict[str, Any], where: str, version: int,
                 arrays: dict[str, np.ndarray], npz_path: str, used_keys: set[str]) -> Neuron:
    """The :class:`Neuron` of a layer's ``neuron`` mapping (keys already checked)."""
    resets = {reset.value: reset for reset in Reset if version >= 2 or reset is not Reset.NONE}
    reset = fields["reset"]
    if not isinstance(reset, str) or reset not in resets:
        names = [repr(name) for name in resets]
        _fail(f"{where}.reset", f"{', '.join(names[:-1])} or {names[-1]}", reset)
    reset = resets[reset]
    levels = fields.get("state_levels")
    if levels is not None and not isinstance(levels, list):
        _fail(f"{where}.state_levels", "a list of integers", levels)
    extra: dict[str, Any] = {}
    if version >= 2:
        for field in _PER_NEURON:
            value = fields.get(field)
            if isinstance(value, str):  # the name of a per-neuron array
                if value not in arrays:
                    _fail(f"{where}.{field}", f"an integer or the name of an array in "
                          f"{npz_path}", value)
                array = arrays[value]
                if array.dtype.kind not in "iu" or array.ndim != 1:
                    _fail(f"{npz_path}: {value}", "a 1-D integer array (one value per neuron)",
                          f"{array.dtype} array of shape {tuple(array.shape)}")
                used_keys.add(value)
                extra[field] = tuple(int(x) for x in array)
            elif value is not None:
                extra[field] = value
        for field, kind in (("fire", Fire), ("reset_timing", ResetTiming),
                            ("beta_rounding", Rounding)):
            if field in fields:
                extra[field] = _enum(f"{where}.{field}", kind, fields[field])
        for field in ("beta_bits", "beta_frac_bits"):
            if field in fields:
                extra[field] = fields[field]
    extra.setdefault("threshold", fields["threshold"])
    return Neuron(leak_shift=fields["leak_shift"], reset=reset, v_bits=fields["v_bits"],
                  state_levels=None if levels is None else tuple(levels), **extra)


# What np.load and zipfile raise on a file that is not a sound .npz: zipfile raises
# NotImplementedError / RuntimeError for unsupported or encrypted members, zlib.error for corrupt
# compressed data, and np.load ValueError for anything that is neither .npy nor .npz.
_NPZ_ERRORS = (ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
               RuntimeError)


def _load_arrays(npz_path: Path) -> dict[str, np.ndarray]:
    not_npz = f"{npz_path}: not a readable .npz of integer arrays"
    try:
        # Open the file here: np.load leaks its own handle when the zip directory is corrupt.
        with open(npz_path, "rb") as file:
            _check_npz_headers(file, npz_path)
            file.seek(0)
            try:
                loaded = np.load(file, allow_pickle=False)
            except _NPZ_ERRORS:
                # np.load falls back to pickle for unknown files; its message suggests unpickling.
                raise NetworkFormatError(f"{not_npz} (not a .npz archive)") from None
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy under the .npz name
                raise NetworkFormatError(
                    f"{not_npz} (it holds a single {type(loaded).__name__}, not named arrays)")
            with loaded as npz:
                arrays = {}
                for key in npz.files:
                    try:
                        arrays[key] = npz[key]
                    except _NPZ_ERRORS:
                        raise NetworkFormatError(f"{npz_path}: {key}: not a readable array "
                                                 f"(corrupt or truncated data)") from None
                return arrays
    except OSError as error:
        raise NetworkFormatError(f"{npz_path}: cannot read: {error.strerror or error}") from None


def _check_npz_headers(file, npz_path: Path) -> None:
    """Check every member's .npy header (dtype, size) before numpy loads any of them."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, ValueError, EOFError):
        return  # not a zip: _load_arrays says what it is
    with archive:
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            try:
                with archive.open(info) as member:
                    npy_header(member, f"{npz_path}: {key}", NetworkFormatError)
            except (*_NPZ_ERRORS, OSError) as error:
                if isinstance(error, NetworkFormatError):
                    raise
                raise NetworkFormatError(f"{npz_path}: {key}: not a readable array "
                                         f"(corrupt or unsupported zip member)") from None


def npy_header(file, where: str, error: type[SnnhwError] = SnnhwError
               ) -> tuple[tuple[int, ...], np.dtype]:
    """Read the header of a ``.npy`` array from ``file``; return its shape and dtype.

    Raise ``error`` naming ``where`` if the header is not a sound one, if the array holds Python
    objects, or if it declares more than :data:`MAX_ARRAY_ELEMENTS` elements, so that nothing
    tries to load it.
    """
    fmt = np.lib.format
    magic = file.read(len(fmt.MAGIC_PREFIX) + 2)
    if not magic:
        raise error(f"{where}: not a .npy array (the file is empty)")
    if not magic.startswith(fmt.MAGIC_PREFIX) or len(magic) < len(fmt.MAGIC_PREFIX) + 2:
        raise error(f"{where}: not a .npy array (no .npy magic string at its start)")
    version = (magic[-2], magic[-1])
    if version not in {(1, 0), (2, 0), (3, 0)}:
        raise error(f"{where}: not a .npy array (unknown .npy version {version[0]}.{version[1]})")
    try:
        # numpy has public readers for versions 1.0 and 2.0 only; 3.0 is 2.0 with a UTF-8
        # header, which the 2.0 reader reads alike as long as the header is ASCII (numbers are).
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(file)
    except (ValueError, EOFError, SyntaxError, TypeError):
        raise error(f"{where}: not a .npy array (its header cannot be read)") from None
    if dtype.hasobject:
        raise error(f"{where}: expected an array of numbers, got one of Python objects "
                    f"(dtype {dtype})")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise error(f"{where}: not a .npy array (its header declares shape {shown(shape)})")
    elements = int(np.prod(shape, dtype=object))
    if elements > MAX_ARRAY_ELEMENTS:
        raise error(f"{where}: expected at most {MAX_ARRAY_ELEMENTS} elements, but its header "
                    f"declares shape {shown(shape)} ({elements * dtype.itemsize:.3g} bytes)")
    return shape, dtype


def required_version(net: Network) -> int:
    """The oldest format version that holds ``net``: 1 unless a neuron uses a version-2 field."""
    return 2 if any(layer.neuron.extensions() for layer in net.layers) else 1


def _neuron_manifest(layer: Layer) -> dict[str, Any]:
    neuron = layer.neuron

    def per_neuron(field: str) -> int | str:
        value = getattr(neuron, field)
        return f"{layer.name}.{field}" if isinstance(value, tuple) else int(value)

    fields: dict[str, Any] = {
        "threshold": per_neuron("threshold"),
        "leak_shift": int(neuron.leak_shift),
        "reset": neuron.reset.value,
        "v_bits": int(neuron.v_bits),
    }
    if neuron.state_levels is not None:
        fields["state_levels"] = [int(level) for level in neuron.state_levels]
    # Version-2 fields, written only where they differ from version 1's meaning.
    if neuron.fire is not Fire.GE:
        fields["fire"] = neuron.fire.value
    if neuron.reset_timing is not ResetTiming.IMMEDIATE:
        fields["reset_timing"] = neuron.reset_timing.value
    if neuron.beta is not None:
        fields["beta"] = per_neuron("beta")
        fields["beta_bits"] = int(neuron.beta_bits)
        fields["beta_frac_bits"] = int(neuron.beta_frac_bits)
        fields["beta_rounding"] = neuron.beta_rounding.value
    if isinstance(neuron.bias, tuple) or neuron.bias != 0:
        fields["bias"] = per_neuron("bias")
    return fields


def to_manifest(net: Network) -> dict[str, Any]:
    """Return the ``network.yaml`` contents for ``net`` as plain data."""
    return {
        "format": FORMAT,
        "version": required_version(net),
        "name": net.name,
        "timesteps": int(net.timesteps),
        "input_size": int(net.input_size),
        "layers": [
            {
                "name": layer.name,
                "kind": layer.kind,
                "size": layer.size,
                "weights": layer.weights_key,
                **({"input_shape": [int(n) for n in layer.conv.input_shape],
                    "stride": int(layer.conv.stride), "padding": int(layer.conv.padding)}
                   if layer.conv is not None else {}),
                "codebook": [int(c) for c in layer.codebook],
                "weight_bits": int(layer.weight_bits),
                "neuron": _neuron_manifest(layer),
            }
            for layer in net.layers
        ],
        "readout": net.readout,
        **({"encoder": {"kind": net.encoder.kind.value, "seed": net.encoder.seed}}
           if net.encoder is not None else {}),
    }


def _arrays(net: Network) -> dict[str, np.ndarray]:
    """Every array of ``net``'s arrays.npz, by key."""
    arrays = {}
    for layer in net.layers:
        arrays[layer.weights_key] = _smallest_int(layer.index)
        for field in _PER_NEURON:
            value = getattr(layer.neuron, field)
            if isinstance(value, tuple):
                arrays[f"{layer.name}.{field}"] = _smallest_int(np.asarray(value, np.int64))
    return arrays


def save(net: Network, path: str | os.PathLike) -> None:
    """Validate ``net`` and write it as a network directory; write nothing if it is invalid."""
    path = Path(path)
    net.validate(str(path))
    manifest = yaml.safe_dump(to_manifest(net), sort_keys=False)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **_arrays(net))
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / MANIFEST, manifest.encode())
    atomic_write(path / ARRAYS, buffer.getvalue())


def _smallest_int(index: np.ndarray) -> np.ndarray:
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if index.size == 0 or (index.max() <= info.max and index.min() >= info.min):
            return index.astype(dtype)
    return index.astype(np.int64)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
