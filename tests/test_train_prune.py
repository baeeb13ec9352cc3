"""Pruning hits its target sparsity exactly; FSC scores are what prune.py says they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnhw.train.fit import loss_fn
from snnhw.train.model import SNN
from snnhw.train.prune import (fsc_scores, magnitude_scores, prune_columns, prune_layer,
                               schedule, scores_for)
from snnhw.train.recipe import PruneMethod


def tiny(seed=0):
    torch.manual_seed(seed)
    model = SNN([10, 8, 3], slope=2.0)
    rng = np.random.default_rng(seed)
    spikes = (rng.random((24, 6, 10)) < 0.5).astype(np.uint8)
    spikes[:, :, 0] = 0  # input 0 never fires: its synapses contribute nothing
    labels = rng.integers(0, 3, 24)
    return model, spikes, labels


@pytest.mark.parametrize("rounds", [4, 8])
def test_schedule_is_cubic_and_ends_at_target(rounds):
    # 8 rounds: the benchmark's joint row (docs/training.md, "Joint compression")
    steps = schedule(0.8, rounds)
    assert len(steps) == rounds and steps[-1] == pytest.approx(0.8)
    assert all(a < b for a, b in zip(steps, steps[1:]))
    assert steps[0] > 0.8 / rounds  # prunes most early, when the network can still recover
    # Zhu & Gupta's cubic: the step from round r to r + 1 shrinks as (1 - r/R)**3 does
    gaps = np.diff([0.0, *steps])
    assert gaps == pytest.approx([0.8 * ((1 - r / rounds) ** 3 - (1 - (r + 1) / rounds) ** 3)
                                  for r in range(rounds)])


@pytest.mark.parametrize("method", list(PruneMethod))
@pytest.mark.parametrize("sparsity", [0.3, 0.8])
@pytest.mark.parametrize("rounds", [3, 8])
def test_each_layer_hits_target_and_stays_pruned(method, sparsity, rounds):
    model, spikes, labels = tiny()
    for target in schedule(sparsity, rounds):
        before = [layer.mask.clone() for layer in model.layers]
        for layer, s in zip(model.layers, scores_for(method, model, spikes, labels)):
            prune_layer(layer, s, target)
        for layer, old in zip(model.layers, before):
            assert torch.all(layer.mask <= old)  # once pruned, always pruned
            assert int((layer.mask == 0).sum()) == round(target * layer.mask.numel())
    for layer in model.layers:
        assert int((layer.mask == 0).sum()) == round(sparsity * layer.mask.numel())


def test_magnitude_prunes_smallest_weights():
    model, spikes, labels = tiny()
    layer = model.layers[0]
    prune_layer(layer, magnitude_scores(model)[0], 0.5)
    kept, pruned = layer.weight.abs()[layer.mask > 0], layer.weight.abs()[layer.mask == 0]
    assert kept.min() >= pruned.max()


def test_fsc_score_is_weight_squared_times_per_sample_gradient_squared():
    model, spikes, labels = tiny()
    scores = fsc_scores(model, spikes, labels, batch_size=5)  # several batches
    expected = [torch.zeros_like(layer.weight) for layer in model.layers]
    for n in range(len(labels)):  # brute force: one backward pass per sample
        x = torch.from_numpy(spikes[n:n + 1].astype(np.float32))
        model.zero_grad()
        loss_fn(model(x), torch.tensor([labels[n]])).backward()
        for e, layer in zip(expected, model.layers):
            e += layer.weight.grad ** 2
    for s, e, layer in zip(scores, expected, model.layers):
        torch.testing.assert_close(s, e * layer.weight.detach() ** 2, rtol=1e-4, atol=1e-10)
    assert torch.all(scores[0][:, 0] == 0)  # a silent input's synapses carry no contribution


def test_fsc_prunes_silent_inputs_first_and_differs_from_magnitude():
    model, spikes, labels = tiny()
    layer = model.layers[0]
    prune_layer(layer, fsc_scores(model, spikes, labels)[0], 0.1)
    assert torch.all(layer.mask[:, 0] == 0)
    fsc_mask = layer.mask.clone()
    layer.mask.fill_(1)
    prune_layer(layer, magnitude_scores(model)[0], 0.1)
    assert not torch.equal(fsc_mask, layer.mask)


def test_input_columns_prune_whole_inputs_silent_first_within_the_sparsity():
    model, spikes, labels = tiny()
    layer = model.layers[0]
    for target in schedule(0.8, 3):
        before = layer.mask.clone()
        scores = fsc_scores(model, spikes, labels)[0]
        prune_columns(layer, scores, 0.5 * target / 0.8)
        prune_layer(layer, scores, target)
        assert torch.all(layer.mask <= before)  # once pruned, always pruned
    empty = layer.mask.sum(dim=0) == 0
    assert int(empty.sum()) == 5 and bool(empty[0])  # the silent input goes first
    assert int((layer.mask == 0).sum()) == round(0.8 * layer.mask.numel())
    # The empty inputs are those whose synapses' scores summed lowest when they went.
    fresh, _, _ = tiny()
    scores = fsc_scores(fresh, spikes, labels)[0]
    prune_columns(fresh.layers[0], scores, 0.3)
    gone = fresh.layers[0].mask.sum(dim=0) == 0
    assert scores.sum(dim=0)[gone].max() <= scores.sum(dim=0)[~gone].min()


def test_prune_layer_keeps_what_prune_columns_pruned_beyond_its_target():
    model, _, _ = tiny()
    layer = model.layers[0]
    prune_columns(layer, magnitude_scores(model)[0], 0.5)
    pruned = layer.mask.clone()
    prune_layer(layer, magnitude_scores(model)[0], 0.2)
    assert torch.equal(layer.mask, pruned)
