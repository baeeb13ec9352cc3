"""cocotb testbench for a board top level (:class:`snnhw.boards.top.UARTTop`) over its UART pins.

The host side is the real driver, :class:`snnhw.host.Device`, running in a bridged thread; its
byte stream is a UART model (a source driving ``rx`` and a sink decoding ``tx``, both timed in
bit periods), so the test exercises everything between a serial port and the core. It runs
inside the simulator (started by ``snnhw.sim.board_runner``), reads a job file named by
``SNNHW_JOB`` and writes the device's answers to ``SNNHW_RESULT``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, First, RisingEdge, Timer

from snnhw.boards.protocol import CMD_SAMPLE, decode_result, encode_sample, result_size
from snnhw.host import Device, HostError
from snnhw.network import load

CLOCK_NS = 10


class UARTSource:
    """Drives a UART line with 8N1 bytes, back to back, one bit period per bit."""

    def __init__(self, line, bit_ns: int):
        self.line, self.bit_ns = line, bit_ns
        self.line.value = 1

    async def send(self, data: bytes) -> None:
        for byte in data:
            for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                self.line.value = bit
                await Timer(self.bit_ns, unit="ns")


class UARTSink:
    """Decodes 8N1 bytes from a UART line, sampling each bit in its middle."""

    def __init__(self, line, bit_ns: int):
        self.line, self.bit_ns = line, bit_ns
        self.received = bytearray()
        self.framing_errors = 0
        self._arrived = Event()

    async def run(self) -> None:
        while True:
            await FallingEdge(self.line)
            await Timer(self.bit_ns // 2, unit="ns")
            if int(self.line.value):
                continue  # a glitch, not a start bit
            byte = 0
            for k in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(self.line.value) << k
            await Timer(self.bit_ns, unit="ns")
            if not int(self.line.value):
                self.framing_errors += 1
            self.received.append(byte)
            self._arrived.set()

    async def read(self, size: int, timeout_ns: int) -> bytes:
        """Up to ``size`` bytes; fewer if the line stays quiet for ``timeout_ns``."""
        while len(self.received) < size:
            self._arrived.clear()
            quiet = Timer(timeout_ns, unit="ns")
            if await First(self._arrived.wait(), quiet) is quiet:
                break
        data = bytes(self.received[:size])
        del self.received[:size]
        return data


class SimulatedPort:
    """The host's byte stream: blocking ``read``/``write`` from a thread, over the UART model."""

    def __init__(self, source: UARTSource, sink: UARTSink, timeout_ns: int):
        self._write = resume(source.send)
        self._read = resume(sink.read)
        self._wait = resume(_sleep)
        self.timeout_ns = timeout_ns

    def write(self, data: bytes) -> None:
        self._write(bytes(data))

    def read(self, size: int) -> bytes:
        return self._read(size, self.timeout_ns)

    def sleep(self, ns: int) -> None:
        self._wait(ns)


async def _sleep(ns: int) -> None:
    await Timer(ns, unit="ns")


def host_session(port: SimulatedPort, inputs: np.ndarray, job: dict, read_pred) -> dict:
    """What a user's program does with a board (runs in a bridged thread)."""
    device = Device(port, network=load(job["model"]))
    identity = device.identify()
    errors: list[str] = []
    out = {"identity": np.array([identity.version, identity.input_size, identity.output_size,
                                 identity.timesteps, identity.lanes, identity.network_id,
                                 identity.large_ram_mask, identity.loaded], np.int64)}
    if not identity.loaded:
        # A sample before the synapses are loaded runs, but its answer says it is garbage.
        port.write(encode_sample(inputs[0]))
        reply = port.read(result_size(identity.output_size))
        out["unloaded_status"] = np.array(int(decode_result(reply, identity.output_size).status))
    if job["abandon"]:
        # A host that stops half-way through a sample: after a silence the board starts afresh.
        port.write(bytes([CMD_SAMPLE, 4, 0, 1, 0, 0x00, 0x80]))
        port.sleep(job["timeout_cycles"] * CLOCK_NS + 20 * job["bit_ns"])
    if job["bad_input"]:
        # An index past the inputs is dropped and flagged; the rest of the sample still runs.
        port.write(bytes([CMD_SAMPLE, 1, 0, 0xFF, 0x7F, 0x00, 0x80]))
        reply = port.read(result_size(identity.output_size))
        out["bad_input_status"] = np.array(int(decode_result(reply, identity.output_size).status))
    counts, preds, cycles, leds, status = [], [], [], [], []
    for sample in inputs:
        try:
            result = device.run(sample)
        except HostError as error:
            errors.append(str(error))
            break
        counts.append(result.counts)
        preds.append(result.pred)
        cycles.append(result.cycles)
        status.append(int(result.status))
        leds.append(read_pred())
    out.update(counts=np.array(counts, np.int64).reshape(-1, identity.output_size),
               pred=np.array(preds, np.int64), cycles=np.array(cycles, np.int64),
               leds=np.array(leds, np.int64), status=np.array(status, np.int64),
               errors=np.array(errors, dtype=str))
    return out


@cocotb.test()
async def board(dut):
    """Identify the board, then run every sample of the job through it with the host driver."""
    job = json.loads(Path(os.environ["SNNHW_JOB"]).read_text())
    inputs = np.load(job["inputs"])
    bit_ns = job["bit_ns"]
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    source = UARTSource(dut.rx, bit_ns)
    sink = UARTSink(dut.tx, bit_ns)
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    cocotb.start_soon(sink.run())

    async def pred() -> int:
        return int(dut.pred.value)

    # A reply must start within the time the core needs for a sample; generous bound.
    port = SimulatedPort(source, sink, timeout_ns=job["reply_timeout_ns"])
    out = await bridge(host_session)(port, inputs, job, resume(pred))
    out["framing_errors"] = np.array(sink.framing_errors)
    np.savez(os.environ["SNNHW_RESULT"], **out)
