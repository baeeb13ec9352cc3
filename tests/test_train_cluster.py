"""Clustering-aware training: at most M values per layer, and the values themselves learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnhw.train.cluster import ClusterQuantizer, kmeans_1d
from snnhw.train.export import to_network
from snnhw.train.fit import fit
from snnhw.train.model import SNN


def test_kmeans_finds_clear_clusters():
    values = torch.cat([torch.full((30,), -1.0), torch.full((10,), 0.2), torch.full((5,), 3.0)])
    values = values + 0.01 * torch.randn(45, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(kmeans_1d(values, 3), torch.tensor([-1.0, 0.2, 3.0]),
                               atol=0.02, rtol=0)


def test_codebook_gradient_is_the_sum_over_assigned_weights():
    w = torch.tensor([[0.1, 0.12, -0.5, 0.4]], requires_grad=True)
    q = ClusterQuantizer(w, torch.ones_like(w), values=3, bits=8)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([-0.5, 0.1, 0.4]))
    levels, step = q(w, torch.ones_like(w))
    upstream = torch.tensor([[1.0, 2.0, 4.0, 8.0]])
    (levels * upstream).sum().backward()
    # weights 0 and 1 share entry 1; d levels / d c = 1 / step, as d levels / d w
    torch.testing.assert_close(q.codebook.grad, torch.tensor([4.0, 3.0, 8.0]) / step)
    torch.testing.assert_close(w.grad, upstream / step)


@pytest.mark.parametrize("values", [2, 4, 16])
def test_cat_leaves_at_most_m_values_and_learns_them(values):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    spikes = (rng.random((64, 6, 12)) < 0.4).astype(np.uint8)
    labels = rng.integers(0, 3, 64)
    model = SNN([12, 20, 3], min_threshold=16)
    codebooks = []
    for layer in model.layers:
        layer.mask[:, :2] = 0  # with pruned synapses too
        layer.quantizer = ClusterQuantizer(layer.weight * layer.mask, layer.mask, values, 8)
        codebooks.append(layer.quantizer.codebook)
    start = [c.detach().clone() for c in codebooks]
    fit(model, lambda epoch: spikes, labels, epochs=3, batch_size=16, lr=0.01, seed=0,
        extra_params=[{"params": codebooks, "lr": 0.01}])
    assert any(not torch.equal(a, c) for a, c in zip(start, codebooks))
    net = to_network(model, "c", 6)
    for layer in net.layers:
        weights = layer.dense_weights()
        assert len(np.unique(weights[weights != 0])) <= values
        # a zero weight is no synapse; export may still store it densely as a 0 entry
        assert len(set(layer.codebook) - {0}) <= values
        assert np.all(weights[:, :2] == 0)


def test_gradual_clustering_clusters_the_nearest_first_and_keeps_them():
    w = torch.tensor([[0.11, 0.3, -0.52, 0.45, -0.2, 0.9]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])  # the last synapse is pruned
    q = ClusterQuantizer(w, mask, values=2, bits=8)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([-0.5, 0.1]))
    # errors to the nearest value: 0.01, 0.2, 0.02, 0.35, 0.3; half of the 5 kept weights: 2
    q.cluster_fraction(w, mask, 0.5)
    assert q.free.tolist() == [[False, True, False, True, True, False]]
    levels, step = q(w, mask)
    clustered = torch.floor(q.codebook.detach() / step + 0.5)
    assert levels[0, 0] == clustered[1] and levels[0, 2] == clustered[0]
    torch.testing.assert_close(levels[0, [1, 3, 4]], w[0, [1, 3, 4]] / step)  # free: float
    # weights already clustered stay so, even where another weight is now nearer
    w2 = torch.tensor([[0.6, 0.3, -0.52, 0.45, -0.21, 0.9]])
    q.cluster_fraction(w2, mask, 0.8)
    assert q.free.tolist() == [[False, False, False, True, False, False]]
    q.cluster_fraction(w2, mask, 1.0)
    assert q.free is None
    levels, step = q(w2, mask)
    assert set((levels * mask).unique().tolist()) <= set(clustered.tolist()) | {0.0}
