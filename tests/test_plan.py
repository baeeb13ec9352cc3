"""The plan: synapse layouts (every existing synapse stored once, in its lane's bank), widths,
memories, placement and the load image."""

import numpy as np
import pytest

from snnhw.random_networks import random_network
from snnhw.plan import (CorePlan, MemoryKind, Placement, PlanError, SynapseLayout, bits_for,
                        signed_bits_for)


def _unpack(lay: SynapseLayout) -> np.ndarray:
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
    lay = SynapseLayout.build(layer, lanes)
    assert lay.addressed == (density < 1.0)
    np.testing.assert_array_equal(_unpack(lay), layer.index)
    # A column takes as many words as its busiest lane needs: no more.
    for i in range(layer.fan_in):
        targets = np.flatnonzero(layer.index[:, i] >= 0)
        busiest = max([np.count_nonzero(targets % lanes == p) for p in range(lanes)])
        assert lay.col_words[i] == (busiest if lay.addressed else -(-19 // lanes))


def test_pruned_synapses_take_no_memory():
    net = random_network(np.random.default_rng(0), 64, [32], density=0.25)
    lay = SynapseLayout.build(net.layers[0], 1)
    assert lay.total_words == net.layers[0].synapse_count


def test_accumulator_never_overflows():
    net = random_network(np.random.default_rng(0), 40, [7], weight_bits=8, codebook_size=9)
    layer = net.layers[0]
    acc_bits = CorePlan.build(net, 2).layers[0].acc_bits
    w = layer.dense_weights()
    lo, hi = np.minimum(w, 0).sum(axis=1).min(), np.maximum(w, 0).sum(axis=1).max()
    assert -(1 << (acc_bits - 1)) <= lo and hi < (1 << (acc_bits - 1))
    assert not (-(1 << (acc_bits - 2)) <= lo and hi < (1 << (acc_bits - 2)))  # and no wider


def test_bit_helpers():
    assert [bits_for(n) for n in (0, 1, 2, 3, 4, 5, 256, 257)] == [0, 0, 1, 2, 2, 3, 8, 9]
    assert signed_bits_for(-1, 0) == 1
    assert signed_bits_for(-8, 7) == 4
    assert signed_bits_for(-9, 7) == 5
    assert signed_bits_for(0, 8) == 5


def test_plan_memories_and_placement():
    net = random_network(np.random.default_rng(3), 30, [20, 6], density=0.5, state_levels=8)
    plan = CorePlan.build(net, 2)
    fc1 = plan.layers[0]
    kinds = [m.kind for m in fc1.memories]
    # Per lane: one membrane memory and two accumulator banks (timestep t+1 accumulates into one
    # while the sweep of t reads the other), each a neuron per word.
    assert kinds.count(MemoryKind.MEMBRANE) == 2 and kinds.count(MemoryKind.ACCUMULATOR) == 4
    accumulators = [m for m in fc1.memories if m.kind is MemoryKind.ACCUMULATOR]
    assert all(m.depth == 10 and m.width == fc1.acc_bits and not m.rom for m in accumulators)
    assert fc1.memory_bits["accumulator"] == 2 * 20 * fc1.acc_bits
    membrane = next(m for m in fc1.memories if m.kind is MemoryKind.MEMBRANE)
    # A state codebook of 8 levels stores a 3-bit level index, not V.
    assert membrane.width == fc1.state_bits == 3 and membrane.depth == 10
    assert plan.large == [] and plan.load_image() == b"" and plan.load_size == 0
    loaded = plan.with_placement({"fc2": Placement.LARGE})
    assert loaded.large == ["fc2"] and loaded.layers[1].synapses is plan.layers[1].synapses
    assert loaded.load_image() == plan.layers[1].synapses.image()
    assert loaded.load_size == len(loaded.load_image())
    assert plan.large == []  # frozen: with_placement made a new plan
    with pytest.raises(PlanError, match=r"^placement: fc9 is not a layer of random \(fc1, fc2\)$"):
        plan.with_placement({"fc9": Placement.LARGE})


def test_plan_refuses_impossible_parameters():
    net = random_network(np.random.default_rng(3), 8, [4])
    with pytest.raises(PlanError, match=r"^lanes: expected an integer in 1..64, got 0$"):
        CorePlan.build(net, 0)
    with pytest.raises(TypeError, match="Network must be a Network"):
        CorePlan.build("net", 1)


def test_a_neuron_model_a_backend_lacks_is_refused_by_name():
    """Each backend looks the layer's neuron model up in its own table."""
    import dataclasses
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from snnhw.errors import SnnhwError
    from snnhw.hw.engine import LayerEngine
    from snnhw.network.format import NEURON_MODELS
    from snnhw.train.model import from_network

    net = random_network(np.random.default_rng(3), 8, [4])
    layer = net.layers[0]
    layer.neuron = dataclasses.replace(layer.neuron, model="izhikevich")
    assert "izhikevich" not in NEURON_MODELS
    # The half-built engine is collected here, where Amaranth's warning about an unused
    # elaboratable (its constructor raised, which is the point) is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(SnnhwError, match=r"^layer fc1: neuron model 'izhikevich' has no "
                                             r"hardware unit \(the generator has lif\)$"):
            LayerEngine(CorePlan.build(net, 1).layers[0])
        gc.collect()
    with pytest.raises(SnnhwError, match=r"^layer fc1: neuron model 'izhikevich' has no torch "
                                         r"layer \(training has lif\)$"):
        from_network(net)
    with pytest.raises(SnnhwError, match=r"neuron.model: expected 'lif', got 'izhikevich'"):
        net.validate()


def test_generator_parts_refuse_a_wrong_type():
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from snnhw.hw.core import Core
    from snnhw.hw.engine import LayerEngine

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(TypeError, match=r"^Plan must be a CorePlan, not 'net'$"):
            Core("net")
        with pytest.raises(TypeError, match=r"^Layer plan must be a LayerPlan, not 1$"):
            LayerEngine(1)
        gc.collect()


def test_version_2_neurons_plan_parameter_roms_and_pipeline_stages():
    # Per-neuron threshold, beta and bias live in the LIF unit's ROMs (the plan's parameter
    # memory, a neuron per word); the membrane stores V alone (a pending reset is recomputed).
    import dataclasses

    from snnhw.network.format import ResetTiming
    from snnhw.plan.cycles import lif_latency, sweep_overhead
    net = random_network(np.random.default_rng(3), 30, [20, 6], v_bits=12)
    fc1 = net.layers[0]
    v1_neuron = fc1.neuron
    fc1.neuron = dataclasses.replace(
        fc1.neuron, threshold=tuple(range(1, 21)), bias=tuple(range(-10, 10)), leak_shift=0,
        beta=(200,) * 20, beta_bits=9, beta_frac_bits=8, reset_timing=ResetTiming.DEFERRED)
    plan = CorePlan.build(net, 2)
    parameter = [m for m in plan.layers[0].memories if m.kind is MemoryKind.PARAMETER]
    assert [(m.depth, m.width, m.rom) for m in parameter] == [(20, 12 + 12 + 9, True)]
    assert plan.layers[0].memory_bits["parameter"] == 20 * 33
    assert plan.layers[1].memory_bits["parameter"] == 0
    assert plan.layers[0].state_bits == 12
    # Fetch, pending reset and multiply: three stages more than the version-1 unit.
    assert lif_latency(fc1.neuron) == lif_latency(v1_neuron) + 3 == 6
    assert sweep_overhead(fc1.neuron) == 9
