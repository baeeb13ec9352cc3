"""Co-simulation: build a core under Verilator, run the cocotb testbench, compare with the golden model.

Used by ``snnhw cosim``, the tests and the benchmarks. A :class:`Simulator` is built once per
network and lane count and can then run any number of input batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..compiler import check_lanes, generate_verilog, top_name
from ..errors import SnnhwError
from ..golden import simulate
from ..hw.core import TIMESTEP_BITS
from ..hw.layout import synapse_image
from ..network.format import Network
from ..results import Result, check_inputs
from ..toolchain import ice40_spram_model, use_verilator

__all__ = ["Mismatch", "Simulator", "CosimReport", "compare", "cosim"]

TB_MODULE = "snnhw.sim.cosim_tb"


@dataclass(frozen=True)
class Mismatch:
    """One value where the RTL and the golden model disagree."""

    sample: int
    timestep: int
    layer: str
    neuron: int
    what: str  #: "spike", "v" (membrane after the step), or "output" (the o stream)
    expected: int
    got: int

    def __str__(self) -> str:
        return (f"sample {self.sample}, timestep {self.timestep}, layer {self.layer}, "
                f"neuron {self.neuron}: {self.what} expected {self.expected}, got {self.got}")


def compare(golden: Result, rtl: Result, output_spikes: np.ndarray | None = None) -> list[Mismatch]:
    """Every spike and membrane value of every layer at every timestep, in time order."""
    found = []
    for name, expected in golden.spikes.items():
        for what, want, got in (("spike", expected, rtl.spikes[name]),
                                ("v", golden.v_trace[name], rtl.v_trace[name])):
            for s, t, j in np.argwhere(want != got):
                found.append(Mismatch(int(s), int(t), name, int(j), what,
                                      int(want[s, t, j]), int(got[s, t, j])))
    if output_spikes is not None:
        name, want = list(golden.spikes.items())[-1]
        for s, t, j in np.argwhere(want != output_spikes):
            found.append(Mismatch(int(s), int(t), name, int(j), "output",
                                  int(want[s, t, j]), int(output_spikes[s, t, j])))
    found.sort(key=lambda m: (m.sample, m.timestep))
    return found


@dataclass
class CosimReport:
    """What a co-simulation run found."""

    rtl: Result
    golden: Result
    mismatches: list[Mismatch]
    log: Path
    waves: Path | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.errors


class Simulator:
    """A core compiled under Verilator with the cocotb testbench, ready to run batches.

    Parameters
    ----------
    net : Network
        The network whose core to build.
    work_dir : path
        Where the Verilog, the Verilator build and the logs go; reused when the Verilog is
        unchanged, so a second Simulator for the same network skips the C++ build.
    lanes : int
        Lane count of the core.
    waves : bool
        Build with tracing so that :meth:`run` can dump a VCD.
    large_ram : collection of str
        Layers whose synapses the core loads at run time (:class:`~snnhw.hw.core.Core`); each
        run streams the load image in before its first sample.
    spram : bool
        Build those memories from iCE40 SPRAM primitives, simulated with Yosys' model.
    """

    def __init__(self, net: Network, work_dir: str | os.PathLike, lanes: int = 1,
                 waves: bool = False, *, large_ram=(), spram: bool = False):
        from cocotb_tools.runner import get_runner

        check_lanes(lanes)
        self.net, self.lanes, self.waves = net, lanes, waves
        self.work_dir = Path(work_dir).resolve()  # the simulator runs in another directory
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.top = top_name(net)
        use_verilator()
        verilog = generate_verilog(net, lanes, large_ram=large_ram, spram=spram)
        self.large_ram = [layer.name for layer in net.layers if layer.name in set(large_ram)]
        self.verilog_path = self.work_dir / f"{self.top}.v"
        if spram and self.large_ram:
            verilog += ice40_spram_model()
        if not self.verilog_path.exists() or self.verilog_path.read_text() != verilog:
            self.verilog_path.write_text(verilog)
        digest = hashlib.sha1(f"{verilog}{waves}".encode()).hexdigest()[:12]
        self.build_dir = self.work_dir / f"verilator-{digest}"
        self.build_log = self.work_dir / "build.log"
        self._runner = get_runner("verilator")
        try:
            self._runner.build(
                sources=[self.verilog_path], hdl_toplevel=self.top, build_dir=self.build_dir,
                # -Wno-fatal: lint is a separate, stricter step (snnhw.compiler.lint).
                build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3"],
                waves=waves, log_file=self.build_log)
        except (SystemExit, Exception) as error:  # the runner raises SystemExit on tool errors
            raise SnnhwError(f"Verilator build of {self.verilog_path} failed ({error}); "
                             f"see {self.build_log}") from None

    def run(self, inputs: np.ndarray, *, gap: float = 0.0, backpressure: float = 0.0,
            seed: int = 0, first_sample: int = 0, waves_to: Path | None = None,
            log_name: str = "cosim.log",
            load_image: bytes | None = None) -> tuple[Result, np.ndarray, list[str]]:
        """Run a batch; return the RTL's result, its output-stream spikes, and protocol errors.

        A core with large-RAM layers is first loaded with ``load_image`` (default: the
        network's, :func:`~snnhw.hw.layout.synapse_image`).

        With ``waves_to`` (the simulator must have been built with ``waves``), the run's VCD is
        moved there.
        """
        if waves_to is not None and not self.waves:
            raise ValueError("waves_to needs a Simulator built with waves=True")
        inputs = check_inputs(self.net, inputs)
        samples, timesteps, _ = inputs.shape
        if timesteps >= 1 << TIMESTEP_BITS:
            raise SnnhwError(f"inputs: {timesteps} timesteps per sample; the core counts at most "
                             f"{(1 << TIMESTEP_BITS) - 1}")
        with tempfile.TemporaryDirectory(dir=self.work_dir, prefix=".job.") as job_dir:
            job_dir = Path(job_dir)
            np.save(job_dir / "inputs.npy", inputs)
            image_path = None
            if self.large_ram:
                if load_image is None:
                    load_image = synapse_image(self.net, self.lanes, self.large_ram)
                image_path = job_dir / "synapses.bin"
                image_path.write_bytes(load_image)
            job = {
                "inputs": str(job_dir / "inputs.npy"),
                "seed": seed,
                "gap": gap,
                "backpressure": backpressure,
                "input_addr_bits": max(1, (self.net.input_size - 1).bit_length()),
                "output_addr_bits": max(1, (self.net.output_size - 1).bit_length()),
                "layers": [{"name": l.name, "size": l.size} for l in self.net.layers],
                "cycle_budget": self._cycle_budget(inputs, gap, backpressure),
                "first_sample": first_sample,
                "load_image": None if image_path is None else str(image_path),
            }
            (job_dir / "job.json").write_text(json.dumps(job))
            result_path = job_dir / "result.npz"
            log = self.work_dir / log_name
            self._runner.test(
                test_module=TB_MODULE, hdl_toplevel=self.top, build_dir=self.build_dir,
                test_dir=job_dir, waves=waves_to is not None, log_file=log,
                results_xml=str(job_dir / "results.xml"),
                extra_env={"SNNHW_COSIM_JOB": str(job_dir / "job.json"),
                           "SNNHW_COSIM_RESULT": str(result_path)})
            if waves_to is not None and (job_dir / "dump.vcd").exists():
                shutil.move(job_dir / "dump.vcd", waves_to)
            if not result_path.exists():
                raise SnnhwError(f"co-simulation of {self.verilog_path} stopped without a "
                                 f"result; see {log}")
            with np.load(result_path) as out:
                spikes = {l.name: out[f"probe_spikes/{l.name}"] for l in self.net.layers}
                trace = {l.name: out[f"probe_v/{l.name}"] for l in self.net.layers}
                result = Result(spikes=spikes, v_final={n: v[:, -1] for n, v in trace.items()},
                                v_trace=trace, cycles=out["cycles"])
                return result, out["out_spikes"], [str(e) for e in out["errors"]]

    def _cycle_budget(self, inputs: np.ndarray, gap: float, backpressure: float) -> int:
        """A generous per-sample cycle limit, so a hung core fails instead of running forever."""
        timesteps = inputs.shape[1]
        work = sum(l.fan_in + l.synapse_count + l.size for l in self.net.layers)
        slowdown = 1.0 / max(0.05, (1 - gap) * (1 - backpressure))
        return int(1000 + 4 * slowdown * timesteps * (work + self.net.input_size))


def cosim(net: Network, inputs: np.ndarray, work_dir: str | os.PathLike, *, lanes: int = 1,
          waves: bool = False, gap: float = 0.0, backpressure: float = 0.0,
          seed: int = 0, large_ram=(), spram: bool = False) -> CosimReport:
    """Build, run and compare. With ``waves``, re-run the first failing sample with a VCD dump.

    ``large_ram`` and ``spram`` are :class:`Simulator`'s."""
    simulator = Simulator(net, work_dir, lanes=lanes, waves=waves, large_ram=large_ram,
                          spram=spram)
    golden = simulate(net, inputs)
    rtl, output_spikes, errors = simulator.run(inputs, gap=gap, backpressure=backpressure,
                                               seed=seed)
    mismatches = compare(golden, rtl, output_spikes)
    report = CosimReport(rtl=rtl, golden=golden, mismatches=mismatches,
                         log=simulator.work_dir / "cosim.log", errors=errors)
    if waves and not report.ok:
        failing = mismatches[0].sample if mismatches else 0
        target = simulator.work_dir / f"failing-sample-{failing}.vcd"
        simulator.run(inputs[failing:failing + 1], gap=gap, backpressure=backpressure,
                      seed=seed, first_sample=failing, waves_to=target, log_name="waves.log")
        report.waves = target if target.exists() else None
    return report
