"""Conv2d layers on today's core: planned, counted and compiled as their unrolled matrix.

The synapse memory of a convolution holds each kernel tap once per output position it reaches
(``storage: unrolled``), laid out from the event walk :meth:`Conv2d.synapses_of`. So every figure
of the plan (layout words, memory bits, cycle bounds, energy, fit) must equal the figures of the
dense layer of its unrolled matrix, and the compiled images must read back to that matrix.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnhw.boards import estimate, find_board
from snnhw.energy import energy_per_inference
from snnhw.golden import simulate
from snnhw.network import save
from snnhw.plan import CorePlan, Layout, SynapseLayout, core_report
from snnhw.plan.cycles import cycle_bounds
from snnhw.random_networks import random_inputs
from test_conv import conv_network, conv_networks, shifted_tap


def dense_twin(net):
    """``net`` with its conv layer replaced by the dense layer of the unrolled matrix."""
    conv = net.layers[0]
    dense = replace(conv, kind="dense", conv=None, index=conv.connectivity.unrolled().astype(
        np.int32))
    return replace(net, layers=[dense] + net.layers[1:])


def plan_figures(plan, inputs):
    golden = simulate(plan.network, inputs)
    return {
        "words": [lp.synapses.packed_words() for lp in plan.layers],
        "pointers": [lp.synapses.packed_pointers() for lp in plan.layers],
        "layouts": [(lp.synapses.kind, lp.synapses.gap_bits) for lp in plan.layers],
        "synapses": [lp.stored_synapses for lp in plan.layers],
        "memory": plan.memory_bits,
        "cycles": cycle_bounds(plan, inputs, golden.spikes).tolist(),
        "energy": energy_per_inference(plan, inputs, golden)["total_pj"],
        "fit": estimate(plan, find_board("icebreaker")).used,
    }


@settings(max_examples=25, deadline=None)
@given(net=conv_networks(), lanes=st.sampled_from([1, 2, 3, 4]),
       layout=st.sampled_from([None, Layout.ADDRESSED, Layout.DELTA]), seed=st.integers(0, 99))
def test_a_conv_layer_is_planned_as_its_unrolled_matrix(net, lanes, layout, seed):
    layouts = {"conv1": layout} if layout else None
    inputs = random_inputs(np.random.default_rng(seed), net, samples=3, rate=0.4)
    # Without lane balancing, which may reorder the twin's dense layer but not a convolution.
    conv = CorePlan.build(net, lanes, layouts=layouts, balance=False)
    twin = CorePlan.build(dense_twin(net), lanes, layouts=layouts, balance=False)
    assert plan_figures(conv, inputs) == plan_figures(twin, inputs)
    unrolled = net.layers[0].connectivity.unrolled()
    assert conv.layers[0].stored_synapses == np.count_nonzero(unrolled >= 0)
    assert (conv.layers[0].storage, conv.layers[1].storage) == ("unrolled", "matrix")
    # The comparison can fail: a kernel with a tap moved (to where it reaches other pairs) is
    # another matrix, and other synapse words.
    if (net.layers[0].index >= 0).any():
        moved = dense_twin(shifted_tap(net))
        if (moved.layers[0].index != unrolled).any():
            synapses = CorePlan.build(moved, lanes, layouts=layouts).layers[0].synapses
            assert (synapses.packed_words(), synapses.packed_pointers()) != \
                (conv.layers[0].synapses.packed_words(), conv.layers[0].synapses.packed_pointers())


def test_the_memory_counts_every_unrolled_synapse_not_the_kernel_once():
    net = conv_network(np.random.default_rng(3), 2, 6, 6, 3, 3, 1, 1, density=1.0)
    layer, plan = net.layers[0], CorePlan.build(net, 1)
    kernel_taps, unrolled = layer.synapse_count, plan.layers[0].stored_synapses
    assert kernel_taps == 3 * 2 * 3 * 3
    # Padding 1, stride 1: a tap reaches every output pixel but those it would read off the edge.
    assert unrolled == 3 * 2 * sum(min(6, 7 - ky) - max(0, 1 - ky) for ky in range(3)) ** 2
    report = core_report(plan).layers[0]
    assert (report.synapses, report.storage, report.kind) == (unrolled, "unrolled", "conv2d")
    assert report.memory_bits["synapse"] == plan.layers[0].synapses.stored_bits - \
        report.memory_bits["pointer"] >= unrolled
    # Nothing pruned in the kernel, yet pairs without a tap: no implicit layout.
    assert not SynapseLayout.allows(layer, Layout.IMPLICIT)
    assert SynapseLayout.allows(net.layers[1], Layout.IMPLICIT) == (net.layers[1].index >= 0).all()


def test_a_conv_that_sees_its_whole_input_has_the_implicit_layout():
    """A kernel as large as its unpadded input reaches one output pixel from every input: the
    unrolled matrix is full, and the implicit layout stores it."""
    net = conv_network(np.random.default_rng(1), 2, 3, 3, 4, 3, 1, 0, density=1.0)
    assert net.layers[0].connectivity.output_shape == (4, 1, 1)
    plan = CorePlan.build(net, 2, layouts={"conv1": Layout.IMPLICIT})
    twin = CorePlan.build(dense_twin(net), 2, layouts={"conv1": Layout.IMPLICIT})
    assert plan.layers[0].synapses.packed_words() == twin.layers[0].synapses.packed_words()


@pytest.mark.parametrize("lanes,layout", [(1, Layout.DELTA), (3, Layout.ADDRESSED)])
def test_compiled_images_read_back_to_the_unrolled_matrix(tmp_path, lanes, layout):
    from snnhw.compiler import compile_network, read_back

    net = conv_network(np.random.default_rng(lanes), 2, 5, 4, 3, 3, 2, 1, density=0.7)
    compile_network(CorePlan.build(net, lanes, layouts={"conv1": layout}), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())["layers"]
    assert [entry["storage"] for entry in report] == ["unrolled", "matrix"]
    assert report[0]["layout"] == layout.value
    images = read_back(tmp_path)
    np.testing.assert_array_equal(images[0].index, net.layers[0].connectivity.unrolled())
    assert (images[0].index != dense_twin(shifted_tap(net)).layers[0].index).any()
    np.testing.assert_array_equal(images[1].index, net.layers[1].index)


def test_snnhw_compile_says_the_conv_layer_is_unrolled(tmp_path, capsys):
    from snnhw.cli import main

    net = conv_network(np.random.default_rng(0), 1, 4, 4, 2, 3, 1, 0)
    save(net, tmp_path / "m")
    assert main(["compile", str(tmp_path / "m"), "-o", str(tmp_path / "out"), "--no-lint"]) == 0
    printed = capsys.readouterr().out
    synapses = CorePlan.build(net, 1).layers[0].stored_synapses
    assert f"conv1: 8x16, {synapses} synapses (" in printed and ", conv unrolled)" in printed
