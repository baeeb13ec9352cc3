"""snnTorch networks in (snnhw.frontends.snntorch): exact where the network is integer by
construction, close where it is not.

The reference is snnTorch's own forward (``snn.Leaky`` called step by step); the integer network
runs in the golden model. Every spike of every layer at every timestep is compared.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
from torch import nn  # noqa: E402

from snnhw.errors import SnnhwError  # noqa: E402
from snnhw.frontends.quantize import agreement  # noqa: E402
from snnhw.frontends.snntorch import from_module  # noqa: E402
from snnhw.golden import simulate  # noqa: E402
from snnhw.network.format import ResetTiming  # noqa: E402


def integer_network(sizes, *, reset, reset_delay, seed, per_neuron_threshold=False,
                    init_hidden=False):
    """Linear / Leaky pairs with integer weights, biases and thresholds and beta = 1
    (``init_hidden`` for snnTorch's NIR export, which runs the Sequential itself)."""
    g = torch.Generator().manual_seed(seed)
    modules = []
    for fan_in, size in zip(sizes, sizes[1:]):
        linear = nn.Linear(fan_in, size)
        with torch.no_grad():
            linear.weight.copy_(torch.randint(-3, 4, (size, fan_in), generator=g).float())
            linear.bias.copy_(torch.randint(-1, 2, (size,), generator=g).float())
        threshold = (torch.randint(2, 7, (size,), generator=g).float() if per_neuron_threshold
                     else torch.full((size,), 4.0))
        # Per-neuron beta and threshold tensors: snnTorch's NIR export needs their shapes.
        modules += [linear, snn.Leaky(beta=torch.ones(size), threshold=threshold,
                                      reset_mechanism=reset, reset_delay=reset_delay,
                                      init_hidden=init_hidden)]
    return nn.Sequential(*modules)


def snntorch_spikes(model, inputs: np.ndarray) -> list[np.ndarray]:
    """Every layer's spikes [samples, timesteps, size] from snnTorch's own forward."""
    modules = list(model.children())
    pairs = list(zip(modules[::2], modules[1::2]))
    mems = [None] * len(pairs)
    out = [[] for _ in pairs]
    with torch.no_grad():
        for t in range(inputs.shape[1]):
            s = torch.from_numpy(inputs[:, t]).float()
            for number, (linear, leaky) in enumerate(pairs):
                current = linear(s)
                if mems[number] is None:
                    mems[number] = torch.zeros_like(current)
                s, mems[number] = leaky(current, mems[number])
                out[number].append(s.numpy().astype(np.uint8))
    return [np.stack(spikes, axis=1) for spikes in out]


def spikes_in(net, inputs) -> list[np.ndarray]:
    result = simulate(net, inputs)
    return [result.spikes[layer.name] for layer in net.layers]


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("reset_delay", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_integer_networks_are_exact(reset, reset_delay, seed):
    model = integer_network([20, 30, 10], reset=reset, reset_delay=reset_delay, seed=seed,
                            per_neuron_threshold=bool(seed))
    rng = np.random.default_rng(seed)
    inputs = (rng.random((40, 25, 20)) < 0.4).astype(np.uint8)
    net = from_module(model, timesteps=25)
    want = snntorch_spikes(model, inputs)
    got = spikes_in(net, inputs)
    assert all(w.sum() > 0 for w in want)  # the comparison is not of silent layers
    for layer, ours, theirs in zip(net.layers, got, want):
        assert np.array_equal(ours, theirs), layer.name
    assert net.layers[0].neuron.v_bits <= 16


def test_snntorch_immediate_subtract_is_not_plain_immediate():
    # reset_delay=False with subtraction compares V - threshold after an overshoot: the plain
    # immediate timing would give other spikes on this network.
    import dataclasses

    model = integer_network([20, 30, 10], reset="subtract", reset_delay=False, seed=0)
    inputs = (np.random.default_rng(0).random((40, 25, 20)) < 0.4).astype(np.uint8)
    net = from_module(model, timesteps=25)
    assert net.layers[0].neuron.reset_timing is ResetTiming.IMMEDIATE_SNNTORCH
    for layer in net.layers:
        layer.neuron = dataclasses.replace(layer.neuron, reset_timing=ResetTiming.IMMEDIATE)
    assert not np.array_equal(spikes_in(net, inputs)[0], snntorch_spikes(model, inputs)[0])


def float_network(seed=0, sizes=(64, 48, 10)):
    """A tutorial-style network: beta 0.9, threshold 1, subtract reset, biases on."""
    torch.manual_seed(seed)
    modules = []
    for fan_in, size in zip(sizes, sizes[1:]):
        linear = nn.Linear(fan_in, size)
        with torch.no_grad():
            linear.weight.mul_(2.0).add_(0.05)
        modules += [linear, snn.Leaky(beta=0.9)]
    return nn.Sequential(*modules)


@pytest.mark.parametrize("weight_bits,floor", [(16, 0.97), (8, 0.8)])
def test_float_network_agrees_closely(weight_bits, floor):
    model = float_network()
    inputs = (np.random.default_rng(0).random((200, 25, 64)) < 0.3).astype(np.uint8)
    net = from_module(model, timesteps=25, weight_bits=weight_bits, beta_frac_bits=16)
    measured = agreement(snntorch_spikes(model, inputs), spikes_in(net, inputs))
    print(f"weight_bits {weight_bits}: spike agreement {measured['layer_spike_agreement']}, "
          f"prediction agreement {measured['prediction_agreement']}")
    assert min(measured["layer_spike_agreement"]) >= floor
    assert measured["prediction_agreement"] >= floor


def test_codebook_quantization():
    model = float_network()
    net = from_module(model, timesteps=25, weight_bits=8, codebook=16)
    assert all(len(layer.codebook) <= 16 for layer in net.layers)
    inputs = (np.random.default_rng(1).random((100, 25, 64)) < 0.3).astype(np.uint8)
    measured = agreement(snntorch_spikes(model, inputs), spikes_in(net, inputs))
    assert measured["prediction_agreement"] >= 0.5


def test_reads_the_modules_parameters():
    model = nn.Sequential(nn.Linear(3, 2, bias=False),
                          snn.Leaky(beta=torch.tensor([0.5, 1.0]), threshold=2.0,
                                    reset_mechanism="zero", reset_delay=True))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.0], [3.0, 1.0, 1.0]]))
    neuron = from_module(model, timesteps=8, beta_frac_bits=8).layers[0].neuron
    assert (neuron.threshold, neuron.beta, neuron.beta_frac_bits, neuron.bias) == \
        (2, (128, 256), 8, 0)
    assert neuron.reset.value == "zero" and neuron.reset_timing is ResetTiming.DEFERRED


@pytest.mark.parametrize("modules,message", [
    (lambda: [nn.Linear(3, 2), nn.ReLU()], "module 1 (ReLU): expected snn.Leaky (other "
                                           "neurons are not supported)"),
    (lambda: [nn.Linear(3, 2), snn.Leaky(beta=0.9, inhibition=True)],
     "module 1 (Leaky): inhibition: not supported"),
    (lambda: [nn.Linear(3, 2), snn.Leaky(beta=0.9, threshold=0.0)],
     "snntorch: layer fc1: threshold: expected numbers > 0, got 0"),
    (lambda: [nn.Linear(3, 2), snn.Leaky(beta=0.9), nn.Linear(3, 2), snn.Leaky(beta=0.9)],
     "module 2 (Linear): expected 2 inputs (the previous layer's size), got 3"),
])
def test_refusals(modules, message):
    with pytest.raises(SnnhwError) as info:
        from_module(nn.Sequential(*modules()), timesteps=4)
    assert str(info.value) == message
