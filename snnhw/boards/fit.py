"""Fit check before synthesis: the core's memories and an estimate of its logic against a board.

Input is the core's plan (:class:`snnhw.plan.CorePlan`): it lists every memory of the core
(synapse, pointer and codebook ROMs, the membrane RAM, two accumulator RAMs per lane, the
output event queue); this module adds those of the UART bridge, maps each onto the board's
block RAM modes the way Yosys does (the cheapest tiling of one mode; small memories go to logic), and estimates
LUTs and flip-flops from a model fitted to measured iCE40 and ECP5 builds (a rough figure, within
about 10 % on the builds it was fitted to: the build's ``utilization.json`` has the real ones).
The check refuses a design whose estimate is over the budget, saying what is over, by how much,
and what would help.

On boards with large single-port RAM (iCE40 SPRAM) a layer's synapse memory can go there
instead (:attr:`snnhw.plan.Placement.LARGE`, loaded at run time): :func:`place_synapses` picks
the layers, by default (``auto``) only when block RAM would not suffice, largest synapse memory
first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ..errors import SnnhwError
from ..plan import SPRAM_DEPTH, CorePlan, MemoryKind, MemorySpec, Placement, spram_tiles
from .config import Board, Family
from .top import RX_FIFO_DEPTH

__all__ = ["FitError", "Memory", "FitReport", "estimate", "check_fit", "place_synapses",
           "RESOURCES", "SYNAPSE_CHOICES"]

#: Resources compared, with the words used in reports.
RESOURCES = {"logic": "logic", "ff": "flip-flops", "bram": "block RAM", "large_ram": "large RAM",
             "dsp": "DSP"}

# Memories at most this many bits go to logic rather than a block RAM: RAMs to flip-flops
# (iCE40) or LUT RAM (ECP5, Xilinx 7), ROMs to LUTs. Observed with Yosys 0.5x-0.7x.
_LOGIC_RAM_BITS = {Family.ICE40: 96, Family.ECP5: 512, Family.XILINX7: 2048}
_LOGIC_ROM_BITS = 1536

# LUT4s and flip-flops per layer engine, plus per lane and accumulator bit (each lane's adder,
# forwarding and slot decode grow with the accumulator's width); the UART, bridge and spike
# counters. Least squares over measured builds: the example network on the iCEBreaker at P = 1
# and 4 (block RAM and SPRAM) and on the ULX3S at P = 4 and 8, the MNIST network at P = 4; then
# +40 LUTs and +50 flip-flops a layer for the fetch's pointer register and fourth queue entry
# (measured: MNIST at P = 1, 2, 4 and the example at P = 4 on the iCEBreaker, +92 to +104 FFs).
_LAYER_LUTS, _LANE_BIT_LUTS = 490, 16
_LAYER_FFS, _LANE_BIT_FFS = 385, 8
_BRIDGE_LUTS, _BRIDGE_FFS = 225, 168
# The flash reader of SPRAM builds on boards with a ``flash:`` (measured: the same build with and
# without it, +253 LCs and +86 flip-flops on the iCEBreaker).
_FLASH_LUTS, _FLASH_FFS = 210, 86
# The synapse loader's share per loaded layer, and the read multiplexer per extra SPRAM bank.
_LOADER_LUTS, _LOADER_FFS = 40, 30

#: Where synapse memories go: a :class:`~snnhw.plan.Placement` for all of them (``block``,
#: ``large``), or ``auto``: block RAM, then large RAM for the largest ones while block RAM is
#: over budget.
SYNAPSE_CHOICES = ("auto",) + tuple(placement.value for placement in Placement)


class FitError(SnnhwError):
    """The network, at this lane count, does not fit the board."""


@dataclass(frozen=True)
class Memory:
    """One memory of the design and where it goes."""

    layer: str  #: layer name, or "bridge"
    kind: str  #: a :class:`~snnhw.plan.MemoryKind` value, or the bridge's counts, rx_fifo
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
    plan: CorePlan  #: the core estimated, its synapses placed
    memories: list[Memory] = field(default_factory=list)
    per_layer: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def large_ram(self) -> list[str]:
        """Layers with synapses in large RAM."""
        return self.plan.large

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


def _place(board: Board, layer: str, spec: MemorySpec, slice_bits: int | None = None) -> Memory:
    """Where one of the plan's memories goes on the board: with ``slice_bits``
    (:meth:`~snnhw.plan.CorePlan.synapse_slice_bits`), block RAMs side by side, each that many
    bits wide, however small."""
    if spec.placement is Placement.LARGE:
        return Memory(layer, spec.kind.value, spec.hw_depth, spec.width, False, 0,
                      spram_tiles(spec.depth, spec.width))
    if slice_bits is None:
        return _memory(board, layer, spec.kind.value, spec.depth, spec.width, spec.rom)
    blocks = sum(_blocks(spec.hw_depth, min(slice_bits, spec.width - low), board.budget.modes)
                 for low in range(0, spec.width, slice_bits))
    return Memory(layer, spec.kind.value, spec.hw_depth, spec.width, spec.rom, blocks)


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


def estimate(plan: CorePlan, board: Board) -> FitReport:
    """Estimate the resources of the board design of a planned core (synapses placed as the
    plan says)."""
    lanes = plan.lanes
    memories, per_layer = [], {}
    logic_total = ff_total = 0
    for layer in plan.layers:
        slice_bits = plan.synapse_slice_bits(layer)
        mems = [_place(board, layer.name, spec,
                       slice_bits if spec.kind is MemoryKind.SYNAPSE else None)
                for spec in layer.memories]
        lane_bits = lanes * layer.acc_bits
        luts, ffs = _logic(board, mems, _LAYER_LUTS + _LANE_BIT_LUTS * lane_bits,
                           _LAYER_FFS + _LANE_BIT_FFS * lane_bits)
        if layer.placement is Placement.LARGE:
            banks = -(-max(2, layer.synapses.total_words) // SPRAM_DEPTH)
            luts += _LOADER_LUTS + (banks - 1) * layer.synapses.word_bits
            ffs += _LOADER_FFS
        per_layer[layer.name] = {"logic": _logic_units(board, luts, ffs), "ff": ffs,
                                 "bram": sum(m.blocks for m in mems),
                                 "large_ram": sum(m.large_blocks for m in mems)}
        memories += mems
        logic_total += luts
        ff_total += ffs
    bridge = [_memory(board, "bridge", "counts", plan.network.output_size, 16, False),
              _memory(board, "bridge", "rx_fifo", RX_FIFO_DEPTH, 8, False)]
    luts, ffs = _logic(board, bridge, _BRIDGE_LUTS, _BRIDGE_FFS)
    if board.flash is not None and plan.large:
        luts, ffs = luts + _FLASH_LUTS, ffs + _FLASH_FFS
    per_layer["bridge"] = {"logic": _logic_units(board, luts, ffs), "ff": ffs,
                           "bram": sum(m.blocks for m in bridge), "large_ram": 0}
    memories += bridge
    logic_total += luts
    ff_total += ffs
    budget = board.budget
    return FitReport(
        board=board.name, network=plan.name, lanes=lanes, plan=plan,
        used={"logic": _logic_units(board, logic_total, ff_total), "ff": ff_total,
              "bram": sum(m.blocks for m in memories),
              "large_ram": sum(m.large_blocks for m in memories), "dsp": 0},
        available={"logic": budget.logic, "ff": budget.ff, "bram": budget.bram_blocks,
                   "large_ram": budget.large_ram_blocks, "dsp": budget.dsp},
        memories=memories, per_layer=per_layer)


def place_synapses(plan: CorePlan, board: Board, synapses: str = "auto") -> CorePlan:
    """The plan with its synapse memories placed on ``board`` (``synapses``: one of
    :data:`SYNAPSE_CHOICES`)."""
    if synapses not in SYNAPSE_CHOICES:
        raise ValueError(f"Synapse placement must be one of {', '.join(SYNAPSE_CHOICES)}, "
                         f"not {synapses!r}")
    names = [layer.name for layer in plan.layers]
    if synapses == Placement.LARGE.value and not board.budget.large_ram_blocks:
        raise FitError(f"{board.name} has no large RAM (budget.large_ram_blocks in "
                       f"{board.path}) for the synapses: use --synapses block")
    if synapses != "auto":
        return plan.with_placement({name: Placement(synapses) for name in names})
    placed = plan.with_placement({name: Placement.BLOCK for name in names})
    if not board.budget.large_ram_blocks:
        return placed
    by_size = sorted(plan.layers, reverse=True,
                     key=lambda layer: layer.synapses.total_words * layer.synapses.word_bits)
    fit = estimate(placed, board)
    for layer in by_size:
        if fit.used["bram"] <= fit.available["bram"]:
            break
        tried_plan = placed.with_placement({layer.name: Placement.LARGE})
        tried = estimate(tried_plan, board)
        if tried.used["large_ram"] <= tried.available["large_ram"]:
            placed, fit = tried_plan, tried
    return placed


def check_fit(plan: CorePlan, board: Board, synapses: str = "auto",
              plan_at: Callable[[int], CorePlan] | None = None) -> FitReport:
    """Return the estimate of ``plan`` with its synapses placed by :func:`place_synapses` (the
    placed plan is the report's ``plan``), or raise :class:`FitError` (one line) if it is over
    the budget.

    ``plan_at(lanes)`` plans the core at another lane count; with it the error names the
    nearest lane count that would fit.
    """
    fit = estimate(place_synapses(plan, board, synapses), board)
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
    if plan_at is not None:
        # Fewer lanes need less logic; more lanes make wider synapse words, which fill large
        # RAM (16 bits wide) better. Name the nearest lane count that fits.
        candidates = sorted((p for p in (1, 2, 4, 8, 16) if p != fit.lanes),
                            key=lambda p: (abs(math.log2(p / fit.lanes)), p))
        for lanes in candidates:
            if estimate(place_synapses(plan_at(lanes), board, synapses), board).fits:
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
