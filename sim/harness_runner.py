"""Co-simulation at Verilator speed: a core inside the stimulus/capture harness.

:class:`BatchSimulator` builds the core wrapped in :class:`~snnhw.hw.harness.Harness` under
Verilator once, then runs input batches: the samples are split into chunks that fit the harness
memories; per chunk the testbench (``snnhw.sim.harness_tb``) writes the stimulus, lets the harness
run the whole chunk without waking Python, and reads the captures back. The captures are decoded
here into the same result shapes as :meth:`snnhw.sim.runner.Simulator.run`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from snnhw.errors import SnnhwError
from snnhw.hw.core import Core
from snnhw.hw.harness import SAMPLE_BITS, Capture, Harness, lfsr_seed, probability
from snnhw.network import Network
from snnhw.plan import CorePlan
from snnhw.results import Result, check_inputs
from snnhw.sim.verilator_build import build

__all__ = ["BatchSimulator", "Timing", "pack_events", "unpack_records", "decode_captures",
           "in_network_order"]

TB_MODULE = "snnhw.sim.harness_tb"
CLOCK_NS = 10  #: clock period of the testbench


def pack_events(inputs: np.ndarray, stimulus: Capture) -> np.ndarray:
    """Return the stimulus words of a chunk of samples, uint8 [words, bytes per word].

    The events are what the core's ``i`` stream takes: per timestep the spiking inputs in
    ascending order, then an end-of-timestep event.
    """
    samples, timesteps, size = inputs.shape
    addr = stimulus.record["addr"]
    eot = stimulus.record["eot"]
    # A key per event orders it: timestep first, within it the spikes by address, eot last.
    step, neuron = np.nonzero(inputs.reshape(samples * timesteps, size))
    keys = np.concatenate([step * (size + 1) + neuron,
                           np.arange(samples * timesteps) * (size + 1) + size])
    codes = np.concatenate([neuron.astype(np.int64) << addr.offset,
                            np.full(samples * timesteps, 1 << eot.offset, np.int64)])
    codes = codes[np.argsort(keys, kind="stable")]
    return _pack(codes, stimulus)


def _pack(codes: np.ndarray, memory: Capture) -> np.ndarray:
    words = -(-len(codes) // memory.per_word)
    bits = np.zeros((words * memory.per_word, memory.record_bits), np.uint8)
    bits[:len(codes)] = (codes[:, None] >> np.arange(memory.record_bits)) & 1
    bits = bits.reshape(words, memory.per_word * memory.record_bits)
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_records(words: np.ndarray, count: int, memory: Capture) -> np.ndarray:
    """Return the first ``count`` records of a capture's words as bit rows, uint8
    [count, record_bits] (bit 0 first)."""
    bits = np.unpackbits(words, axis=1, bitorder="little")[:, :memory.word_bits]
    return bits.reshape(-1, memory.record_bits)[:count]


def _width(field) -> int:
    return Shape.cast(field.shape).width


def _field(bits: np.ndarray, offset: int, width: int, signed: bool = False) -> np.ndarray:
    value = bits[:, offset:offset + width].astype(np.int64) @ (np.int64(1) << np.arange(width))
    if signed:
        value = np.where(value >> (width - 1), value - (1 << width), value)
    return value


@dataclass(frozen=True)
class Timing:
    """Where the wall time of one :meth:`BatchSimulator.run` went (seconds)."""

    total: float  #: the whole call, simulator start-up included
    load: float  #: writing stimulus words (inside the simulator)
    run: float  #: the harness running the samples
    read: float  #: reading the captures back


class BatchSimulator:
    """A core in the harness, compiled under Verilator, ready to run batches.

    Parameters
    ----------
    plan : CorePlan
        The core to build (no large-RAM layers: the harness has no synapse loader).
    work_dir : path
        Where the Verilog, the Verilator build and the logs go; a build of the same Verilog
        is reused.
    waves : bool
        Build with tracing so that :meth:`run` can dump a VCD.
    batch : int
        Samples of ``timesteps`` timesteps the harness memories hold; larger input batches run
        as several chunks in one simulator process. Longer samples make the chunks smaller.
    timesteps : int
        Timesteps the memories are sized for (default: the network's).
    """

    def __init__(self, plan: CorePlan, work_dir: str | os.PathLike, waves: bool = False, *,
                 batch: int = 32, timesteps: int | None = None):
        if not isinstance(plan, CorePlan):
            raise TypeError(f"Plan must be a CorePlan, not {plan!r}")
        if plan.large:
            raise SnnhwError(f"the harness cannot load synapses at run time; plan "
                             f"{plan.name} without large-RAM layers ({', '.join(plan.large)})")
        if not isinstance(batch, int) or not 1 <= batch < 1 << SAMPLE_BITS:
            raise SnnhwError(f"batch: expected an integer in 1..{(1 << SAMPLE_BITS) - 1}, "
                             f"got {batch!r}")
        self.plan, self.net, self.lanes = plan, plan.network, plan.lanes
        timesteps = timesteps or self.net.timesteps
        layers = self.net.layers
        self.harness = Harness(
            _core(plan), stimulus=batch * timesteps * (plan.input_size + 1),
            capacity={f"probe_{l.name}": batch * timesteps * l.size for l in layers}
            | {"out": batch * timesteps * (self.net.output_size + 1),
               "cycles": batch * timesteps})
        self.top = f"{plan.top}_harness"
        self.waves = waves
        ports = {"rst": ("input", 1)} | {
            "__".join(path): ("input" if member.flow == wiring.In else "output", len(value))
            for path, member, value in self.harness.signature.flatten(self.harness)}
        self.build = build(verilog.convert(self.harness, name=self.top, emit_src=False),
                           self.top, work_dir, waves=waves, ports=ports, clock_ns=CLOCK_NS)
        self.work_dir = self.build.verilog_path.parent
        self.timing: Timing | None = None

    def chunks(self, inputs: np.ndarray) -> list[tuple[int, int]]:
        """Split a batch into runs of the harness, ``[(first, stop), ...]``; raise when one
        sample does not fit."""
        samples, timesteps, size = inputs.shape
        h = self.harness
        need = {f"probe_{l.name}": timesteps * l.size for l in self.net.layers}
        need |= {"out": timesteps * (self.net.output_size + 1), "cycles": timesteps}
        per_chunk = (1 << SAMPLE_BITS) - 1
        for name, records in need.items():
            capacity = h.captures[name].capacity
            if records > capacity:
                raise SnnhwError(f"inputs: a sample of {timesteps} timesteps needs {records} "
                                 f"{name} records, the harness holds {capacity}; build the "
                                 f"BatchSimulator with timesteps={timesteps}")
            per_chunk = min(per_chunk, capacity // records)
        events = inputs.reshape(samples, -1).sum(axis=1, dtype=np.int64) + timesteps
        chunks, first, used = [], 0, 0
        for s, count in enumerate(events):
            if count > h.stimulus.capacity:
                raise SnnhwError(f"inputs: sample {s} has {count} input events, the harness "
                                 f"holds {h.stimulus.capacity}; build the BatchSimulator with "
                                 f"timesteps={timesteps}")
            if s - first == per_chunk or used + count > h.stimulus.capacity:
                chunks.append((first, s))
                first, used = s, 0
            used += count
        chunks.append((first, samples))
        return chunks

    def run(self, inputs: np.ndarray, *, gap: float = 0.0, backpressure: float = 0.0,
            seed: int = 0, first_sample: int = 0, waves_to: Path | None = None,
            log_name: str = "cosim.log") -> tuple[Result, np.ndarray, list[str]]:
        """Run a batch; return the RTL's result, its output-stream spikes, and protocol errors
        (as :meth:`snnhw.sim.runner.Simulator.run`); :attr:`timing` says where the time went.

        ``first_sample`` numbers the samples in error messages. With ``waves_to`` (the
        simulator must have been built with ``waves``), the run's VCD is moved there.
        """
        if waves_to is not None and not self.waves:
            raise ValueError("waves_to needs a BatchSimulator built with waves=True")
        started = time.perf_counter()
        inputs = self.plan.core_inputs(check_inputs(self.net, inputs))  # the core's numbering
        samples, timesteps, _ = inputs.shape
        limit = (1 << len(self.harness.timesteps)) - 1
        if timesteps > limit:
            raise SnnhwError(f"inputs: {timesteps} timesteps per sample; the core counts at "
                             f"most {limit}")
        for name, p in (("gap", gap), ("backpressure", backpressure)):
            if not 0.0 <= p < 1.0:
                raise SnnhwError(f"{name}: expected a probability in [0, 1), got {p!r}")
        chunks = self.chunks(inputs)

        def job(job_dir: Path) -> dict:
            stimulus = {f"stim{n}": pack_events(inputs[a:b], self.harness.stimulus)
                        for n, (a, b) in enumerate(chunks)}
            np.savez(job_dir / "stimulus.npz", **stimulus)
            return {
                "stimulus": str(job_dir / "stimulus.npz"),
                "chunks": [b - a for a, b in chunks],
                "timesteps": timesteps,
                "gap": probability(gap),
                "stall": probability(backpressure),
                "seeds": [[lfsr_seed(seed + n, 0), lfsr_seed(seed + n, 1)]
                          for n in range(len(chunks))],
                "captures": {name: [c.per_word, -(-c.word_bits // 8)]
                             for name, c in self.harness.captures.items()},
                "budgets": [self._cycle_budget(b - a, timesteps, gap, backpressure)
                            for a, b in chunks],
                "clock_ns": CLOCK_NS,
            }

        raw = self.build.run(TB_MODULE, job, self.work_dir / log_name, waves_to=waves_to)
        result, out_spikes, errors = decode_captures(self.harness, self.net, raw, chunks,
                                                     timesteps, first_sample)
        result = in_network_order(self.plan, result)
        seconds = raw["seconds"]
        self.timing = Timing(total=time.perf_counter() - started, load=float(seconds[0]),
                             run=float(seconds[1]), read=float(seconds[2]))
        return result, out_spikes, errors

    def _cycle_budget(self, samples: int, timesteps: int, gap: float,
                      backpressure: float) -> int:
        """A generous cycle limit for a chunk, so a hung core fails instead of running on."""
        work = sum(l.fan_in + l.synapse_count + l.size for l in self.net.layers)
        slowdown = 1.0 / max(0.05, (1 - gap) * (1 - backpressure))
        return int(1000 + 4 * slowdown * samples * timesteps * (work + self.plan.input_size))


def in_network_order(plan: CorePlan, result: Result) -> Result:
    """``result`` of the core, its per-neuron arrays in the core's neuron order (the probes
    report neurons by position), in network order (:meth:`CorePlan.in_network_order`)."""
    def back(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: plan.in_network_order(name, values) for name, values in arrays.items()}
    return Result(spikes=back(result.spikes), v_final=back(result.v_final),
                  v_trace=back(result.v_trace), cycles=result.cycles)


def decode_captures(harness: Harness, net: Network, raw: dict, chunks: list[tuple[int, int]],
                    timesteps: int, first_sample: int = 0
                    ) -> tuple[Result, np.ndarray, list[str]]:
    """Turn the raw captures of a batch into a result, output-stream spikes and errors.

    ``raw`` holds, per chunk n (samples ``chunks[n]``): ``count<n>`` (the records of each
    capture, in ``harness.captures`` order), ``<capture><n>`` (its words, uint8
    [words, bytes]); and ``overflow`` (per chunk) and ``errors`` (strings).
    """
    samples = chunks[-1][1]
    layers = net.layers
    spikes = {l.name: np.zeros((samples, timesteps, l.size), np.uint8) for l in layers}
    trace = {l.name: np.zeros((samples, timesteps, l.size), np.int64) for l in layers}
    out_spikes = np.zeros((samples, timesteps, net.output_size), np.uint8)
    cycles = np.zeros((samples, timesteps), np.int64)
    errors = [str(e) for e in raw["errors"]]
    for n, (a, b) in enumerate(chunks):
        if f"count{n}" not in raw:
            break  # the simulation stopped early; its errors say why
        counts = dict(zip(harness.captures, raw[f"count{n}"].tolist()))
        where = (f"samples {first_sample + a}..{first_sample + b - 1}"
                 if b - a > 1 else f"sample {first_sample + a}")

        def records(name):
            memory = harness.captures[name]
            return unpack_records(raw[f"{name}{n}"], counts[name], memory), memory

        for layer in layers:
            name = f"probe_{layer.name}"
            bits, memory = records(name)
            rec = memory.record
            neuron = _field(bits, rec["neuron"].offset, _width(rec["neuron"]))
            spike = _field(bits, rec["spike"].offset, 1)
            v = _field(bits, rec["v"].offset, _width(rec["v"]), signed=True)
            expected = (b - a) * timesteps * layer.size
            order = np.tile(np.arange(layer.size), (b - a) * timesteps)
            if len(neuron) == expected and (neuron == order).all():
                spikes[layer.name][a:b] = spike.reshape(b - a, timesteps, layer.size)
                trace[layer.name][a:b] = v.reshape(b - a, timesteps, layer.size)
                continue
            errors.append(f"{where}, layer {layer.name}: {len(neuron)} neuron updates, "
                          f"expected {expected} in neuron order")
            # Best effort, as the per-cycle monitor: a timestep ends with the last neuron.
            last = (neuron == layer.size - 1).astype(np.int64)
            step = np.cumsum(last) - last  # timesteps finished before each update
            keep = (step < (b - a) * timesteps) & (neuron < layer.size)
            s, t = a + step[keep] // timesteps, step[keep] % timesteps
            spikes[layer.name][s, t, neuron[keep]] = spike[keep]
            trace[layer.name][s, t, neuron[keep]] = v[keep]

        bits, memory = records("out")
        addr = _field(bits, memory.record["addr"].offset, _width(memory.record["addr"]))
        eot = _field(bits, memory.record["eot"].offset, 1)
        step = np.cumsum(eot) - eot  # timesteps finished before each event
        keep = (eot == 0) & (step < (b - a) * timesteps) & (addr < net.output_size)
        out_spikes[a + step[keep] // timesteps, step[keep] % timesteps, addr[keep]] = 1
        if eot.sum() != (b - a) * timesteps or keep.sum() != (eot == 0).sum():
            errors.append(f"{where}: output stream carried {int(eot.sum())} "
                          f"end-of-timestep events, expected {(b - a) * timesteps}")

        bits, memory = records("cycles")
        total = _field(bits, 0, memory.record_bits)
        if len(total) == (b - a) * timesteps:
            total = total.reshape(b - a, timesteps)
            cycles[a:b] = np.diff(total, axis=1, prepend=0)
        if int(raw["overflow"][n]):
            errors.append(f"{where}: a capture memory overflowed")
    v_final = {name: v[:, -1] for name, v in trace.items()}
    return Result(spikes=spikes, v_final=v_final, v_trace=trace, cycles=cycles), \
        out_spikes, errors


def _core(plan: CorePlan) -> Core:
    """The core to put in the harness (the one place that constructs it)."""
    return Core(plan)
