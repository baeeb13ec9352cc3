"""Convolutional layers (``kind: conv2d``): format, golden model, torch, training and export.

Three implementations of a convolution's currents are compared: the golden model's dense product
with the unrolled (Toeplitz) matrix, the event-driven walk over kernel taps that the hardware
will do (:meth:`Conv2d.synapses_of`), and torch's ``conv2d``; and every comparison is shown to
fail on a kernel with one tap moved.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from snnhw.errors import NetworkFormatError
from snnhw.golden import simulate
from snnhw.network import Layer, Network, Neuron, Reset, load, save
from snnhw.network.connectivity import ConvGeometry
from snnhw.random_networks import random_inputs
from conftest import assert_torch_matches_golden


def conv_network(rng, channels, height, width, out_channels, kernel, stride, padding, *,
                 codebook_size=4, density=0.7, classes=3, timesteps=6, v_bits=10):
    """A conv2d layer then a dense layer, random codebooks, thresholds set so both fire."""
    geometry = ConvGeometry((channels, height, width), stride, padding)
    codebook = tuple(int(c) for c in rng.choice(np.arange(-3, 8), codebook_size, replace=False))
    index = rng.integers(0, codebook_size, (out_channels, channels, kernel, kernel))
    index[rng.random(index.shape) >= density] = -1
    neuron = Neuron(threshold=1, leak_shift=2, reset=Reset.SUBTRACT, v_bits=v_bits)
    conv = Layer("conv1", index.astype(np.int32), codebook, 4, neuron, kind="conv2d",
                 conv=geometry)
    dense_index = rng.integers(-1, codebook_size, (classes, conv.size)).astype(np.int32)
    dense = Layer("fc2", dense_index, codebook, 4, neuron)
    net = Network("conv", channels * height * width, [conv, dense], timesteps=timesteps)
    inputs = random_inputs(rng, net, samples=8, rate=0.4)
    pre = inputs.astype(np.int64)
    for layer in net.layers:  # a threshold near a typical positive current of the layer
        currents = pre @ layer.dense_weights().T
        positive = currents[currents > 0]
        theta = int(np.percentile(positive, 60)) if positive.size else 1
        layer.neuron = replace(neuron, threshold=int(np.clip(theta, 1, (1 << (v_bits - 1)) - 1)))
        pre = simulate(Network("one", layer.fan_in, [layer], timesteps=timesteps),
                       pre.astype(np.uint8)).spikes[layer.name].astype(np.int64)
    return net


@st.composite
def conv_networks(draw):
    kernel = draw(st.integers(1, 3))
    padding = draw(st.integers(0, 1))
    size = st.integers(max(1, kernel - 2 * padding), 7)
    return conv_network(
        np.random.default_rng(draw(st.integers(0, 2**32 - 1))), draw(st.integers(1, 3)),
        draw(size), draw(size), draw(st.integers(1, 4)), kernel, draw(st.integers(1, 2)),
        padding, codebook_size=draw(st.sampled_from([1, 2, 4])),
        density=draw(st.sampled_from([0.3, 0.7, 1.0])))


def shifted_tap(net):
    """The network with one kept kernel tap moved one place along x (the wrong model)."""
    layer = net.layers[0]
    index = layer.index.copy()
    oc, ic, ky, kx = (int(x) for x in np.argwhere(index >= 0)[0])
    moved = (kx + 1) % index.shape[3] if index.shape[3] > 1 else kx
    moved_y = ky if index.shape[3] > 1 else (ky + 1) % index.shape[2]
    index[oc, ic, ky, kx], index[oc, ic, moved_y, moved] = index[oc, ic, moved_y, moved], -1
    if (index == layer.index).all():  # the tap moved onto an equal tap: use another index
        index[oc, ic, moved_y, moved] = -1
    return replace(net, layers=[replace(layer, index=index)] + net.layers[1:])


def torch_currents(layer, spikes):
    import torch
    from torch.nn import functional

    kernel = torch.from_numpy(layer.connectivity.stored_weights(layer.codebook).astype(float))
    images = torch.from_numpy(spikes.astype(float)).reshape(-1, *layer.conv.input_shape)
    out = functional.conv2d(images, kernel, stride=layer.conv.stride, padding=layer.conv.padding)
    return out.reshape(len(spikes), -1).numpy().astype(np.int64)


def event_currents(layer, spikes):
    """Currents [samples, size] by walking each input event's kernel taps (the hardware's way)."""
    connectivity, table = layer.connectivity, np.asarray(layer.codebook, np.int64)
    currents = np.zeros((len(spikes), layer.size), np.int64)
    for sample, pre in zip(*np.nonzero(spikes)):
        targets, indices = connectivity.synapses_of(int(pre))
        assert (np.diff(targets) > 0).all()
        currents[sample, targets] += table[indices]
    return currents


@settings(max_examples=40, deadline=None)
@given(net=conv_networks(), seed=st.integers(0, 1000))
def test_unrolled_matrix_event_walk_and_torch_agree(net, seed):
    layer = net.layers[0]
    spikes = (np.random.default_rng(seed).random((5, layer.fan_in)) < 0.5).astype(np.int64)
    dense = spikes @ layer.dense_weights().T
    np.testing.assert_array_equal(event_currents(layer, spikes), dense)
    np.testing.assert_array_equal(torch_currents(layer, spikes), dense)
    # The cycle and energy models' synapse events per input event are the taps the walk hits.
    walked = [len(layer.connectivity.synapses_of(i)[0]) for i in range(layer.fan_in)]
    np.testing.assert_array_equal(layer.connectivity.fan_out(), walked)


def test_a_shifted_tap_changes_every_implementation():
    net = conv_network(np.random.default_rng(1), 2, 6, 5, 3, 3, 2, 1)
    layer, wrong = net.layers[0], shifted_tap(net).layers[0]
    spikes = (np.random.default_rng(2).random((20, layer.fan_in)) < 0.5).astype(np.int64)
    dense = spikes @ layer.dense_weights().T
    for currents in (spikes @ wrong.dense_weights().T, event_currents(wrong, spikes),
                     torch_currents(wrong, spikes)):
        assert (currents != dense).any()


def test_output_geometry_matches_torch():
    net = conv_network(np.random.default_rng(0), 1, 28, 28, 8, 3, 2, 0)
    assert net.layers[0].connectivity.output_shape == (8, 13, 13)
    assert net.layers[0].size == 8 * 13 * 13 == net.layers[1].fan_in
    # Sparsity and synapses count the kernel, which the core stores once.
    layer = net.layers[0]
    assert layer.synapse_count == (layer.index >= 0).sum()
    stored = np.asarray(layer.codebook + (0,))[layer.index]
    assert layer.sparsity == pytest.approx(1 - np.count_nonzero(stored) / stored.size)


# -- the format -----------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    net = conv_network(np.random.default_rng(4), 2, 5, 6, 3, 3, 2, 1)
    save(net, tmp_path / "m")
    manifest = yaml.safe_load((tmp_path / "m" / "network.yaml").read_text())
    entry = manifest["layers"][0]
    assert (entry["kind"], entry["input_shape"], entry["stride"], entry["padding"],
            entry["size"]) == ("conv2d", [2, 5, 6], 2, 1, 3 * 3 * 3)
    assert "input_shape" not in manifest["layers"][1]
    loaded = load(tmp_path / "m")
    inputs = random_inputs(np.random.default_rng(0), net, samples=4, rate=0.4)
    for name, spikes in simulate(net, inputs).spikes.items():
        np.testing.assert_array_equal(simulate(loaded, inputs).spikes[name], spikes)


def _saved(tmp_path):
    net = conv_network(np.random.default_rng(4), 2, 5, 6, 3, 3, 2, 1)
    save(net, tmp_path / "m")
    return tmp_path / "m" / "network.yaml", tmp_path / "m" / "arrays.npz"


@pytest.mark.parametrize("field,value,message", [
    ("input_shape", [2, 5, 5], "layers[0] (conv1).input_shape: expected channels * height * "
                               "width = 60 (the previous layer's size, or the input's), got "
                               "[2, 5, 5]"),
    ("input_shape", [2, 3, 10], "layers[0] (conv1).size: expected 30 (output shape [3, 2, 5]), "
                                "got 27"),
    ("input_shape", [3, 5, 4], "arrays.npz: conv1.index: expected a kernel of shape "
                               "[out_channels, 3, K, K] (input channels 3), got (3, 2, 3, 3)"),
    ("input_shape", [2, 30], "layers[0] (conv1).input_shape: expected [channels, height, "
                             "width], got (2, 30)"),
    ("stride", 0, "layers[0] (conv1).stride: expected an integer >= 1, got 0"),
    ("padding", -1, "layers[0] (conv1).padding: expected an integer >= 0, got -1"),
    ("size", 30, "layers[0] (conv1).size: expected 27 (output shape [3, 3, 3]), got 30"),
    ("kernel", 1, "arrays.npz: conv1.index: expected a kernel of shape [out_channels, 2, K, K] "
                  "(input channels 2)"),
])
def test_bad_conv_fields_are_named(tmp_path, field, value, message):
    yaml_path, npz_path = _saved(tmp_path)
    manifest = yaml.safe_load(yaml_path.read_text())
    if field == "kernel":
        with np.load(npz_path) as npz:
            arrays = {key: npz[key] for key in npz.files}
        arrays["conv1.index"] = arrays["conv1.index"][:, :, :2, :]  # not square
        np.savez(npz_path, **arrays)
    else:
        manifest["layers"][0][field] = value
    yaml_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    with pytest.raises(NetworkFormatError) as info:
        load(tmp_path / "m")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_kernel_larger_than_the_padded_input_is_refused():
    net = conv_network(np.random.default_rng(0), 1, 4, 4, 2, 3, 1, 0)
    layer = net.layers[0]
    small = replace(layer, conv=ConvGeometry((4, 2, 2), 1, 0),
                    index=np.zeros((2, 4, 3, 3), np.int32))
    with pytest.raises(NetworkFormatError, match=r"^out/arrays.npz: conv1.index: expected a "
                                                 r"kernel size of at most 2 \(input height 2 \+ "
                                                 r"2 \* padding 0\); stride 1, got \(2, 4, 3, 3\)"):
        replace(net, layers=[small] + net.layers[1:]).validate("out")


def test_geometry_on_a_dense_layer_is_refused():
    net = conv_network(np.random.default_rng(0), 1, 4, 4, 2, 3, 1, 0)
    dense = replace(net.layers[1], conv=ConvGeometry((1, 2, 4)))
    with pytest.raises(NetworkFormatError, match=r"layers\[1\] \(fc2\)\.input_shape: expected "
                                                 r"no value for kind 'dense'"):
        replace(net, layers=[net.layers[0], dense]).validate("out")


# -- torch ----------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(net=conv_networks(), seed=st.integers(0, 1000))
def test_torch_integer_mode_matches_golden(net, seed):
    assert_torch_matches_golden(net, random_inputs(np.random.default_rng(seed), net, samples=6,
                                                   rate=0.4))


def test_golden_and_torch_see_a_shifted_tap():
    from snnhw.train.export import exact_spikes
    from snnhw.train.model import from_network

    net = conv_network(np.random.default_rng(1), 2, 6, 5, 3, 3, 2, 1)
    inputs = random_inputs(np.random.default_rng(3), net, samples=20, rate=0.4)
    golden, wrong = simulate(net, inputs), simulate(shifted_tap(net), inputs)
    assert (golden.v_trace["conv1"] != wrong.v_trace["conv1"]).any()
    torch_wrong = exact_spikes(from_network(shifted_tap(net)), inputs)
    assert (torch_wrong["fc1"] != golden.spikes["conv1"]).any()


# -- training -------------------------------------------------------------------------------------


def test_training_compresses_and_exports_a_conv_layer(tmp_path):
    """Float training, FSC pruning, QAT, clustering and threshold-centred states on a conv
    layer (8x8 digits), exported bit-exact against torch's integer mode."""
    from snnhw.train.pipeline import compress, finish, prepare
    from snnhw.train.recipe import parse_recipe

    recipe = parse_recipe({
        "name": "conv", "data": {"timesteps": 6},
        "model": {"conv": [{"channels": 4, "kernel": 3, "stride": 2, "padding": 1}],
                  "hidden": []},
        "train": {"epochs": 1, "progress": False},
        "compress": [{"prune": {"method": "fsc", "sparsity": 0.5, "rounds": 1, "epochs": 1,
                                "score_samples": 64}},
                     {"qat": {"bits": 4, "epochs": 1}},
                     {"cluster": {"values": 4, "bits": 6, "epochs": 1}},
                     {"state": {"bits": 2, "scheme": "threshold", "epochs": 1}}],
    }, "r.yaml")
    ctx = prepare(recipe)
    assert ctx.model.layers[0].weight.shape == (4, 1, 3, 3)
    assert ctx.model.layers[1].fan_in == 4 * 4 * 4
    compress(ctx, recipe.compress)
    metrics = finish(ctx, tmp_path / "out")
    net = load(tmp_path / "out")
    assert [layer.kind for layer in net.layers] == ["conv2d", "dense"]
    assert net.layers[0].conv == ConvGeometry((1, 8, 8), 2, 1)
    assert len(net.layers[0].neuron.state_levels) == 4
    assert metrics["spike_mismatches"] == 0 == metrics["v_mismatches"]
    assert (ctx.model.layers[0].mask == 0).any() and net.layers[0].dense_weights().any()
    # The kernel is stored once: 36 taps, a code of at most 3 bits each (4 values, pruned).
    memory = metrics["memory"]["layers"]["fc1"]
    assert memory["layout"] == "kernel" and 36 <= memory["synapse_bits"] <= 36 * 3
    assert memory["fp32_bits"] == 32 * 36


@pytest.mark.parametrize("model,message", [
    ({"conv": [{"kernel": 11}]},
     "r.yaml: model.conv[0].kernel: expected a kernel size (the input is 8 pixels wide, padded "
     "by 0) in 1..8, got 11"),
    ({"conv": [{"stride": 0}]}, "r.yaml: model.conv[0].stride: expected a stride in 1..8, got 0"),
    ({"conv": [{"channels": 2}], "recurrent": [True]},
     "r.yaml: model.recurrent[0]: expected false for a conv layer, got true"),
])
def test_recipe_conv_mistakes_name_the_field(model, message):
    from snnhw.train.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError) as info:
        parse_recipe({"model": model}, "r.yaml")
    assert str(info.value) == message


@pytest.mark.parametrize("conv", [None, (3, 2, 2, 1)])
def test_per_sample_synapse_gradients_are_the_weight_gradients(conv):
    """FSC's per-sample gradients (a kernel's for a conv layer) equal autograd's, sample by
    sample."""
    import torch

    from snnhw.train.model import ConvLayer, LIFLayer

    torch.manual_seed(0)
    if conv is None:
        layer = LIFLayer(20, 6)
    else:
        channels, kernel, stride, padding = conv
        shape = ConvLayer(channels, kernel, ConvGeometry((2, 5, 4), stride, padding))
        layer = LIFLayer(40, shape.size, conv=shape)
    layer.weight.data.normal_()
    inputs = (torch.rand(3, 4, layer.fan_in) < 0.5).float()
    grad = torch.randn(3, 4, layer.size)
    per_sample = layer.synapse_gradients(inputs, grad)
    for n in range(3):
        weight = layer.weight.detach().clone().requires_grad_()
        (layer._currents(inputs[n:n + 1], weight) * grad[n:n + 1]).sum().backward()
        torch.testing.assert_close(per_sample[n], weight.grad, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(per_sample[0], per_sample[1])  # one gradient per sample
