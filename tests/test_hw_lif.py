"""The LIF unit in Amaranth's simulator against the golden model's lif_step, exhaustively."""

import dataclasses
import gc
import itertools
import time
import warnings

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from snnhw.golden.model import lif_step
from snnhw.hw import LIFUnit
from snnhw.hw.lif import per_neuron_count
from snnhw.network import Layer, Network, Neuron, Reset
from snnhw.network.format import Fire, ResetTiming, Rounding


def _layer(neuron: Neuron, size: int = 1) -> Layer:
    layer = Layer(name="l", index=np.zeros((size, 1), np.int32), codebook=(1,), weight_bits=2,
                  neuron=neuron)
    Network(name="n", input_size=1, layers=[layer]).validate()
    return layer


@pytest.mark.parametrize("v_bits,threshold,leak_shift,reset,levels", [
    (4, 3, 1, Reset.SUBTRACT, None),
    (4, 7, 0, Reset.ZERO, None),
    (5, 1, 4, Reset.SUBTRACT, None),
    (5, 9, 2, Reset.ZERO, None),
    (5, 9, 2, Reset.SUBTRACT, (-16, -4, 0, 5, 7, 8, 9, 12, 15)),
    (6, 20, 1, Reset.ZERO, (0, 31)),
    (4, 2, 0, Reset.SUBTRACT, (-8, -1, 0, 1, 2, 3, 7)),
])
def test_lif_unit_matches_golden_on_every_input(v_bits, threshold, leak_shift, reset, levels):
    neuron = Neuron(threshold=threshold, leak_shift=leak_shift, reset=reset, v_bits=v_bits,
                    state_levels=levels)
    _check_every_input(neuron, v_bits + 2)


def _check_every_input(neuron: Neuron, current_bits: int) -> None:
    """Simulate the unit on every stored state, every current and every neuron index; compare
    with lif_step."""
    got, want = _unit_and_golden(neuron, neuron, current_bits)
    assert [v for v, _ in got] == [v for v, _ in want]
    assert [s for _, s in got] == [s for _, s in want]


def _unit_and_golden(unit_neuron: Neuron, neuron: Neuron, current_bits: int):
    """(V, spike) of a unit built for ``unit_neuron`` and of the golden model's ``neuron``, for
    every input: every stored state, every current, and every neuron of a per-neuron array."""
    levels = neuron.state_levels
    dut = LIFUnit(unit_neuron, current_bits)
    size = per_neuron_count(neuron)
    # The stored state: every V, or (with state levels) every level index.
    states = range(neuron.v_min, neuron.v_max + 1) if levels is None else range(len(levels))
    vs = states if levels is None else [levels[k] for k in states]
    currents = range(-(1 << (current_bits - 1)), 1 << (current_bits - 1))
    cases = list(itertools.product(zip(states, vs), currents, range(size)))
    # The golden model updates all `size` neurons from each case's V and current; the case's
    # neuron is the one compared.
    v_in = np.array([v for (_, v), _, _ in cases])[:, None].repeat(size, axis=1)
    current_in = np.array([c for _, c, _ in cases])[:, None].repeat(size, axis=1)
    want_v, want_s = lif_step(v_in, current_in, _layer(neuron, size))
    picked = np.arange(len(cases)), np.array([k for _, _, k in cases])
    want = list(zip(want_v[picked].tolist(), want_s[picked].astype(int).tolist()))
    got = []

    async def testbench(ctx):
        # One case a cycle into the pipeline; each case's outputs `latency` cycles later.
        for k in range(len(cases) + dut.latency):
            if k < len(cases):
                (state, _), current, index = cases[k]
                ctx.set(dut.state, state)
                ctx.set(dut.current, current)
                ctx.set(dut.index, index)
            if k >= dut.latency:
                v_next, state_next = ctx.get(dut.v_next), ctx.get(dut.state_next)
                assert state_next == (v_next if levels is None else levels.index(v_next))
                got.append((v_next, ctx.get(dut.spike)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return got, want


#: Version-2 neurons: each feature, alone and combined, at widths small enough to enumerate.
V2_NEURONS = {
    "gt-subtract-bias": Neuron(threshold=5, leak_shift=1, reset=Reset.SUBTRACT, v_bits=5,
                               fire=Fire.GT, bias=3),
    "gt-top-threshold-none": Neuron(threshold=7, leak_shift=2, reset=Reset.NONE, v_bits=4,
                                    fire=Fire.GT, bias=-2),
    "zero-deferred-per-neuron": Neuron(threshold=(3, 7, 1), leak_shift=1, reset=Reset.ZERO,
                                       v_bits=4, reset_timing=ResetTiming.DEFERRED,
                                       bias=(-3, 0, 2)),
    "subtract-deferred-beta-floor": Neuron(threshold=6, leak_shift=0, reset=Reset.SUBTRACT,
                                           v_bits=5, fire=Fire.GT,
                                           reset_timing=ResetTiming.DEFERRED, beta=13,
                                           beta_bits=4, beta_frac_bits=4),
    "snntorch-beta-nearest-per-neuron": Neuron(
        threshold=4, leak_shift=0, reset=Reset.SUBTRACT, v_bits=5, fire=Fire.GT,
        reset_timing=ResetTiming.IMMEDIATE_SNNTORCH, beta=(7, 8, 3), beta_bits=4,
        beta_frac_bits=3, beta_rounding=Rounding.NEAREST, bias=1),
    "snntorch-ge-per-neuron-threshold": Neuron(
        threshold=(2, 9, 15), leak_shift=2, reset=Reset.SUBTRACT, v_bits=5,
        reset_timing=ResetTiming.IMMEDIATE_SNNTORCH),
    "none-beta-per-neuron-bias": Neuron(threshold=5, leak_shift=0, reset=Reset.NONE, v_bits=4,
                                        beta=(0, 5, 16), beta_bits=5, beta_frac_bits=4,
                                        beta_rounding=Rounding.NEAREST, bias=(7, -8, 1)),
    "zero-beta-levels": Neuron(threshold=(5, 2), leak_shift=0, reset=Reset.ZERO, v_bits=5,
                               fire=Fire.GT, beta=11, beta_bits=4, beta_frac_bits=4,
                               beta_rounding=Rounding.NEAREST,
                               state_levels=(-16, -5, 0, 2, 3, 6, 11, 15)),
    "subtract-deferred-levels-bias": Neuron(threshold=4, leak_shift=1, reset=Reset.SUBTRACT,
                                            v_bits=5, reset_timing=ResetTiming.DEFERRED,
                                            bias=(2, -1),
                                            state_levels=(-16, -1, 0, 3, 4, 7, 15)),
}


@pytest.mark.parametrize("case", sorted(V2_NEURONS))
def test_lif_unit_matches_golden_on_version_2_neurons(case):
    neuron = V2_NEURONS[case]
    _check_every_input(neuron, neuron.v_bits + 2)


@pytest.mark.parametrize("case,wrong", [
    ("gt-subtract-bias", {"fire": Fire.GE}),
    ("gt-subtract-bias", {"bias": 2}),
    ("zero-deferred-per-neuron", {"reset_timing": ResetTiming.IMMEDIATE}),
    ("zero-deferred-per-neuron", {"bias": (-3, 1, 2)}),
    ("subtract-deferred-beta-floor", {"beta_rounding": Rounding.NEAREST}),
    ("snntorch-beta-nearest-per-neuron", {"reset_timing": ResetTiming.DEFERRED}),
    ("snntorch-beta-nearest-per-neuron", {"beta": (7, 8, 4)}),
    ("snntorch-ge-per-neuron-threshold", {"threshold": (2, 9, 14)}),
    ("none-beta-per-neuron-bias", {"reset": Reset.ZERO}),
])
def test_a_unit_built_for_another_neuron_fails_the_comparison(case, wrong):
    # The comparison can fail: a unit built with one field changed disagrees on some input.
    neuron = V2_NEURONS[case]
    got, want = _unit_and_golden(dataclasses.replace(neuron, **wrong), neuron,
                                 neuron.v_bits + 2)
    assert got != want


def test_lif_unit_with_256_levels_generates_in_seconds_and_matches_golden():
    # The documented maximum: 256 levels at random gaps (odd and even, so V lands on midpoints),
    # every level index as the state, every current of a 4-bit input. Generating the unit used
    # to take minutes at 256 levels (one comparator per midpoint, summed); the search is a tree.
    rng = np.random.default_rng(256)
    others = rng.choice(np.setdiff1d(np.arange(-256, 256), [0]), 255, replace=False)
    levels = tuple(sorted(int(level) for level in [0, *others]))
    neuron = Neuron(threshold=40, leak_shift=2, reset=Reset.SUBTRACT, v_bits=9,
                    state_levels=levels)
    start = time.monotonic()
    rtlil.convert(LIFUnit(neuron, 4))
    took = time.monotonic() - start
    print(f"256-level LIF unit generated in {took:.2f} s")
    assert took < 20
    _check_every_input(neuron, 4)


def test_lif_unit_rejects_bad_parameters():
    neuron = Neuron(threshold=3, leak_shift=1, reset=Reset.ZERO, v_bits=4)
    # The half-built component is collected here, where Amaranth's warning about an unused
    # elaboratable (its constructor raised, which is the point) is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(TypeError, match="Neuron parameters must be a Neuron, not 3"):
            LIFUnit(3, 8)
        with pytest.raises(ValueError, match="Current width must be a positive integer, not 0"):
            LIFUnit(neuron, 0)
        gc.collect()
