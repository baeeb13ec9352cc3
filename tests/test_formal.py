"""Formal proofs about the generated RTL (SymbiYosys + Yices, from wheels): docs/formal.md.

Each property is proven on small representative parameter sets, bounded where unbounded is too
slow (the depth is in the test), and each is shown able to fail: a deliberately broken RTL or
property makes SymbiYosys report FAIL, and cover runs show that the assumptions leave the
interesting corners reachable.
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Array, Assert, Elaboratable, Module, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

import snnhw.formal.bound
import snnhw.hw.core
import snnhw.hw.engine
from snnhw.formal import (CycleBound, EngineReference, LIFEquivalence, Mode, RestartEquivalence,
                          StreamProtocol, Verdict, run_sby, startup_cycles)
from snnhw.golden import simulate
from snnhw.hw import LIFUnit
from snnhw.hw.lif import state_shape
from snnhw.network import Layer, Network, Neuron, Reset
from snnhw.network.connectivity import ConvGeometry
from snnhw.network.format import Fire, ResetTiming, Rounding
from snnhw.plan import CorePlan, Layout
from snnhw.plan.cycles import SWEEP_OVERHEAD, lif_latency, spike_cycles
from snnhw.random_networks import random_inputs, random_network
from snnhw.sim.runner import Simulator, compare

pytestmark = pytest.mark.formal


def _run(harness, tmp_path, mode: Mode, depth: int):
    # The deepest BMC runs (the 5x2 cycle bound, depth 37) take minutes and more on a loaded
    # machine: a generous limit, so that a slow machine is not a failing proof.
    result = run_sby(harness, "proof", tmp_path, mode=mode, depth=depth, timeout=1800)
    if result.verdict is Verdict.ERROR:
        pytest.fail(f"SymbiYosys failed to run:\n{result.log[-3000:]}")
    return result


def _verdict(harness, tmp_path, mode: Mode, depth: int) -> Verdict:
    return _run(harness, tmp_path, mode, depth).verdict


def _failures(harness, tmp_path, mode: Mode, depth: int) -> set[str]:
    """The messages of the assertions a counterexample violates (none if the run passed)."""
    result = _run(harness, tmp_path, mode, depth)
    assert result.verdict is Verdict.FAIL, result.verdict
    return set(result.failed)


def _layer(name: str, weights: list[list[int]], neuron: Neuron) -> Layer:
    """A layer with the given integer weights (None: pruned), each its own codebook entry."""
    codebook = sorted({w for row in weights for w in row if w is not None})
    index = np.array([[-1 if w is None else codebook.index(w) for w in row] for row in weights],
                     np.int32)
    bits = max(int(abs(w)).bit_length() + 1 for w in codebook)
    return Layer(name=name, index=index, codebook=tuple(codebook), weight_bits=bits,
                 neuron=neuron)


def _network(*layers: Layer, timesteps: int = 2) -> Network:
    net = Network(name="formal", input_size=layers[0].fan_in, layers=list(layers),
                  timesteps=timesteps)
    net.validate()
    return net


SUBTRACT = Neuron(threshold=6, leak_shift=1, reset=Reset.SUBTRACT, v_bits=5)
ZERO_LEVELS = Neuron(threshold=5, leak_shift=2, reset=Reset.ZERO, v_bits=5,
                     state_levels=(-16, -3, 0, 2, 5, 9, 15))

# -- the LIF unit equals its specification, every input, depth latency + 1 (complete) ---------

LIF_CASES = {
    # v_bits 24 with the accumulator widths of real layers: out of reach of simulation.
    "v24-leak3-subtract-acc12": (Neuron(threshold=1000, leak_shift=3, reset=Reset.SUBTRACT,
                                        v_bits=24), 12),
    "v24-noleak-zero-acc26": (Neuron(threshold=(1 << 23) - 1, leak_shift=0, reset=Reset.ZERO,
                                     v_bits=24), 26),
    "v24-leak23-zero-acc20": (Neuron(threshold=1, leak_shift=23, reset=Reset.ZERO, v_bits=24),
                              20),
    "v16-levels-subtract-acc10": (Neuron(threshold=9, leak_shift=2, reset=Reset.SUBTRACT,
                                         v_bits=16,
                                         state_levels=(-300, -4, 0, 5, 7, 8, 9, 12, 32767)), 10),
    # Version 2, each feature in at least one case (docs/nir.md): '>' with the threshold at
    # V's top value, bias, reset none.
    "v2-v20-gt-top-none-bias-acc14": (Neuron(threshold=(1 << 19) - 1, leak_shift=0,
                                             reset=Reset.NONE, v_bits=20, fire=Fire.GT,
                                             bias=-1000), 14),
    # Deferred reset to zero, per-neuron threshold and bias.
    "v2-v16-deferred-zero-per-neuron-acc12": (Neuron(
        threshold=(3, 500, 32767), leak_shift=2, reset=Reset.ZERO, v_bits=16,
        reset_timing=ResetTiming.DEFERRED, bias=(-7, 0, 100)), 12),
    # immediate_snntorch with a per-neuron beta, rounded to nearest.
    "v2-v10-snntorch-beta-nearest-acc8": (Neuron(
        threshold=100, leak_shift=0, reset=Reset.SUBTRACT, v_bits=10, fire=Fire.GT,
        reset_timing=ResetTiming.IMMEDIATE_SNNTORCH, beta=(230, 256, 17), beta_bits=9,
        beta_frac_bits=8, beta_rounding=Rounding.NEAREST, bias=3), 8),
    # Deferred subtraction, beta floor, state levels.
    "v2-v10-deferred-subtract-beta-floor-levels-acc8": (Neuron(
        threshold=40, leak_shift=0, reset=Reset.SUBTRACT, v_bits=10,
        reset_timing=ResetTiming.DEFERRED, beta=57, beta_bits=6, beta_frac_bits=6,
        state_levels=(-512, -30, 0, 7, 39, 40, 41, 200, 511)), 8),
}


@pytest.mark.parametrize("case", sorted(LIF_CASES))
def test_lif_unit_equals_its_specification(case, tmp_path):
    neuron, current_bits = LIF_CASES[case]
    harness = LIFEquivalence(neuron, current_bits)
    assert _verdict(harness, tmp_path, Mode.BMC, harness.depth) is Verdict.PASS


def test_lif_assumptions_leave_spikes_and_silence_reachable(tmp_path):
    neuron, current_bits = LIF_CASES["v16-levels-subtract-acc10"]
    harness = LIFEquivalence(neuron, current_bits)
    assert _verdict(harness, tmp_path, Mode.COVER, harness.depth) is Verdict.PASS


class _WrappingLIFUnit(wiring.Component):
    """A broken unit: it saturates one bit too wide and truncates, so V wraps at the top."""

    def __init__(self, neuron: Neuron, current_bits: int):
        self.neuron, self.current_bits = neuron, current_bits
        self.latency = lif_latency(neuron)
        super().__init__({"state": In(state_shape(neuron)), "current": In(signed(current_bits)),
                          "index": In(range(2)), "state_next": Out(state_shape(neuron)),
                          "v_next": Out(signed(neuron.v_bits)), "spike": Out(1)})

    def elaborate(self, platform):
        m = Module()
        wider = dataclasses.replace(self.neuron, v_bits=self.neuron.v_bits + 1)
        m.submodules.unit = unit = LIFUnit(wider, self.current_bits)
        m.d.comb += [unit.state.eq(self.state), unit.current.eq(self.current),
                     self.state_next.eq(unit.state_next), self.v_next.eq(unit.v_next),
                     self.spike.eq(unit.spike)]
        return m


@pytest.mark.parametrize("case,unit", [
    ("v24-noleak-zero-acc26", _WrappingLIFUnit),
    # Version 2: a unit built with another comparison, another timing, another rounding.
    ("v2-v20-gt-top-none-bias-acc14",
     lambda n, bits: LIFUnit(dataclasses.replace(n, fire=Fire.GE), bits)),
    ("v2-v16-deferred-zero-per-neuron-acc12",
     lambda n, bits: LIFUnit(dataclasses.replace(n, reset_timing=ResetTiming.IMMEDIATE), bits)),
    ("v2-v10-snntorch-beta-nearest-acc8",
     lambda n, bits: LIFUnit(dataclasses.replace(n, beta_rounding=Rounding.FLOOR), bits)),
    # A unit built with the next threshold: snapping and firing differ somewhere.
    ("v16-levels-subtract-acc10",
     lambda n, bits: LIFUnit(dataclasses.replace(n, threshold=n.threshold + 1), bits)),
])
def test_lif_proof_fails_on_a_broken_unit(case, unit, tmp_path):
    neuron, current_bits = LIF_CASES[case]
    harness = LIFEquivalence(neuron, current_bits, unit=unit)
    failed = _failures(harness, tmp_path, Mode.BMC, harness.depth)
    assert failed & {"membrane potential", "spike", "stored state", "stored level index"}


# -- the stream rule on every engine's input and output: unbounded (k-induction) --------------

def _protocol_plans() -> dict[str, CorePlan]:
    rng = np.random.default_rng(1)
    return {
        # Two layers (the second engine's input is the first one's output), pruned, 2 lanes,
        # the smallest output queue so that full-queue states are a few cycles deep.
        "2-layers-2-lanes": CorePlan.build(random_network(rng, 3, [4, 3], density=0.7,
                                                          v_bits=6), 2, queue_depth=4),
        "1-layer-levels": CorePlan.build(_network(_layer("l", [[3, 2, -1], [1, None, 2]],
                                                         ZERO_LEVELS)), 1, queue_depth=4),
    }


@pytest.mark.parametrize("name", ["2-layers-2-lanes", "1-layer-levels"])
def test_every_stream_holds_until_ready(name, tmp_path):
    plan = _protocol_plans()[name]
    assert _verdict(StreamProtocol(plan), tmp_path, Mode.PROVE, 8) is Verdict.PASS


def test_output_stalls_are_reachable(tmp_path):
    # Without reachable stalls the rule would hold vacuously.
    plan = _protocol_plans()["1-layer-levels"]
    assert _verdict(StreamProtocol(plan), tmp_path, Mode.COVER, 19) is Verdict.PASS


class _FlickeringQueue(Elaboratable):
    """A broken output queue: its ``r_rdy`` (the engine's ``o.valid``) is low every other
    cycle, whether or not the event was taken."""

    def __init__(self, width: int, depth: int):
        self.inner = SyncFIFOBuffered(width=width, depth=depth)
        for name in ("w_data", "w_en", "w_rdy", "r_data", "r_en", "level"):
            setattr(self, name, getattr(self.inner, name))
        self.r_rdy = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        toggle = Signal()
        m.d.sync += toggle.eq(~toggle)
        m.d.comb += self.r_rdy.eq(self.inner.r_rdy & toggle)
        return m


def test_stream_proof_fails_when_an_engine_withdraws_valid(tmp_path, monkeypatch):
    monkeypatch.setattr(snnhw.hw.engine, "SyncFIFOBuffered", _FlickeringQueue)
    plan = _protocol_plans()["1-layer-levels"]
    # The first output event is about 18 cycles deep (the clear, the accumulate pipeline, the
    # sweep's stages, the LIF unit's 5 and the queue's write register): a BMC reaches it (the
    # induction of the proof fails too, but only a trace reached from reset shows it).
    assert _failures(StreamProtocol(plan), tmp_path, Mode.BMC, 21) == {
        "l_o: valid dropped or payload changed before ready"}


def test_stream_check_sees_a_violation(tmp_path):
    # The same check, asserted of a stream that nothing constrains, must find a violation (the
    # core takes FETCH_DEPTH events from reset before its first not-ready cycle).
    plan = _protocol_plans()["1-layer-levels"]
    assert _failures(StreamProtocol(plan, input_rule=Assert), tmp_path, Mode.BMC, 8) == {
        "core_i: valid dropped or payload changed before ready"}


# -- no accumulator or membrane wrap: the engine against a reference, BMC --------------------

# Weights at the codebook extremes, so that the worst-case sums (all 3 inputs spiking at once)
# need the whole accumulator width, and V saturates at both ends within two timesteps. Depth:
# the clear, a first timestep with every input spiking (5 accumulate stages), its whole sweep
# (the update of its last neuron leaves the pipeline: LIF latency 3, or 5 with state levels,
# plus the lane select and the write stage), while the second timestep accumulates. The worst-
# case sums reach the probe within the depth (a step later than with 4 accumulate stages, when
# they did in steps 22/23 dense and 17/18 pruned): the cover runs show it.
# The pruned layer in both layouts that store only existing synapses; its delta words hold an
# escape (column 1's lane 0) at the gap width of the fewest bits (words_slack=inf, below).
PRUNED = _layer("l", [[7, None, 7], [-8, 7, None], [7, -8, 5]], ZERO_LEVELS)
ENGINE_CASES = {
    "dense-subtract-1-lane": (_layer("l", [[7, 7, 7], [-8, -8, -8], [7, -8, 5]], SUBTRACT), 1,
                              25, Layout.IMPLICIT),
    "pruned-levels-zero-2-lanes": (PRUNED, 2, 20, Layout.DELTA),
    "pruned-addressed-levels-zero-2-lanes": (PRUNED, 2, 20, Layout.ADDRESSED),
}


def _engine(case: str, acc_bits_delta: int = 0) -> tuple[EngineReference, int]:
    """The case's harness and depth."""
    layer, lanes, depth, layout = ENGINE_CASES[case]
    plan = CorePlan.build(_network(layer), lanes, layouts={"l": layout},
                          words_slack=math.inf).layers[0]
    plan = dataclasses.replace(plan, acc_bits=plan.acc_bits + acc_bits_delta)
    return EngineReference(plan, timesteps=3), depth


@pytest.mark.parametrize("case", sorted(ENGINE_CASES))
def test_engine_never_wraps_and_matches_the_specification(case, tmp_path):
    harness, depth = _engine(case)
    assert _verdict(harness, tmp_path, Mode.BMC, depth) is Verdict.PASS


@pytest.mark.parametrize("case", sorted(ENGINE_CASES))
def test_engine_worst_case_sums_are_reachable_within_the_depth(case, tmp_path):
    harness, depth = _engine(case)
    assert _verdict(harness, tmp_path, Mode.COVER, depth) is Verdict.PASS


@pytest.mark.parametrize("case", sorted(ENGINE_CASES))
def test_engine_proof_fails_with_an_accumulator_one_bit_narrow(case, tmp_path):
    harness, depth = _engine(case, acc_bits_delta=-1)
    assert _failures(harness, tmp_path, Mode.BMC, depth) & {"membrane potential", "spike"}


# -- NO_COLLISION: the engine uses no read that meets a write to its address -------------------

class _CollidingMemory(wiring.Component):
    """A NO_COLLISION memory of two words, both addresses, the data and the read-first word free;
    asserts that the read returns the word before the write of its cycle, on every read
    (``every_read``) or only on reads that met no write."""

    def __init__(self, every_read: bool):
        self.every_read = every_read
        super().__init__({"wr_addr": In(1), "rd_addr": In(1), "data": In(4), "en": In(1),
                          "collision_data": In(4)})

    def elaborate(self, platform):
        m = Module()
        wr, rd = snnhw.hw.engine.no_collision_memory(m, "mem", 4, 2, self.collision_data)
        # The model, like the memory, is not reset (the proof's reset is free).
        started = Signal(reset_less=True)
        m.d.sync += started.eq(1)
        m.d.comb += [wr.addr.eq(self.wr_addr), wr.data.eq(self.data), wr.en.eq(self.en),
                     rd.addr.eq(self.rd_addr)]
        words = [Signal(4, name=f"word{k}", reset_less=True) for k in range(2)]
        read_first, collided = Signal(4, reset_less=True), Signal(reset_less=True)
        with m.If(self.en):
            m.d.sync += Array(words)[self.wr_addr].eq(self.data)
        m.d.sync += [read_first.eq(Array(words)[self.rd_addr]),
                     collided.eq(self.en & (self.wr_addr == self.rd_addr))]
        with m.If(started & (self.every_read | ~collided)):
            m.d.comb += Assert(rd.data == read_first, "read")
        return m


def test_no_collision_reads_keep_the_word_unless_they_meet_a_write(tmp_path):
    assert _verdict(_CollidingMemory(every_read=False), tmp_path / "a", Mode.BMC, 6) \
        is Verdict.PASS
    assert _failures(_CollidingMemory(every_read=True), tmp_path / "b", Mode.BMC, 6) == {"read"}


def test_engine_proof_fails_if_it_used_colliding_reads(tmp_path, monkeypatch):
    """The engine proofs above give colliding reads free values; were every read of the
    NO_COLLISION memories free (as if each met a write), they would fail: the free values reach
    the assertions."""
    build = snnhw.hw.engine.no_collision_memory

    def every_read_free(m, name, shape, depth, collision_data=None):
        wr, rd = build(m, name, shape, depth)
        data = Signal(shape, name=f"{name}_free")
        m.d.comb += Value.cast(data).eq(collision_data)
        return wr, SimpleNamespace(addr=rd.addr, en=rd.en, data=data)

    monkeypatch.setattr(snnhw.hw.engine, "no_collision_memory", every_read_free)
    harness, depth = _engine("pruned-levels-zero-2-lanes")
    assert _failures(harness, tmp_path, Mode.BMC, depth) & {"membrane potential", "spike"}


# -- every sample finishes within the bound: BMC past the largest bound (complete for T=2) ----

# 5 inputs x 2 neurons, inputs 1..4 without synapses: each still takes a cycle when it spikes
# (a column of no words is one cycle) but carries no synapse event, so a timestep in which they
# spike is accumulation-bound although its events are few.
#: Inputs 1..4 without synapses, kept as core inputs (compact_inputs=False): the empty columns
#: an inner layer has, whose spikes still cost a cycle each.
EMPTY_COLUMNS_PLAN = lambda: CorePlan.build(_network(_layer(  # noqa: E731
    "l", [[3, None, None, None, None], [-2, None, None, None, None]], SUBTRACT)), 1,
    compact_inputs=False)

def _conv_kernel_plan():
    """A 2x2 kernel over a 2x2 input into 3 output channels (taps pruned), in the kernel layout
    at 2 lanes: each spike costs its channel's 3 words (lane 0 holds output channels 0 and 2),
    though each input reaches its one output pixel through one tap and the others fall off."""
    index = np.array([[[[0, -1], [-1, 1]]], [[[-1, 2], [-1, -1]]], [[[-1, -1], [1, -1]]]])
    layer = Layer(name="l", index=index.astype(np.int32), codebook=(-2, 3, 1), weight_bits=3,
                  neuron=SUBTRACT, kind="conv2d", conv=ConvGeometry((1, 2, 2)))
    plan = CorePlan.build(_network(layer), 2, layouts={"l": Layout.KERNEL})
    assert plan.layers[0].synapses.col_words.tolist() == [3, 3, 3, 3]
    return plan


BOUND_PLANS = {
    "conv-kernel-2-lanes": _conv_kernel_plan,
    "2x2-dense-1-lane": lambda: CorePlan.build(_network(_layer("l", [[3, -2], [1, 4]],
                                                               SUBTRACT)), 1),
    "3x3-pruned-2-lanes": lambda: CorePlan.build(_network(_layer(
        "l", [[None, 3, 2], [None, None, -1], [None, 5, None]], ZERO_LEVELS)), 2),
    "5x2-empty-columns-1-lane": EMPTY_COLUMNS_PLAN,
}


def _bound(plan, *, startup=None, model="words") -> tuple[CycleBound, int]:
    """The harness, and a depth by which every trace has finished or failed: the start is
    step 0, so a sample not done max_bound + 1 cycles after it fails in step max_bound + 2."""
    startup = startup_cycles(plan) if startup is None else startup
    harness = CycleBound(plan, timesteps=2, startup=startup, model=model)
    return harness, harness.max_bound() + 3


@pytest.mark.parametrize("name", sorted(BOUND_PLANS))
def test_every_sample_finishes_within_the_bound(name, tmp_path):
    harness, depth = _bound(BOUND_PLANS[name]())
    assert _verdict(harness, tmp_path, Mode.BMC, depth) is Verdict.PASS


def test_bound_is_tight(tmp_path):
    # One cycle less start-up and some sample is late: the proof is not vacuous.
    plan = BOUND_PLANS["2x2-dense-1-lane"]()
    harness, depth = _bound(plan, startup=startup_cycles(plan) - 1)
    assert _failures(harness, tmp_path, Mode.BMC, depth) == {"done later than the bound"}


def test_accumulation_overhead_is_tight(tmp_path, monkeypatch):
    # One cycle less per accumulation-bound timestep (ACCUMULATE_OVERHEAD 4) and some sample is
    # late.
    monkeypatch.setattr(snnhw.formal.bound, "ACCUMULATE_OVERHEAD",
                        snnhw.formal.bound.ACCUMULATE_OVERHEAD - 1)
    harness, depth = _bound(EMPTY_COLUMNS_PLAN())
    assert _failures(harness, tmp_path, Mode.BMC, depth) == {"done later than the bound"}


def test_cycle_model_of_plan_holds_when_every_input_has_synapses(tmp_path):
    # cycles.py's per-timestep bound, max(sum of max(1, ceil(synapses / P)) over the spiking
    # inputs, neurons) + sweep_overhead(neuron), plus the start-up, holds for every sample of a
    # dense one-lane layer: every event is one synapse word, and the accumulation's overhead (5)
    # is not above the sweep's (6).
    plan = BOUND_PLANS["2x2-dense-1-lane"]()
    harness, depth = _bound(plan, model="stated")
    assert _verdict(harness, tmp_path, Mode.BMC, depth) is Verdict.PASS


@pytest.mark.parametrize("seed", range(3))
def test_cycle_model_of_plan_charges_one_lane_spikes_their_words(seed):
    # At one lane a spike costs the engine its column's words (its synapses, at least one) and
    # cycles.py charges exactly that, with an overhead (6) not below the engine's (5): so the
    # engine's proven bound implies the stated one for every one-lane network, not only the two
    # proven above. The formula before the fix charged an empty column nothing. In the addressed
    # layout: the delta layout's escape slots are words beyond the synapses, which the ideal
    # bound does not charge.
    net = random_network(np.random.default_rng(seed), 24, [6, 4], density=0.15)
    plan = CorePlan.build(net, 1, layouts={layer.name: Layout.ADDRESSED for layer in net.layers})
    assert any((lp.synapses.col_words == 0).any() for lp in plan.layers)
    for lp in plan.layers:
        assert (spike_cycles(lp) == np.maximum(1, lp.synapses.col_words)).all()
    assert SWEEP_OVERHEAD >= snnhw.formal.bound.ACCUMULATE_OVERHEAD


def test_cycle_model_without_a_cycle_per_spike_undercounts(tmp_path, monkeypatch):
    # The 5 x 2 network with all 5 inputs spiking takes 6 words + 6 cycles a timestep (its proof
    # above); the model before the fix, ceil(synapses / P) per spike with no floor of one cycle,
    # states max(ceil(2 / 1), 2) + 6 = 8 and the stated proof fails. cycles.py now charges
    # max(2 + 4 x 1, 2) + 6 = 12, which the previous test shows covers the engine.
    monkeypatch.setattr(snnhw.formal.bound, "spike_cycles",
                        lambda lp: -(-lp.layer.connectivity.fan_out() // lp.lanes))
    harness, depth = _bound(EMPTY_COLUMNS_PLAN(), model="stated")
    assert _failures(harness, tmp_path, Mode.BMC, depth) == {"done later than the bound"}


# -- a start mid-sample: the core then equals a fresh one, BMC depth 21 ----------------------

RESTART_PLAN = lambda: CorePlan.build(_network(_layer(  # noqa: E731
    "l", [[7, None, 7], [-8, 5, None], [None, 7, 5]], SUBTRACT)), 1)
RESTART_DEPTH = 21


def test_start_mid_sample_leaves_no_trace(tmp_path):
    harness = RestartEquivalence(RESTART_PLAN(), timesteps=2)
    assert _verdict(harness, tmp_path, Mode.BMC, RESTART_DEPTH) is Verdict.PASS


def test_restart_mid_sample_is_reachable(tmp_path):
    # A start while the first copy is mid-sample (V already nonzero), then output events.
    harness = RestartEquivalence(RESTART_PLAN(), timesteps=2)
    assert _verdict(harness, tmp_path, Mode.COVER, RESTART_DEPTH) is Verdict.PASS


def test_restart_proof_fails_if_start_does_not_reset_the_engines(tmp_path, monkeypatch):
    # The RTL mutation: Core wraps its engines in ResetInserter(start); without it, a start
    # leaves the engines mid-sample.
    monkeypatch.setattr(snnhw.hw.core, "ResetInserter", lambda signal: lambda engine: engine)
    harness = RestartEquivalence(RESTART_PLAN(), timesteps=2)
    assert _failures(harness, tmp_path, Mode.BMC, RESTART_DEPTH)


@pytest.mark.verilator
def test_cosim_start_mid_sample_then_bit_exact(tmp_path):
    """End to end: every sample is begun, abandoned after N cycles (in the clear,
    mid-accumulation, mid-sweep), started again, and must match the golden model."""
    rng = np.random.default_rng(13)
    net = random_network(rng, 12, [8, 5], density=0.6, timesteps=6, state_levels=9)
    inputs = random_inputs(rng, net, samples=3, rate=0.4)
    golden = simulate(net, inputs)
    sim = Simulator(CorePlan.build(net, 2), tmp_path)
    for restart_after in (2, 17, 45):
        rtl, out_spikes, errors = sim.run(inputs, backpressure=0.3, gap=0.2, seed=restart_after,
                                          restart_after=restart_after)
        assert errors == []
        assert compare(golden, rtl, out_spikes) == []
        # Every restart really is mid-sample: a whole sample takes longer.
        assert rtl.cycles.sum(axis=1).min() > restart_after
