"""Co-simulation: build a core under Verilator, run it, compare with the golden model.

Used by ``snnhw cosim``, the flow, the tests and the benchmarks. :func:`cosim` runs the core in
the stimulus/capture harness (:class:`~snnhw.sim.harness_runner.BatchSimulator`, Verilator
speed); :class:`Simulator` is the per-cycle cocotb testbench, kept for what it is best at:
protocol corner cases and cores that load synapses at run time. Each is built once per plan and
can then run any number of input batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from snnhw.compiler import generate_verilog
from snnhw.errors import SnnhwError
from snnhw.golden import simulate
from snnhw.plan import TIMESTEP_BITS, CorePlan
from snnhw.results import Result, check_inputs
from snnhw.sim.harness_runner import BatchSimulator, in_network_order
from snnhw.sim.verilator_build import build
from snnhw.toolchain import ice40_spram_model

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

    @property
    def summary(self) -> str:
        """What went wrong, counted: differing values and protocol errors ('bit-exact': none)."""
        parts = []
        if self.mismatches:
            parts.append(f"{len(self.mismatches)} value(s) differ from the golden model")
        if self.errors:
            parts.append(f"{len(self.errors)} protocol error(s)")
        return " and ".join(parts) or "bit-exact"


class Simulator:
    """A core compiled under Verilator with the cocotb testbench, ready to run batches.

    Parameters
    ----------
    plan : CorePlan
        The core to build. Its large-RAM layers load their synapses at run time: each run
        streams the load image in before its first sample. With ``plan.spram`` those memories
        are iCE40 SPRAM primitives, simulated with Yosys' model.
    work_dir : path
        Where the Verilog, the Verilator build and the logs go; reused when the Verilog is
        unchanged, so a second Simulator for the same network skips the C++ build.
    waves : bool
        Build with tracing so that :meth:`run` can dump a VCD.
    """

    def __init__(self, plan: CorePlan, work_dir: str | os.PathLike, waves: bool = False):
        self.plan, self.net, self.waves = plan, plan.network, waves
        self.top = plan.top
        verilog = generate_verilog(plan)
        if plan.spram and plan.large:
            verilog += ice40_spram_model()
        self.build = build(verilog, self.top, work_dir, waves=waves)
        self.work_dir, self.verilog_path = self.build.verilog_path.parent, self.build.verilog_path

    def run(self, inputs: np.ndarray, *, gap: float = 0.0, backpressure: float = 0.0,
            seed: int = 0, first_sample: int = 0, waves_to: Path | None = None,
            log_name: str = "cosim.log", load_image: bytes | None = None,
            restart_after: int = 0) -> tuple[Result, np.ndarray, list[str]]:
        """Run a batch; return the RTL's result, its output-stream spikes, and protocol errors.

        A core with large-RAM layers is first loaded with ``load_image`` (default: the plan's,
        :meth:`~snnhw.plan.CorePlan.load_image`).

        With ``restart_after`` > 0, every sample is first begun and abandoned after that many
        cycles (a ``start`` in the middle of the sample), then run again from its start: what
        is returned is the second run.

        With ``waves_to`` (the simulator must have been built with ``waves``), the run's VCD is
        moved there.
        """
        if waves_to is not None and not self.waves:
            raise ValueError("waves_to needs a Simulator built with waves=True")
        inputs = self.plan.core_inputs(check_inputs(self.net, inputs))  # the core's numbering
        samples, timesteps, _ = inputs.shape
        if timesteps >= 1 << TIMESTEP_BITS:
            raise SnnhwError(f"inputs: {timesteps} timesteps per sample; the core counts at most "
                             f"{(1 << TIMESTEP_BITS) - 1}")
        if self.plan.large and load_image is None:
            load_image = self.plan.load_image()

        def job(job_dir: Path) -> dict:
            np.save(job_dir / "inputs.npy", inputs)
            image_path = None
            if load_image is not None:
                image_path = job_dir / "synapses.bin"
                image_path.write_bytes(load_image)
            return {
                "inputs": str(job_dir / "inputs.npy"),
                "seed": seed,
                "gap": gap,
                "backpressure": backpressure,
                "input_addr_bits": self.plan.input_addr_bits,
                "output_addr_bits": self.plan.output_addr_bits,
                "layers": [{"name": l.name, "size": l.size} for l in self.net.layers],
                "cycle_budget": self._cycle_budget(inputs, gap, backpressure),
                "first_sample": first_sample,
                "restart_after": restart_after,
                "load_image": None if image_path is None else str(image_path),
            }

        out = self.build.run(TB_MODULE, job, self.work_dir / log_name, waves_to=waves_to)
        spikes = {l.name: out[f"probe_spikes/{l.name}"] for l in self.net.layers}
        trace = {l.name: out[f"probe_v/{l.name}"] for l in self.net.layers}
        result = in_network_order(self.plan, Result(
            spikes=spikes, v_final={n: v[:, -1] for n, v in trace.items()}, v_trace=trace,
            cycles=out["cycles"]))
        return result, out["out_spikes"], [str(e) for e in out["errors"]]

    def _cycle_budget(self, inputs: np.ndarray, gap: float, backpressure: float) -> int:
        """A generous per-sample cycle limit, so a hung core fails instead of running forever."""
        timesteps = inputs.shape[1]
        work = sum(l.fan_in + l.synapse_count + l.size for l in self.net.layers)
        slowdown = 1.0 / max(0.05, (1 - gap) * (1 - backpressure))
        return int(1000 + 4 * slowdown * timesteps * (work + self.plan.input_size))


#: Samples per simulator run when :func:`cosim` reports progress.
PROGRESS_SAMPLES = 500


def cosim(plan: CorePlan, inputs: np.ndarray, work_dir: str | os.PathLike, *,
          waves: bool = False, gap: float = 0.0, backpressure: float = 0.0,
          seed: int = 0, progress: Callable[[int, int], None] | None = None) -> CosimReport:
    """Build the planned core, run it, compare with the golden model. With ``waves``, re-run
    the first failing sample with a VCD dump.

    The core runs inside the stimulus/capture harness (:class:`BatchSimulator`: no Python on
    the per-cycle path); a core with large-RAM layers, which the harness cannot load, runs
    under the per-cycle testbench (:class:`Simulator`). With ``progress``, the samples run
    :data:`PROGRESS_SAMPLES` at a time and ``progress(done, total)`` is called after each run.
    """
    inputs = check_inputs(plan.network, inputs)
    samples = len(inputs)
    if plan.large:
        simulator = Simulator(plan, work_dir, waves=waves)
    else:
        simulator = BatchSimulator(plan, work_dir, waves=waves, timesteps=inputs.shape[1])
    golden = simulate(plan.network, inputs)
    step = PROGRESS_SAMPLES if progress is not None else samples
    parts, outputs, errors = [], [], []
    for first in range(0, samples, step):
        rtl, output_spikes, found = simulator.run(
            inputs[first:first + step], gap=gap, backpressure=backpressure, seed=seed + first,
            first_sample=first)
        parts.append(rtl)
        outputs.append(output_spikes)
        errors += found
        if progress is not None:
            progress(min(first + step, samples), samples)
    rtl, output_spikes = Result.concat(parts), np.concatenate(outputs)
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
