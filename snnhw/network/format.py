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
from .connectivity import CONNECTIVITY

__all__ = ["FORMAT", "VERSION", "NEURON_MODELS", "MAX_ARRAY_ELEMENTS", "NETWORK_NAME", "Reset",
           "Neuron", "Layer", "Network", "load", "save", "npy_header"]

FORMAT = "snnhw-network"
VERSION = 1
MANIFEST = "network.yaml"
ARRAYS = "arrays.npz"

MAX_WEIGHT_BITS = 16
MAX_CODEBOOK = 1 << MAX_WEIGHT_BITS
MIN_V_BITS, MAX_V_BITS = 2, 32
MAX_STATE_LEVELS = 256
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


@dataclass(frozen=True)
class Neuron:
    """Fixed-point LIF parameters shared by all neurons of a layer (DESIGN.md §2).

    Parameters
    ----------
    threshold : int
        A neuron spikes when V >= threshold; 1 <= threshold <= 2**(v_bits-1) - 1.
    leak_shift : int
        V -= V >> leak_shift each timestep (arithmetic shift); 0 means no leak (IF neuron).
    reset : Reset
        Reset by subtraction of the threshold, or to zero.
    v_bits : int
        Width of the signed, saturating membrane potential.
    state_levels : tuple of int, optional
        The state codebook: sorted, distinct levels in the v_bits range, including 0. When set,
        V is snapped to the nearest level (ties to the lower) at the end of every update, so the
        membrane memory stores only a level index (threshold-centred state quantization).
    model : str
        The neuron model (one of :data:`NEURON_MODELS`); format version 1 has only ``lif``, the
        update above, so ``network.yaml`` does not name it.
    """

    threshold: int
    leak_shift: int
    reset: Reset
    v_bits: int
    state_levels: tuple[int, ...] | None = None
    model: str = "lif"

    @property
    def v_min(self) -> int:
        return signed_range(self.v_bits)[0]

    @property
    def v_max(self) -> int:
        return signed_range(self.v_bits)[1]


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
        The connectivity (one of :data:`~snnhw.network.connectivity.CONNECTIVITY`): ``dense``.
    """

    name: str
    index: np.ndarray
    codebook: tuple[int, ...]
    weight_bits: int
    neuron: Neuron
    kind: str = "dense"

    @property
    def size(self) -> int:
        return self.connectivity.size

    @property
    def fan_in(self) -> int:
        return self.connectivity.fan_in

    @property
    def weights_key(self) -> str:
        return f"{self.name}.index"

    @property
    def connectivity(self):
        """Which synapses each presynaptic spike reaches
        (:class:`~snnhw.network.connectivity.Connectivity`)."""
        return CONNECTIVITY[self.kind](self.index)

    @property
    def synapse_count(self) -> int:
        """Number of synapses that exist (not pruned)."""
        return self.connectivity.synapse_count

    @property
    def sparsity(self) -> float:
        """Fraction of the weight matrix that is zero: pruned synapses and synapses whose weight
        is a zero codebook entry alike (both add nothing to DESIGN.md §2's sum). The one
        definition every report uses."""
        weights = self.dense_weights()
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
    _check_int(f"{where}.neuron.threshold", neuron.threshold, 1, (1 << (vb - 1)) - 1)
    _check_int(f"{where}.neuron.leak_shift", neuron.leak_shift, 0, vb - 1)
    if not isinstance(neuron.reset, Reset):
        _fail(f"{where}.neuron.reset", "'subtract' or 'zero'", neuron.reset)
    if neuron.model not in NEURON_MODELS:
        _fail(f"{where}.neuron.model", " or ".join(repr(m) for m in NEURON_MODELS), neuron.model)
    if neuron.state_levels is not None:
        _check_state_levels(neuron, f"{where}.neuron.state_levels")

    index = layer.index
    if not isinstance(index, np.ndarray) or index.dtype.kind not in "iu":
        _fail(array_where, "an integer array",
              getattr(index, "dtype", type(index)).__str__())
    if index.ndim != 2 or index.shape[1] != fan_in or index.shape[0] < 1:
        _fail(array_where, f"shape [size, {fan_in}] (fan-in {fan_in})", tuple(index.shape))
    if index.size:
        bad = (index < -1) | (index >= len(codebook))
        if bad.any():
            j, i = (int(x) for x in np.argwhere(bad)[0])
            _fail(f"{array_where}[{j}, {i}]",
                  f"-1 (pruned) or a codebook index in 0..{len(codebook) - 1}", int(index[j, i]))


# -- files --------------------------------------------------------------------------------------

_TOP_KEYS = {"format", "version", "name", "timesteps", "input_size", "layers", "readout"}
_LAYER_KEYS = {"name", "kind", "size", "weights", "codebook", "weight_bits", "neuron"}
_NEURON_KEYS = {"threshold", "leak_shift", "reset", "v_bits", "state_levels"}


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
    _check_keys(where, manifest, _TOP_KEYS, _TOP_KEYS - {"readout", "timesteps"})
    if manifest["format"] != FORMAT:
        _fail(f"{where}: format", repr(FORMAT), manifest["format"])
    # `true == 1` and `1.0 == 1` in Python; the version must be the integer itself.
    if not _is_int(manifest["version"]) or manifest["version"] != VERSION:
        _fail(f"{where}: version", f"{VERSION} (the only version this snnhw reads)",
              manifest["version"])
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
        _check_keys(lwhere, entry, _LAYER_KEYS, _LAYER_KEYS - {"kind"})
        _check_keys(f"{lwhere}.neuron", entry["neuron"], _NEURON_KEYS,
                    _NEURON_KEYS - {"state_levels"})
        key = entry["weights"]
        if not isinstance(key, str) or key not in arrays:
            _fail(f"{lwhere}.weights", f"the name of an array in {npz_path}", key)
        used_keys.add(key)
        index = arrays[key]
        size = _check_int(f"{lwhere}.size", entry["size"], 1)
        if getattr(index, "ndim", 0) >= 1 and index.shape[0] != size:
            _fail(f"{npz_path}: {key}", f"shape [{size}, {fan_in}] (size {size}, fan-in {fan_in})",
                  tuple(index.shape))
        codebook = entry["codebook"]
        if not isinstance(codebook, list):
            _fail(f"{lwhere}.codebook", "a list of integers", codebook)
        neuron = entry["neuron"]
        reset = neuron["reset"]
        try:
            reset = Reset(reset)
        except ValueError:
            _fail(f"{lwhere}.neuron.reset", "'subtract' or 'zero'", reset)
        levels = neuron.get("state_levels")
        if levels is not None and not isinstance(levels, list):
            _fail(f"{lwhere}.neuron.state_levels", "a list of integers", levels)
        layer = Layer(
            name=entry["name"], kind=entry.get("kind", "dense"), index=index,
            codebook=tuple(codebook), weight_bits=entry["weight_bits"],
            neuron=Neuron(threshold=neuron["threshold"], leak_shift=neuron["leak_shift"],
                          reset=reset, v_bits=neuron["v_bits"],
                          state_levels=None if levels is None else tuple(levels)))
        layers.append(layer)
        fan_in = size
    extra = sorted(set(arrays) - used_keys)
    if extra:
        raise NetworkFormatError(f"{npz_path}: unexpected array {extra[0]!r} "
                                 f"(not named by any layer's 'weights' in {yaml_path})")

    net = Network(name=manifest["name"], input_size=manifest["input_size"], layers=layers,
                  timesteps=manifest.get("timesteps", 16),
                  readout=manifest.get("readout", "spike_count"))
    # Array errors name the npz key the manifest used.
    _check_network(net, where, str(npz_path), [e["weights"] for e in layers_yaml])
    for layer in net.layers:
        layer.index = layer.index.astype(np.int32, copy=False)
    return net


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


def _neuron_manifest(neuron: Neuron) -> dict[str, Any]:
    fields = {
        "threshold": int(neuron.threshold),
        "leak_shift": int(neuron.leak_shift),
        "reset": neuron.reset.value,
        "v_bits": int(neuron.v_bits),
    }
    if neuron.state_levels is not None:
        fields["state_levels"] = [int(level) for level in neuron.state_levels]
    return fields


def to_manifest(net: Network) -> dict[str, Any]:
    """Return the ``network.yaml`` contents for ``net`` as plain data."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": net.name,
        "timesteps": int(net.timesteps),
        "input_size": int(net.input_size),
        "layers": [
            {
                "name": layer.name,
                "kind": layer.kind,
                "size": layer.size,
                "weights": layer.weights_key,
                "codebook": [int(c) for c in layer.codebook],
                "weight_bits": int(layer.weight_bits),
                "neuron": _neuron_manifest(layer.neuron),
            }
            for layer in net.layers
        ],
        "readout": net.readout,
    }


def save(net: Network, path: str | os.PathLike) -> None:
    """Validate ``net`` and write it as a network directory; write nothing if it is invalid."""
    path = Path(path)
    net.validate(str(path))
    manifest = yaml.safe_dump(to_manifest(net), sort_keys=False)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{layer.weights_key: _smallest_int(layer.index)
                                   for layer in net.layers})
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / MANIFEST, manifest.encode())
    atomic_write(path / ARRAYS, buffer.getvalue())


def _smallest_int(index: np.ndarray) -> np.ndarray:
    for dtype in (np.int8, np.int16, np.int32):
        if index.size == 0 or index.max() <= np.iinfo(dtype).max:
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
