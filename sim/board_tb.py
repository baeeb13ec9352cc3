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
import struct
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, First, RisingEdge, Timer

from snnhw.boards.protocol import (CMD_LOAD, CMD_SAMPLE, IDENTITY_SIZE, decode_result,
                                   encode_sample, result_size)
from snnhw.host import Device, HostError
from snnhw.network import load
from snnhw.plan.inputs import core_inputs
from snnhw.sim.spi_flash import SPIFlash

CLOCK_NS = 10


class UARTSource:
    """Drives a UART line with 8N1 bytes, back to back, one bit period per bit.

    Faults: ``stop=0`` sends bytes without a stop bit (a framing error); while ``connected`` is
    false the line stays idle (a broken wire: the board hears nothing).
    """

    def __init__(self, line, bit_ns: int):
        self.line, self.bit_ns = line, bit_ns
        self.connected = True
        self.sent = 0  #: bytes sent so far
        self.line.value = 1

    async def send(self, data: bytes, stop: int = 1) -> None:
        for byte in data:
            self.sent += 1
            for bit in [0, *((byte >> k) & 1 for k in range(8)), stop]:
                self.line.value = bit if self.connected else 1
                await Timer(self.bit_ns, unit="ns")
        self.line.value = 1


class UARTSink:
    """Decodes 8N1 bytes from a UART line, sampling each bit in its middle."""

    def __init__(self, line, bit_ns: int):
        self.line, self.bit_ns = line, bit_ns
        self.received = bytearray()
        self.framing_errors = 0
        self.keep: int | None = None  #: a fault: bytes still kept before the rest are lost
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
            if self.keep is not None:
                if self.keep == 0:
                    continue
                self.keep -= 1
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
    """The host's byte stream: blocking ``read``/``write`` from a thread, over the UART model.

    Like a pyserial port it has a ``name`` and a read ``timeout`` in seconds (simulated time).
    """

    name = "sim-uart"

    def __init__(self, source: UARTSource, sink: UARTSink, timeout_ns: int):
        self.source, self.sink = source, sink
        self._write = resume(source.send)
        self._read = resume(sink.read)
        self._wait = resume(_sleep)
        self.timeout_ns = timeout_ns
        self.timeout = timeout_ns / 1e9

    def write(self, data: bytes) -> None:
        self._write(bytes(data))

    def write_without_stop_bit(self, data: bytes) -> None:
        """Send bytes whose stop bit is 0: the board's UART sees framing errors."""
        self._write(bytes(data), 0)

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
                                 identity.large_ram_mask, identity.loaded,
                                 identity.from_flash, identity.flash_rejected,
                                 identity.flash_corrupt], np.int64)}
    if not identity.loaded:
        # A sample before the synapses are loaded runs, but its answer says it is garbage.
        port.write(encode_sample(core_inputs(device.kept, inputs[0])))
        reply = port.read(result_size(identity.output_size))
        out["unloaded_status"] = np.array(int(decode_result(reply, identity.output_size).status))
    if job["abandon"]:
        # A host that stops half-way through a sample: after a silence the board starts afresh.
        port.write(bytes([CMD_SAMPLE, 4, 0, 1, 0, 0x00, 0x80]))
        port.sleep(job["timeout_cycles"] * CLOCK_NS + 20 * job["bit_ns"])
    if job["stray_load"]:
        # A stray 'W' and a silence: the board abandons the load before touching its synapses.
        device.load()
        port.write(bytes([CMD_LOAD]))
        port.sleep(job["timeout_cycles"] * CLOCK_NS + 20 * job["bit_ns"])
        out["loaded_after_stray"] = np.array(int(device.identify().loaded))
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
    if job["faults"]:
        out.update(fault_session(port, device, inputs))
    return out


def extra_input(inputs: np.ndarray) -> int:
    """The first input that does not spike at timestep 0 of the first sample."""
    return int(np.flatnonzero(inputs[0, 0] == 0)[0])


#: Bytes that are no command; the bridge ignores them where a command is expected.
GARBAGE = bytes([0x00, 0xFF, 0x52, 0x80, 0x41, 0x10, 0x7F, 0xAA, 0x0D, 0x0A])


def fault_session(port: SimulatedPort, device: Device, inputs: np.ndarray) -> dict:
    """Inject each fault on the link, then check that the next normal commands work.

    For each fault ``name`` it saves ``name/error`` (the host's error for the disturbed
    exchange, "" if none), then identifies the board and runs ``inputs[1:3]`` as a user would:
    ``name/check_error`` ("" if all went well), ``name/counts``, ``name/pred``, ``name/status``.
    Some faults save what the board answered to the disturbed exchange as well.
    """
    out: dict[str, np.ndarray] = {}
    outputs = device.identity.output_size
    size = result_size(outputs)
    # Frames written by hand number the inputs as the board does (Device.run maps them itself).
    core = core_inputs(device.kept, inputs)
    frame = encode_sample(core[0])

    def attempt(call) -> str:
        try:
            call()
        except HostError as error:
            return str(error)
        return ""

    def read_result() -> bytes:
        return device._read(size, CMD_SAMPLE, "sample result")

    def fault(name: str, error: str = "", resync: bool = False, **answers) -> None:
        out[f"{name}/error"] = np.array(error)
        for key, value in answers.items():
            out[f"{name}/{key}"] = np.asarray(value)
        check: list = []

        def normal_use():
            if resync:
                device.resync()
            device.identify()
            check.extend(device.run(sample) for sample in inputs[1:3])

        out[f"{name}/check_error"] = np.array(attempt(normal_use))
        out[f"{name}/counts"] = np.array([r.counts for r in check], np.int64).reshape(-1, outputs)
        out[f"{name}/pred"] = np.array([r.pred for r in check], np.int64)
        out[f"{name}/status"] = np.array([int(r.status) for r in check], np.int64)

    # Garbage between commands: no command byte in it, so the board ignores it.
    port.write(GARBAGE)
    fault("garbage_idle")
    # Garbage with a command byte in it: the board answers the stray 'I', so the host reads an
    # identity where it expects a result, and must resynchronise.
    port.write(b"\x00I\xff")
    fault("garbage_command", attempt(lambda: device.run(inputs[0])), resync=True)
    # One byte too many inside a sample: its u16 words are misaligned, no end-of-timestep word
    # comes (input indices < 128), and the board abandons the sample after a silence.
    port.write(frame[:7] + b"\xa5" + frame[7:])
    fault("garbage_inside", attempt(read_result), resync=True)
    # A whole in-range event word inside a sample is a different, valid sample: the board
    # answers it (the protocol has no checksum).
    port.write(frame[:3] + struct.pack("<H", extra_input(core)) + frame[3:])
    fault("word_inside", answer=np.frombuffer(port.read(size), np.uint8))
    # A host that stops half-way through a sample, then resynchronises.
    port.write(frame[:len(frame) // 2])
    fault("truncated", resync=True)
    # A byte without a stop bit between commands: dropped, flagged, and forgotten by the next
    # sample.
    port.write_without_stop_bit(b"\x55")
    port.sleep(4 * port.source.bit_ns)
    fault("framing_idle")
    # A byte of a sample without a stop bit: the board drops it, the rest is misaligned as
    # above, no answer comes.
    port.write(frame[:5])
    port.write_without_stop_bit(frame[5:6])
    port.write(frame[6:])
    fault("framing_inside", attempt(read_result), resync=True)
    # Bytes sent while the core is busy wait in the receive FIFO: a pipelined 'I' is answered
    # after the result; garbage beyond what the FIFO holds is lost without harm.
    port.write(frame + b"I")
    busy_answer = port.read(size + IDENTITY_SIZE)
    port.write(frame + bytes(40))
    fault("busy", answer=np.frombuffer(busy_answer + port.read(size), np.uint8))
    # A silent board (its receive wire cut): the host says what it waited for, and where.
    port.source.connected = False
    error = attempt(device.identify)
    port.source.connected = True
    fault("silent", error)
    # The board's answer cut off after 5 bytes (its transmit wire broken for a while).
    port.sink.keep = 5
    error = attempt(lambda: device.run(inputs[0]))
    port.sink.keep = None
    fault("cut_answer", error)
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
    flash = None
    if job["flash"] is not None:  # a board that boots from its SPI flash
        flash = SPIFlash(dut.flash_cs, dut.flash_clk, dut.flash_copi, dut.flash_cipo,
                         Path(job["flash"]).read_bytes())
        cocotb.start_soon(flash.run())

    async def pred() -> int:
        return int(dut.pred.value)

    # A reply must start within the time the core needs for a sample; generous bound.
    port = SimulatedPort(source, sink, timeout_ns=job["reply_timeout_ns"])
    out = await bridge(host_session)(port, inputs, job, resume(pred))
    out["framing_errors"] = np.array(sink.framing_errors)
    out["bytes_sent"] = np.array(source.sent)
    if flash is not None:
        out["flash_commands"] = np.array(flash.commands, np.int64)
        out["flash_bytes_read"] = np.array(flash.bytes_read)
    np.savez(os.environ["SNNHW_RESULT"], **out)
