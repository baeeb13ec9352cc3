"""Board top levels: the core behind a UART bridge, and that wired to a board's pins."""

from __future__ import annotations

from amaranth.build import Attrs, Pins, Resource, ResourceError, Subsignal
from amaranth.hdl import Cat, ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..hw.core import Core, StreamRegister
from ..plan import CorePlan
from .bridge import Bridge
from .config import Board, BoardError, Family, check_baud
from .flash import FlashBoot, FlashReader
from .pll import Clock, PllDomain
from .protocol import TIMEOUT_S
from .uart import UARTRx, UARTTx

__all__ = ["UARTTop", "BoardTop", "led_resources", "check_resources"]

RX_FIFO_DEPTH = 16


class UARTTop(wiring.Component):
    """The core, its host bridge and a UART: what a board carries, minus clock and pins.

    Parameters
    ----------
    plan : CorePlan
        The core (its large-RAM layers are loaded at run time: the host sends them with
        ``'W'``).
    divisor : int
        Clock cycles per UART bit.
    timeout : int
        Cycles of silence that abandon a half-received command.
    flash : FlashBoot or None
        With large-RAM layers: read their synapses from SPI flash after reset
        (:class:`~snnhw.boards.flash.FlashReader`); the host's commands wait until it is done.

    Members
    -------
    rx : In(1)
        UART line from the host (idle high).
    tx : Out(1)
        UART line to the host (idle high).
    pred : Out(bits of output_size)
        The last predicted class.
    flash_clk, flash_cs, flash_copi : Out(1); flash_cipo : In(1)
        Only with ``flash``: the SPI flash (``flash_cs`` high selects it).
    """

    def __init__(self, plan: CorePlan, *, divisor: int, timeout: int,
                 flash: FlashBoot | None = None):
        self.core = Core(plan)
        self.bridge = Bridge(plan, timeout)
        self.uart_rx = UARTRx(divisor)
        self.uart_tx = UARTTx(divisor)
        self.flash = flash and FlashReader(plan, flash)
        members = {
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "pred": Out(plan.output_addr_bits),
        }
        if flash:
            members.update(flash_clk=Out(1), flash_cs=Out(1), flash_copi=Out(1),
                           flash_cipo=In(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        core, bridge = self.core, self.bridge
        m.submodules.core = core
        m.submodules.bridge = bridge
        m.submodules.uart_rx = uart_rx = self.uart_rx
        m.submodules.uart_tx = uart_tx = self.uart_tx
        # The core may hold an input event for a whole column of synapses or a neuron sweep; a
        # few bytes of buffer let the UART keep receiving meanwhile.
        m.submodules.rx_fifo = rx_fifo = SyncFIFOBuffered(width=8, depth=RX_FIFO_DEPTH)

        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx), self.pred.eq(bridge.pred)]
        wiring.connect(m, uart_rx.o, rx_fifo.w_stream)
        if self.flash is None:
            wiring.connect(m, rx_fifo.r_stream, bridge.rx)  # the bridge registers the byte
        # The bridge's streams leave through registers (no path from the state machine into its
        # neighbours' handshakes).
        _register_stream(m, "tx_reg", bridge.tx, uart_tx.i)
        m.d.comb += [bridge.overrun.eq(uart_rx.overrun), bridge.framing.eq(uart_rx.framing)]

        _register_stream(m, "events_reg", bridge.events, core.i)
        wiring.connect(m, core.o, bridge.spikes)
        m.d.comb += [
            core.start.eq(bridge.start),
            core.timesteps.eq(bridge.timesteps),
            bridge.done.eq(core.done),
            bridge.cycles.eq(core.cycles),
        ]
        if self.flash is not None:
            self._flash_boot(m)
        elif core.plan.large:
            wiring.connect(m, bridge.load, core.load)
            m.d.comb += [core.load_begin.eq(bridge.load_begin), bridge.loaded.eq(core.loaded)]
        else:
            m.d.comb += bridge.loaded.eq(1)
        return m

    def _flash_boot(self, m):
        """The flash reader feeds the loader until it is done; then the bridge does, and the
        host's bytes, which waited in the receive FIFO, reach the bridge."""
        core, bridge, rx_fifo = self.core, self.bridge, m.submodules.rx_fifo
        m.submodules.flash = reader = self.flash
        m.d.comb += [self.flash_clk.eq(reader.clk), self.flash_cs.eq(reader.cs),
                     self.flash_copi.eq(reader.copi), reader.cipo.eq(self.flash_cipo),
                     bridge.boot.eq(Cat(reader.loaded, reader.rejected, reader.corrupt)),
                     bridge.rx.payload.eq(rx_fifo.r_stream.payload)]
        # A corrupt flash image leaves the synapses not loaded until the host's 'W' begins.
        reloaded = Signal()
        with m.If(~reader.busy & bridge.load_begin):
            m.d.sync += reloaded.eq(1)
        m.d.comb += bridge.loaded.eq(core.loaded & (~reader.corrupt | reloaded))
        with m.If(reader.busy):
            wiring.connect(m, reader.load, core.load)
            m.d.comb += core.load_begin.eq(reader.load_begin)
        with m.Else():
            wiring.connect(m, bridge.load, core.load)
            m.d.comb += [core.load_begin.eq(bridge.load_begin),
                         bridge.rx.valid.eq(rx_fifo.r_stream.valid),
                         rx_fifo.r_stream.ready.eq(bridge.rx.ready)]


class BoardTop(Elaboratable):
    """:class:`UARTTop` on a board: its clock (the platform's, or a PLL's), UART pins, and LEDs.

    The LEDs named by the board show the predicted class in binary, least significant bit on
    the first LED. The platform must have the resources the board names
    (:func:`check_resources`).

    Parameters
    ----------
    board : Board
        The board description.
    plan : CorePlan
        The core, its synapses placed for the board (:func:`snnhw.boards.fit.place_synapses`);
        on iCE40 its large RAM is SPRAM.
    baud : int
        UART bit rate.
    clock : Clock or None
        The core's clock (:func:`snnhw.boards.pll.resolve_clock`): with a PLL setting, the
        ``sync`` domain comes from :class:`~snnhw.boards.pll.PllDomain`; ``None`` or without
        one, from the platform's default clock. The UART's divisor and timeout count its cycles.
    """

    def __init__(self, board: Board, plan: CorePlan, baud: int | None = None,
                 clock: Clock | None = None):
        if plan.large and not board.budget.large_ram_blocks:
            raise BoardError(f"{board.path}: budget.large_ram_blocks: {board.name} has no large "
                             f"RAM for the synapses of {', '.join(plan.large)}")
        if plan.large and plan.spram != (board.fpga.family is Family.ICE40):
            raise ValueError(f"Large RAM on {board.fpga.family.value} must "
                             f"{'' if plan.spram else 'not '}be SPRAM: plan with spram="
                             f"{board.fpga.family is Family.ICE40}")
        self.board = board
        self.clock = clock or Clock(board.clock_hz / 1e6)
        baud = baud or board.uart.baud
        flash = None
        if board.flash is not None and plan.large:
            flash = FlashBoot.at(board.flash.offset, self.clock.hz)
        self.top = UARTTop(plan, divisor=check_baud(self.clock.hz, baud),
                           timeout=int(TIMEOUT_S * self.clock.hz), flash=flash)

    def elaborate(self, platform):
        m = Module()
        board = self.board
        if self.clock.pll is not None:
            m.domains.sync = ClockDomain("sync")  # instead of the platform's default clock
            m.submodules.clock = PllDomain(self.clock.pll)
        m.submodules.top = top = self.top
        uart = board.uart
        if uart.pins is not None:
            platform.add_resources([Resource(
                "snnhw_uart", 0,
                Subsignal("rx", Pins(uart.pins.rx, dir="i")),
                Subsignal("tx", Pins(uart.pins.tx, dir="o")),
                Attrs(**uart.pins.attrs))])
            pins = platform.request("snnhw_uart", 0, dir="-")
        else:
            pins = platform.request(uart.resource, uart.number, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", pins.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", pins.tx)
        m.d.comb += [top.rx.eq(rx_buffer.i), tx_buffer.o.eq(top.tx)]
        if top.flash is not None:
            pins = platform.request(board.flash.resource, board.flash.number, dir="-")
            for name in ("cs", "clk", "copi"):
                m.submodules[f"flash_{name}"] = buffer = io.Buffer("o", getattr(pins, name))
                m.d.comb += buffer.o.eq(getattr(top, f"flash_{name}"))
            m.submodules.flash_cipo = cipo = io.Buffer("i", pins.cipo)
            m.d.comb += top.flash_cipo.eq(cipo.i)
            for name in ("wp", "hold"):  # active low on the pins: keep them released
                if hasattr(pins, name):
                    m.submodules[f"flash_{name}"] = io.Buffer("o", getattr(pins, name))

        requested = {}
        for bit, (name, number, subsignal) in enumerate(led_resources(board)):
            if (name, number) not in requested:
                requested[name, number] = platform.request(name, number, dir="-")
            port = requested[name, number]
            if subsignal:
                port = getattr(port, subsignal)
            m.submodules[f"led{bit}"] = buffer = io.Buffer("o", port)
            if bit < len(top.pred):
                m.d.comb += buffer.o.eq(top.pred[bit])
        return m


def led_resources(board: Board) -> list[tuple[str, int, str]]:
    """The board's LEDs as (resource name, number, subsignal or "")."""
    leds = []
    for led in board.leds:
        name, _, rest = led.partition("/")
        number, _, subsignal = rest.partition(".")
        leds.append((name, int(number), subsignal))
    return leds


def check_resources(platform, board: Board) -> None:
    """Raise :class:`BoardError` if the platform lacks a resource the board file names."""
    def lookup(field: str, name: str, number: int, subsignals: list[str]):
        try:
            resource = platform.lookup(name, number)
        except ResourceError:
            raise BoardError(f"{board.path}: {field}: {board.platform} has no resource "
                             f"{name!r} #{number}") from None
        have = {sub.name for sub in resource.ios if isinstance(sub, Subsignal)}
        for subsignal in subsignals:
            if subsignal not in have:
                raise BoardError(f"{board.path}: {field}: {board.platform}'s {name!r} #{number} "
                                 f"has no subsignal {subsignal!r} (it has "
                                 f"{', '.join(sorted(have)) or 'none'})")

    if board.uart.resource is not None:
        lookup("uart", board.uart.resource, board.uart.number, ["rx", "tx"])
    if board.flash is not None:
        lookup("flash", board.flash.resource, board.flash.number, ["cs", "clk", "copi", "cipo"])
    for bit, (name, number, subsignal) in enumerate(led_resources(board)):
        lookup(f"leds[{bit}]", name, number, [subsignal] if subsignal else [])


def _register_stream(m, name, source, sink):
    """Connect ``source`` to ``sink`` through a :class:`~snnhw.hw.core.StreamRegister`."""
    m.submodules[name] = register = StreamRegister(source.payload.shape())
    wiring.connect(m, source, register.i)
    wiring.connect(m, register.o, sink)
