"""Synapse memory layouts: every existing synapse stored exactly once, in its lane's bank."""

import numpy as np
import pytest

from snnhw.hw.layout import LayerLayout, bits_for, signed_bits_for
from snnhw.network.random import random_network


def _unpack(lay: LayerLayout) -> np.ndarray:
    """Rebuild the index matrix from the memory images."""
    index = np.full((lay.size, lay.fan_in), -1, dtype=np.int64)
    for i in range(lay.fan_in):
        start, count = int(lay.col_start[i]), int(lay.col_words[i])
        for w in range(count):
            for p in range(lay.lanes):
                slot = int(lay.words[start + w, p])
                if lay.addressed:
                    if not slot & 1:
                        continue
                    k = (slot >> 1) & ((1 << lay.index_bits) - 1)
                    address = slot >> (1 + lay.index_bits)
                else:
                    k, address = slot, w
                j = address * lay.lanes + p
                if j < lay.size:
                    assert index[j, i] == -1, "synapse stored twice"
                    index[j, i] = k
    return index


@pytest.mark.parametrize("lanes", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
def test_layout_round_trip(lanes, density):
    net = random_network(np.random.default_rng(lanes), 23, [19], codebook_size=5,
                         density=density)
    layer = net.layers[0]
    lay = LayerLayout.build(layer, lanes)
    assert lay.addressed == (density < 1.0)
    np.testing.assert_array_equal(_unpack(lay), layer.index)
    # A column takes as many words as its busiest lane needs: no more.
    for i in range(layer.fan_in):
        targets = np.flatnonzero(layer.index[:, i] >= 0)
        busiest = max([np.count_nonzero(targets % lanes == p) for p in range(lanes)])
        assert lay.col_words[i] == (busiest if lay.addressed else -(-19 // lanes))


def test_pruned_synapses_take_no_memory():
    net = random_network(np.random.default_rng(0), 64, [32], density=0.25)
    lay = LayerLayout.build(net.layers[0], 1)
    assert lay.total_words == net.layers[0].synapse_count


def test_accumulator_never_overflows():
    net = random_network(np.random.default_rng(0), 40, [7], weight_bits=8, codebook_size=9)
    layer = net.layers[0]
    lay = LayerLayout.build(layer, 2)
    w = layer.dense_weights()
    lo, hi = np.minimum(w, 0).sum(axis=1).min(), np.maximum(w, 0).sum(axis=1).max()
    assert -(1 << (lay.acc_bits - 1)) <= lo and hi < (1 << (lay.acc_bits - 1))


def test_bit_helpers():
    assert [bits_for(n) for n in (0, 1, 2, 3, 4, 5, 256, 257)] == [0, 0, 1, 2, 2, 3, 8, 9]
    assert signed_bits_for(-1, 0) == 1
    assert signed_bits_for(-8, 7) == 4
    assert signed_bits_for(-9, 7) == 5
    assert signed_bits_for(0, 8) == 5
