"""Weight QAT and PTQ: exported weights lie on the codebook; rounding modes do what they claim."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnhw.train.export import memory_report, to_network
from snnhw.train.model import SNN
from snnhw.train.quant import (TernaryQuantizer, UniformQuantizer, integer_scale, make_quantizer,
                               round_levels)


def quantized_model(bits, seed=0):
    torch.manual_seed(seed)
    model = SNN([20, 16, 6], min_threshold=32)
    for layer in model.layers:
        layer.quantizer = make_quantizer(bits)
    return model


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8, "ternary"])
def test_exported_weights_use_at_most_2_to_the_b_values(bits):
    model = quantized_model(bits)
    net = to_network(model, "q", 8)
    limit = 3 if bits == "ternary" else 2 ** bits
    for torch_layer, layer in zip(model.layers, net.layers):
        weights = layer.dense_weights()
        values = np.unique(weights)
        assert len(values) <= limit
        assert set(layer.codebook) <= set(values.tolist()) | {0}
        # every weight is a multiple m * level with |level| <= qmax: on the b-bit grid
        m, _ = integer_scale(float(torch_layer.quantizer(torch_layer.weight,
                                                          torch_layer.mask)[1]),
                             torch_layer.min_threshold, None)
        qmax = 1 if bits == "ternary" else 2 ** (bits - 1) - 1
        assert np.all(weights % m == 0) and np.abs(weights // m).max() <= qmax
        assert layer.neuron.threshold >= 32


def test_per_layer_bits_and_memory_shrinks_with_bits():
    sizes = [memory_report(to_network(quantized_model(b), "q", 8))["bits"] for b in (8, 4, 2)]
    assert sizes[0] > sizes[1] > sizes[2]


def test_qat_gradient_is_straight_through():
    w = torch.tensor([[0.1, -0.37, 0.8]], requires_grad=True)
    levels, step = UniformQuantizer(4)(w, torch.ones_like(w))
    assert torch.equal(levels, torch.floor(levels))
    levels.sum().backward()
    torch.testing.assert_close(w.grad, torch.full_like(w, 1 / float(step)))


def test_ternary_follows_twn_rule():
    w = torch.tensor([[0.05, -0.1, 0.5, -0.6, 0.02, 0.7]])
    levels, step = TernaryQuantizer()(w, torch.ones_like(w))
    assert levels.tolist() == [[0, 0, 1, -1, 0, 1]]
    assert float(step) == pytest.approx(0.6)  # mean of |w| above 0.7 * mean|w|


X = torch.arange(-24, 25) / 8  # exact in binary, with halves such as 0.5 and -1.5


def test_truncation_floors():
    torch.testing.assert_close(round_levels(X, "truncate"), torch.floor(X))


def test_nearest_rounds_halves_up():
    q = round_levels(X, "nearest")
    assert torch.all((q - X).abs() <= 0.5)
    halves = X - torch.floor(X) == 0.5
    assert halves.any() and torch.all(q[halves] == X[halves] + 0.5)  # not half-to-even


def test_stochastic_is_unbiased_between_neighbours():
    x = torch.tensor([0.2, 1.75, -0.4]).repeat(20000, 1)
    q = round_levels(x, "stochastic", torch.Generator().manual_seed(0))
    assert torch.all((q == torch.floor(x)) | (q == torch.floor(x) + 1))
    torch.testing.assert_close(q.mean(dim=0), x[0], atol=0.01, rtol=0)
    again = round_levels(x, "stochastic", torch.Generator().manual_seed(0))
    assert torch.equal(q, again)


def test_ptq_modes_differ_as_they_should():
    """On the same weights: truncation never rounds up, nearest is the most accurate,
    stochastic is unbiased, so its mean error is near 0 where truncation's is -step/2."""
    torch.manual_seed(3)
    w = torch.randn(64, 64) * 0.1
    mask = torch.ones_like(w)
    results = {}
    for mode in ("truncate", "nearest", "stochastic"):
        q = UniformQuantizer(4, mode, torch.Generator().manual_seed(1))
        levels, step = q(w, mask)
        inside = (w / step).abs() < q.qmax  # away from the clipping range
        results[mode] = ((levels * step - w)[inside], float(step))
    trunc, step = results["truncate"]
    assert torch.all(trunc <= 1e-7) and trunc.mean() == pytest.approx(-step / 2, rel=0.1)
    nearest, _ = results["nearest"]
    assert torch.all(nearest.abs() <= step / 2 + 1e-7)
    stochastic, _ = results["stochastic"]
    assert abs(float(stochastic.mean())) < 0.05 * step
    assert (nearest ** 2).mean() < (stochastic ** 2).mean()
    assert (nearest ** 2).mean() < (trunc ** 2).mean()


def test_integer_scale_reaches_min_threshold():
    for step in (0.003, 0.07, 0.3, 1.5):
        m, threshold = integer_scale(step, 64, None)
        assert threshold >= 64 - 1 and abs(m / step - threshold) <= 0.5
    assert integer_scale(0.25, 64, 5) == (1, 5)
