"""8N1 UART receiver and transmitter with byte streams, for the board's host link."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "check_divisor"]


def check_divisor(divisor: object) -> int:
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"Clocks per bit must be an integer, not {divisor!r}")
    if divisor < 4:
        raise ValueError(f"Clocks per bit must be an integer of at least 4, not {divisor!r}")
    return divisor


class UARTRx(wiring.Component):
    """Receives 8N1 bytes from ``rx`` (LSB first) and offers each on the ``o`` stream.

    The line is synchronised, the start bit's falling edge found, and every bit sampled in its
    middle. A byte that completes while the previous one still waits on ``o`` is lost
    (``overrun`` pulses); a byte without a stop bit is dropped (``framing`` pulses).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (clock frequency / baud rate), at least 4.

    Members
    -------
    rx : In(1)
        The serial line (idle high).
    o : Out(stream.Signature(8))
        Received bytes.
    overrun : Out(1)
        Pulses when a byte is lost.
    framing : Out(1)
        Pulses when a byte has no stop bit.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    overrun: Out(1)
    framing: Out(1)

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(self.divisor))
        bits = Signal(range(8))
        shift = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    # Mid start bit: still low, or it was a glitch.
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    m.next = "DATA"
                    with m.If(line):
                        m.next = "IDLE"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), shift.eq((shift >> 1) | (line << 7)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    # Back to IDLE in the middle of the stop bit, in time for the next start bit.
                    with m.If(~line):
                        m.d.comb += self.framing.eq(1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """Sends each byte of the ``i`` stream on ``tx`` as 8N1, LSB first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (clock frequency / baud rate), at least 4.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line (idle high).
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=1)  # stop bit, data (LSB first), start bit: shifted out LSB first
        bits = Signal(range(11))
        m.d.comb += self.tx.eq(frame[0])
        with m.If(bits == 0):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [frame.eq(self.i.payload << 1 | (1 << 9)), bits.eq(10),
                             timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [frame.eq(frame >> 1 | (1 << 9)), bits.eq(bits - 1),
                             timer.eq(self.divisor - 1)]
        return m
