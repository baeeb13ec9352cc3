"""Hutchinson traces through the surrogate gradient, and the bit allocation under a budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnhw.train import hessian
from snnhw.train.fit import loss_fn
from snnhw.train.model import SNN


def test_hutchinson_equals_v_h_v_of_the_exact_surrogate_hessian():
    """With the same Rademacher vectors, the estimate is exactly mean(v^T H v) for the Hessian
    autograd computes directly, so the double back-propagation through the surrogate is right."""
    torch.manual_seed(0)
    model = SNN([5, 4, 3], slope=2.0)
    rng = np.random.default_rng(0)
    spikes = (rng.random((32, 6, 5)) < 0.5).astype(np.uint8)
    labels = rng.integers(0, 3, 32)
    probes = 20
    traces = hessian.hutchinson_traces(model, spikes, labels, probes=probes, seed=1)
    x, y = torch.from_numpy(spikes.astype(np.float32)), torch.from_numpy(labels)
    params = dict(model.named_parameters())
    generator = torch.Generator().manual_seed(1)  # the estimator's draws, in its order
    vectors = [[torch.randint(0, 2, p.shape, generator=generator).float() * 2 - 1
                for p in params.values()] for _ in range(probes)]
    for n, estimate in enumerate(traces):
        name = f"layers.{n}.weight"

        def loss_of(w):
            return loss_fn(torch.func.functional_call(model, {**params, name: w}, (x,)), y)

        h = torch.autograd.functional.hessian(loss_of, params[name].detach())
        h = h.reshape(params[name].numel(), -1)
        assert abs(float(torch.trace(h))) > 1e-3  # a non-trivial Hessian
        expected = np.mean([float(v[n].flatten() @ h @ v[n].flatten()) for v in vectors])
        assert estimate == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_allocation_meets_budget_and_favours_sensitive_layers():
    counts = [1000, 1000]
    perturbation = [{b: 4.0 ** -b for b in range(2, 9)}] * 2
    budget = hessian.budget_bits(counts, 0.5)
    bits = hessian.allocate_bits([100.0, 1.0], counts, perturbation, list(range(2, 9)), budget)
    assert sum(n * b for n, b in zip(counts, bits)) <= budget
    assert bits[0] > bits[1]
    flipped = hessian.allocate_bits([1.0, 100.0], counts, perturbation, list(range(2, 9)), budget)
    assert flipped == bits[::-1]


def test_greedy_allocation_also_meets_budget(monkeypatch):
    counts = [500, 2000, 300]
    perturbation = [{b: 4.0 ** -b for b in range(2, 9)}] * 3
    budget = hessian.budget_bits(counts, 0.4)
    exact = hessian.allocate_bits([5.0, 1.0, 50.0], counts, perturbation, list(range(2, 9)),
                                  budget)
    monkeypatch.setattr(hessian, "EXHAUSTIVE", 1)
    greedy = hessian.allocate_bits([5.0, 1.0, 50.0], counts, perturbation, list(range(2, 9)),
                                   budget)
    for bits in (exact, greedy):
        assert sum(n * b for n, b in zip(counts, bits)) <= budget
        assert bits[2] >= bits[0] >= bits[1]


def test_impossible_budget():
    with pytest.raises(ValueError, match="below the smallest allocation"):
        hessian.allocate_bits([1.0], [100], [{2: 1.0}], [2], 100.0)


def test_greedy_lowering_takes_the_cheapest_layer_each_step_until_the_budget_holds():
    """The search's loop (Q-SpiNN): each step lowers the layer whose cost is least; a layer that
    costs more than the others keeps its bits."""
    counts, choices = [100, 100, 100], [2, 4, 8]
    steps = []

    def cost(bits, layer):
        steps.append((list(bits), layer))
        return {0: 1.0, 1: 6.0, 2: 0.5}[layer] * (8 - bits[layer] + 1)

    bits = hessian.lower_greedily(counts, choices, hessian.budget_bits(counts, 0.5), cost)
    assert sum(n * b for n, b in zip(counts, bits)) <= hessian.budget_bits(counts, 0.5)
    # costs: layer 2 (0.5), layer 0 (1.0), layer 2 (2.5), layer 0 (5.0 < 6.0)
    assert bits == [2, 8, 2]
    assert steps[0] == ([8, 8, 8], 0)
    assert all(b in choices for b in bits)


def test_search_lowers_the_layer_that_keeps_the_most_held_out_accuracy(monkeypatch):
    """The search stage measures each lowering on held-out training samples and keeps the best
    one: with layer 1 made costly to lower, layer 0 goes to 2 bits and layer 1 stays at 8."""
    from snnhw.train import pipeline
    from snnhw.train.recipe import parse_recipe

    recipe = parse_recipe({
        "name": "s", "data": {"timesteps": 4}, "model": {"hidden": [12], "min_threshold": 16},
        "train": {"epochs": 1, "batch_size": 128, "progress": False},
        "compress": [{"search": {"budget": 0.5, "choices": [2, 4, 8], "epochs": 0}}]})
    ctx = pipeline.prepare(recipe)
    held = round(0.2 * len(ctx.data.y_train))
    measured = []

    def accuracy(model, spikes, labels, exact=False):
        bits = [layer.quantizer.bits for layer in model.layers]
        if len(labels) == held:
            measured.append(bits)
        return 1.0 - 0.01 * (8 - bits[0]) - 0.1 * (8 - bits[1])

    monkeypatch.setattr(pipeline, "accuracy", accuracy)
    pipeline.apply_stages(ctx, recipe.compress)
    info = ctx.stages[-1]
    assert measured == [[4, 8], [8, 4], [2, 8], [4, 4]]
    assert info["bits"] == [2, 8] and info["holdout_samples"] == held
    assert info["allocated_bits"] == 64 * 12 * 2 + 12 * 10 * 8 <= info["budget_bits"]
