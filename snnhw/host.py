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
    python -m snnhw.host /dev/ttyUSB1 MODEL --features F.npy   # on-chip encoder: 'X'
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .boards.protocol import (CMD_FEATURES, CMD_IDENTIFY, CMD_LOAD, CMD_SAMPLE, IDENTITY_SIZE,
                              LOAD_REPLY_SIZE, TIMEOUT_S, Identity, SampleResult, Status,
                              decode_identity, decode_load_reply, decode_result,
                              encode_features_command, encode_sample, large_ram_layers,
                              network_id, result_size)
from .errors import SnnhwError
from .network.format import Network
from .plan.inputs import core_inputs, kept_inputs

__all__ = ["ByteStream", "HostError", "BatchResult", "Device"]


class ByteStream(Protocol):
    """What :class:`Device` needs from a link: blocking ``write``, and ``read`` with a timeout.

    ``read(n)`` returns fewer than ``n`` bytes (maybe none) only when its timeout ran out. Optional
    members that :class:`Device` uses when present: ``name`` or ``port`` (a string: the port's name
    in error messages), ``timeout`` (seconds a read waits: quoted in error messages) and
    ``close()``. A pyserial ``Serial`` has them all.
    """

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
    name : str, optional
        The port's name for error messages (default: the stream's ``name`` or ``port``).

    Errors are :class:`HostError` with a one-line message. Those of the link start with the
    port's name: a board that stays silent, stops half-way through an answer or answers garbage
    names the command and the answer it waited for (``/dev/ttyUSB1: no answer to 'S' (sample
    result, 28 bytes) within 2.0 s``). After such an error the board may still be half-way
    through a command or an answer: :meth:`resync` brings both sides back to a known state.
    """

    LOAD_CHUNK = 1024  #: bytes of the load image per write (and per progress call)
    RESYNC_LIMIT = 1 << 16  #: bytes :meth:`resync` drops before it gives up on a babbling board

    def __init__(self, port: ByteStream, *, network: Network | None = None, baud: int = 3_000_000,
                 progress=None, name: str | None = None):
        self.port = port
        self.network = network
        self.baud = baud
        self.progress = progress
        self.name = name or _port_name(port)
        self.identity: Identity | None = None
        #: the network input at each of the board's inputs (None: the same numbering)
        self.kept = None if network is None else kept_inputs(network)

    @classmethod
    def open(cls, path: str, baud: int = 3_000_000, *, timeout: float = 2.0,
             network: Network | None = None, progress=None) -> "Device":
        """Open a serial port with pyserial (8N1, no flow control)."""
        try:
            import serial
        except ImportError:
            raise HostError("opening a serial port needs pyserial (pip install pyserial); "
                            "or give Device any object with read() and write()") from None
        try:
            # Without flow control a write only waits for the UART: the read timeout bounds it.
            port = serial.Serial(path, baud, timeout=timeout, write_timeout=timeout)
        except (serial.SerialException, ValueError) as error:
            raise HostError(f"{path}: cannot open at {baud} baud: {error}") from None
        return cls(port, network=network, baud=baud, progress=progress, name=path)

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
        self._write(bytes([CMD_IDENTIFY]), CMD_IDENTIFY)
        identity = self._decode(decode_identity, self._read(IDENTITY_SIZE, CMD_IDENTIFY,
                                                            "identity"), CMD_IDENTIFY)
        net = self.network
        if net is not None:
            inputs = net.input_size if self.kept is None else len(self.kept)
            want = (inputs, net.output_size, network_id(net))
            got = (identity.input_size, identity.output_size, identity.network_id)
            if want != got:
                raise HostError(f"the board carries another network (inputs, outputs, id "
                                f"{got[0]}, {got[1]}, {got[2]:#010x}; {net.name} has "
                                f"{want[0]}, {want[1]}, {want[2]:#010x}): rebuild or reprogram it")
        self.identity = identity
        return identity

    def resync(self) -> Identity:
        """Recover after an interrupted exchange: let the board abandon any half-received
        command, drop whatever it still sends, and identify it again.

        The host stays silent for at least twice the board's :data:`TIMEOUT_S` (the board
        abandons a command after one) and reads until a read times out with nothing: the board
        is then idle, waiting for a command, with nothing left to send. No reset is needed; it
        takes at least one read timeout of the port.
        """
        deadline = time.monotonic() + 2 * TIMEOUT_S
        dropped = 0
        while True:
            chunk = self._receive(4096, "draining the link to resynchronise")
            dropped += len(chunk)
            if not chunk and time.monotonic() >= deadline:
                break
            if not chunk:
                time.sleep(TIMEOUT_S / 10)  # a stream that does not block on read
            if dropped > self.RESYNC_LIMIT:
                raise HostError(f"{self.name}: the board does not fall silent (dropped {dropped} "
                                f"bytes while resynchronising): is the baud rate right?")
        self.identity = None
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
        self._write(bytes([CMD_LOAD]), CMD_LOAD)
        for start in range(0, len(image), self.LOAD_CHUNK):
            self._write(image[start:start + self.LOAD_CHUNK], CMD_LOAD)
            if self.progress is not None:
                self.progress(min(start + self.LOAD_CHUNK, len(image)), len(image))
        # write() may return before the bytes are on the wire: allow for sending them all.
        patience = 10 * len(image) / self.baud
        loaded = self._decode(decode_load_reply,
                              self._read(LOAD_REPLY_SIZE, CMD_LOAD, "load reply", patience),
                              CMD_LOAD)
        if not loaded:
            raise HostError(f"the board took the {len(image)}-byte synapse image but does not "
                            f"report itself loaded")
        self.identity = dataclasses.replace(identity, loaded=True)

    def run(self, spikes: np.ndarray) -> SampleResult:
        """Run one sample and return the board's answer: 0/1 spikes ``[timesteps, input_size]``
        (``'S'``; the network's inputs when the Device has the network, else the board's,
        :mod:`snnhw.plan.inputs`), or ``input_size`` feature bytes 0..255 (``'X'``: the board's
        encoder makes the spikes)."""
        identity = self.identity or self.identify()
        if not identity.loaded:
            if self.network is None:
                raise HostError("the board's synapses in large RAM are not loaded (after "
                                "power-up): give Device the network to load them")
            self.load()
        spikes = np.asarray(spikes)
        if spikes.ndim == 2 and self.network is not None \
                and spikes.shape[1] == self.network.input_size:
            spikes = core_inputs(self.kept, spikes)  # the board numbers its inputs as the core
        if spikes.ndim == 1:
            command = CMD_FEATURES
            if identity.encoder is None:
                raise HostError("features: the board has no on-chip encoder (its network has "
                                "none): send spikes [timesteps, inputs] instead")
            if spikes.shape != (identity.input_size,):
                raise HostError(f"features: expected {identity.input_size} feature bytes, got "
                                f"{spikes.shape[0]}")
            try:
                frame = encode_features_command(spikes, identity.input_size)
            except ValueError as error:
                raise HostError(str(error)) from None
        elif spikes.ndim != 2 or spikes.shape[1] != identity.input_size:
            raise HostError(f"spikes: expected shape [timesteps, {identity.input_size}] (or "
                            f"{identity.input_size} feature bytes), got {spikes.shape}")
        else:
            command, frame = CMD_SAMPLE, encode_sample(spikes)
        self._write(frame, command)
        size = result_size(identity.output_size)
        result = self._decode(lambda data: decode_result(data, identity.output_size),
                              self._read(size, command, "sample result"), command)
        errors = result.status & (Status.RX_OVERRUN | Status.RX_FRAMING | Status.BAD_INPUT
                                  | Status.NOT_LOADED)
        if errors:
            raise HostError(f"the board reports {errors.name} for this sample: its answer cannot "
                            f"be trusted (lower the baud rate, check the wiring)")
        return result

    def run_batch(self, inputs: np.ndarray) -> BatchResult:
        """Run every sample: 0/1 spikes ``[samples, timesteps, input_size]`` or feature bytes
        ``[samples, input_size]``."""
        results = [self.run(sample) for sample in np.asarray(inputs)]
        outputs = self.identity.output_size
        return BatchResult(
            counts=np.array([r.counts for r in results], np.int64).reshape(-1, outputs),
            pred=np.array([r.pred for r in results], np.int64),
            cycles=np.array([r.cycles for r in results], np.int64))

    def _read(self, size: int, command: int, what: str, patience: float = 0.0) -> bytes:
        """The ``size`` bytes of the answer to ``command``; a read that times out ends it,
        after ``patience`` seconds."""
        data = bytearray()
        deadline = time.monotonic() + patience
        while len(data) < size:
            chunk = self._receive(size - len(data), f"reading the answer to {chr(command)!r}")
            if not chunk and time.monotonic() < deadline:
                continue
            if not chunk:
                answer = f"{chr(command)!r} ({what}, {size} bytes)"
                wait = self._waited(patience)
                if not data:
                    raise HostError(f"{self.name}: no answer to {answer} {wait}")
                raise HostError(f"{self.name}: the answer to {answer} stopped after "
                                f"{len(data)} bytes: nothing more came {wait}")
            data += chunk
        return bytes(data)

    def _receive(self, size: int, doing: str) -> bytes:
        try:
            return bytes(self.port.read(size))
        except OSError as error:  # pyserial's SerialException is one (a port unplugged)
            raise HostError(f"{self.name}: {doing}: {_one_line(error)}") from None

    def _write(self, data: bytes, command: int) -> None:
        try:
            self.port.write(data)
        except OSError as error:  # pyserial's SerialException and SerialTimeoutException
            raise HostError(f"{self.name}: sending {chr(command)!r}: "
                            f"{_one_line(error)}") from None

    def _waited(self, patience: float) -> str:
        timeout = getattr(self.port, "timeout", None)
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            return f"within {float(max(timeout, patience))} s"
        return "before the link timed out"

    def _decode(self, decode, data: bytes, command: int):
        try:
            return decode(data)
        except ValueError as error:
            raise HostError(f"{self.name}: garbled answer to {chr(command)!r}: "
                            f"{_one_line(error)}") from None


def _port_name(port: object) -> str:
    """A stream's name for messages: pyserial's ``name``/``port``, else a generic one."""
    for attribute in ("name", "port"):
        name = getattr(port, attribute, None)
        if isinstance(name, str) and name:
            return name
    return "the board's link"


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _show_load_progress(sent: int, total: int) -> None:
    print(f"\rloading the synapses kept in SPRAM: {sent}/{total} bytes",
          end="\n" if sent == total else "", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run samples on a board and compare its answers with the golden model."""
    parser = argparse.ArgumentParser(prog="python -m snnhw.host", description=main.__doc__)
    parser.add_argument("port", help="serial port of the board (/dev/ttyUSB1, COM4)")
    parser.add_argument("model", help="the network directory the board was built from")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--inputs", metavar="X.npy",
                       help="uint8 0/1 spikes [samples, timesteps, input_size]")
    given.add_argument("--features", metavar="F.npy",
                       help="feature bytes 0..255 [samples, input_size], for a network with an "
                            "encoder: the board makes the spikes")
    parser.add_argument("--baud", type=int, default=3_000_000,
                        help="the board file's uart.baud (default 3000000: iCEBreaker; ULX3S: 1000000)")
    args = parser.parse_args(argv)
    from .golden import simulate
    from .network import load
    from .network.encoder import encode_features
    from .results import load_features, load_inputs
    try:
        net = load(args.model)
        if args.features is None:
            inputs = spikes = load_inputs(net, args.inputs)
        elif net.encoder is None:
            raise HostError(f"--features: {args.model} has no encoder, so its board has no "
                            f"on-chip encoder: expected --inputs (spikes)")
        else:
            inputs = load_features(net, args.features)
            spikes = encode_features(net.encoder, inputs, net.timesteps)
        with Device.open(args.port, args.baud, network=net,
                         progress=_show_load_progress) as board:
            identity = board.identify()
            boot = (", synapses read from the board's flash" if identity.from_flash else
                    ", its flash holds no image for this network" if identity.flash_rejected
                    else ", its flash image failed its CRC (loaded over the UART instead)"
                    if identity.flash_corrupt else "")
            print(f"{args.port}: {net.name}, {identity.lanes} lane(s), network id "
                  f"{identity.network_id:#010x}{boot}")
            got = board.run_batch(inputs)
    except SnnhwError as error:
        print(f"snnhw.host: error: {error}", file=sys.stderr)
        return 2
    golden = simulate(net, spikes)
    same = int((got.counts == golden.counts).all(axis=1).sum())
    print(f"{len(inputs)} samples: counts identical to the golden model in {same}, predictions "
          f"{got.pred.tolist()}, mean {got.cycles.mean():.0f} core cycles a sample")
    return 0 if same == len(inputs) else 1


if __name__ == "__main__":
    sys.exit(main())
