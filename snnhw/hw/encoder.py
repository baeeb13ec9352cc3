"""The on-chip spike encoder: feature bytes in, the input events of a whole sample out.

It computes exactly :func:`snnhw.network.encoder.encode_features` (see there for the three
encoders and the LFSR's draw order).
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..network.encoder import (FEATURE_MAX, LFSR_STEPS, LFSR_TAPS, Encoder, EncoderKind)
from .engine import EventLayout

__all__ = ["FeatureEncoder"]


def _lfsr_steps(m: Module, state, steps: int):
    """``steps`` LFSR steps as logic (a linear map of the 16 state bits); a signal per step
    keeps the expression from doubling at every step."""
    for k in range(steps):
        after = Signal(16, name=f"lfsr_step{k + 1}")
        m.d.comb += after.eq((state >> 1) ^ (Const(LFSR_TAPS, 16) & state[0].replicate(16)))
        state = after
    return state


class FeatureEncoder(wiring.Component):
    """Stores a sample's ``input_size`` feature bytes, then sends its spikes as events.

    After ``begin`` it takes ``input_size`` bytes on ``features`` (one a cycle; ``ready`` stays
    high while it takes them), then for each of the ``timesteps`` timesteps sends the index of
    every spiking feature, in increasing order, and an end-of-timestep event: one feature a cycle
    while ``events`` is ready. Then it waits for the next ``begin``, which also abandons a sample
    half-way.

    Members
    -------
    begin : In(1)
        Start a sample.
    features : In(stream.Signature(8))
        The sample's feature bytes, feature 0 first.
    events : Out(stream.Signature(EventLayout(addr_bits)))
        Input events for the core.
    """

    def __init__(self, encoder: Encoder, input_size: int, timesteps: int, addr_bits: int):
        if not isinstance(encoder, Encoder):
            raise TypeError(f"Encoder must be an Encoder, not {encoder!r}")
        self.encoder, self.input_size, self.timesteps = encoder, input_size, timesteps
        super().__init__({
            "begin": In(1),
            "features": In(stream.Signature(8)),
            "events": Out(stream.Signature(EventLayout(addr_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        size, steps, kind = self.input_size, self.timesteps, self.encoder.kind
        m.submodules.pixels = pixels = Memory(shape=8, depth=max(2, size), init=[])
        write, read = pixels.write_port(), pixels.read_port()

        count = Signal(range(size + 1))  # bytes stored, then the item whose read is issued
        t = Signal(range(steps))
        lfsr = Signal(16, init=self.encoder.seed)
        start_of_step = Signal(16 + steps.bit_length())  # latency: 255 * t
        item = Signal(range(size + 1))  # the item (feature, or `size`: end of timestep) read
        have = Signal()  # read.data holds feature `item` (item `size`: the end of timestep)
        out = self.events

        m.d.comb += [write.addr.eq(count), write.data.eq(self.features.payload)]
        stall = out.valid & ~out.ready
        with m.If(out.ready):
            m.d.sync += out.valid.eq(0)

        def restart():
            """``begin`` abandons whatever the state was doing (the last statement of each)."""
            with m.If(self.begin):
                m.d.sync += [count.eq(0), out.valid.eq(0)]
                m.next = "LOAD"

        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.features.ready.eq(1)
                with m.If(self.features.valid):
                    m.d.comb += write.en.eq(1)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == size - 1):
                        m.d.sync += [count.eq(0), t.eq(0), have.eq(0), lfsr.eq(self.encoder.seed),
                                     start_of_step.eq(0)]
                        m.next = "SEND"
                restart()
            with m.State("SEND"):
                # Judge the item read last cycle while issuing the read of item `count`.
                m.d.comb += [read.addr.eq(count), read.en.eq(~stall)]
                with m.If(~stall):
                    m.d.sync += [item.eq(count), have.eq(1),
                                 count.eq(Mux(count == size, 0, count + 1))]
                    with m.If(have & (item == size)):
                        m.d.sync += [out.valid.eq(1), out.payload.eot.eq(1), t.eq(t + 1),
                                     start_of_step.eq(start_of_step + FEATURE_MAX)]
                        with m.If(t == steps - 1):
                            m.next = "DRAIN"
                    with m.Elif(have):
                        x = read.data
                        if kind is EncoderKind.RATE:
                            draw = _lfsr_steps(m, lfsr, LFSR_STEPS)
                            m.d.sync += lfsr.eq(draw)
                            spike = draw[:8] < x
                        elif kind is EncoderKind.LATENCY:
                            at = (FEATURE_MAX - x) * (steps - 1) + 127
                            spike = ((x != 0) & (start_of_step <= at)
                                     & (at < start_of_step + FEATURE_MAX))
                        else:
                            spike = x >= 128
                        m.d.sync += [out.valid.eq(spike), out.payload.eot.eq(0),
                                     out.payload.addr.eq(item)]
                restart()
            with m.State("DRAIN"):
                # The last end of timestep waits in the output register until it is taken.
                with m.If(~stall):
                    m.d.sync += count.eq(0)
                    m.next = "LOAD"
                restart()
        return m
