"""Co-simulate a board top level (core + UART bridge) under Verilator with the host driver.

Used by the board tests: :class:`BoardSimulator` builds :class:`snnhw.boards.top.UARTTop` once
and runs batches through ``snnhw.sim.board_tb``, where :class:`snnhw.host.Device` talks to the
RTL over a UART model. Built the way :class:`snnhw.sim.runner.Simulator` builds a core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog

from snnhw.boards.flash import FlashBoot
from snnhw.network.encoder import check_features
from snnhw.network.format import save
from snnhw.plan import CorePlan
from snnhw.results import check_inputs
from snnhw.sim.verilator_build import build
from snnhw.toolchain import ice40_spram_model

__all__ = ["BoardRun", "BoardSimulator"]

TB_MODULE = "snnhw.sim.board_tb"
TOP = "snnhw_board"
CLOCK_NS = 10  # the testbench's clock period


@dataclass
class BoardRun:
    """What the host driver received from the co-simulated board."""

    #: version, input size, output size, timesteps, lanes, network id, large-RAM mask, loaded,
    #: loaded from flash, flash rejected
    identity: np.ndarray
    counts: np.ndarray  #: [samples, outputs]
    pred: np.ndarray  #: [samples]
    cycles: np.ndarray  #: [samples]: the core's cycle count, UART waits included
    leds: np.ndarray  #: [samples]: the ``pred`` output (LEDs) after each answer
    status: np.ndarray  #: [samples]: status byte of each answer
    errors: list[str]  #: host errors (a missing or garbled answer)
    framing_errors: int  #: bytes from the board without a stop bit
    bytes_sent: int  #: bytes the host sent on the wire
    bad_input_status: int | None  #: status answered to a sample with an out-of-range input
    unloaded_status: int | None  #: status answered to a sample sent before loading synapses
    loaded_after_stray: int | None  #: the loaded flag after a stray 'W' and a silence
    read_timeout_s: float  #: the host's read timeout (simulated seconds)
    #: with ``faults``: ``<fault>/<key>`` as ``snnhw.sim.board_tb.fault_session`` saves them
    faults: dict[str, np.ndarray]
    log: Path
    flash_commands: list[int] | None = None  #: with a flash: the commands it received
    flash_bytes_read: int | None = None  #: with a flash: the data bytes it shifted out


class BoardSimulator:
    """:class:`~snnhw.boards.top.UARTTop` under Verilator, ready to run batches.

    Parameters
    ----------
    plan : CorePlan
        The core: its large-RAM layers are the ones whose synapses the host loads (each run
        does, after trying a sample before loading); with ``plan.spram`` their memories are
        iCE40 SPRAM primitives (simulated with Yosys' model).
    work_dir : path
        Verilog, Verilator build and logs; the build is reused while the Verilog is unchanged.
    divisor : int
        Clock cycles per UART bit (small, so that simulations are quick).
    timeout : int
        Cycles of silence that abandon a command.
    flash : FlashBoot or None
        Boot the large-RAM layers from an SPI flash model (each run gives its bytes).
    """

    def __init__(self, plan: CorePlan, work_dir: str | os.PathLike, *, divisor: int = 8,
                 timeout: int = 2000, flash: FlashBoot | None = None):
        from snnhw.boards.top import UARTTop

        self.plan, self.net = plan, plan.network
        self.divisor, self.timeout, self.flash = divisor, timeout, flash
        text = verilog.convert(UARTTop(plan, divisor=divisor, timeout=timeout, flash=flash),
                               name=TOP,
                               emit_src=False)
        if plan.spram and plan.large:
            text += ice40_spram_model()
        self.build = build(text, TOP, work_dir)
        self.work_dir, self.verilog_path = self.build.verilog_path.parent, self.build.verilog_path

    def run(self, inputs: np.ndarray, *, abandon: bool = False, bad_input: bool = False,
            stray_load: bool = False, faults: bool = False,
            flash_image: bytes = b"") -> BoardRun:
        """Identify the board, then run the samples through the host driver: 0/1 spikes
        [samples, timesteps, inputs], or feature bytes [samples, inputs] for a network with an
        encoder.

        ``abandon`` first sends half a sample and stays silent (the board must recover);
        ``bad_input`` first sends a sample with an out-of-range input (the board must flag it);
        ``stray_load`` (with large-RAM layers) loads the synapses, then sends a lone ``'W'`` and
        stays silent (the board must stay loaded). ``flash_image``: with ``flash``, the bytes the
        flash model holds (``flash.bin``; empty: erased). ``faults`` then injects every fault of
        ``fault_session`` on the link (it needs at least 3 samples).
        """
        if np.ndim(inputs) == 2:  # feature bytes for the on-chip encoder ('X')
            inputs = check_features(inputs, self.net.input_size, "inputs")
            timesteps = self.net.timesteps
        else:
            inputs = check_inputs(self.net, inputs)
            timesteps = inputs.shape[1]
        # The core answers within the cycles of its work after the last byte; be generous.
        work = sum(l.fan_in + l.synapse_count + l.size for l in self.net.layers)
        reply_timeout_ns = CLOCK_NS * (20_000 + 8 * timesteps * work)
        def job(job_dir: Path) -> dict:
            np.save(job_dir / "inputs.npy", inputs)
            save(self.net, job_dir / "model")
            flash = None
            if self.flash is not None:
                flash = job_dir / "flash.bin"
                flash.write_bytes(flash_image)
            return {"inputs": str(job_dir / "inputs.npy"), "model": str(job_dir / "model"),
                    "bit_ns": self.divisor * CLOCK_NS,
                    "timeout_cycles": self.timeout, "reply_timeout_ns": reply_timeout_ns,
                    "abandon": abandon, "bad_input": bad_input, "stray_load": stray_load,
                    "faults": faults, "flash": flash and str(flash)}

        log = self.work_dir / "board.log"
        out = self.build.run(TB_MODULE, job, log)
        return BoardRun(
            identity=out["identity"], counts=out["counts"], pred=out["pred"],
            cycles=out["cycles"], leds=out["leds"], status=out["status"],
            errors=[str(e) for e in out["errors"]],
            framing_errors=int(out["framing_errors"]), bytes_sent=int(out["bytes_sent"]),
            bad_input_status=(int(out["bad_input_status"])
                              if "bad_input_status" in out else None),
            unloaded_status=(int(out["unloaded_status"])
                             if "unloaded_status" in out else None),
            loaded_after_stray=(int(out["loaded_after_stray"])
                                if "loaded_after_stray" in out else None),
            read_timeout_s=reply_timeout_ns / 1e9,
            faults={key: value for key, value in out.items() if "/" in key},
            log=log,
            flash_commands=(out["flash_commands"].tolist() if "flash_commands" in out else None),
            flash_bytes_read=(int(out["flash_bytes_read"]) if "flash_bytes_read" in out
                              else None))
