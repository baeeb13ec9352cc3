"""The stream register between layers (hw.core.StreamRegister) in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from snnhw.hw.core import StreamRegister


@pytest.mark.parametrize("seed", range(3))
def test_stream_register_passes_every_event_in_order_under_stalls(seed):
    rng = np.random.default_rng(seed)
    sent = [int(x) for x in rng.integers(0, 256, 200)]
    offer = rng.random(4000) < 0.7  # the source offers its next event in these cycles
    accept = rng.random(4000) < 0.5  # the sink is ready in these cycles
    dut = StreamRegister(8)
    got, ready_moved = [], []

    async def bench(ctx):
        k = 0
        for cycle in range(len(offer)):
            ctx.set(dut.i.valid, int(offer[cycle] and k < len(sent)))
            ctx.set(dut.i.payload, sent[k] if k < len(sent) else 0)
            ctx.set(dut.o.ready, int(accept[cycle]))
            # i.ready and o.valid are registers: flipping the sink's ready moves neither.
            before = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
            ctx.set(dut.o.ready, int(not accept[cycle]))
            ready_moved.append(before != (ctx.get(dut.i.ready), ctx.get(dut.o.valid)))
            ctx.set(dut.o.ready, int(accept[cycle]))
            if ctx.get(dut.o.valid) and accept[cycle]:
                got.append(ctx.get(dut.o.payload))
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                k += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == sent
    assert not any(ready_moved)


def test_stream_register_keeps_the_full_rate():
    dut = StreamRegister(8)
    got = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for cycle in range(20):
            ctx.set(dut.i.payload, cycle)
            assert ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == list(range(19))  # one cycle of latency, then one event a cycle
