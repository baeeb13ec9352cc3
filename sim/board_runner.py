"""Co-simulate a board top level (core + UART bridge) under Verilator with the host driver.

Used by the board tests: :class:`BoardSimulator` builds :class:`snnhw.boards.top.UARTTop` once
and runs batches through ``snnhw.sim.board_tb``, where :class:`snnhw.host.Device` talks to the
RTL over a UART model. Built the way :class:`snnhw.sim.runner.Simulator` builds a core.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from ..compiler import check_lanes
from ..errors import SnnhwError
from ..network.format import Network, save
from ..results import check_inputs
from ..toolchain import ice40_spram_model, use_verilator

__all__ = ["BoardRun", "BoardSimulator"]

TB_MODULE = "snnhw.sim.board_tb"
TOP = "snnhw_board"
CLOCK_NS = 10  # the testbench's clock period


@dataclass
class BoardRun:
    """What the host driver received from the co-simulated board."""

    #: version, input size, output size, timesteps, lanes, network id, large-RAM mask, loaded
    identity: np.ndarray
    counts: np.ndarray  #: [samples, outputs]
    pred: np.ndarray  #: [samples]
    cycles: np.ndarray  #: [samples]: the core's cycle count, UART waits included
    leds: np.ndarray  #: [samples]: the ``pred`` output (LEDs) after each answer
    status: np.ndarray  #: [samples]: status byte of each answer
    errors: list[str]  #: host errors (a missing or garbled answer)
    framing_errors: int  #: bytes from the board without a stop bit
    bad_input_status: int | None  #: status answered to a sample with an out-of-range input
    unloaded_status: int | None  #: status answered to a sample sent before loading synapses
    log: Path


class BoardSimulator:
    """:class:`~snnhw.boards.top.UARTTop` under Verilator, ready to run batches.

    Parameters
    ----------
    net : Network
        The network.
    work_dir : path
        Verilog, Verilator build and logs; the build is reused while the Verilog is unchanged.
    lanes : int
        The core's lanes.
    divisor : int
        Clock cycles per UART bit (small, so that simulations are quick).
    timeout : int
        Cycles of silence that abandon a command.
    large_ram, spram
        As for :class:`~snnhw.boards.top.UARTTop`: the layers whose synapses the host loads
        (each run does, after trying a sample before loading), and whether their memories are
        iCE40 SPRAM primitives (simulated with Yosys' model).
    """

    def __init__(self, net: Network, work_dir: str | os.PathLike, *, lanes: int = 1,
                 divisor: int = 8, timeout: int = 2000, large_ram=(), spram: bool = False):
        from cocotb_tools.runner import get_runner

        from ..boards.top import UARTTop

        check_lanes(lanes)
        self.net, self.lanes, self.divisor, self.timeout = net, lanes, divisor, timeout
        self.work_dir = Path(work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        use_verilator()
        text = verilog.convert(UARTTop(net, lanes, divisor=divisor, timeout=timeout,
                                       large_ram=large_ram, spram=spram), name=TOP,
                               emit_src=False)
        if spram and large_ram:
            text += ice40_spram_model()
        self.verilog_path = self.work_dir / f"{TOP}.v"
        if not self.verilog_path.exists() or self.verilog_path.read_text() != text:
            self.verilog_path.write_text(text)
        self.build_dir = self.work_dir / f"verilator-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
        self.build_log = self.work_dir / "build.log"
        self._runner = get_runner("verilator")
        try:
            self._runner.build(
                sources=[self.verilog_path], hdl_toplevel=TOP, build_dir=self.build_dir,
                build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3"],
                log_file=self.build_log)
        except (SystemExit, Exception) as error:  # the runner raises SystemExit on tool errors
            raise SnnhwError(f"Verilator build of {self.verilog_path} failed ({error}); "
                             f"see {self.build_log}") from None

    def run(self, inputs: np.ndarray, *, abandon: bool = False,
            bad_input: bool = False) -> BoardRun:
        """Identify the board, then run the samples through the host driver.

        ``abandon`` first sends half a sample and stays silent (the board must recover);
        ``bad_input`` first sends a sample with an out-of-range input (the board must flag it).
        """
        inputs = check_inputs(self.net, inputs)
        timesteps = inputs.shape[1]
        # The core answers within the cycles of its work after the last byte; be generous.
        work = sum(l.fan_in + l.synapse_count + l.size for l in self.net.layers)
        reply_timeout_ns = CLOCK_NS * (20_000 + 8 * timesteps * work)
        with tempfile.TemporaryDirectory(dir=self.work_dir, prefix=".job.") as job_dir:
            job_dir = Path(job_dir)
            np.save(job_dir / "inputs.npy", inputs)
            save(self.net, job_dir / "model")
            job = {"inputs": str(job_dir / "inputs.npy"), "model": str(job_dir / "model"),
                   "bit_ns": self.divisor * CLOCK_NS,
                   "timeout_cycles": self.timeout, "reply_timeout_ns": reply_timeout_ns,
                   "abandon": abandon, "bad_input": bad_input}
            (job_dir / "job.json").write_text(json.dumps(job))
            result_path = job_dir / "result.npz"
            log = self.work_dir / "board.log"
            self._runner.test(
                test_module=TB_MODULE, hdl_toplevel=TOP, build_dir=self.build_dir,
                test_dir=job_dir, log_file=log, results_xml=str(job_dir / "results.xml"),
                extra_env={"SNNHW_BOARD_JOB": str(job_dir / "job.json"),
                           "SNNHW_BOARD_RESULT": str(result_path)})
            if not result_path.exists():
                raise SnnhwError(f"co-simulation of {self.verilog_path} stopped without a "
                                 f"result; see {log}")
            with np.load(result_path) as out:
                return BoardRun(
                    identity=out["identity"], counts=out["counts"], pred=out["pred"],
                    cycles=out["cycles"], leds=out["leds"], status=out["status"],
                    errors=[str(e) for e in out["errors"]],
                    framing_errors=int(out["framing_errors"]),
                    bad_input_status=(int(out["bad_input_status"])
                                      if "bad_input_status" in out else None),
                    unloaded_status=(int(out["unloaded_status"])
                                     if "unloaded_status" in out else None),
                    log=log)
