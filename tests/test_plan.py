"""The plan: synapse layouts (every existing synapse stored once, in its lane's bank), widths,
memories, placement and the load image."""

import math
from dataclasses import replace

import numpy as np
import pytest

from snnhw.random_networks import random_network
from snnhw.network import Layer, Neuron, Reset
from snnhw.plan import (WORDS_SLACK, CorePlan, Layout, MemoryKind, Placement, PlanError,
                        SynapseLayout, bits_for, rom_slice_bits, signed_bits_for)


def _unpack(lay: SynapseLayout) -> np.ndarray:
    """Rebuild the index matrix from the memory images."""
    index = np.full((lay.size, lay.fan_in), -1, dtype=np.int64)
    for i in range(lay.fan_in):
        start, count = int(lay.col_start[i]), int(lay.col_words[i])
        running = [-1] * lay.lanes  # delta: each lane's address so far
        for w in range(count):
            for p in range(lay.lanes):
                slot = int(lay.words[start + w, p])
                if lay.kind is Layout.ADDRESSED:
                    if not slot & 1:
                        continue
                    k = (slot >> 1) & ((1 << lay.index_bits) - 1)
                    address = slot >> (1 + lay.index_bits)
                elif lay.kind is Layout.DELTA:
                    gap, k = slot & ((1 << lay.gap_bits) - 1), slot >> lay.gap_bits
                    if gap == (1 << lay.gap_bits) - 1:  # escape: skip, add nothing
                        running[p] += ((k + 1) << lay.gap_bits) - 1
                        continue
                    running[p] += gap + 1
                    address = running[p]
                else:
                    k, address = slot, w
                j = address * lay.lanes + p
                if j < lay.size:
                    assert index[j, i] == -1, "synapse stored twice"
                    index[j, i] = k
                else:
                    assert lay.kind is Layout.IMPLICIT, "a synapse beyond the layer"
    return index


@pytest.mark.parametrize("lanes", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("kind", list(Layout))
def test_layout_round_trip(lanes, density, kind):
    net = random_network(np.random.default_rng(lanes), 23, [19], codebook_size=5,
                         density=density)
    layer = net.layers[0]
    if not SynapseLayout.allows(layer, kind):
        # The kernel layout is a convolution's (tests/test_conv_plan.py).
        assert kind is Layout.KERNEL or (kind is Layout.IMPLICIT and density < 1.0)
        return
    lay = SynapseLayout.build(layer, lanes, kind)
    assert lay.kind is kind and lay.has_pointers == (kind is not Layout.IMPLICIT)
    np.testing.assert_array_equal(_unpack(lay), layer.index)
    # A column takes as many words as its busiest lane needs: no more (delta: its slots,
    # escapes included).
    for i in range(layer.fan_in):
        targets = np.flatnonzero(layer.index[:, i] >= 0)
        busiest = max([np.count_nonzero(targets % lanes == p) for p in range(lanes)])
        if kind is Layout.DELTA:
            assert busiest <= lay.col_words[i] <= busiest + -(-19 // lanes)
        else:
            assert lay.col_words[i] == (busiest if kind is Layout.ADDRESSED
                                        else -(-19 // lanes))


def test_delta_escapes_cover_every_gap(monkeypatch):
    """Gaps around each multiple of 2**gap_bits, as wide as the bank, and lone synapses at
    either end of a lane: every one decodes back, at every gap width the layout may pick."""
    from snnhw.plan import layout

    size = 300
    index = np.full((size, 6), -1, dtype=np.int32)
    index[[0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65, 200, 299], 0] = 1
    index[[299], 1] = 0
    index[[0], 2] = 2
    index[::37, 3] = 3
    index[[1, 2], 4] = 1  # column 5 empty
    layer = Layer(name="l", index=index, codebook=(-2, -1, 1, 3), weight_bits=3,
                  neuron=Neuron(threshold=3, leak_shift=1, reset=Reset.SUBTRACT, v_bits=6))
    for gap_bits in range(1, 10):
        for lanes in (1, 3):
            monkeypatch.setattr(layout, "_best_gap_bits", lambda *args: gap_bits)
            lay = SynapseLayout.build(layer, lanes, Layout.DELTA)
            assert lay.gap_bits == gap_bits
            np.testing.assert_array_equal(_unpack(lay), index)


def test_the_plan_picks_the_fewest_bits():
    """Every layer gets the layout of fewest stored bits (the delta layout at the gap width its
    words_slack picks); an 80 % pruned layer of 4 values is then delta-coded, and smaller than
    it is addressed."""
    net = random_network(np.random.default_rng(0), 64, [64, 10], codebook_size=4,
                         density=0.2)
    for slack in (WORDS_SLACK, math.inf):
        plan = CorePlan.build(net, 1, words_slack=slack)
        for lp in plan.layers:
            options = {lay.kind: lay.stored_bits
                       for lay in SynapseLayout.options(lp.layer, 1, words_slack=slack)}
            assert set(options) == {Layout.ADDRESSED, Layout.DELTA}
            assert lp.synapses.stored_bits == min(options.values())
        fc1 = plan.layers[0].synapses
        assert fc1.kind is Layout.DELTA
        assert fc1.stored_bits < 0.8 * SynapseLayout.build(net.layers[0], 1,
                                                           Layout.ADDRESSED).stored_bits
    dense = random_network(np.random.default_rng(0), 8, [5])
    assert CorePlan.build(dense, 2).layers[0].synapses.kind is Layout.IMPLICIT
    forced = CorePlan.build(dense, 2, layouts={"fc1": Layout.DELTA}).layers[0].synapses
    assert forced.kind is Layout.DELTA
    np.testing.assert_array_equal(_unpack(forced), dense.layers[0].index)
    with pytest.raises(PlanError, match=r"^layouts.fc1: the implicit layout stores every "
                                        r"synapse, but fc1 lacks some \(pruned, "
                                        r"or a convolution's\)$"):
        CorePlan.build(net, 1, layouts={"fc1": Layout.IMPLICIT})
    with pytest.raises(PlanError, match=r"^layouts: fc9 is not a layer of random"):
        CorePlan.build(net, 1, layouts={"fc9": Layout.DELTA})
    with pytest.raises(PlanError, match=r"^layouts.fc2: expected one of implicit, addressed, "
                                        r"delta, kernel, got 'delta'$"):
        CorePlan.build(net, 1, layouts={"fc2": "delta"})


def test_pruned_synapses_take_no_memory():
    net = random_network(np.random.default_rng(0), 64, [32], density=0.25)
    lay = SynapseLayout.build(net.layers[0], 1, Layout.ADDRESSED)
    assert lay.total_words == net.layers[0].synapse_count
    # Delta: one slot per synapse, plus an escape where a gap exceeds its field.
    delta = SynapseLayout.build(net.layers[0], 1, Layout.DELTA)
    escape = (1 << delta.gap_bits) - 1
    escapes = int(((delta.words & np.uint64(escape)) == escape).sum())
    assert delta.total_words == net.layers[0].synapse_count + escapes


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
    # One membrane memory by neuron (the sweep takes a neuron a cycle); per lane two accumulator
    # banks (timestep t+1 accumulates into one while the sweep of t reads the other).
    assert kinds.count(MemoryKind.MEMBRANE) == 1 and kinds.count(MemoryKind.ACCUMULATOR) == 4
    accumulators = [m for m in fc1.memories if m.kind is MemoryKind.ACCUMULATOR]
    assert all(m.depth == 10 and m.width == fc1.acc_bits and not m.rom for m in accumulators)
    assert fc1.memory_bits["accumulator"] == 2 * 20 * fc1.acc_bits
    membrane = next(m for m in fc1.memories if m.kind is MemoryKind.MEMBRANE)
    # A state codebook of 8 levels stores a 3-bit level index, not V.
    assert membrane.width == fc1.state_bits == 3 and membrane.depth == 20
    assert plan.large == [] and plan.load_image() == b"" and plan.load_size == 0
    loaded = plan.with_placement({"fc2": Placement.LARGE})
    assert loaded.large == ["fc2"] and loaded.layers[1].synapses is plan.layers[1].synapses
    assert loaded.load_image() == plan.layers[1].synapses.image()
    assert loaded.load_size == len(loaded.load_image())
    assert plan.large == []  # frozen: with_placement made a new plan
    with pytest.raises(PlanError, match=r"^placement: fc9 is not a layer of random \(fc1, fc2\)$"):
        plan.with_placement({"fc9": Placement.LARGE})


ECP5_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


@pytest.mark.parametrize("depth, width, slice_bits", [
    (5798, 24, 2),  # MNIST fc1 at P = 4: 8K x 2 slices, no multiplexer (not 9 blocks and one)
    (1127, 20, 9),  # 2K x 9
    (614, 40, 18),  # 1K x 18
    (20616, 6, 1),  # deeper than any mode: 16K x 1 slices, two blocks to select between
    (4176, 1, 1),
    (300, 40, 40),  # the shallowest mode holds it: one memory (Yosys splits the width itself)
])
def test_rom_slices_leave_no_multiplexer(depth, width, slice_bits):
    assert rom_slice_bits(depth, width, ECP5_MODES) == slice_bits


def test_only_block_rom_synapses_are_sliced():
    net = random_network(np.random.default_rng(3), 30, [20, 6], density=0.5)
    plan = CorePlan.build(net, 2)
    fc1 = plan.layers[0]
    assert plan.synapse_slice_bits(fc1) is None  # no modes: one memory, placed by Yosys
    sliced = replace(plan, bram_modes=((8, 1), (4, 2)))
    assert sliced.synapse_slice_bits(fc1) == 1 < fc1.synapses.word_bits
    loaded = sliced.with_placement({"fc1": Placement.LARGE})
    assert loaded.bram_modes == sliced.bram_modes
    assert loaded.synapse_slice_bits(loaded.layers[0]) is None


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


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("codebook_size", [1, 4, 16])
def test_delta_gap_width_follows_the_rule(monkeypatch, lanes, codebook_size):
    """The gap width the layout picks from counted slots is the one the rule picks among the
    built layouts of every width: the fewest bits within WORDS_SLACK of the fewest words (with
    an infinite slack: the fewest bits)."""
    from snnhw.plan import layout

    net = random_network(np.random.default_rng(codebook_size), 30, [37],
                         codebook_size=codebook_size, density=0.2)
    chosen = {slack: SynapseLayout.build(net.layers[0], lanes, Layout.DELTA, words_slack=slack)
              for slack in (WORDS_SLACK, math.inf)}
    built = []
    for gap_bits in range(1, 9):
        monkeypatch.setattr(layout, "_best_gap_bits", lambda *args: gap_bits)
        built.append(SynapseLayout.build(net.layers[0], lanes, Layout.DELTA))
    assert chosen[math.inf].stored_bits == min(lay.stored_bits for lay in built)
    fewest = min(lay.spike_words for lay in built)
    near = [lay for lay in built if lay.spike_words <= (1 + WORDS_SLACK) * fewest]
    assert chosen[WORDS_SLACK].gap_bits == min(near, key=lambda lay: lay.stored_bits).gap_bits
    assert len({lay.stored_bits for lay in built}) > 2, "the widths differ"


@pytest.mark.parametrize("lanes", [1, 4])
def test_the_plan_spends_bits_on_fewer_escapes(lanes):
    """The example network's fc1 (50 % pruned, 4 values): the delta layout's fewest bits take a
    2-bit gap whose escapes cost more than WORDS_SLACK in words; the plan takes a 3-bit gap
    instead, more bits for nearly the fewest words (the choice the bits alone would not make)."""
    from pathlib import Path

    from snnhw.network import load

    net = load(Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10")
    fewest_bits = CorePlan.build(net, lanes, words_slack=math.inf).layers[0].synapses
    plan = CorePlan.build(net, lanes)
    chosen = plan.layers[0].synapses
    fewest_words = SynapseLayout.build(plan.layers[0].layer, lanes, Layout.ADDRESSED)
    assert (fewest_bits.kind, fewest_bits.gap_bits, chosen.kind, chosen.gap_bits) == \
        (Layout.DELTA, 2, Layout.DELTA, 3)
    assert fewest_bits.spike_words > (1 + WORDS_SLACK) * chosen.spike_words
    assert chosen.stored_bits > fewest_bits.stored_bits
    assert chosen.spike_words <= 1.01 * fewest_words.spike_words


def test_the_core_numbers_only_the_inputs_with_synapses():
    """A network input without synapses has no core input: the first layer's pointer memory and
    the input port hold only the others, the cycle model drops their events, and a network whose
    first layer is not dense, or that encodes its inputs on the chip, keeps its numbering."""
    from dataclasses import replace

    from snnhw.network.encoder import Encoder
    from snnhw.plan import cycle_bounds
    from snnhw.plan.inputs import kept_inputs

    net = random_network(np.random.default_rng(5), 40, [16, 4], density=0.5, timesteps=3)
    pruned = [i for i in range(40) if i % 4 != 1]  # the first and the last among them
    net.layers[0].index[:, pruned] = -1
    kept = list(range(1, 40, 4))
    plan = CorePlan.build(net, 4, layouts={"fc1": Layout.DELTA})
    assert plan.kept_inputs.tolist() == kept and plan.input_size == 10
    assert plan.input_addr_bits == bits_for(10)
    fc1 = plan.layers[0]
    pointers = next(m for m in fc1.memories if m.kind is MemoryKind.POINTER)
    assert pointers.depth == 10 and fc1.memory_bits["pointer"] == 10 * fc1.synapses.pointer_bits
    # The same synapses as the network's, column k being network input kept[k].
    np.testing.assert_array_equal(
        plan.in_network_order("fc1", _unpack(fc1.synapses).T).T, net.layers[0].index[:, kept])
    spikes = np.zeros((1, 3, 40), np.uint8)
    spikes[0, :, pruned] = 1
    np.testing.assert_array_equal(plan.core_inputs(spikes), np.zeros((1, 3, 10)))
    golden = {"fc1": np.zeros((1, 3, 16)), "fc2": np.zeros((1, 3, 4))}
    # The 30 events of inputs without synapses (a cycle each, were they sent) cost nothing: the
    # bound is the sweep's alone.
    quiet = cycle_bounds(plan, np.zeros_like(spikes), golden)
    np.testing.assert_array_equal(cycle_bounds(plan, spikes, golden), quiet)
    # Kept as they are: every input with a synapse, none with one, an on-chip encoder.
    assert kept_inputs(random_network(np.random.default_rng(5), 40, [16], density=0.5)) is None
    silent = random_network(np.random.default_rng(5), 40, [16], density=0.0)
    assert CorePlan.build(silent, 1).input_size == 40
    encoded = replace(net, encoder=Encoder("rate"))
    assert CorePlan.build(encoded, 1).kept_inputs is None
