"""Conv2d layers in the plan: the kernel layout (each kept tap once, ``storage: kernel``), and
the unrolled layouts (addressed, delta: each tap once per output position it reaches).

In an unrolled layout every figure of the plan (layout words, memory bits, cycle bounds, energy,
fit) must equal the figures of the dense layer of its unrolled matrix, and the compiled images
must read back to that matrix. The kernel layout is decoded here as the engine decodes it (the
layout's module notes), independently of its packing code, back to the unrolled matrix.
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
from snnhw.plan import PlanError
from snnhw.plan.cycles import cycle_bounds, sweep_overhead
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
       layout=st.sampled_from([Layout.ADDRESSED, Layout.DELTA]), seed=st.integers(0, 99))
def test_an_unrolled_conv_layer_is_planned_as_its_unrolled_matrix(net, lanes, layout, seed):
    layouts = {"conv1": layout}
    inputs = random_inputs(np.random.default_rng(seed), net, samples=3, rate=0.4)
    # Without lane balancing, which may reorder the twin's dense layer but not a convolution,
    # and with all the twin's inputs (a convolution keeps those without synapses too).
    conv = CorePlan.build(net, lanes, layouts=layouts, balance=False)
    twin = CorePlan.build(dense_twin(net), lanes, layouts=layouts, balance=False,
                          compact_inputs=False)
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


def decode_kernel_layout(lay, fan_in):
    """The index matrix [size, fan_in] that the kernel layout's words and pointers give, read
    by the read-back's decoder (written from the layout module's notes, not from its packing)."""
    from snnhw.compiler.readback import decode_kernel

    return decode_kernel("conv1", lay.packed_words(), lay.packed_pointers(), size=lay.size,
                         lanes=lay.lanes, group=lay.group, kernel=lay.kernel,
                         entries=1 << lay.index_bits, start_bits=lay.start_bits,
                         count_bits=lay.count_bits)


@settings(max_examples=30, deadline=None)
@given(net=conv_networks(), lanes=st.sampled_from([1, 2, 3, 4]), seed=st.integers(0, 99))
def test_the_kernel_layout_decodes_to_the_unrolled_matrix(net, lanes, seed):
    plan = CorePlan.build(net, lanes, layouts={"conv1": Layout.KERNEL})
    lay, layer = plan.layers[0].synapses, net.layers[0]
    assert lay.kind is Layout.KERNEL and plan.layers[0].storage == "kernel"
    # The plan picks it where it stores the fewest bits (a kernel over its whole input may not;
    # a tie goes to the layout first in Layout order, the kernel layout last).
    chosen = CorePlan.build(net, lanes).layers[0].synapses
    others = [option.stored_bits for option in SynapseLayout.options(layer, lanes)
              if option.kind is not Layout.KERNEL]
    assert (chosen.kind is Layout.KERNEL) == (lay.stored_bits < min(others))
    unrolled = layer.connectivity.unrolled()
    np.testing.assert_array_equal(decode_kernel_layout(lay, layer.fan_in), unrolled)
    # Each kept tap once per output channel's lane; the neurons' places as the sweep walks them.
    assert plan.layers[0].stored_synapses == layer.synapse_count
    places = [lay.place(j) for j in range(layer.size)]
    assert len(set(places)) == layer.size and all(a < lay.bank_depth for _, a in places)
    # The decode can fail: a kernel with one tap moved decodes to another matrix.
    if (layer.index >= 0).any():
        moved = shifted_tap(net)
        decoded = decode_kernel_layout(CorePlan.build(moved, lanes, layouts={
            "conv1": Layout.KERNEL}).layers[0].synapses, layer.fan_in)
        assert (decoded != unrolled).any() or \
            (moved.layers[0].connectivity.unrolled() == unrolled).all()
    # A spike costs its channel's column: every word, in the cycle model too.
    channels = layer.conv.input_shape[0]
    inputs = random_inputs(np.random.default_rng(seed), net, samples=2, rate=0.4)
    spikes = simulate(net, inputs).spikes
    per_input = np.maximum(1, lay.col_words)
    assert (per_input.reshape(channels, -1) == per_input.reshape(channels, -1)[:, :1]).all()
    accumulate = inputs.astype(np.int64) @ per_input
    expected = np.maximum(accumulate, layer.size) + sweep_overhead(layer.neuron)
    np.testing.assert_array_equal(cycle_bounds(plan, inputs, spikes)[0], expected)


def test_the_kernel_layout_stores_fewer_bits_than_the_unrolled_matrix():
    net = conv_network(np.random.default_rng(3), 2, 6, 6, 3, 3, 1, 1, density=1.0)
    for lanes in (1, 2, 4):
        plan = CorePlan.build(net, lanes)
        unrolled = min(SynapseLayout.build(net.layers[0], lanes, kind).stored_bits
                       for kind in (Layout.ADDRESSED, Layout.DELTA))
        assert plan.layers[0].synapses.kind is Layout.KERNEL
        assert plan.layers[0].synapses.stored_bits < unrolled
    report = core_report(CorePlan.build(net, 1)).layers[0]
    assert (report.synapses, report.storage, report.layout) == (3 * 2 * 3 * 3, "kernel", "kernel")
    with pytest.raises(PlanError, match=r"layouts\.fc2.*kernel layout is a convolution's"):
        CorePlan.build(net, 1, layouts={"fc2": Layout.KERNEL})


def test_the_memory_counts_every_unrolled_synapse_not_the_kernel_once():
    net = conv_network(np.random.default_rng(3), 2, 6, 6, 3, 3, 1, 1, density=1.0)
    layer, plan = net.layers[0], CorePlan.build(net, 1, layouts={"conv1": Layout.ADDRESSED})
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


@pytest.mark.parametrize("lanes,layout", [(1, Layout.DELTA), (3, Layout.ADDRESSED),
                                          (2, Layout.KERNEL), (3, Layout.KERNEL)])
def test_compiled_images_read_back_to_the_unrolled_matrix(tmp_path, lanes, layout):
    from snnhw.compiler import compile_network, read_back

    net = conv_network(np.random.default_rng(lanes), 2, 5, 4, 3, 3, 2, 1, density=0.7)
    compile_network(CorePlan.build(net, lanes, layouts={"conv1": layout}), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())["layers"]
    storage = "kernel" if layout is Layout.KERNEL else "unrolled"
    assert [entry["storage"] for entry in report] == [storage, "matrix"]
    assert report[0]["layout"] == layout.value
    images = read_back(tmp_path)
    np.testing.assert_array_equal(images[0].index, net.layers[0].connectivity.unrolled())
    assert (images[0].index != dense_twin(shifted_tap(net)).layers[0].index).any()
    np.testing.assert_array_equal(images[1].index, net.layers[1].index)


def test_snnhw_compile_says_the_conv_layer_is_a_kernel(tmp_path, capsys):
    from snnhw.cli import main

    net = conv_network(np.random.default_rng(0), 1, 4, 4, 2, 3, 1, 0)
    save(net, tmp_path / "m")
    assert main(["compile", str(tmp_path / "m"), "-o", str(tmp_path / "out"), "--no-lint"]) == 0
    printed = capsys.readouterr().out
    taps = CorePlan.build(net, 1).layers[0].stored_synapses
    assert taps == net.layers[0].synapse_count
    assert f"conv1: 8x16, {taps} synapses (kernel), " in printed
