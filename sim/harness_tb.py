"""cocotb testbench for a core inside :class:`~snnhw.hw.harness.Harness`: Python per batch, not
per cycle.

It runs inside the simulator (started by ``snnhw.sim.harness_runner``), reads the job file named
by ``SNNHW_JOB`` and writes the raw capture words to ``SNNHW_RESULT``; the runner
decodes and compares them. Per chunk of samples: write the stimulus words (one clock each), pulse
``go``, sleep until ``done`` rises (or the cycle budget runs out), read every capture back a wide
word per clock.

The clock ticks inside the model, rising at multiples of the period
(:func:`snnhw.sim.verilator_build.clocked_wrapper`); cocotb never sees it change. The
testbench keeps half a period away from the edges and steps one cycle with ``Timer(period)``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import First, RisingEdge, Timer


class ModelClock:
    """Steps the model's own clock from half-way between two rising edges to the next such
    point."""

    def __init__(self, period_ns: int):
        self.period_ns = period_ns

    async def cycle(self) -> None:
        await Timer(self.period_ns, unit="ns")

    async def realign(self) -> None:
        """After an edge-aligned trigger (the design's output changed at a rising edge)."""
        await Timer(self.period_ns // 2, unit="ns")


class StimulusWriter:
    """Writes packed stimulus words through the harness's ``stim_*`` port, one per clock."""

    def __init__(self, dut, clock: ModelClock):
        self.dut, self.clock = dut, clock

    async def write(self, words: np.ndarray) -> None:
        dut = self.dut
        dut.stim_en.value = 1
        for addr, word in enumerate(words):
            dut.stim_addr.value = addr
            dut.stim_data.value = int.from_bytes(word.tobytes(), "little")
            await self.clock.cycle()
        dut.stim_en.value = 0


class CaptureReader:
    """Reads the first words of every capture memory; all share ``read_addr``, one clock a word.

    A read port returns word ``read_addr`` one clock edge later, so the address runs one word
    ahead of the data.
    """

    def __init__(self, dut, clock: ModelClock, captures: dict[str, list[int]]):
        self.dut, self.clock = dut, clock
        self.captures = captures  # name -> [records per word, bytes per word]
        self.ports = {name: getattr(dut, f"read_{name}") for name in captures}

    async def read(self, counts: dict[str, int]) -> dict[str, np.ndarray]:
        dut = self.dut
        words = {name: -(-counts[name] // self.captures[name][0]) for name in self.captures}
        data = {name: bytearray() for name in self.captures}
        dut.read_addr.value = 0
        await self.clock.cycle()
        last = max(words.values(), default=0)
        for addr in range(last):
            for name, port in self.ports.items():  # word `addr`, latched at the last edge
                if addr < words[name]:
                    size = self.captures[name][1]
                    data[name] += port.value.to_unsigned().to_bytes(size, "little")
            if addr + 1 < last:  # a full memory has no word `last`: its address would not fit
                dut.read_addr.value = addr + 1
                await self.clock.cycle()
        return {name: np.frombuffer(bytes(data[name]), np.uint8).reshape(
                    words[name], self.captures[name][1]) for name in self.captures}


@cocotb.test()
async def harness(dut):
    """Run every chunk of the job through the harness and save the raw captures."""
    job = json.loads(open(os.environ["SNNHW_JOB"]).read())
    captures = job["captures"]
    clock = ModelClock(job["clock_ns"])
    writer = StimulusWriter(dut, clock)
    reader = CaptureReader(dut, clock, captures)
    seconds = np.zeros(3)  # load, run, read

    dut.rst.value = 1
    dut.go.value = 0
    dut.stim_en.value = 0
    dut.timesteps.value = job["timesteps"]
    dut.gap.value = job["gap"]
    dut.stall.value = job["stall"]
    await clock.realign()  # the first rising edge is one period in
    await clock.cycle()
    await clock.cycle()
    dut.rst.value = 0

    out: dict[str, np.ndarray] = {}
    errors: list[str] = []
    overflow = []
    with np.load(job["stimulus"]) as stimulus:
        for n, samples in enumerate(job["chunks"]):
            begun = time.perf_counter()
            await writer.write(stimulus[f"stim{n}"])
            dut.samples.value = samples
            dut.gap_seed.value, dut.stall_seed.value = job["seeds"][n]
            dut.go.value = 1
            await clock.cycle()
            dut.go.value = 0
            loaded = time.perf_counter()
            budget = job["budgets"][n]
            await First(RisingEdge(dut.done), Timer(budget * job["clock_ns"], unit="ns"))
            ran = time.perf_counter()
            if not int(dut.done.value):
                errors.append(f"chunk {n} ({samples} samples): the harness did not finish "
                              f"within {budget} cycles")
                break
            await clock.realign()
            counts = {name: int(getattr(dut, f"count_{name}").value) for name in captures}
            for name, words in (await reader.read(counts)).items():
                out[f"{name}{n}"] = words
            out[f"count{n}"] = np.array([counts[name] for name in captures], np.int64)
            overflow.append(int(dut.overflow.value))
            seconds += [loaded - begun, ran - loaded, time.perf_counter() - ran]
    np.savez(os.environ["SNNHW_RESULT"], errors=np.array(errors, dtype=str),
             overflow=np.array(overflow, np.int64), seconds=seconds, **out)
