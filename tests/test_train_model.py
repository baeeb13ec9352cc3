"""The torch integer mode against the golden model: every spike, not just the predictions.

Two directions: arbitrary integer networks (random codebooks, pruning, saturation, both resets,
leak or none) loaded into torch, and trained + quantized torch models exported to the format.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnhw.golden import simulate
from snnhw.network import Reset
from snnhw.random_networks import random_inputs, random_network
from snnhw.train.export import exact_spikes, to_network
from snnhw.train.model import SNN, from_network, spike
from snnhw.train.quant import make_quantizer
from conftest import assert_torch_matches_golden


def assert_same_spikes(net, model, inputs):
    golden = simulate(net, inputs)
    ours = exact_spikes(model, inputs)
    assert list(ours) == list(golden.spikes)
    for name, spikes in golden.spikes.items():
        assert spikes.any(), f"{name} never fires: the comparison would be vacuous"
        np.testing.assert_array_equal(ours[name], spikes, err_msg=name)


@pytest.mark.parametrize("seed", range(6))
def test_random_networks_match_golden(seed):
    rng = np.random.default_rng(seed)
    while True:  # redraw until every layer fires, so that no layer's comparison is vacuous
        net = random_network(rng, 12, [10, 7, 4], density=[1.0, 0.6][seed % 2],
                             v_bits=[5, 8, 12][seed % 3], leak_shift=[0, 1, 3][seed % 3],
                             reset=[Reset.SUBTRACT, Reset.ZERO][seed % 2], weight_bits=5)
        inputs = random_inputs(rng, net, samples=40, timesteps=20, rate=0.4)
        if all(s.any() for s in simulate(net, inputs).spikes.values()):
            break
    model = from_network(net)
    assert_same_spikes(net, model, inputs)
    # The float32 path used in training computes the same spikes as the float64 check.
    out32 = model.run(torch.from_numpy(inputs.astype(np.float32)))
    for s32, s64 in zip(out32, exact_spikes(model, inputs).values()):
        np.testing.assert_array_equal(s32.detach().numpy(), s64)


def test_saturation_and_negative_floor_are_exercised():
    """A 5-bit state saturates at both ends and floors negative potentials."""
    rng = np.random.default_rng(7)
    net = random_network(rng, 12, [10, 4], v_bits=5, leak_shift=1, weight_bits=5,
                         codebook_size=8)
    inputs = random_inputs(rng, net, samples=40, timesteps=20, rate=0.5)
    trace = simulate(net, inputs).v_trace["fc1"]
    assert trace.min() == net.layers[0].neuron.v_min
    assert_same_spikes(net, from_network(net), inputs)


@pytest.mark.parametrize("bits", [8, 4, 2, "ternary"])
@pytest.mark.parametrize("reset", [Reset.SUBTRACT, Reset.ZERO])
def test_quantized_model_exports_bit_exact(bits, reset):
    torch.manual_seed(0)
    model = SNN([16, 12, 5], leak_shift=2, v_bits=10, reset=reset, min_threshold=16)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.mul_(3.0)  # strong weights: states reach the 10-bit rails
    for layer in model.layers:
        layer.quantizer = make_quantizer(bits)
    net = to_network(model, "q", timesteps=12)
    inputs = (np.random.default_rng(1).random((64, 12, 16)) < 0.5).astype(np.uint8)
    assert_same_spikes(net, model, inputs)


def test_spike_forward_is_exact_step_and_gradient_is_smooth():
    x = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 2.0], requires_grad=True)
    s = spike(x, slope=4.0)
    assert s.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    (grad,) = torch.autograd.grad(s.sum(), x, create_graph=True)
    sig = torch.sigmoid(4.0 * x.detach())
    torch.testing.assert_close(grad.detach(), 4.0 * sig * (1 - sig))
    (second,) = torch.autograd.grad(grad.sum(), x)  # differentiable surrogate: Hessians work
    assert second[0] > 0 > second[-1]


@pytest.mark.parametrize("recurrent", [False, True])
def test_calibrate_sets_each_layers_rate_and_deep_layers_get_gradients(recurrent):
    """A dense input through three layers: the guessed positive mean saturates the deeper
    layers (every neuron fires every step, no surrogate gradient); calibrated, every layer fires
    at the asked rate and every layer's weights get a gradient."""
    torch.manual_seed(0)
    model = SNN([64, 128, 64, 10], recurrent=[False, recurrent], leak_shift=3)
    spikes = (torch.rand(128, 16, 64) < 0.3).float()
    labels = torch.arange(128) % 10
    with torch.no_grad():
        assert min(float(out.mean()) for out in model.run(spikes)[1:]) > 0.95  # saturated
    rates = model.calibrate(spikes, 0.1)
    outputs = model.run(spikes)
    for rate, out in zip(rates, outputs):
        assert rate == float(out.detach().mean())
        assert abs(rate - 0.1) < 0.01
    torch.nn.functional.cross_entropy(outputs[-1].sum(dim=1), labels).backward()
    for layer in model.layers:
        assert layer.weight.grad.abs().sum() > 0, "no gradient reaches this layer"


def test_init_rate_defaults_to_calibration_for_two_hidden_layers_only():
    from snnhw.train.pipeline import DEFAULT_INIT_RATE, init_rate
    from snnhw.train.recipe import parse_recipe

    def rate(model):
        return init_rate(parse_recipe({"model": model}))
    assert rate({"hidden": [64]}) is None  # the fixed initialisation, as the tables were measured
    assert rate({"hidden": [64, 32]}) == DEFAULT_INIT_RATE
    assert rate({"hidden": [64], "conv": [{"channels": 4, "kernel": 3}]}) == DEFAULT_INIT_RATE
    assert rate({"hidden": [64], "init_rate": 0.3}) == 0.3


# -- format version 2 neurons (snnTorch / NIR semantics), frozen ---------------------------------

V2_CASES = [(reset, timing, fire, leak)
            for reset, timings in ((Reset.SUBTRACT, ["immediate", "deferred",
                                                     "immediate_snntorch"]),
                                   (Reset.ZERO, ["immediate", "deferred"]),
                                   (Reset.NONE, ["immediate"]))
            for timing in timings for fire in (">=", ">")
            for leak in ("none", "shift", "floor", "nearest")]


@pytest.mark.parametrize("reset,timing,fire,leak", V2_CASES)
def test_version_2_neurons_match_golden(reset, timing, fire, leak):
    seed = V2_CASES.index((reset, timing, fire, leak))
    rng = np.random.default_rng(seed)
    while True:  # redraw until every layer fires, so that no comparison is vacuous
        net, inputs = _version_2_case(rng, seed, reset, timing, fire, leak)
        golden = simulate(net, inputs)
        if all(s.any() for s in golden.spikes.values()):
            break
    assert_torch_matches_golden(net, inputs, golden)


def _version_2_case(rng, seed, reset, timing, fire, leak):
    import dataclasses

    from snnhw.network.format import Fire, ResetTiming, Rounding

    net = random_network(rng, 12, [10, 4], density=0.8, v_bits=10, weight_bits=5,
                         leak_shift=2 if leak == "shift" else 0, reset=Reset.SUBTRACT,
                         state_levels=6 if seed % 5 == 0 else None)
    for layer in net.layers:
        fields = dict(reset=reset, reset_timing=ResetTiming(timing), fire=Fire(fire),
                      threshold=tuple(int(t) for t in rng.integers(2, 12, layer.size)),
                      bias=tuple(int(b) for b in rng.integers(-2, 3, layer.size)))
        if leak in ("floor", "nearest"):
            fields.update(beta=tuple(int(b) for b in rng.integers(150, 257, layer.size)),
                          beta_bits=9, beta_frac_bits=8, beta_rounding=Rounding(leak))
        if layer.neuron.state_levels is not None:
            fields["state_levels"] = tuple(sorted(set(layer.neuron.state_levels) | {0}))
        layer.neuron = dataclasses.replace(layer.neuron, **fields)
    net.validate()
    return net, random_inputs(rng, net, samples=30, timesteps=20, rate=0.5)
