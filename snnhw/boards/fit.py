"""Fit check before synthesis: the core's memories and an estimate of its logic against a board.

Input is the compile report (:func:`snnhw.compiler.core_report`): from its per-layer shapes this
module lists every memory of the core (synapse, pointer and codebook ROMs, membrane and
accumulator RAMs per lane, the output event queue) plus those of the UART bridge, maps each onto
the board's block RAM modes the way Yosys does (the cheapest tiling of one mode; small memories
go to logic), and estimates LUTs and flip-flops from a per-layer model calibrated on iCE40
builds (a rough figure, typically within 30 %: the build's ``utilization.json`` has the real
ones). The check refuses a design whose estimate is over the budget, saying what is over, by
how much, and what would help.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..errors import SnnhwError
from ..hw.layout import bits_for
from .config import Board, Family

__all__ = ["FitError", "Memory", "FitReport", "estimate", "check_fit", "RESOURCES"]

#: Resources compared, with the words used in reports.
RESOURCES = {"logic": "logic", "ff": "flip-flops", "bram": "block RAM", "large_ram": "large RAM",
             "dsp": "DSP"}

# Memories at most this many bits go to logic rather than a block RAM: RAMs to flip-flops
# (iCE40) or LUT RAM (ECP5, Xilinx 7), ROMs to LUTs. Observed with Yosys 0.5x-0.7x.
_LOGIC_RAM_BITS = {Family.ICE40: 96, Family.ECP5: 512, Family.XILINX7: 2048}
_LOGIC_ROM_BITS = 1536

# LUT4s and flip-flops per layer engine at one lane, and per extra lane; the UART, bridge and
# spike counters (fitted to Yosys synth_ice40 of the example networks at 1, 2 and 4 lanes).
_LAYER_LUTS, _LANE_LUTS = 330, 130
_LAYER_FFS, _LANE_FFS = 180, 100
_BRIDGE_LUTS, _BRIDGE_FFS = 450, 300
_QUEUE_DEPTH = 16  # the core's output event queues (Core's default queue_depth)
_RX_FIFO = (16, 8)


class FitError(SnnhwError):
    """The network, at this lane count, does not fit the board."""


@dataclass(frozen=True)
class Memory:
    """One memory of the design and where it goes."""

    layer: str  #: layer name, or "bridge"
    kind: str  #: synapse, pointer, codebook, membrane, accumulator, queue, counts, rx_fifo
    depth: int
    width: int
    rom: bool  #: read-only (initialised at configuration)
    blocks: int  #: block RAMs used; 0 when it goes to logic

    @property
    def bits(self) -> int:
        return self.depth * self.width


@dataclass
class FitReport:
    """Estimated use of each resource, the budget, and the memories behind the estimate."""

    board: str
    network: str
    lanes: int
    used: dict[str, int]  #: resource -> estimate
    available: dict[str, int]  #: resource -> budget
    memories: list[Memory] = field(default_factory=list)
    per_layer: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def over(self) -> dict[str, int]:
        """Resources over budget, and by how much."""
        return {name: self.used[name] - self.available[name] for name in RESOURCES
                if self.used[name] > self.available[name]}

    @property
    def fits(self) -> bool:
        return not self.over

    def to_json(self) -> dict:
        return {"board": self.board, "network": self.network, "lanes": self.lanes,
                "resources": {name: {"estimate": self.used[name],
                                     "available": self.available[name]} for name in RESOURCES},
                "per_layer": self.per_layer,
                "memories": [asdict(m) | {"bits": m.bits} for m in self.memories]}


def _blocks(depth: int, width: int, modes: list[tuple[int, int]]) -> int:
    """Block RAMs for a depth x width memory.

    Yosys tiles a memory with mixed modes and drops constant bits, so it gets close to the
    bits' lower bound; a memory wider than the widest mode needs one block per slice anyway.
    """
    block_bits = max(d * w for d, w in modes)
    return max(math.ceil(depth * width / block_bits), math.ceil(width / max(w for _, w in modes)))


def _memory(board: Board, layer: str, kind: str, depth: int, width: int, rom: bool) -> Memory:
    depth, bits = max(2, depth), max(2, depth) * width
    small = bits <= (_LOGIC_ROM_BITS if rom else _LOGIC_RAM_BITS[board.fpga.family])
    modes = board.budget.modes
    blocks = 0 if small or not modes else _blocks(depth, width, modes)
    return Memory(layer, kind, depth, width, rom, blocks)


def _layer_memories(board: Board, layer: dict, lanes: int) -> list[Memory]:
    name, bits = layer["name"], layer["memory_bits"]
    bank_depth = math.ceil(layer["size"] / lanes)
    memories = [
        _memory(board, name, "synapse", layer["synapse_words"], layer["synapse_word_bits"], True),
        _memory(board, name, "codebook", layer["codebook_entries"], layer["weight_bits"], True),
        _memory(board, name, "queue", _QUEUE_DEPTH, max(1, bits_for(layer["size"])) + 1, False),
    ]
    if bits["pointer"]:
        memories.append(_memory(board, name, "pointer", layer["fan_in"],
                                bits["pointer"] // layer["fan_in"], True))
    for _ in range(lanes):
        memories.append(_memory(board, name, "membrane", bank_depth, layer["v_bits"], False))
        memories.append(_memory(board, name, "accumulator", bank_depth,
                                layer["accumulator_bits"], False))
    return memories


def _logic(board: Board, memories: list[Memory], luts: int, ffs: int) -> tuple[int, int]:
    """Add what memories that go to logic cost: a LUT per 8 ROM bits; on iCE40 (no LUT RAM) a
    flip-flop per RAM bit plus its read multiplexer, elsewhere a LUT per 8 bits of LUT RAM."""
    for mem in memories:
        if mem.blocks == 0:
            if mem.rom or board.fpga.family is not Family.ICE40:
                luts += mem.bits // 8
            else:
                luts += mem.bits // 2
                ffs += mem.bits
    return luts, ffs


def _logic_units(board: Board, luts: int, ffs: int) -> int:
    """LUT4 estimate in the board's logic unit."""
    family = board.fpga.family
    if family is Family.ICE40:
        return luts + ffs // 2  # a logic cell is a LUT4 and a flip-flop; many do not pair up
    if family is Family.XILINX7:
        return math.ceil(luts * 0.7)  # a LUT6 absorbs about 1.4 LUT4s
    return luts


def estimate(report: dict, board: Board) -> FitReport:
    """Estimate the resources of the board design for a compile report."""
    lanes = report["lanes"]
    memories, per_layer = [], {}
    logic_total = ff_total = 0
    for layer in report["layers"]:
        mems = _layer_memories(board, layer, lanes)
        luts, ffs = _logic(board, mems, _LAYER_LUTS + _LANE_LUTS * (lanes - 1),
                           _LAYER_FFS + _LANE_FFS * (lanes - 1))
        per_layer[layer["name"]] = {"logic": _logic_units(board, luts, ffs), "ff": ffs,
                                    "bram": sum(m.blocks for m in mems)}
        memories += mems
        logic_total += luts
        ff_total += ffs
    bridge = [_memory(board, "bridge", "counts", report["output_size"], 16, False),
              _memory(board, "bridge", "rx_fifo", *_RX_FIFO, False)]
    luts, ffs = _logic(board, bridge, _BRIDGE_LUTS, _BRIDGE_FFS)
    per_layer["bridge"] = {"logic": _logic_units(board, luts, ffs), "ff": ffs,
                           "bram": sum(m.blocks for m in bridge)}
    memories += bridge
    logic_total += luts
    ff_total += ffs
    budget = board.budget
    return FitReport(
        board=board.name, network=report["network"], lanes=lanes,
        used={"logic": _logic_units(board, logic_total, ff_total), "ff": ff_total,
              "bram": sum(m.blocks for m in memories), "large_ram": 0, "dsp": 0},
        available={"logic": budget.logic, "ff": budget.ff, "bram": budget.bram_blocks,
                   "large_ram": budget.large_ram_blocks, "dsp": budget.dsp},
        memories=memories, per_layer=per_layer)


def check_fit(report: dict, board: Board,
              report_at: Callable[[int], dict] | None = None) -> FitReport:
    """Return the estimate, or raise :class:`FitError` (one line) if it is over the budget.

    ``report_at(lanes)`` gives the compile report at another lane count; with it the error
    names the largest lane count that would fit.
    """
    fit = estimate(report, board)
    if fit.fits:
        return fit
    units = {"logic": board.budget.logic_unit, "ff": "FFs", "bram": "blocks",
             "large_ram": "blocks", "dsp": "blocks"}
    problems = []
    for name, excess in fit.over.items():
        problem = (f"{RESOURCES[name]} {fit.used[name]}/{fit.available[name]} {units[name]} "
                   f"(over by {excess})")
        if name == "bram":
            biggest = max(fit.memories, key=lambda m: m.blocks)
            problem += (f", the largest being {biggest.layer}'s {biggest.kind} memory "
                        f"({biggest.bits} bits, {biggest.blocks} blocks)")
        problems.append(problem)
    hints = []
    if report_at is not None and fit.lanes > 1:
        lanes = fit.lanes // 2
        while lanes >= 1:
            if estimate(report_at(lanes), board).fits:
                hints.append(f"--lanes {lanes} fits")
                break
            lanes //= 2
        else:
            hints.append("fewer lanes alone would not fit")
    elif fit.lanes > 1:
        hints.append("fewer lanes")
    if "bram" in fit.over:
        hints.append("more pruning (synapse memory grows with the synapses kept) or fewer "
                     "codebook entries / weight bits (narrower synapse words)")
    if {"logic", "ff"} & set(fit.over):
        hints.append("fewer layers or neurons")
    if board.budget.large_ram_blocks and "bram" in fit.over:
        hints.append(f"the {board.budget.large_ram_blocks} large RAMs (SPRAM) are not used for "
                     f"synapses yet")
    raise FitError(f"{fit.network} at {fit.lanes} lane(s) does not fit {board.name} "
                   f"({board.fpga.device}): {'; '.join(problems)}; what would help: "
                   f"{'; '.join(hints)} (estimate; --no-fit-check builds anyway)")
