"""``snnhw build MODEL --board NAME -o OUT``: fit check, UART top level, bitstream."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..boards.fit import SYNAPSE_CHOICES
from .args import clock, core_plan, lanes, out_dir, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw build``."""
    p = sub.add_parser("build", help="build a bitstream for a board (fit check, UART top level)",
                       description="Check that the network fits the board, wrap its core in the "
                                   "board's UART bridge, and synthesise, place and route it with "
                                   "the open tools from PyPI: OUT/<top>.bin or .bit, "
                                   "OUT/utilization.json (used vs available, the clock and the "
                                   "Fmax), OUT/logs/. Vendor-only boards get Verilog and the "
                                   "vendor's project script. See docs/boards.md.")
    p.add_argument("model", help="network directory (network.yaml + arrays.npz)")
    p.add_argument("--board", required=True, metavar="NAME",
                   help="board name (boards/NAME.yaml) or the path of a board file")
    p.add_argument("-o", "--out", required=True, type=out_dir, metavar="OUT",
                   help="output directory")
    p.add_argument("--lanes", type=lanes, default=1, metavar="P",
                   help="synapses per cycle per layer")
    p.add_argument("--baud", type=positive_int, metavar="RATE",
                   help="UART bit rate (default: the board file's uart.baud)")
    p.add_argument("--clock", type=clock, default="auto", metavar="MHZ",
                   help="the core's clock: MHZ (the highest clock the board makes, its "
                        "oscillator or a PLL output, that is not above MHZ), 'board' (the "
                        "board's oscillator, no PLL), or "
                        "'auto': the highest clock that meets timing, found by placing and "
                        "routing two or more times (default: auto)")
    p.add_argument("--synapses", choices=SYNAPSE_CHOICES, default="auto",
                   help="where synapse memories go: block RAM (initialised with the bitstream) "
                        "or the board's large RAM (iCE40 SPRAM, loaded by the host after "
                        "power-up); auto: large RAM only for what block RAM cannot hold "
                        "(default: auto)")
    p.add_argument("--no-fit-check", action="store_true",
                   help="build even if the estimate says the network does not fit")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="accept a bitstream whose Fmax is below its clock")
    p.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                   help="placement seeds to try: a place-and-route pass that misses its clock "
                        "by less than 10 %% runs again with nextpnr's --seed 2, 3 ... up to N "
                        "and keeps the best (placement moves Fmax by a few percent; each try "
                        "costs a place and route; default 1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build, then print used vs available resources and the timing verdict."""
    from ..boards.build import build
    from ..boards.config import find_board
    from ..boards.protocol import MAX_INPUTS
    from ..errors import SnnhwError
    from ..network import load
    from ..network.format import MANIFEST
    board = find_board(args.board)
    net = load(args.model)
    plan = core_plan(args.model, net, args.lanes)
    if net.input_size > MAX_INPUTS:  # the board's protocol sends input indices in 15 bits
        raise SnnhwError(f"{Path(args.model) / MANIFEST}: input_size: expected at most "
                         f"{MAX_INPUTS} for a board (its protocol's limit), got {net.input_size}")
    result = build(plan, board, args.out, baud=args.baud, clock=args.clock,
                   synapses=args.synapses, fit_check=not args.no_fit_check,
                   allow_timing_fail=args.allow_timing_fail, seeds=args.seeds,
                   echo=lambda line: print(line, flush=True))
    util = result.utilization
    unit = {"logic": board.budget.logic_unit, "ff": "FF", "bram": "BRAM",
            "large_ram": "large RAM", "dsp": "DSP"}
    for name, entry in util["resources"].items():
        used = "-" if entry["used"] is None else entry["used"]
        print(f"  {unit[name]:>9}: {used:>6} / {entry['available']:<6} "
              f"(estimate {entry['estimate']})")
    source = ("the board's oscillator" if util["pll"] is None
              else f"PLL from the {util['board_clock_mhz']:g} MHz oscillator")
    requested = util["clock_requested"]
    if requested in ("auto", "board"):
        why = {"auto": "auto: the highest that meets timing", "board": "--clock board"}[requested]
    else:
        why = f"--clock {requested:g}"
    if "clock_search" in util:
        why += (f", after {len(util['clock_search'])} place-and-route pass(es): "
                + ", ".join(f"{p['clock_mhz']:g} MHz -> Fmax {p['fmax_mhz']:.1f}"
                            for p in util["clock_search"]))
    print(f"  clock {util['clock_mhz']:g} MHz ({source}; {why})")
    if "seeds" in util:
        print("  placement seeds: " + ", ".join(f"{s['seed']} -> Fmax {s['fmax_mhz']:.1f}"
                                                for s in util["seeds"])
              + f"; kept seed {util['seed']}")
    if result.bitstream is not None:
        verdict = "met" if util["timing_met"] else "NOT MET"
        print(f"  Fmax {util['fmax_mhz']:.1f} MHz vs clock {util['clock_mhz']:g} MHz: "
              f"timing {verdict}")
        print(f"{result.bitstream}: bitstream; {result.out_dir / 'utilization.json'}")
    if board.notes:
        print(f"  note: {board.notes.replace('<top>', result.top)}")
    return 0
