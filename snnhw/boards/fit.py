"""Fit check before synthesis: the core's memories and an estimate of its logic against a board.

Input is the compile report (:func:`snnhw.compiler.core_report`): from its per-layer shapes this
module lists every memory of the core (synapse, pointer and codebook ROMs, membrane and
accumulator RAMs per lane, the output event queue) plus those of the UART bridge, maps each onto
the board's block RAM modes the way Yosys does (the cheapest tiling of one mode; small memories
go to logic), and estimates LUTs and flip-flops from a per-layer model calibrated on iCE40
builds (a rough figure, typically within 30 %: the build's ``utilization.json`` has the real
ones). The check refuses a design whose estimate is over the budget, saying what is over, by
how much, and what would help.

On boards with large single-port RAM (iCE40 SPRAM) a layer's synapse memory can go there
instead (loaded at run time, :mod:`snnhw.hw.synapses`): :func:`plan_synapses` picks the layers,
by default only when block RAM would not suffice, largest synapse memory first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..errors import SnnhwError
from ..hw.layout import bits_for
from ..hw.synapses import SPRAM_DEPTH, spram_tiles
from .config import Board, Family

__all__ = ["FitError", "Memory", "FitReport", "estimate", "check_fit", "plan_synapses",
           "RESOURCES", "SYNAPSE_PLACES"]

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
# The synapse loader's share per loaded layer, and the read multiplexer per extra SPRAM bank.
_LOADER_LUTS, _LOADER_FFS = 40, 30
_QUEUE_DEPTH = 16  # the core's output event queues (Core's default queue_depth)
_RX_FIFO = (16, 8)

#: Where synapse memories go: ``auto`` (block RAM, then large RAM for the largest ones while
#: block RAM is over budget), ``block`` (all in block RAM), ``large`` (all in large RAM).
SYNAPSE_PLACES = ("auto", "block", "large")


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
    blocks: int  #: block RAMs used; 0 when it goes to logic or large RAM
    large_blocks: int = 0  #: large RAM blocks used (synapses loaded at run time)

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
    large_ram: list[str] = field(default_factory=list)  #: layers with synapses in large RAM

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
                "per_layer": self.per_layer, "large_ram_layers": self.large_ram,
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


def _layer_memories(board: Board, layer: dict, lanes: int, large: bool) -> list[Memory]:
    name, bits = layer["name"], layer["memory_bits"]
    bank_depth = math.ceil(layer["size"] / lanes)
    depth, width = layer["synapse_words"], layer["synapse_word_bits"]
    if large:
        synapses = Memory(name, "synapse", max(2, depth), width, False, 0,
                          spram_tiles(depth, width))
    else:
        synapses = _memory(board, name, "synapse", depth, width, True)
    memories = [
        synapses,
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
        if mem.blocks == 0 and not mem.large_blocks:
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


def estimate(report: dict, board: Board, large_ram=()) -> FitReport:
    """Estimate the resources of the board design for a compile report, with the synapses of
    the ``large_ram`` layers in large RAM."""
    lanes = report["lanes"]
    memories, per_layer = [], {}
    logic_total = ff_total = 0
    for layer in report["layers"]:
        mems = _layer_memories(board, layer, lanes, layer["name"] in large_ram)
        luts, ffs = _logic(board, mems, _LAYER_LUTS + _LANE_LUTS * (lanes - 1),
                           _LAYER_FFS + _LANE_FFS * (lanes - 1))
        if layer["name"] in large_ram:
            banks = -(-max(2, layer["synapse_words"]) // SPRAM_DEPTH)
            luts += _LOADER_LUTS + (banks - 1) * layer["synapse_word_bits"]
            ffs += _LOADER_FFS
        per_layer[layer["name"]] = {"logic": _logic_units(board, luts, ffs), "ff": ffs,
                                    "bram": sum(m.blocks for m in mems),
                                    "large_ram": sum(m.large_blocks for m in mems)}
        memories += mems
        logic_total += luts
        ff_total += ffs
    bridge = [_memory(board, "bridge", "counts", report["output_size"], 16, False),
              _memory(board, "bridge", "rx_fifo", *_RX_FIFO, False)]
    luts, ffs = _logic(board, bridge, _BRIDGE_LUTS, _BRIDGE_FFS)
    per_layer["bridge"] = {"logic": _logic_units(board, luts, ffs), "ff": ffs,
                           "bram": sum(m.blocks for m in bridge), "large_ram": 0}
    memories += bridge
    logic_total += luts
    ff_total += ffs
    budget = board.budget
    return FitReport(
        board=board.name, network=report["network"], lanes=lanes,
        used={"logic": _logic_units(board, logic_total, ff_total), "ff": ff_total,
              "bram": sum(m.blocks for m in memories),
              "large_ram": sum(m.large_blocks for m in memories), "dsp": 0},
        available={"logic": budget.logic, "ff": budget.ff, "bram": budget.bram_blocks,
                   "large_ram": budget.large_ram_blocks, "dsp": budget.dsp},
        memories=memories, per_layer=per_layer,
        large_ram=[layer["name"] for layer in report["layers"] if layer["name"] in large_ram])


def plan_synapses(report: dict, board: Board, synapses: str = "auto") -> list[str]:
    """The layers whose synapse memories go to large RAM (``synapses``: see
    :data:`SYNAPSE_PLACES`)."""
    if synapses not in SYNAPSE_PLACES:
        raise ValueError(f"Synapse placement must be one of {', '.join(SYNAPSE_PLACES)}, "
                         f"not {synapses!r}")
    names = [layer["name"] for layer in report["layers"]]
    if synapses == "block" or (synapses == "auto" and not board.budget.large_ram_blocks):
        return []
    if synapses == "large":
        if not board.budget.large_ram_blocks:
            raise FitError(f"{board.name} has no large RAM (budget.large_ram_blocks in "
                           f"{board.path}) for the synapses: use --synapses block")
        return names
    chosen: list[str] = []
    by_size = sorted(report["layers"], reverse=True,
                     key=lambda layer: layer["synapse_words"] * layer["synapse_word_bits"])
    fit = estimate(report, board, chosen)
    for layer in by_size:
        if fit.used["bram"] <= fit.available["bram"]:
            break
        tried = estimate(report, board, chosen + [layer["name"]])
        if tried.used["large_ram"] <= tried.available["large_ram"]:
            chosen.append(layer["name"])
            fit = tried
    return [name for name in names if name in chosen]


def check_fit(report: dict, board: Board,
              report_at: Callable[[int], dict] | None = None,
              synapses: str = "auto") -> FitReport:
    """Return the estimate, or raise :class:`FitError` (one line) if it is over the budget.

    ``synapses`` places the synapse memories (:func:`plan_synapses`). ``report_at(lanes)``
    gives the compile report at another lane count; with it the error names the nearest lane
    count that would fit.
    """
    fit = estimate(report, board, plan_synapses(report, board, synapses))
    if fit.fits:
        return fit
    units = {"logic": board.budget.logic_unit, "ff": "FFs", "bram": "blocks",
             "large_ram": "blocks", "dsp": "blocks"}
    problems = []
    for name, excess in fit.over.items():
        problem = (f"{RESOURCES[name]} {fit.used[name]}/{fit.available[name]} {units[name]} "
                   f"(over by {excess})")
        if name in ("bram", "large_ram"):
            blocks = (lambda m: m.blocks) if name == "bram" else (lambda m: m.large_blocks)
            biggest = max(fit.memories, key=blocks)
            problem += (f", the largest being {biggest.layer}'s {biggest.kind} memory "
                        f"({biggest.bits} bits, {blocks(biggest)} blocks)")
        problems.append(problem)
    hints = []
    if report_at is not None:
        # Fewer lanes need less logic; more lanes make wider synapse words, which fill large
        # RAM (16 bits wide) better. Name the nearest lane count that fits.
        candidates = sorted((p for p in (1, 2, 4, 8, 16) if p != fit.lanes),
                            key=lambda p: (abs(math.log2(p / fit.lanes)), p))
        for lanes in candidates:
            other = report_at(lanes)
            if estimate(other, board, plan_synapses(other, board, synapses)).fits:
                hints.append(f"--lanes {lanes} fits")
                break
        else:
            hints.append("no other lane count alone would fit")
    elif fit.lanes > 1:
        hints.append("fewer lanes")
    if {"bram", "large_ram"} & set(fit.over):
        hints.append("more pruning (synapse memory grows with the synapses kept) or fewer "
                     "codebook entries / weight bits (narrower synapse words)")
    if {"logic", "ff"} & set(fit.over):
        hints.append("fewer layers or neurons")
    if board.budget.large_ram_blocks and "bram" in fit.over and synapses == "block":
        hints.append(f"--synapses auto or large (the {board.budget.large_ram_blocks} large RAMs "
                     f"can hold synapses)")
    raise FitError(f"{fit.network} at {fit.lanes} lane(s) does not fit {board.name} "
                   f"({board.fpga.device}): {'; '.join(problems)}; what would help: "
                   f"{'; '.join(hints)} (estimate; --no-fit-check builds anyway)")
