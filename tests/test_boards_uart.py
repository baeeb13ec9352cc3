"""The UART receiver and transmitter in Amaranth's simulator: loopback, framing, overrun."""

import gc
import warnings

import pytest
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.sim import Simulator

from snnhw.boards.uart import UARTRx, UARTTx

DIVISOR = 6


async def _send_bits(ctx, rx, byte, stop=1):
    for bit in [0, *((byte >> k) & 1 for k in range(8)), stop]:
        ctx.set(rx.rx, bit)
        await ctx.tick().repeat(DIVISOR)
    ctx.set(rx.rx, 1)


def test_loopback():
    m = Module()
    m.submodules.tx = tx = UARTTx(DIVISOR)
    m.submodules.rx = rx = UARTRx(DIVISOR)
    m.d.comb += rx.rx.eq(tx.tx)
    sent, got = [0x00, 0xFF, 0x53, 0xA5, 0x80], []

    async def producer(ctx):
        for byte in sent:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def consumer(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(sent):
            await ctx.tick()
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))
            assert not ctx.get(rx.overrun) and not ctx.get(rx.framing)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-6 * DIVISOR * 10 * (len(sent) + 2))
    assert got == sent


@pytest.mark.parametrize("case", ["framing", "overrun"])
def test_receive_errors(case):
    rx = UARTRx(DIVISOR)
    seen = {"framing": 0, "overrun": 0, "bytes": 0}

    async def drive(ctx):
        if case == "framing":
            await _send_bits(ctx, rx, 0x55, stop=0)
        else:
            await _send_bits(ctx, rx, 0x11)  # nobody takes it ...
            await _send_bits(ctx, rx, 0x22)  # ... so this one is lost
        await ctx.tick().repeat(4 * DIVISOR)

    async def watch(ctx):
        async for _, _, framing, overrun, valid in ctx.tick().sample(rx.framing, rx.overrun,
                                                                     rx.o.valid):
            seen["framing"] += framing
            seen["overrun"] += overrun
            seen["bytes"] = max(seen["bytes"], valid)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_process(watch)
    sim.run()
    if case == "framing":
        assert seen == {"framing": 1, "overrun": 0, "bytes": 0}
    else:
        assert seen == {"framing": 0, "overrun": 1, "bytes": 1}  # the first byte still waits


@pytest.mark.parametrize("fault", ["no-stop-bit", "no-stop-bit-then-idle", "noise"])
def test_receiver_resynchronises(fault):
    # After a byte without a stop bit (next byte back to back, or after a pause), or after noise
    # on the line followed by one idle frame, the next bytes arrive intact.
    rx = UARTRx(DIVISOR)
    got, framing = [], []

    async def drive(ctx):
        await ctx.tick().repeat(3)
        if fault == "noise":
            for level, cycles in [(0, 37), (1, 4), (0, 9), (1, 2), (0, 3)]:
                ctx.set(rx.rx, level)
                await ctx.tick().repeat(cycles)
            ctx.set(rx.rx, 1)
            await ctx.tick().repeat(10 * DIVISOR)
        else:
            await _send_bits(ctx, rx, 0x55, stop=0)
            if fault == "no-stop-bit-then-idle":
                await ctx.tick().repeat(3 * DIVISOR)
        for byte in [0xA3, 0x3C, 0x00]:
            await _send_bits(ctx, rx, byte)
        await ctx.tick().repeat(4 * DIVISOR)

    async def watch(ctx):
        ctx.set(rx.o.ready, 1)
        async for _, _, error, valid, payload in ctx.tick().sample(rx.framing, rx.o.valid,
                                                                   rx.o.payload):
            framing.append(error)
            if valid:
                got.append(payload)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_process(watch)
    sim.run()
    # Noise may leave a garbage byte of its own (the bridge ignores non-commands); what follows
    # the idle frame is intact.
    assert got[-3:] == [0xA3, 0x3C, 0x00]
    if fault != "noise":
        assert got == [0xA3, 0x3C, 0x00] and sum(framing) == 1


def test_divisor_checked():
    # The half-built component is collected here, where Amaranth's warning about an unused
    # elaboratable (its constructor raised, which is the point) is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=r"^Clocks per bit must be an integer of at least "
                                             r"4, not 3$"):
            UARTRx(3)
        with pytest.raises(TypeError, match=r"^Clocks per bit must be an integer, not 4.0$"):
            UARTRx(4.0)
        gc.collect()
