"""Standalone boot: the synapse image in the board's SPI flash, read into large RAM at power-up.

``snnhw build`` writes ``OUT/synapses.bin`` (:func:`synapse_file`: a header, then the load image
that ``'W'`` carries) and ``OUT/flash.bin`` (:func:`flash_file`: the bitstream at offset 0 and
``synapses.bin`` at the board file's ``flash.offset``), which a programmer writes once. At
power-up :class:`FlashReader` wakes the flash, reads the header at that offset with READ
(0x03), and streams the image into the core's synapse loader -- the path ``'W'`` uses -- if the
header names this network and its image length; otherwise (a blank or stale flash) it stops and
the board waits for the host's ``'W'``. The image is followed by its CRC-16 (XMODEM: polynomial
0x1021, initial value 0, MSB first, big-endian; :func:`binascii.crc_hqx`), which the reader runs
over the image and the CRC bit by bit as they arrive: a remainder other than 0 marks the image
corrupt, and the board counts its synapses as not loaded until the host sends ``'W'``. The
identity's last byte tells which happened.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..plan import CorePlan
from .onehot import OneHotFSM, one_hot_select
from .protocol import network_id

__all__ = ["MAGIC", "HEADER_SIZE", "CRC_SIZE", "CRC_POLY", "CMD_READ", "CMD_WAKE", "MAX_SCK_HZ",
           "WAKE_S", "FlashBoot", "synapse_file", "flash_file", "FlashReader"]

MAGIC = b"SNNF"
_HEADER = struct.Struct("<4sII")  #: magic, network id, image length
HEADER_SIZE = _HEADER.size
CRC_SIZE = 2  #: the image's CRC-16, after it
CRC_POLY = 0x1021  #: CRC-16/XMODEM (CCITT polynomial, initial value 0, no reflection)
CMD_READ = 0x03  #: READ: 24-bit address, then data until deselected
CMD_WAKE = 0xAB  #: release from power-down (harmless when the flash is awake)
MAX_SCK_HZ = 20_000_000  #: well below the 50 MHz READ allows (W25Q128), for the pins' delays
WAKE_S = 5e-6  #: the wait after 0xAB (W25Q128: tRES1 = 3 us)


def synapse_file(plan: CorePlan) -> bytes:
    """``synapses.bin``: the header (magic ``SNNF``, network id u32, image length u32, little-
    endian), the plan's load image, and the image's CRC-16/XMODEM (u16, big-endian: the CRC run
    over the image and these two bytes leaves 0)."""
    image = plan.load_image()
    return (_HEADER.pack(MAGIC, network_id(plan.network), len(image)) + image
            + binascii.crc_hqx(image, 0).to_bytes(CRC_SIZE, "big"))


def flash_file(bitstream: bytes, synapses: bytes, offset: int) -> bytes:
    """``flash.bin``: the bitstream at 0, erased bytes (0xFF) up to ``offset``, the synapses."""
    if len(bitstream) > offset:
        raise ValueError(f"the bitstream ({len(bitstream)} bytes) does not fit below the "
                         f"synapses' offset {offset}")
    return bitstream + b"\xff" * (offset - len(bitstream)) + synapses


@dataclass(frozen=True)
class FlashBoot:
    """Where and how fast :class:`FlashReader` reads."""

    offset: int  #: byte address of ``synapses.bin`` in the flash
    half_period: int = 1  #: core clock cycles of each half of an SCK period
    wake_cycles: int = 64  #: core clock cycles to wait after the wake-up command

    @classmethod
    def at(cls, offset: int, clock_hz: float) -> FlashBoot:
        """The reader's timing for a core clocked at ``clock_hz``."""
        return cls(offset, half_period=-(-int(clock_hz) // (2 * MAX_SCK_HZ)),
                   wake_cycles=int(WAKE_S * clock_hz) + 1)


class FlashReader(wiring.Component):
    """Reads ``synapses.bin`` from SPI flash (mode 0) once after reset, into the synapse loader.

    Parameters
    ----------
    plan : CorePlan
        The core whose load image the flash should hold.
    boot : FlashBoot
        Offset and timing.

    Members
    -------
    clk, cs, copi : Out(1)
        To the flash (``cs`` high selects it).
    cipo : In(1)
        From the flash.
    load : Out(stream.Signature(8))
        To the core's ``load``.
    load_begin : Out(1)
        To the core's ``load_begin`` (the cycle before the image's first byte).
    busy : Out(1)
        The reader owns the loader; the host's commands wait.
    loaded : Out(1)
        The whole image came from the flash and passed its CRC.
    rejected : Out(1)
        The flash's header was not this network's: nothing was loaded.
    corrupt : Out(1)
        The image was loaded but failed its CRC: the synapses are not to be trusted.
    """

    def __init__(self, plan: CorePlan, boot: FlashBoot):
        if not 0 <= boot.offset <= 0xFFFFFF - HEADER_SIZE:
            raise ValueError(f"Flash offset must fit in 24 bits, not {boot.offset!r}")
        if not plan.large:
            raise ValueError("A flash boot needs a plan with large-RAM layers to load")
        self.plan, self.boot = plan, boot
        self.header = synapse_file(plan)[:HEADER_SIZE]
        super().__init__({
            "clk": Out(1), "cs": Out(1), "copi": Out(1), "cipo": In(1),
            "load": Out(stream.Signature(8)), "load_begin": Out(1),
            "busy": Out(1, init=1), "loaded": Out(1), "rejected": Out(1), "corrupt": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        boot = self.boot
        size = self.plan.load_size

        # -- the shifter: `count` bits out and in, MSB first. Both sides sample on SCK's rising
        # edge and change their output on its falling edge. Only commands go out: COPI is bit
        # `count` - 1 of the command (a constant), so `shift` holds just the byte coming in.
        shift = Signal(8)
        count = Signal(range(33))  # bits still to exchange
        # `count` == 0 as a flip-flop, set wherever `count` is: the state machine's conditions
        # start from registers (its decode of `count` was the MNIST build's critical path).
        idle = Signal(init=1)
        command = Signal(2)  # the command going out: none (0), WAKE (1) or READ (2)
        bit = (count - 1)[:5]  # the bit going out (count 32..1: bit 31..0)
        sck_timer = Signal(range(max(2, boot.half_period)))  # cycles into the SCK half period
        wake_timer = Signal(range(boot.wake_cycles + 1))  # cycles into the wait after WAKE
        wake_done = Signal()  # `wake_timer` == `wake_cycles`, compared a cycle early
        sampled = Signal()  # CIPO at the last rising edge
        # The CRC register runs over every bit shifted in while `checking` (image and CRC).
        crc, checking = Signal(16), Signal()
        feedback = crc[15] ^ sampled
        read = Const((CMD_READ << 24) | boot.offset, 32)
        m.d.comb += self.copi.eq(Mux(command[0], Const(CMD_WAKE, 8).bit_select(bit, 1), 0)
                                 | Mux(command[1], read.bit_select(bit, 1), 0))
        with m.If(~idle):
            m.d.sync += sck_timer.eq(sck_timer + 1)
            with m.If(sck_timer == boot.half_period - 1):
                m.d.sync += [sck_timer.eq(0), self.clk.eq(~self.clk)]
                with m.If(self.clk):
                    m.d.sync += [count.eq(count - 1), idle.eq(count == 1),
                                 shift.eq(Cat(sampled, shift[:-1]))]
                    with m.If(checking):
                        m.d.sync += crc.eq(Cat(Const(0, 1), crc[:15])
                                           ^ (feedback.replicate(16) & CRC_POLY))
                with m.Else():
                    m.d.sync += sampled.eq(self.cipo)

        def send(bits: int):
            """Start exchanging ``bits`` bits (0: stop)."""
            m.d.sync += [count.eq(bits), idle.eq(bits == 0)]

        # Each header byte is compared as it arrives (no register holds the whole header).
        # Indexed by `left` (bytes still to read after the one in `shift`, the last at 0).
        expected = Array(Const(byte, 8) for byte in reversed(self.header))
        mismatch = Signal()
        # The byte expected next, looked up into a register (the lookup into `mismatch`'s enable
        # was the MNIST build's critical path): `left` changes a byte (16+ cycles) before the
        # compare.
        expected_byte = Signal(8)
        left = Signal(range(max(2, size + HEADER_SIZE + CRC_SIZE + 1)))  # bytes still to read
        # `left` compared with 0 and 1 a cycle late, in registers (the compare of a 17-bit count
        # was the MNIST build's critical path): it is read only when a byte has arrived, at
        # least 8 SPI clocks (16 cycles) after `left` last changed.
        left_zero, left_one = Signal(), Signal()
        m.d.sync += [left_zero.eq(left == 0), left_one.eq(left == 1),
                     expected_byte.eq(expected[left[:HEADER_SIZE.bit_length()]])]
        # A flip-flop per state (its decode was in the critical path too).
        fsm = OneHotFSM(m, "WAKE")
        with fsm.state("WAKE"):
            m.d.sync += [self.cs.eq(1), command.eq(1)]
            send(8)
            fsm.goto("WAKE_SENT")
        with fsm.state("WAKE_SENT"):
            with m.If(idle):
                m.d.sync += [self.cs.eq(0), wake_timer.eq(0), command.eq(0),
                             wake_done.eq(boot.wake_cycles == 0)]
                fsm.goto("WAKE_WAIT")
        with fsm.state("WAKE_WAIT"):
            m.d.sync += [wake_timer.eq(wake_timer + 1),
                         wake_done.eq(wake_timer == boot.wake_cycles - 1)]
            with m.If(wake_done):
                m.d.sync += [self.cs.eq(1), command.eq(2)]
                send(32)
                fsm.goto("HEADER")
        with fsm.state("HEADER"):
            with m.If(idle):
                # Not at the READ command's end (`command` still 2); the index is short.
                with m.If(~command[1] & (shift != expected_byte)):
                    m.d.sync += mismatch.eq(1)
                m.d.sync += command.eq(0)
                with m.If(left_zero):
                    send(0)
                    fsm.goto("CHECK")
                with m.Else():
                    send(8)
        with fsm.state("CHECK"):
            with m.If(~mismatch):
                # The loader restarts here, a cycle before the image's first byte.
                m.d.comb += self.load_begin.eq(1)
                m.d.sync += checking.eq(1)
                send(8)
                fsm.goto("IMAGE")
            with m.Else():
                m.d.sync += [self.cs.eq(0), self.rejected.eq(1), self.busy.eq(0)]
                fsm.goto("DONE")
        with fsm.state("IMAGE"):
            with m.If(idle):
                m.d.comb += [self.load.valid.eq(1), self.load.payload.eq(shift)]
                with m.If(self.load.ready):
                    send(8)
                    with m.If(left_one):
                        fsm.goto("CRC")
        with fsm.state("CRC"):
            with m.If(idle):
                with m.If(left_one):
                    m.d.sync += [self.cs.eq(0), checking.eq(0)]
                    send(0)
                    fsm.goto("VERIFY")
                with m.Else():
                    send(8)
        with fsm.state("VERIFY"):
            m.d.sync += [self.loaded.eq(crc == 0), self.corrupt.eq(crc != 0),
                         self.busy.eq(0)]
            fsm.goto("DONE")
        # `left` counts down a byte at a time in HEADER, IMAGE and CRC, and is loaded as each
        # begins: a flat decrement-or-load (its per-state multiplexer chain was the MNIST
        # build's critical path). The load's value is picked by the state bit alone.
        at_byte = idle & (fsm["HEADER"] | fsm["CRC"] | fsm["IMAGE"] & self.load.ready)
        loads = [(fsm["WAKE_WAIT"], wake_done, HEADER_SIZE), (fsm["CHECK"], ~mismatch, size),
                 (fsm["IMAGE"], at_byte & left_one, CRC_SIZE)]
        with m.If(at_byte & ~(fsm["IMAGE"] & left_one)):
            m.d.sync += left.eq(left - 1)
        with m.Elif(Cat(state & condition for state, condition, _ in loads).any()):
            m.d.sync += left.eq(one_hot_select((state, value) for state, _, value in loads))
        return m
