"""The stimulus/capture harness: a core runs whole batches under Verilator without Python per
cycle, and what it captures equals the golden model on every spike and membrane potential."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.lib import wiring
from amaranth.sim import Simulator

from snnhw.errors import SnnhwError
from snnhw.golden import simulate
from snnhw.hw.core import Core
from snnhw.hw.harness import Harness, lfsr_seed, probability
from snnhw.network import Reset
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan
from snnhw.sim.harness_runner import (BatchSimulator, decode_captures, pack_events,
                                      unpack_records)
from snnhw.sim.runner import Mismatch, compare


def _plan(net, lanes):
    """The one place these tests build a core (its construction is not the harness's business)."""
    return CorePlan.build(net, lanes)


def _net_a():
    return random_network(np.random.default_rng(7), 24, [16, 6], density=0.6, timesteps=5)


def _net_b():
    return random_network(np.random.default_rng(3), 30, [12, 9, 5], density=0.3, timesteps=4,
                          reset=Reset.ZERO, v_bits=9, leak_shift=2, name="deeper")


def _capacity(net, samples):
    t = net.timesteps
    return {f"probe_{l.name}": samples * t * l.size for l in net.layers} | {
        "out": samples * t * (net.output_size + 1), "cycles": samples * t}


# -- without a simulator -------------------------------------------------------------------------

def test_parameters_are_checked():
    net = _net_a()
    with pytest.raises(TypeError, match=r"^Core must be a wiring.Component, not 3$"):
        Harness(3, stimulus=10, capacity=_capacity(net, 1))
    core = Core(_plan(net, 1))
    with pytest.raises(ValueError, match=r"^Capacity must name exactly the captures "
                                         r"probe_fc1, probe_fc2, out, cycles, not out$"):
        Harness(core, stimulus=10, capacity={"out": 4})
    with pytest.raises(ValueError, match=r"^Stimulus capacity must be a positive integer, "
                                         r"not 0$"):
        Harness(core, stimulus=0, capacity=_capacity(net, 1))
    with pytest.raises(ValueError, match=r"^Probability must be in \[0, 1\), not 1.0$"):
        probability(1.0)
    Fragment.get(core, None)  # used after all: no UnusedElaboratable warnings


def test_memories_pack_records_into_wide_words():
    net = _net_a()
    harness = Harness(Core(_plan(net, 1)), stimulus=100, capacity=_capacity(net, 2),
                      word_bits=256, stimulus_bits=64)
    fc1 = harness.captures["probe_fc1"]
    assert fc1.record_bits == 4 + 1 + 12  # neuron, spike, v
    assert fc1.per_word == 256 // 17 and fc1.depth == -(-2 * 5 * 16 // fc1.per_word)
    assert harness.stimulus.per_word == 64 // 6  # {addr: 5 bits, eot}
    assert isinstance(harness, wiring.Component)
    assert probability(0.0) == 0 and probability(0.5) == 32768
    assert lfsr_seed(0, 0) != 0 and lfsr_seed(0, 0) != lfsr_seed(0, 1)
    Fragment.get(harness, None)


def test_stimulus_is_what_the_input_stream_takes():
    net = _net_a()
    harness = Harness(Core(_plan(net, 1)), stimulus=100, capacity=_capacity(net, 2))
    stimulus = harness.stimulus
    inputs = np.zeros((2, 2, 24), np.uint8)
    inputs[0, 0, [3, 17]] = 1
    inputs[1, 1, 5] = 1
    words = pack_events(inputs, stimulus)
    bits = unpack_records(words, 7, stimulus)
    codes = bits.astype(np.int64) @ (1 << np.arange(stimulus.record_bits))
    eot = 1 << 5
    assert codes.tolist() == [3, 17, eot, eot, eot, 5, eot]
    Fragment.get(harness, None)


def test_harness_in_the_amaranth_simulator():
    """The harness itself, without Verilator: two samples with idle cycles and back-pressure."""
    net = random_network(np.random.default_rng(11), 6, [5, 3], timesteps=3)
    inputs = random_inputs(np.random.default_rng(2), net, samples=2, rate=0.5)
    harness = Harness(Core(_plan(net, 1)), stimulus=64, capacity=_capacity(net, 2), word_bits=64,
                      stimulus_bits=32)
    words = pack_events(inputs, harness.stimulus)
    raw = {"errors": np.array([], str)}

    async def testbench(ctx):
        for addr, word in enumerate(words):
            ctx.set(harness.stim_addr, addr)
            ctx.set(harness.stim_data, int.from_bytes(word.tobytes(), "little"))
            ctx.set(harness.stim_en, 1)
            await ctx.tick()
        ctx.set(harness.stim_en, 0)
        ctx.set(harness.samples, 2)
        ctx.set(harness.timesteps, 3)
        ctx.set(harness.gap, probability(0.3))
        ctx.set(harness.stall, probability(0.5))
        ctx.set(harness.gap_seed, lfsr_seed(1, 0))
        ctx.set(harness.stall_seed, lfsr_seed(1, 1))
        ctx.set(harness.go, 1)
        await ctx.tick()
        ctx.set(harness.go, 0)
        await ctx.tick().until(harness.done)
        counts = [ctx.get(getattr(harness, f"count_{name}")) for name in harness.captures]
        raw["count0"] = np.array(counts)
        raw["overflow"] = np.array([ctx.get(harness.overflow)])
        for (name, capture), count in zip(harness.captures.items(), counts):
            port, size = getattr(harness, f"read_{name}"), -(-capture.word_bits // 8)
            data = b""
            for addr in range(-(-count // capture.per_word)):
                ctx.set(harness.read_addr, addr)
                await ctx.tick()
                data += ctx.get(port).to_bytes(size, "little")
            raw[f"{name}0"] = np.frombuffer(data, np.uint8).reshape(-1, size)

    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    rtl, out_spikes, errors = decode_captures(harness, net, raw, [(0, 2)], 3)
    golden = simulate(net, inputs)
    assert errors == []
    assert compare(golden, rtl, out_spikes) == []
    assert golden.spikes["fc2"].any()
    assert (rtl.cycles > 0).all()


# -- under Verilator -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim_a(tmp_path_factory):
    return BatchSimulator(_plan(_net_a(), 1), tmp_path_factory.mktemp("harness-a"), batch=8)


@pytest.fixture(scope="module")
def sim_b(tmp_path_factory):
    return BatchSimulator(_plan(_net_b(), 2), tmp_path_factory.mktemp("harness-b"), batch=8)


def _check(sim, inputs, gap, backpressure, seed=3):
    rtl, out_spikes, errors = sim.run(inputs, gap=gap, backpressure=backpressure, seed=seed)
    golden = simulate(sim.net, inputs)
    assert errors == []
    mismatches = compare(golden, rtl, out_spikes)
    assert mismatches == [], "\n".join(map(str, mismatches[:10]))
    for layer in sim.net.layers:
        assert golden.spikes[layer.name].any(), "the test needs spikes in every layer"
        assert rtl.v_trace[layer.name].shape == golden.v_trace[layer.name].shape
    assert (rtl.cycles > 0).all()
    return rtl


@pytest.mark.verilator
@pytest.mark.parametrize("gap,backpressure", [(0.0, 0.0), (0.4, 0.0), (0.0, 0.6), (0.4, 0.6)])
def test_one_lane_equals_golden(sim_a, gap, backpressure):
    # 20 samples in memories for 8: three runs of the harness in one simulation.
    inputs = random_inputs(np.random.default_rng(1), sim_a.net, samples=20, rate=0.4)
    assert len(sim_a.chunks(inputs)) == 3
    _check(sim_a, inputs, gap, backpressure)


@pytest.mark.verilator
@pytest.mark.parametrize("gap,backpressure", [(0.0, 0.0), (0.3, 0.5)])
def test_two_lanes_three_layers_equal_golden(sim_b, gap, backpressure):
    # Lane balancing holds fc1's and fc2's neurons in another order: the run maps them back.
    assert [lp.order is not None for lp in sim_b.plan.layers] == [True, True, False]
    inputs = random_inputs(np.random.default_rng(2), sim_b.net, samples=6, rate=0.5)
    _check(sim_b, inputs, gap, backpressure)


@pytest.mark.verilator
def test_stalls_cost_cycles_and_probability_zero_none(sim_a):
    inputs = random_inputs(np.random.default_rng(5), sim_a.net, samples=3, rate=0.4)
    fast = _check(sim_a, inputs, 0.0, 0.0, seed=1)
    again = _check(sim_a, inputs, 0.0, 0.0, seed=2)
    slow = _check(sim_a, inputs, 0.5, 0.8, seed=1)
    np.testing.assert_array_equal(fast.cycles, again.cycles)  # no stalls, whatever the seed
    assert slow.cycles.sum() > fast.cycles.sum()


@pytest.mark.verilator
def test_a_wrong_golden_result_is_caught(sim_a):
    inputs = random_inputs(np.random.default_rng(4), sim_a.net, samples=2, rate=0.4)
    rtl, out_spikes, _ = sim_a.run(inputs)
    golden = simulate(sim_a.net, inputs)
    golden.spikes["fc1"][1, 3, 5] ^= 1
    flipped = int(golden.spikes["fc1"][1, 3, 5])
    assert compare(golden, rtl, out_spikes) == [Mismatch(1, 3, "fc1", 5, "spike", flipped,
                                                         1 - flipped)]


@pytest.mark.verilator
def test_batches_beyond_the_memories_are_one_line_errors(sim_a):
    net = sim_a.net
    # A sample of 9 timesteps needs 9 * 16 fc1 records; memories for 8 samples of 5 hold 640:
    # fits (several chunks). A sample of 41 timesteps does not fit at all.
    long = random_inputs(np.random.default_rng(6), net, samples=2, timesteps=41, rate=0.3)
    with pytest.raises(SnnhwError, match=r"^inputs: a sample of 41 timesteps needs 656 "
                                         r"probe_fc1 records, the harness holds 640; build the "
                                         r"BatchSimulator with timesteps=41$"):
        sim_a.run(long)
    huge = np.zeros((1, 1 << 16, net.input_size), np.uint8)
    with pytest.raises(SnnhwError, match=r"^inputs: 65536 timesteps per sample; the core counts "
                                         r"at most 65535$"):
        sim_a.run(huge)
