"""cocotb testbench for a generated core: drive input spikes, record everything the core does.

It runs inside the simulator (started by ``snnhw.sim.runner``), reads a job file named by
``SNNHW_JOB`` and writes what it observed to ``SNNHW_RESULT``; the runner compares
that with the golden model. Driver, sink and monitor are small classes stepped from one clock
loop (one Python wake-up per clock edge keeps the simulation fast).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge


class EventDriver:
    """Drives the input event stream; random idle cycles between events (``gap`` probability).

    Once ``valid`` is raised it stays up with the same payload until the core takes the event.
    """

    def __init__(self, dut, addr_bits: int, gap: float, rng: random.Random):
        self.dut, self.addr_bits, self.gap, self.rng = dut, addr_bits, gap, rng
        self.events: list[tuple[int, int]] = []
        self.valid = 0

    def load(self, spikes: np.ndarray) -> None:
        """Queue one sample: the spiking inputs of each timestep, then its end-of-timestep."""
        self.events = []
        for step in spikes:
            self.events += [(int(i), 0) for i in np.flatnonzero(step)] + [(0, 1)]
        self.events.reverse()  # pop() from the end

    def drive(self) -> None:
        if not self.valid and self.events and self.rng.random() >= self.gap:
            addr, eot = self.events[-1]
            self.dut.i__payload.value = addr | (eot << self.addr_bits)
            self.valid = 1
        self.dut.i__valid.value = self.valid

    def sample(self) -> None:
        if self.valid and int(self.dut.i__ready.value):
            self.events.pop()
            self.valid = 0

    @property
    def finished(self) -> bool:
        return not self.events and not self.valid


class EventSink:
    """Receives output events with random back-pressure (``stall`` probability)."""

    def __init__(self, dut, addr_bits: int, stall: float, rng: random.Random):
        self.dut, self.addr_bits, self.stall, self.rng = dut, addr_bits, stall, rng
        self.ready = 0

    def start(self, timesteps: int, size: int) -> None:
        self.spikes = np.zeros((timesteps, size), np.uint8)
        self.cycles: list[int] = []
        self.step = 0
        self.overflow = False

    def drive(self) -> None:
        self.ready = int(self.rng.random() >= self.stall)
        self.dut.o__ready.value = self.ready

    def sample(self) -> None:
        if not (self.ready and int(self.dut.o__valid.value)):
            return
        payload = int(self.dut.o__payload.value)
        if payload >> self.addr_bits:
            self.cycles.append(int(self.dut.cycles.value) + 1)  # counts this cycle too
            self.step += 1
        elif self.step < len(self.spikes):
            self.spikes[self.step, payload & ((1 << self.addr_bits) - 1)] = 1
        else:
            self.overflow = True


class ProbeMonitor:
    """Records one layer's neuron updates (spike and new V) per timestep from its probe port."""

    def __init__(self, dut, layer: str, size: int):
        self.valid = getattr(dut, f"probe_{layer}__valid")
        self.neuron = getattr(dut, f"probe_{layer}__neuron")
        self.spike = getattr(dut, f"probe_{layer}__spike")
        self.v = getattr(dut, f"probe_{layer}__v")
        self.size = size

    def start(self, timesteps: int) -> None:
        self.spikes = np.zeros((timesteps, self.size), np.uint8)
        self.vs = np.zeros((timesteps, self.size), np.int64)
        self.step = 0
        self.unexpected: list[str] = []

    def sample(self) -> None:
        if not int(self.valid.value):
            return
        neuron = int(self.neuron.value)
        if self.step >= len(self.spikes):
            self.unexpected.append(f"update of neuron {neuron} after the last timestep")
            return
        self.spikes[self.step, neuron] = int(self.spike.value)
        self.vs[self.step, neuron] = self.v.value.to_signed()
        if neuron == self.size - 1:
            self.step += 1


async def load_synapses(dut, image: bytes, gap: float, rng: random.Random) -> None:
    """Stream the load image into the core's ``load`` port (random idle cycles), then wait for
    ``loaded``."""
    dut.load_begin.value = 1
    await RisingEdge(dut.clk)
    dut.load_begin.value = 0
    position = 0
    while position < len(image):
        valid = rng.random() >= gap
        dut.load__valid.value = int(valid)
        dut.load__payload.value = image[position]
        await FallingEdge(dut.clk)
        if valid and int(dut.load__ready.value):
            position += 1
        await RisingEdge(dut.clk)
    dut.load__valid.value = 0
    await FallingEdge(dut.clk)
    if not int(dut.loaded.value):
        raise AssertionError(f"the core took all {len(image)} bytes of the load image but "
                             f"does not say it is loaded")
    await RisingEdge(dut.clk)


async def pulse_start(dut, timesteps: int) -> None:
    """Begin a sample of ``timesteps`` timesteps: ``start`` high for one clock cycle."""
    await RisingEdge(dut.clk)
    dut.start.value = 1
    dut.timesteps.value = timesteps
    await RisingEdge(dut.clk)
    dut.start.value = 0


@cocotb.test()
async def cosim(dut):
    """Run every sample of the job through the core and save what it did."""
    job = json.loads(open(os.environ["SNNHW_JOB"]).read())
    inputs = np.load(job["inputs"])
    rng = random.Random(job["seed"])
    layers = job["layers"]  # [{"name", "size"}]
    driver = EventDriver(dut, job["input_addr_bits"], job["gap"], rng)
    sink = EventSink(dut, job["output_addr_bits"], job["backpressure"], rng)
    monitors = [ProbeMonitor(dut, layer["name"], layer["size"]) for layer in layers]

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.start.value = 0
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    if job["load_image"] is not None:
        dut.load__valid.value = 0
        dut.load_begin.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    if job["load_image"] is not None:
        await load_synapses(dut, open(job["load_image"], "rb").read(), job["gap"], rng)

    samples, timesteps, _ = inputs.shape
    out = {f"probe_spikes/{m['name']}": np.zeros((samples, timesteps, m["size"]), np.uint8)
           for m in layers}
    out.update({f"probe_v/{m['name']}": np.zeros((samples, timesteps, m["size"]), np.int64)
                for m in layers})
    out["out_spikes"] = np.zeros((samples, timesteps, layers[-1]["size"]), np.uint8)
    out["cycles"] = np.zeros((samples, timesteps), np.int64)
    errors: list[str] = []
    first = job.get("first_sample", 0)
    restart_after = job.get("restart_after", 0)
    for s in range(samples):
        if restart_after:
            # Begin the sample, abandon it after restart_after cycles and start it again below:
            # a start in the middle of a sample must leave no trace in the next one.
            driver.load(inputs[s])
            sink.start(timesteps, layers[-1]["size"])
            await pulse_start(dut, timesteps)
            for _ in range(restart_after):
                driver.drive()
                sink.drive()
                await FallingEdge(dut.clk)
                driver.sample()
                sink.sample()
                await RisingEdge(dut.clk)
            driver.valid = 0
            dut.i__valid.value = 0
        driver.load(inputs[s])
        sink.start(timesteps, layers[-1]["size"])
        for monitor in monitors:
            monitor.start(timesteps)
        await pulse_start(dut, timesteps)
        budget = job["cycle_budget"]
        for cycle in range(budget):
            driver.drive()
            sink.drive()
            await FallingEdge(dut.clk)
            for monitor in monitors:
                monitor.sample()
            done = int(dut.done.value)
            driver.sample()
            sink.sample()
            if done and driver.finished:
                break
            await RisingEdge(dut.clk)
        else:
            errors.append(f"sample {first + s}: the core did not finish within {budget} cycles "
                          f"(inputs left: {len(driver.events)}, output timesteps: {sink.step})")
            break
        dut.i__valid.value = 0
        for monitor, layer in zip(monitors, layers):
            out[f"probe_spikes/{layer['name']}"][s] = monitor.spikes
            out[f"probe_v/{layer['name']}"][s] = monitor.vs
            errors += [f"sample {first + s}, layer {layer['name']}: {e}"
                       for e in monitor.unexpected]
        out["out_spikes"][s] = sink.spikes
        cycles = np.diff(np.array([0] + sink.cycles[:timesteps]))
        out["cycles"][s, :len(cycles)] = cycles
        if sink.overflow or len(sink.cycles) != timesteps:
            errors.append(f"sample {first + s}: output stream carried {len(sink.cycles)} "
                          f"end-of-timestep events, expected {timesteps}")
    out["samples_done"] = np.array(s + 1 if not errors else s)
    np.savez(os.environ["SNNHW_RESULT"], errors=np.array(errors, dtype=str), **out)
