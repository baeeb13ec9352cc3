"""The network directory format (DESIGN.md §1): each validation error, save/load, CLI errors.

Each test starts from a valid tiny network written by ``save`` and breaks one thing in its
``network.yaml`` or ``arrays.npz``; the error message is pinned whole, because naming the file, the
field and what was expected is the point of it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

from snnhw.cli import main
from snnhw.errors import NetworkFormatError
from snnhw.network import Layer, Network, Neuron, Reset, load, save

TOP_FIELDS = "encoder, format, input_size, layers, name, readout, timesteps, version"
LAYER_FIELDS = "codebook, kind, name, neuron, size, weight_bits, weights"
NEURON_FIELDS = "leak_shift, reset, state_levels, threshold, v_bits"


def tiny_network() -> Network:
    """3 inputs -> fc1 (2 neurons, 4-entry codebook, v_bits 6) -> fc2 (2 neurons, v_bits 4)."""
    fc1 = Layer(name="fc1", index=np.array([[0, 1, -1], [3, -1, 2]], np.int32),
                codebook=(-3, -1, 1, 3), weight_bits=3,
                neuron=Neuron(threshold=5, leak_shift=1, reset=Reset.SUBTRACT, v_bits=6))
    fc2 = Layer(name="fc2", index=np.array([[1, 0], [-1, 1]], np.int32),
                codebook=(-2, 1), weight_bits=2,
                neuron=Neuron(threshold=3, leak_shift=0, reset=Reset.ZERO, v_bits=4))
    return Network(name="tiny", input_size=3, layers=[fc1, fc2], timesteps=5)


class Model:
    """A valid network directory on disk that a test can break one field at a time."""

    def __init__(self, path: Path):
        self.path = path
        save(tiny_network(), path)

    @property
    def yaml(self) -> str:
        return str(self.path / "network.yaml")

    @property
    def npz(self) -> str:
        return str(self.path / "arrays.npz")

    def edit(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to the parsed manifest and write it back."""
        manifest = yaml.safe_load(Path(self.yaml).read_text())
        change(manifest)
        Path(self.yaml).write_text(yaml.safe_dump(manifest, sort_keys=False))

    def edit_arrays(self, change: Callable[[dict[str, np.ndarray]], None]) -> None:
        """Apply ``change`` to the dict of arrays and write them back."""
        with np.load(self.npz) as npz:
            arrays = {key: npz[key] for key in npz.files}
        change(arrays)
        np.savez(self.npz, **arrays)

    def error(self) -> str:
        with pytest.raises(NetworkFormatError) as info:
            load(self.path)
        return str(info.value)


@pytest.fixture
def model(tmp_path: Path) -> Model:
    return Model(tmp_path / "model")


def _set(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    """Return a manifest edit that sets ``manifest[a][b]... = value``."""
    *path, key, value = path_and_value

    def change(manifest: dict[str, Any]) -> None:
        node = manifest
        for step in path:
            node = node[step]
        node[key] = value
    return change


def _delete(*path: Any) -> Callable[[dict[str, Any]], None]:
    *path, key = path

    def change(manifest: dict[str, Any]) -> None:
        node = manifest
        for step in path:
            node = node[step]
        del node[key]
    return change


# -- the valid network ----------------------------------------------------------------------------


def test_valid_tiny_network_loads(model):
    net = load(model.path)
    assert [layer.name for layer in net.layers] == ["fc1", "fc2"]


def test_save_load_round_trip_preserves_everything(tmp_path):
    original = tiny_network()
    original.readout = "spike_count"
    save(original, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert (loaded.name, loaded.input_size, loaded.timesteps, loaded.readout) == \
        ("tiny", 3, 5, "spike_count")
    assert len(loaded.layers) == 2
    for want, got in zip(original.layers, loaded.layers):
        assert (got.name, got.kind, got.codebook, got.weight_bits, got.neuron) == \
            (want.name, want.kind, want.codebook, want.weight_bits, want.neuron)
        assert type(got.codebook[0]) is int
        assert got.neuron.reset is want.neuron.reset
        assert got.index.dtype == np.int32
        np.testing.assert_array_equal(got.index, want.index)
    # Saving what was loaded writes the same manifest.
    save(loaded, tmp_path / "again")
    assert (tmp_path / "again" / "network.yaml").read_text() == \
        (tmp_path / "m" / "network.yaml").read_text()


def test_round_trip_of_wide_index_and_default_fields(tmp_path):
    # A 300-entry codebook needs int16 indices on disk; timesteps and readout may be omitted.
    index = np.array([[299, -1], [0, 150]], np.int64)
    layer = Layer(name="only", index=index, codebook=tuple(range(-150, 150)), weight_bits=9,
                  neuron=Neuron(threshold=2**23 - 1, leak_shift=23, reset=Reset.ZERO, v_bits=24))
    save(Network(name="wide", input_size=2, layers=[layer]), tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz") as npz:
        assert npz.files == ["only.index"]
        assert npz["only.index"].dtype == np.int16
    manifest_path = tmp_path / "m" / "network.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    del manifest["timesteps"], manifest["readout"]
    manifest_path.write_text(yaml.safe_dump(manifest))
    net = load(tmp_path / "m")
    assert (net.timesteps, net.readout) == (16, "spike_count")
    np.testing.assert_array_equal(net.layers[0].index, index)
    assert net.layers[0].neuron == layer.neuron


# -- top level ------------------------------------------------------------------------------------


def test_unknown_format(model):
    model.edit(_set("format", "snnhw-net"))
    assert model.error() == f"{model.yaml}: format: expected 'snnhw-network', got 'snnhw-net'"


@pytest.mark.parametrize("version", [3, 0, "1", 1.0, True])
def test_unknown_version(model, version):
    model.edit(_set("version", version))
    assert model.error() == \
        f"{model.yaml}: version: expected 1 or 2 (the versions this snnhw reads), got {version!r}"


def test_unknown_top_level_field(model):
    model.edit(_set("timestep", 4))
    assert model.error() == \
        f"{model.yaml}: unknown field 'timestep' (expected one of {TOP_FIELDS})"


@pytest.mark.parametrize("field", ["format", "version", "name", "input_size", "layers"])
def test_missing_top_level_field(model, field):
    model.edit(_delete(field))
    assert model.error() == f"{model.yaml}: missing field {field!r}"


@pytest.mark.parametrize("field,value,expected", [
    ("input_size", 0, "an integer >= 1"),
    ("input_size", True, "an integer >= 1"),
    ("input_size", 3.0, "an integer >= 1"),
    ("timesteps", 0, "an integer >= 1"),
    ("timesteps", False, "an integer >= 1"),
    ("name", "", "a non-empty name of letters, digits, '_', '.' and '-'"),
    ("name", "a\nb", "a non-empty name of letters, digits, '_', '.' and '-'"),
    ("readout", "membrane", "'spike_count'"),
])
def test_bad_top_level_value(model, field, value, expected):
    model.edit(_set(field, value))
    assert model.error() == f"{model.yaml}: {field}: expected {expected}, got {value!r}"


def test_empty_network(model):
    model.edit(_set("layers", []))
    assert model.error() == f"{model.yaml}: layers: expected a non-empty list of layers, got []"


# -- layers and neurons ---------------------------------------------------------------------------


def test_unknown_layer_field(model):
    model.edit(_set("layers", 1, "bias", 3))
    assert model.error() == \
        f"{model.yaml}: layers[1] (fc2): unknown field 'bias' (expected one of {LAYER_FIELDS})"


def test_unknown_neuron_field(model):
    model.edit(_set("layers", 0, "neuron", "tau", 2))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).neuron: unknown field 'tau' "
                             f"(expected one of {NEURON_FIELDS})")


@pytest.mark.parametrize("field", ["size", "weights", "codebook", "weight_bits", "neuron"])
def test_missing_layer_field(model, field):
    model.edit(_delete("layers", 1, field))
    assert model.error() == f"{model.yaml}: layers[1] (fc2): missing field {field!r}"


def test_missing_layer_name(model):
    model.edit(_delete("layers", 0, "name"))
    assert model.error() == f"{model.yaml}: layers[0]: missing field 'name'"


@pytest.mark.parametrize("field", ["threshold", "leak_shift", "reset", "v_bits"])
def test_missing_neuron_field(model, field):
    model.edit(_delete("layers", 0, "neuron", field))
    assert model.error() == f"{model.yaml}: layers[0] (fc1).neuron: missing field {field!r}"


def test_layer_not_a_mapping(model):
    model.edit(_set("layers", 1, "fc2"))
    assert model.error() == f"{model.yaml}: layers[1]: expected a mapping, got 'str'"


def test_unknown_kind(model):
    model.edit(_set("layers", 0, "kind", "conv"))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).kind: expected 'dense' or "
                             f"'recurrent' or 'conv2d', got 'conv'")


def test_unknown_reset(model):
    model.edit(_set("layers", 1, "neuron", "reset", "hold"))
    assert model.error() == \
        f"{model.yaml}: layers[1] (fc2).neuron.reset: expected 'subtract' or 'zero', got 'hold'"


@pytest.mark.parametrize("name,expected", [
    ("2fc", "an identifier ([A-Za-z_][A-Za-z0-9_]*)"),
    ("fc1", "a name not used by an earlier layer"),
])
def test_bad_layer_name(model, name, expected):
    def change(manifest):
        manifest["layers"][1]["name"] = name
        manifest["layers"][1]["weights"] = "fc2.index"
    model.edit(change)
    assert model.error() == f"{model.yaml}: layers[1].name: expected {expected}, got {name!r}"


@pytest.mark.parametrize("value", [5, -5])
def test_codebook_entry_must_fit_weight_bits(model, value):
    model.edit(_set("layers", 0, "codebook", [-3, -1, 1, value]))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).codebook[3]: expected an integer "
                             f"that fits weight_bits 3 (-4..3), got {value}")


def test_codebook_entry_fits_weight_bits_at_both_ends(model):
    model.edit(_set("layers", 0, "codebook", [-4, -1, 1, 3]))
    assert load(model.path).layers[0].codebook == (-4, -1, 1, 3)


@pytest.mark.parametrize("codebook,expected,got", [
    ([], "a list of 1..65536 integers", "()"),
    ("oops", "a list of integers", "'oops'"),
    ([1.5, 1, 1, 1], "an integer that fits weight_bits 3 (-4..3)", "1.5"),
])
def test_bad_codebook(model, codebook, expected, got):
    model.edit(_set("layers", 0, "codebook", codebook))
    field = "codebook[0]" if codebook and isinstance(codebook, list) else "codebook"
    assert model.error() == f"{model.yaml}: layers[0] (fc1).{field}: expected {expected}, got {got}"


@pytest.mark.parametrize("weight_bits", [0, 17])
def test_weight_bits_out_of_range(model, weight_bits):
    model.edit(_set("layers", 0, "weight_bits", weight_bits))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).weight_bits: expected an integer "
                             f"in 1..16, got {weight_bits}")


@pytest.mark.parametrize("threshold", [0, -1, 32])
def test_threshold_out_of_range(model, threshold):
    # v_bits 6: V in -32..31, so a neuron can only reach thresholds 1..31.
    model.edit(_set("layers", 0, "neuron", "threshold", threshold))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).neuron.threshold: expected an "
                             f"integer in 1..31, got {threshold}")


def test_threshold_at_the_top_of_v_range_is_valid(model):
    model.edit(_set("layers", 0, "neuron", "threshold", 31))
    assert load(model.path).layers[0].neuron.threshold == 31


@pytest.mark.parametrize("leak_shift", [-1, 6])
def test_leak_shift_out_of_range(model, leak_shift):
    model.edit(_set("layers", 0, "neuron", "leak_shift", leak_shift))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).neuron.leak_shift: expected an "
                             f"integer in 0..5, got {leak_shift}")


@pytest.mark.parametrize("v_bits", [1, 33])
def test_v_bits_out_of_range(model, v_bits):
    model.edit(_set("layers", 1, "neuron", "v_bits", v_bits))
    assert model.error() == (f"{model.yaml}: layers[1] (fc2).neuron.v_bits: expected an "
                             f"integer in 2..32, got {v_bits}")


@pytest.mark.parametrize("v_bits", [2, 32])
def test_v_bits_limits_are_valid(model, v_bits):
    model.edit(_set("layers", 1, "neuron", {"threshold": 1, "leak_shift": 1, "reset": "zero",
                                            "v_bits": v_bits}))
    assert load(model.path).layers[1].neuron.v_bits == v_bits


@pytest.mark.parametrize("path,expected", [
    (("layers", 0, "neuron", "threshold"), "layers[0] (fc1).neuron.threshold: expected an "
                                           "integer in 1..31"),
    (("layers", 0, "neuron", "v_bits"), "layers[0] (fc1).neuron.v_bits: expected an integer "
                                        "in 2..32"),
    (("layers", 1, "weight_bits"), "layers[1] (fc2).weight_bits: expected an integer in 1..16"),
    (("layers", 1, "size"), "layers[1] (fc2).size: expected an integer >= 1"),
    (("input_size",), "input_size: expected an integer >= 1"),
])
def test_bool_where_an_int_is_expected(model, path, expected):
    # YAML `true` is a Python bool, and bool is an int subclass: it must still be refused.
    model.edit(_set(*path, True))
    assert model.error() == f"{model.yaml}: {expected}, got True"


def test_bool_codebook_entry(model):
    model.edit(_set("layers", 1, "codebook", [-2, True]))
    assert model.error() == (f"{model.yaml}: layers[1] (fc2).codebook[1]: expected an integer "
                             f"that fits weight_bits 2 (-2..1), got True")


# -- arrays ---------------------------------------------------------------------------------------


def test_first_layer_fan_in_must_match_input_size(model):
    model.edit_arrays(_set("fc1.index", np.zeros((2, 4), np.int8)))
    assert model.error() == \
        f"{model.npz}: fc1.index: expected shape [size, 3] (fan-in 3), got (2, 4)"


def test_input_size_change_is_caught_by_the_first_layer(model):
    model.edit(_set("input_size", 4))
    assert model.error() == \
        f"{model.npz}: fc1.index: expected shape [size, 4] (fan-in 4), got (2, 3)"


def test_later_layer_fan_in_must_match_previous_layer_size(model):
    model.edit_arrays(_set("fc2.index", np.zeros((2, 3), np.int8)))
    assert model.error() == \
        f"{model.npz}: fc2.index: expected shape [size, 2] (fan-in 2), got (2, 3)"


def test_size_must_match_array_rows(model):
    model.edit(_set("layers", 0, "size", 3))
    assert model.error() == \
        f"{model.npz}: fc1.index: expected shape [3, 3] (size 3, fan-in 3), got (2, 3)"


@pytest.mark.parametrize("shape", [(6,), (1, 2, 3), ()])
def test_weights_must_be_a_matrix(model, shape):
    model.edit_arrays(_set("fc1.index", np.zeros(shape, np.int8)))
    if shape and shape[0] != 2:
        expected = "shape [2, 3] (size 2, fan-in 3)"
    else:
        expected = "shape [size, 3] (fan-in 3)"
    assert model.error() == f"{model.npz}: fc1.index: expected {expected}, got {shape}"


@pytest.mark.parametrize("value", [4, -2, 100])
def test_index_outside_the_codebook(model, value):
    def change(arrays):
        arrays["fc1.index"][1, 2] = value
    model.edit_arrays(change)
    assert model.error() == (f"{model.npz}: fc1.index[1, 2]: expected -1 (pruned) or a codebook "
                             f"index in 0..3, got {value}")


def test_index_at_the_ends_of_the_codebook_is_valid(model):
    def change(arrays):
        arrays["fc1.index"][:] = [[-1, 3, 0], [3, 3, -1]]
    model.edit_arrays(change)
    assert load(model.path).layers[0].index.tolist() == [[-1, 3, 0], [3, 3, -1]]


def test_index_error_in_a_later_layer_names_its_codebook_length(model):
    def change(arrays):
        arrays["fc2.index"][0, 1] = 2
    model.edit_arrays(change)
    assert model.error() == (f"{model.npz}: fc2.index[0, 1]: expected -1 (pruned) or a codebook "
                             f"index in 0..1, got 2")


def test_unsigned_index_array_is_accepted_and_widened(model):
    model.edit_arrays(_set("fc2.index", np.array([[1, 0], [0, 1]], np.uint8)))
    index = load(model.path).layers[1].index
    assert index.dtype == np.int32 and index.tolist() == [[1, 0], [0, 1]]


def test_missing_array(model):
    model.edit_arrays(_delete("fc2.index"))
    assert model.error() == (f"{model.yaml}: layers[1] (fc2).weights: expected the name of an "
                             f"array in {model.npz}, got 'fc2.index'")


def test_extra_array(model):
    model.edit_arrays(_set("fc3.index", np.zeros((1, 2), np.int8)))
    assert model.error() == (f"{model.npz}: unexpected array 'fc3.index' "
                             f"(not named by any layer's 'weights' in {model.yaml})")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.bool_])
def test_non_integer_array(model, dtype):
    model.edit_arrays(_set("fc1.index", np.zeros((2, 3), dtype)))
    assert model.error() == \
        f"{model.npz}: fc1.index: expected an integer array, got '{np.dtype(dtype)}'"


def test_errors_name_the_npz_key_the_manifest_uses(model):
    # The weights keys need not be <name>.index; errors must name the key actually in the file,
    # even when the keys are swapped between layers.
    def swap_keys(manifest):
        manifest["layers"][0]["weights"] = "fc2.index"
        manifest["layers"][1]["weights"] = "fc1.index"

    def swap_arrays(arrays):
        arrays["fc1.index"], arrays["fc2.index"] = arrays["fc2.index"], arrays["fc1.index"]
        arrays["fc2.index"][0, 0] = 9  # now fc1's array
    model.edit(swap_keys)
    model.edit_arrays(swap_arrays)
    assert model.error() == (f"{model.npz}: fc2.index[0, 0]: expected -1 (pruned) or a codebook "
                             f"index in 0..3, got 9")


# -- unreadable files -----------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("layers: [fc1\n  - : :\n", "not valid YAML at line 2"),
    ("{{{ :", "not valid YAML at line 1"),
    ("just a string\n", "expected a mapping, got 'str'"),
    ("", "expected a mapping, got 'NoneType'"),
    ("- 1\n- 2\n", "expected a mapping, got 'list'"),
])
def test_not_yaml(model, text, expected):
    Path(model.yaml).write_text(text)
    assert model.error() == f"{model.yaml}: {expected}"


def test_binary_garbage_manifest(model):
    Path(model.yaml).write_bytes(b"\xff\xfe\x00\x81garbage")
    assert model.error() == f"{model.yaml}: not valid YAML (not UTF-8 text)"


def test_missing_directory(tmp_path):
    with pytest.raises(NetworkFormatError) as info:
        load(tmp_path / "nope")
    assert str(info.value) == (f"{tmp_path / 'nope'}: expected a network directory with "
                               f"network.yaml and arrays.npz, but it does not exist")


def test_a_file_instead_of_a_directory(model):
    with pytest.raises(NetworkFormatError) as info:
        load(model.yaml)
    assert str(info.value) == (f"{model.yaml}: expected a network directory with "
                               f"network.yaml and arrays.npz, but it is not a directory")


def test_missing_manifest(model):
    os.unlink(model.yaml)
    assert model.error() == f"{model.yaml}: cannot read: No such file or directory"


def test_missing_arrays_file(model):
    os.unlink(model.npz)
    assert model.error() == f"{model.npz}: cannot read: No such file or directory"


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04garbage", b""])
def test_garbage_arrays_file(model, content):
    Path(model.npz).write_bytes(content)
    assert model.error() == \
        f"{model.npz}: not a readable .npz of integer arrays (not a .npz archive)"


def test_truncated_arrays_file(model):
    data = Path(model.npz).read_bytes()
    Path(model.npz).write_bytes(data[:len(data) // 2])
    assert model.error() == \
        f"{model.npz}: not a readable .npz of integer arrays (not a .npz archive)"


def test_corrupt_member_in_arrays_file(model):
    # Damage the first member's local header (its file name): the zip directory still reads.
    data = bytearray(Path(model.npz).read_bytes())
    for i in range(32, 40):
        data[i] ^= 0x55
    Path(model.npz).write_bytes(bytes(data))
    assert model.error() == \
        f"{model.npz}: fc1.index: not a readable array (corrupt or unsupported zip member)"


def test_npy_instead_of_npz(model):
    with open(model.npz, "wb") as f:
        np.save(f, np.zeros((2, 3), np.int8))
    assert model.error() == (f"{model.npz}: not a readable .npz of integer arrays "
                             f"(it holds a single ndarray, not named arrays)")


def test_pickled_array_is_refused(model):
    model.edit_arrays(_set("fc1.index", np.array([[0, 1, None], [0, 0, 0]], dtype=object)))
    assert model.error() == (f"{model.npz}: fc1.index: expected an array of numbers, got one of "
                             f"Python objects (dtype object)")


def _npz_with_member(path, key: str, member: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", member)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_member_with_a_huge_shape_is_refused_before_loading(model):
    # The header asks for 10**12 int64 elements (8 TB); numpy would raise MemoryError.
    header = _npy_bytes(np.zeros((2, 3), np.int64)).replace(b"(2, 3)", b"(1000000, 1000000)")
    _npz_with_member(model.npz, "fc1.index", header)
    assert model.error() == (f"{model.npz}: fc1.index: expected at most 2147483648 elements, "
                             f"but its header declares shape (1000000, 1000000) (8e+12 bytes)")


@pytest.mark.parametrize("member,why", [
    (b"", "the file is empty"),
    (b"\x93NUMPY\x01\x00\x10\x00{garbage}       \n", "its header cannot be read"),
    (b"PK not numpy at all", "no .npy magic string at its start"),
])
def test_member_with_a_bad_header(model, member, why):
    _npz_with_member(model.npz, "fc1.index", member)
    assert model.error() == f"{model.npz}: fc1.index: not a .npy array ({why})"


def test_member_shorter_than_its_header(model):
    _npz_with_member(model.npz, "fc1.index", _npy_bytes(np.zeros((2, 3), np.int8))[:-2])
    assert model.error() == \
        f"{model.npz}: fc1.index: not a readable array (corrupt or truncated data)"


def test_a_huge_codebook_is_quoted_in_one_short_line(model):
    model.edit(lambda m: m["layers"][0].update(codebook=list(range(70_000))))
    message = model.error()
    assert "\n" not in message and len(message) < 400
    assert message.endswith("...")


# -- save -----------------------------------------------------------------------------------------


def _invalid_network() -> Network:
    net = tiny_network()
    net.layers[1].neuron = Neuron(threshold=8, leak_shift=0, reset=Reset.ZERO, v_bits=4)
    return net


def test_save_of_invalid_network_raises_and_creates_nothing(tmp_path):
    target = tmp_path / "new" / "model"
    with pytest.raises(NetworkFormatError) as info:
        save(_invalid_network(), target)
    assert str(info.value) == \
        f"{target}: layers[1] (fc2).neuron.threshold: expected an integer in 1..7, got 8"
    assert not (tmp_path / "new").exists()


def test_save_of_invalid_network_leaves_an_empty_directory_empty(tmp_path):
    with pytest.raises(NetworkFormatError):
        save(_invalid_network(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_save_of_invalid_network_leaves_an_existing_model_untouched(model):
    before = {p.name: p.read_bytes() for p in model.path.iterdir()}
    bad = tiny_network()
    bad.layers[0].index = bad.layers[0].index.astype(np.float32)
    with pytest.raises(NetworkFormatError) as info:
        save(bad, model.path)
    assert str(info.value) == \
        f"{model.path}/arrays.npz: fc1.index: expected an integer array, got 'float32'"
    assert {p.name: p.read_bytes() for p in model.path.iterdir()} == before


@pytest.mark.parametrize("breakage,expected", [
    (lambda n: setattr(n, "layers", []), "layers: expected at least one layer, got []"),
    (lambda n: setattr(n.layers[0], "codebook", (-3, -1, 1, 9)),
     "layers[0] (fc1).codebook[3]: expected an integer that fits weight_bits 3 (-4..3), got 9"),
    (lambda n: setattr(n.layers[1], "index", np.zeros((2, 3), np.int32)),
     "{npz}: fc2.index: expected shape [size, 2] (fan-in 2), got (2, 3)"),
    (lambda n: setattr(n.layers[1], "kind", "conv"),
     "layers[1] (fc2).kind: expected 'dense' or 'recurrent' or 'conv2d', got 'conv'"),
])
def test_save_validates(tmp_path, breakage, expected):
    net = tiny_network()
    breakage(net)
    with pytest.raises(NetworkFormatError) as info:
        save(net, tmp_path / "m")
    if expected.startswith("{npz}"):
        want = expected.format(npz=f"{tmp_path / 'm'}/arrays.npz")
    else:
        want = f"{tmp_path / 'm'}: {expected}"
    assert str(info.value) == want
    assert not (tmp_path / "m").exists()


# -- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def good_inputs(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.ones((2, 4, 3), np.uint8))
    return path


def _simulate(capsys, model: Path, inputs: Path, out: Path) -> tuple[int, str, str]:
    status = main(["simulate", str(model), "--inputs", str(inputs), "--out", str(out)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_bad_model_is_one_line_and_status_2(model, good_inputs, tmp_path, capsys):
    model.edit(_set("layers", 0, "neuron", "threshold", 0))
    out = tmp_path / "r.npz"
    status, stdout, stderr = _simulate(capsys, model.path, good_inputs, out)
    assert status == 2
    assert stdout == ""
    assert stderr == (f"snnhw: error: {model.yaml}: layers[0] (fc1).neuron.threshold: expected "
                      f"an integer in 1..31, got 0\n")
    assert not out.exists()


@pytest.mark.parametrize("breakage", [
    lambda m: Path(m.yaml).write_bytes(b"\xff\x00"),
    lambda m: Path(m.npz).write_bytes(b"PK\x03\x04"),
    lambda m: Path(m.yaml).write_text("{{{"),
    lambda m: os.unlink(m.npz),
])
def test_cli_unreadable_model_files_are_one_line(model, good_inputs, tmp_path, capsys, breakage):
    breakage(model)
    status, _, stderr = _simulate(capsys, model.path, good_inputs, tmp_path / "r.npz")
    assert status == 2
    assert stderr.startswith("snnhw: error: ") and stderr.count("\n") == 1
    assert "Traceback" not in stderr


def test_cli_bad_model_through_a_subprocess(model, good_inputs, tmp_path):
    model.edit(_set("version", 3))
    out = tmp_path / "r.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "snnhw", "simulate", str(model.path), "--inputs", str(good_inputs),
         "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (f"snnhw: error: {model.yaml}: version: expected 1 or 2 (the versions "
                           f"this snnhw reads), got 3\n")
    assert not out.exists()


@pytest.mark.parametrize("array,expected", [
    (np.ones((2, 4, 4), np.uint8),
     "expected shape [samples, timesteps, 3] (input_size of tiny), got (2, 4, 4)"),
    (np.ones((4, 3), np.uint8),
     "expected shape [samples, timesteps, 3] (input_size of tiny), got (4, 3)"),
    (np.zeros((0, 4, 3), np.uint8),
     "expected shape [samples, timesteps, 3] (input_size of tiny), got (0, 4, 3)"),
    (np.full((2, 4, 3), 2, np.uint8),
     "expected only 0 and 1 (spike or none), found values in 2..2"),
    (np.full((2, 4, 3), -1, np.int8),
     "expected only 0 and 1 (spike or none), found values in -1..-1"),
    (np.ones((2, 4, 3), np.float32), "expected an integer 0/1 spike array, got dtype float32"),
])
def test_cli_bad_inputs_write_no_result(model, tmp_path, capsys, array, expected):
    inputs = tmp_path / "x.npy"
    np.save(inputs, array)
    out = tmp_path / "r.npz"
    status, stdout, stderr = _simulate(capsys, model.path, inputs, out)
    assert status == 2
    assert stdout == ""
    assert stderr == f"snnhw: error: {inputs}: {expected}\n"
    assert not out.exists()


def test_cli_missing_inputs_file(model, tmp_path, capsys):
    out = tmp_path / "r.npz"
    status, _, stderr = _simulate(capsys, model.path, tmp_path / "none.npy", out)
    assert status == 2
    assert stderr == \
        f"snnhw: error: {tmp_path / 'none.npy'}: cannot read: No such file or directory\n"
    assert stderr.count("\n") == 1
    assert not out.exists()


def test_cli_unwritable_out_is_one_line(model, good_inputs, tmp_path, capsys):
    out = tmp_path / "no-such-dir" / "r.npz"
    status, _, stderr = _simulate(capsys, model.path, good_inputs, out)
    assert status == 2
    # Checked while parsing the flags, before the golden model runs.
    assert stderr == (f"snnhw: error: --out: cannot write '{out}': directory '{out.parent}' "
                      f"does not exist\n")


# -- version 2: neuron models of snnTorch and NIR -----------------------------------------------


def version_2_network() -> Network:
    """tiny_network with fc1 in snnTorch's semantics (per-neuron arrays, beta) and fc2 with no
    reset."""
    import dataclasses

    from snnhw.network.format import Fire, ResetTiming, Rounding

    net = tiny_network()
    fc1, fc2 = net.layers
    fc1.neuron = dataclasses.replace(
        fc1.neuron, threshold=(5, 7), leak_shift=0, fire=Fire.GT,
        reset_timing=ResetTiming.DEFERRED, beta=(15, 16), beta_bits=5, beta_frac_bits=4,
        beta_rounding=Rounding.NEAREST, bias=(-1, 2))
    fc2.neuron = dataclasses.replace(fc2.neuron, reset=Reset.NONE, bias=1)
    return net


def test_version_1_network_is_written_as_version_1(model):
    manifest = yaml.safe_load(Path(model.yaml).read_text())
    assert manifest["version"] == 1
    assert set(manifest["layers"][0]["neuron"]) == {"threshold", "leak_shift", "reset", "v_bits"}


def test_version_2_round_trip(tmp_path):
    net = version_2_network()
    save(net, tmp_path / "m")
    manifest = yaml.safe_load((tmp_path / "m" / "network.yaml").read_text())
    assert manifest["version"] == 2
    assert manifest["layers"][0]["neuron"] == {
        "threshold": "fc1.threshold", "leak_shift": 0, "reset": "subtract", "v_bits": 6,
        "fire": ">", "reset_timing": "deferred", "beta": "fc1.beta", "beta_bits": 5,
        "beta_frac_bits": 4, "beta_rounding": "nearest", "bias": "fc1.bias"}
    assert manifest["layers"][1]["neuron"] == {"threshold": 3, "leak_shift": 0, "reset": "none",
                                               "v_bits": 4, "bias": 1}
    with np.load(tmp_path / "m" / "arrays.npz") as npz:
        assert sorted(npz.files) == ["fc1.beta", "fc1.bias", "fc1.index", "fc1.threshold",
                                     "fc2.index"]
    loaded = load(tmp_path / "m")
    for got, want in zip(loaded.layers, net.layers):
        assert got.neuron == want.neuron


def version_2_model(tmp_path) -> Model:
    model = Model.__new__(Model)
    model.path = tmp_path / "v2"
    save(version_2_network(), model.path)
    return model


@pytest.mark.parametrize("field,value,expected", [
    ("fire", ">>", "expected '>=' or '>', got '>>'"),
    ("reset_timing", "later", "expected 'immediate' or 'deferred' or 'immediate_snntorch', "
                              "got 'later'"),
    ("beta_rounding", "up", "expected 'floor' or 'nearest', got 'up'"),
    ("beta", 17, "expected an integer in 0..16, got 17"),
    ("beta_frac_bits", 25, "expected an integer in 1..24, got 25"),
    ("leak_shift", 2, "expected 0 with 'beta' (the leak is the shift or the multiply), got 2"),
    ("bias", 32, "expected an integer in -32..31, got 32"),
    ("threshold", "fc9.threshold", "expected an integer or the name of an array in "),
])
def test_version_2_bad_fields(tmp_path, field, value, expected):
    model = version_2_model(tmp_path)
    model.edit(_set("layers", 0, "neuron", field, value))
    if field in ("threshold", "beta", "bias"):  # the array it named is no longer used
        model.edit_arrays(lambda arrays: arrays.pop(f"fc1.{field}"))
    assert model.error().startswith(f"{model.yaml}: layers[0] (fc1).neuron.{field}: "
                                    f"{expected}")


def test_version_2_timing_needs_a_reset(tmp_path):
    model = version_2_model(tmp_path)
    model.edit(_set("layers", 1, "neuron", "reset_timing", "deferred"))
    assert model.error() == (f"{model.yaml}: layers[1] (fc2).neuron.reset_timing: expected "
                             f"'immediate' with reset 'none' (there is no reset to time), "
                             f"got 'deferred'")


def test_version_2_per_neuron_array_of_the_wrong_length(tmp_path):
    model = version_2_model(tmp_path)
    model.edit_arrays(lambda arrays: arrays.update({"fc1.bias": np.array([1, 2, 3])}))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).neuron.bias: expected one value "
                             f"per neuron (2), got 3 values")


def test_version_2_fields_in_a_version_1_file_are_unknown(model):
    model.edit(_set("layers", 0, "neuron", "fire", ">"))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).neuron: unknown field 'fire' "
                             f"(expected one of {NEURON_FIELDS})")
    model.edit(_set("layers", 0, "neuron", {"threshold": 5, "leak_shift": 1, "reset": "none",
                                            "v_bits": 6}))
    assert model.error() == (f"{model.yaml}: layers[0] (fc1).neuron.reset: expected 'subtract' "
                             f"or 'zero', got 'none'")
