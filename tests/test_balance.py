"""Lane balancing (snnhw.plan.balance): fewer synapse words, the same spikes in network order."""

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from snnhw.golden import simulate
from snnhw.network.format import Neuron, Reset
from snnhw.plan import WORDS_SLACK, CorePlan, Layout, SynapseLayout, cycle_bounds
from snnhw.plan.balance import balanceable, column_words, lane_order, permuted
from snnhw.plan.cycles import sweep_overhead
from snnhw.random_networks import random_inputs, random_network


def _network(recurrent=()):
    net = random_network(np.random.default_rng(3), 20, [16, 12, 5], density=0.4,
                         recurrent=recurrent)
    # Per-neuron thresholds and biases must move with their neurons.
    first = net.layers[0].neuron
    net.layers[0].neuron = Neuron(threshold=tuple(first.threshold + k % 3 for k in range(16)),
                                  leak_shift=first.leak_shift, reset=Reset.SUBTRACT,
                                  v_bits=first.v_bits, bias=tuple(k % 2 for k in range(16)))
    return net


def _held(plan):
    return permuted(plan.network, {lp.name: lp.order for lp in plan.layers
                                   if lp.order is not None})


def test_lane_order_lowers_the_words_of_an_unbalanced_layer():
    # Every synapse on even neurons: at P = 2, the network's order puts them all in lane 0.
    net = random_network(np.random.default_rng(0), 10, [8, 3])
    net.layers[0].index[1::2] = -1
    present = net.layers[0].index >= 0
    order = lane_order(net.layers[0], 2)
    assert sorted(order) == list(range(8))
    assert column_words(present, 2) == 10 * 4
    assert column_words(present[order], 2) == 10 * 2  # the ideal: ceil(4 synapses / 2 lanes)
    # One lane has no words to save, but neurons without synapses last shorten the delta gaps.
    one = lane_order(net.layers[0], 1)
    assert list(one) == [0, 2, 4, 6, 1, 3, 5, 7]
    assert _bits(net.layers[0], one, 1) < _bits(net.layers[0], None, 1)
    net.layers[0].index[1::2] = net.layers[0].index[::2]  # balanced already: keep the order
    assert lane_order(net.layers[0], 2) is None


def _bits(layer, order, lanes, words_slack=WORDS_SLACK):
    """Bits of the layout the plan picks for ``layer`` with its neurons in ``order``."""
    index = layer.index if order is None else layer.index[order]
    return SynapseLayout.build(replace(layer, index=index), lanes,
                               words_slack=words_slack).stored_bits


def test_each_lane_holds_its_heaviest_neurons_first_where_that_saves_bits():
    """fc1 of the MNIST shape at 80 % pruning, its neurons' fan-in spread from 0 to all: at one
    lane the plan keeps them heaviest first where the layout of fewest bits is the rule
    (``words_slack=math.inf``): shorter gaps, fewer escapes, fewer bits than network order.
    (With WORDS_SLACK the plan widens the gap until the escapes are nearly gone, and the order
    saves nothing here.)"""
    net = random_network(np.random.default_rng(5), 96, [32, 4], density=0.2)
    index = net.layers[0].index
    index[np.random.default_rng(6).random(index.shape) < np.linspace(0, 1, 32)[:, None]] = -1
    weight = (index >= 0).sum(axis=1)
    for lanes in (1, 2):
        order = lane_order(net.layers[0], lanes, math.inf)
        for p in range(lanes):
            assert list(weight[order[p::lanes]]) == sorted(weight[order[p::lanes]], reverse=True)
        assert _bits(net.layers[0], order, lanes, math.inf) < \
            _bits(net.layers[0], None, lanes, math.inf)


@pytest.mark.parametrize("recurrent", [(), (True, True)], ids=["dense", "recurrent"])
@pytest.mark.parametrize("lanes", [2, 4])
def test_the_held_network_computes_the_same_spikes(recurrent, lanes):
    net = _network(recurrent)
    plan = CorePlan.build(net, lanes)
    assert [lp.order is not None for lp in plan.layers] == [True, True, False]
    assert [lp.synapses.total_words for lp in plan.layers][:2] < \
        [lp.synapses.total_words for lp in CorePlan.build(net, lanes, balance=False).layers][:2]
    inputs = random_inputs(np.random.default_rng(1), net, samples=3, rate=0.4)
    golden, held = simulate(net, inputs), simulate(_held(plan), inputs)
    for layer in net.layers:
        assert golden.spikes[layer.name].any(), "the test needs spikes"
        for want, got in ((golden.spikes, held.spikes), (golden.v_trace, held.v_trace)):
            np.testing.assert_array_equal(plan.in_network_order(layer.name, got[layer.name]),
                                          want[layer.name])
            np.testing.assert_array_equal(plan.in_plan_order(layer.name, want[layer.name]),
                                          got[layer.name])


def test_a_wrong_permutation_changes_the_spikes():
    """The check above can fail: rows reordered without the next layer's columns."""
    net = _network()
    plan = CorePlan.build(net, 4)
    order = plan.layers[0].order
    wrong = permuted(net, {"fc1": order})
    wrong.layers[1].index = net.layers[1].index  # fc2's columns left in network order
    inputs = random_inputs(np.random.default_rng(1), net, samples=3, rate=0.4)
    golden, held = simulate(net, inputs), simulate(wrong, inputs)
    assert (golden.spikes["fc2"] != held.spikes["fc2"]).any()


def test_which_layers_are_reordered():
    """Not the output layer (its neurons are the classes), not a layer feeding a convolution
    (its geometry fixes the input positions), not a convolution; none without balancing."""
    net = _network()
    assert CorePlan.build(net, 4).layers[-1].order is None
    assert all(lp.order is None for lp in CorePlan.build(net, 4, balance=False).layers)
    kinds = SimpleNamespace(layers=[SimpleNamespace(kind=kind) for kind in
                                    ("dense", "recurrent", "conv2d", "conv2d", "dense", "dense")])
    assert [balanceable(kinds, n) for n in range(6)] == [True, False, False, False, True, False]


def test_the_layout_bound_counts_the_words_balancing_saves():
    """Every synapse of fc1 on its even neurons: at P = 2 in the network's order a spike costs
    all of its column's synapses (one lane has them), balanced half of them, as the ideal bound
    says; the output layer fc2 (dense, every neuron has each input) is balanced already."""
    net = random_network(np.random.default_rng(0), 10, [8, 3], threshold=1)
    net.layers[0].index[1::2] = -1
    inputs = np.zeros((1, 3, 10), np.uint8)
    inputs[0, 1, :5] = 1  # 5 spikes: 20 synapses, 4 a column
    spikes = simulate(net, inputs).spikes
    layouts = {"fc1": Layout.ADDRESSED}
    balanced = CorePlan.build(net, 2, layouts=layouts)
    unbalanced = CorePlan.build(net, 2, layouts=layouts, balance=False)
    ideal = cycle_bounds(balanced, inputs, spikes)[0, 0]
    np.testing.assert_array_equal(ideal, cycle_bounds(balanced, inputs, spikes, layout=True)[0, 0])
    np.testing.assert_array_equal(ideal, cycle_bounds(unbalanced, inputs, spikes)[0, 0])
    words = cycle_bounds(unbalanced, inputs, spikes, layout=True)[0, 0]
    overhead = sweep_overhead(net.layers[0].neuron)
    assert list(ideal) == [8 + overhead, 5 * 2 + overhead, 8 + overhead]  # sweep: 8 neurons
    assert list(words) == [8 + overhead, 5 * 4 + overhead, 8 + overhead]


@pytest.mark.parametrize("lanes", [2, 3, 8])
@pytest.mark.parametrize("size", [1, 2, 5, 13])
def test_any_shape_gets_a_permutation_with_fewer_words_or_none(size, lanes):
    """Including fewer neurons than lanes (lanes left empty)."""
    for seed in range(4):
        net = random_network(np.random.default_rng(seed), 7, [size, 2], density=0.5)
        order = lane_order(net.layers[0], lanes)
        present = net.layers[0].index >= 0
        if order is not None:
            assert sorted(order) == list(range(size))
            words = column_words(present[order], lanes), column_words(present, lanes)
            assert words[0] < words[1] or (words[0] == words[1] and _bits(
                net.layers[0], order, lanes) < _bits(net.layers[0], None, lanes))
