"""Host driver for a board built by ``snnhw build``: send spikes, read counts and predictions.

It speaks the UART protocol of docs/boards.md (:mod:`snnhw.boards.protocol`) over any byte
stream with ``read(n)`` and ``write(data)`` -- a pyserial ``Serial``, a socket file, a
co-simulated UART. pyserial is only needed by :meth:`Device.open`.

    from snnhw.host import Device
    with Device.open("/dev/ttyUSB1", network=net) as board:
        result = board.run(spikes)          # spikes: 0/1 [timesteps, input_size]
        print(result.counts, result.pred)

Or from a shell, comparing the board with the golden model:

    python -m snnhw.host /dev/ttyUSB1 MODEL --inputs X.npy
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .boards.protocol import (CMD_IDENTIFY, CMD_LOAD, IDENTITY_SIZE, LOAD_REPLY_SIZE, TIMEOUT_S,
                              Identity, SampleResult, Status, decode_identity, decode_load_reply,
                              decode_result, encode_sample, large_ram_layers, network_id,
                              result_size)
from .errors import SnnhwError
from .network.format import Network

__all__ = ["ByteStream", "HostError", "BatchResult", "Device"]


class ByteStream(Protocol):
    """What :class:`Device` needs from a link: blocking ``write``, and ``read`` with a timeout."""

    def read(self, size: int) -> bytes: ...

    def write(self, data: bytes) -> object: ...


class HostError(SnnhwError):
    """The board did not answer, answered nonsense, or carries another network."""


@dataclass(frozen=True)
class BatchResult:
    """The board's answers for a batch of samples."""

    counts: np.ndarray  #: int64 [samples, outputs]
    pred: np.ndarray  #: int64 [samples]
    cycles: np.ndarray  #: int64 [samples]: core cycles per sample, UART waits included


class Device:
    """A board running an snnhw core, reached through a byte stream.

    Parameters
    ----------
    port : ByteStream
        The link; ``read(n)`` may return fewer bytes only when it timed out.
    network : Network, optional
        The network the board should carry: :meth:`identify` then checks its sizes and id,
        and :meth:`run` loads the synapses the board keeps in large RAM (SPRAM) if the board
        has not got them yet (after power-up).
    baud : int
        The link's bit rate, to know how long a load takes to send.
    progress : callable, optional
        ``progress(sent, total)`` is called as the synapse image is sent.
    """

    LOAD_CHUNK = 1024  #: bytes of the load image per write (and per progress call)

    def __init__(self, port: ByteStream, *, network: Network | None = None, baud: int = 115200,
                 progress=None):
        self.port = port
        self.network = network
        self.baud = baud
        self.progress = progress
        self.identity: Identity | None = None

    @classmethod
    def open(cls, path: str, baud: int = 115200, *, timeout: float = 2.0,
             network: Network | None = None, progress=None) -> "Device":
        """Open a serial port with pyserial (8N1, no flow control)."""
        try:
            import serial
        except ImportError:
            raise HostError("opening a serial port needs pyserial (pip install pyserial); "
                            "or give Device any object with read() and write()") from None
        try:
            port = serial.Serial(path, baud, timeout=timeout)
        except (serial.SerialException, ValueError) as error:
            raise HostError(f"{path}: cannot open at {baud} baud: {error}") from None
        return cls(port, network=network, baud=baud, progress=progress)

    def close(self) -> None:
        close = getattr(self.port, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def identify(self) -> Identity:
        """Ask the board what it carries; check it against ``network`` when one was given."""
        self.port.write(bytes([CMD_IDENTIFY]))
        identity = self._decode(decode_identity, self._read(IDENTITY_SIZE, "identity"))
        net = self.network
        if net is not None:
            want = (net.input_size, net.output_size, network_id(net))
            got = (identity.input_size, identity.output_size, identity.network_id)
            if want != got:
                raise HostError(f"the board carries another network (inputs, outputs, id "
                                f"{got[0]}, {got[1]}, {got[2]:#010x}; {net.name} has "
                                f"{want[0]}, {want[1]}, {want[2]:#010x}): rebuild or reprogram it")
        self.identity = identity
        return identity

    def resync(self) -> Identity:
        """Recover after an interrupted exchange: let the board abandon any half-received
        command, drop whatever it still sends, and identify it again."""
        time.sleep(2 * TIMEOUT_S)
        reset = getattr(self.port, "reset_input_buffer", None)
        if reset is not None:
            reset()
        return self.identify()

    def load(self) -> None:
        """Send the synapses that the board keeps in large RAM (``'W'``), from ``network``."""
        from .plan import CorePlan

        identity = self.identity or self.identify()
        if self.network is None:
            raise HostError("loading the board's synapses needs the network it was built from "
                            "(Device(..., network=...))")
        # The board says how its core was planned (lanes, large-RAM layers): plan the same one.
        image = CorePlan.build(self.network, identity.lanes, large=large_ram_layers(
            self.network, identity.large_ram_mask)).load_image()
        self.port.write(bytes([CMD_LOAD]))
        for start in range(0, len(image), self.LOAD_CHUNK):
            self.port.write(image[start:start + self.LOAD_CHUNK])
            if self.progress is not None:
                self.progress(min(start + self.LOAD_CHUNK, len(image)), len(image))
        # write() may return before the bytes are on the wire: allow for sending them all.
        patience = 10 * len(image) / self.baud
        loaded = self._decode(decode_load_reply,
                              self._read(LOAD_REPLY_SIZE, "load reply", patience))
        if not loaded:
            raise HostError(f"the board took the {len(image)}-byte synapse image but does not "
                            f"report itself loaded")
        self.identity = dataclasses.replace(identity, loaded=True)

    def run(self, spikes: np.ndarray) -> SampleResult:
        """Run one sample of 0/1 spikes ``[timesteps, input_size]``; return the board's answer."""
        identity = self.identity or self.identify()
        if not identity.loaded:
            if self.network is None:
                raise HostError("the board's synapses in large RAM are not loaded (after "
                                "power-up): give Device the network to load them")
            self.load()
        spikes = np.asarray(spikes)
        if spikes.ndim != 2 or spikes.shape[1] != identity.input_size:
            raise HostError(f"spikes: expected shape [timesteps, {identity.input_size}], "
                            f"got {spikes.shape}")
        self.port.write(encode_sample(spikes))
        size = result_size(identity.output_size)
        result = self._decode(lambda data: decode_result(data, identity.output_size),
                              self._read(size, "result"))
        errors = result.status & (Status.RX_OVERRUN | Status.RX_FRAMING | Status.BAD_INPUT
                                  | Status.NOT_LOADED)
        if errors:
            raise HostError(f"the board reports {errors.name} for this sample: its answer cannot "
                            f"be trusted (lower the baud rate, check the wiring)")
        return result

    def run_batch(self, inputs: np.ndarray) -> BatchResult:
        """Run every sample of 0/1 spikes ``[samples, timesteps, input_size]``."""
        results = [self.run(sample) for sample in np.asarray(inputs)]
        outputs = self.identity.output_size
        return BatchResult(
            counts=np.array([r.counts for r in results], np.int64).reshape(-1, outputs),
            pred=np.array([r.pred for r in results], np.int64),
            cycles=np.array([r.cycles for r in results], np.int64))

    def _read(self, size: int, what: str, patience: float = 0.0) -> bytes:
        """``size`` bytes; a read that times out ends it, after ``patience`` seconds."""
        data = bytearray()
        deadline = time.monotonic() + patience
        while len(data) < size:
            chunk = self.port.read(size - len(data))
            if not chunk and time.monotonic() < deadline:
                continue
            if not chunk:
                raise HostError(f"the board sent {len(data)} of the {size} bytes of its {what} "
                                f"before the link timed out (is it programmed, at this baud?)")
            data += chunk
        return bytes(data)

    @staticmethod
    def _decode(decode, data: bytes):
        try:
            return decode(data)
        except ValueError as error:
            raise HostError(f"garbled answer from the board: {error}") from None


def _show_load_progress(sent: int, total: int) -> None:
    print(f"\rloading the synapses kept in SPRAM: {sent}/{total} bytes",
          end="\n" if sent == total else "", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run samples on a board and compare its answers with the golden model."""
    parser = argparse.ArgumentParser(prog="python -m snnhw.host", description=main.__doc__)
    parser.add_argument("port", help="serial port of the board (/dev/ttyUSB1, COM4)")
    parser.add_argument("model", help="the network directory the board was built from")
    parser.add_argument("--inputs", required=True, metavar="X.npy",
                        help="uint8 0/1 spikes [samples, timesteps, input_size]")
    parser.add_argument("--baud", type=int, default=115200)
    args = parser.parse_args(argv)
    from .golden import simulate
    from .network import load
    from .results import load_inputs
    try:
        net = load(args.model)
        inputs = load_inputs(net, args.inputs)
        with Device.open(args.port, args.baud, network=net,
                         progress=_show_load_progress) as board:
            identity = board.identify()
            print(f"{args.port}: {net.name}, {identity.lanes} lane(s), network id "
                  f"{identity.network_id:#010x}")
            got = board.run_batch(inputs)
    except SnnhwError as error:
        print(f"snnhw.host: error: {error}", file=sys.stderr)
        return 2
    golden = simulate(net, inputs)
    same = int((got.counts == golden.counts).all(axis=1).sum())
    print(f"{len(inputs)} samples: counts identical to the golden model in {same}, predictions "
          f"{got.pred.tolist()}, mean {got.cycles.mean():.0f} core cycles a sample")
    return 0 if same == len(inputs) else 1


if __name__ == "__main__":
    sys.exit(main())
