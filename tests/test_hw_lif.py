"""The LIF unit in Amaranth's simulator against the golden model's lif_step, exhaustively."""

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
from snnhw.network import Layer, Neuron, Reset


def _layer(neuron: Neuron) -> Layer:
    return Layer(name="l", index=np.zeros((1, 1), np.int32), codebook=(1,), weight_bits=2,
                 neuron=neuron)


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
    """Simulate the unit on every stored state and every current; compare with lif_step."""
    levels = neuron.state_levels
    dut = LIFUnit(neuron, current_bits)
    # The stored state: every V, or (with state levels) every level index.
    states = range(neuron.v_min, neuron.v_max + 1) if levels is None else range(len(levels))
    vs = states if levels is None else [levels[k] for k in states]
    currents = range(-(1 << (current_bits - 1)), 1 << (current_bits - 1))
    cases = list(itertools.product(zip(states, vs), currents))
    want_v, want_s = lif_step(np.array([v for (_, v), _ in cases]),
                              np.array([c for _, c in cases]), _layer(neuron))
    got = []

    async def testbench(ctx):
        # One case a cycle into the pipeline; each case's outputs `latency` cycles later.
        for k in range(len(cases) + dut.latency):
            if k < len(cases):
                (state, _), current = cases[k]
                ctx.set(dut.state, state)
                ctx.set(dut.current, current)
            if k >= dut.latency:
                v_next, state_next = ctx.get(dut.v_next), ctx.get(dut.state_next)
                assert state_next == (v_next if levels is None else levels.index(v_next))
                got.append((v_next, ctx.get(dut.spike)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert [v for v, _ in got] == want_v.tolist()
    assert [s for _, s in got] == want_s.astype(int).tolist()


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
