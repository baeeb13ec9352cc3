"""The UART byte protocol between a host and a board (pure Python; docs/boards.md writes it down).

Host to device (multi-byte fields little-endian):

- ``'I'`` (0x49): identify. The device answers with :data:`IDENTITY_SIZE` bytes: ``'I'``, protocol
  version (u8), input size (u16: the core's inputs, :attr:`CorePlan.input_size`: the network inputs
  with a synapse, :mod:`snnhw.plan.inputs`), output size (u16), the network's default timesteps
  (u16), lanes (u8), network id (u32, :func:`network_id`), the layers whose synapses are loaded at
  run time (u16 mask, bit k for the network's layer k; 0 when all are in the bitstream), the on-chip
  encoder (u8: 0 none, 1 rate, 2 latency, 3 direct; :data:`ENCODER_CODES`) and its seed (u16), and
  whether the synapses are loaded (u8: bit 0 loaded, 1 when nothing needs loading; bit 1 they were
  loaded from the board's flash at power-up; bit 2 the flash held no image for this network, so the
  board waits for ``'W'``; bit 3 the flash's image failed its CRC, so the board waits for ``'W'``;
  :mod:`snnhw.boards.flash`).
- ``'W'`` (0x57), then the load image (:meth:`snnhw.plan.CorePlan.load_image`, exactly
  :attr:`~snnhw.plan.CorePlan.load_size` bytes): writes the synapses of the masked layers (large
  RAM such as iCE40 SPRAM, which a bitstream cannot initialise; they keep them until power is
  lost). The device answers ``'W'`` and the loaded flag (u8).
- ``'S'`` (0x53), timesteps T (u16), then T timesteps of input spike events. An event is a u16: bits
  0..14 the core's index of a spiking input (:meth:`CorePlan.core_inputs`: a network input without
  synapses has none, and is not sent), bit 15 clear; each timestep ends with ``0x8000`` (end of
  timestep). The device answers after the last timestep with :func:`result_size` bytes: ``'R'``,
  status (u8, :class:`Status`), one u16 spike count per output neuron, the predicted class (u16:
  argmax of the counts, ties to the lowest index), and the core's cycle count for the sample (u32).
  A sample run before the synapses are loaded computes garbage and says so in the status.
- ``'X'`` (0x58), then the sample's ``input_size`` feature bytes (0..255): the board's encoder
  (:mod:`snnhw.network.encoder`) turns them into the network's default number of timesteps of
  input spikes. Only boards whose network has an encoder; the answer is that of ``'S'``.

Faults and recovery (docs/boards.md, "Faults and recovery"): other bytes where a command is
expected are ignored. A pause of more than :data:`TIMEOUT_S` seconds inside a command abandons it
(nothing is answered; a ``'W'`` abandoned after its first image byte leaves the synapses
unloaded, one abandoned before changes nothing), so a host that lost its place resynchronises by
staying silent that long and dropping what the device still sends
(:meth:`snnhw.host.Device.resync`). Bytes that arrive while the device computes or answers are
read afterwards, as far as its receive buffer holds them. There is no checksum: a well-formed
word slipped into a sample makes another valid sample.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..network.encoder import Encoder, EncoderKind, check_features
from ..network.format import Network
from ..plan import CorePlan
from ..plan.inputs import core_inputs, kept_inputs

__all__ = ["VERSION", "CMD_IDENTIFY", "CMD_SAMPLE", "CMD_FEATURES", "CMD_LOAD", "ENCODER_CODES",
           "encode_features_command", "RESP_RESULT", "EOT",
           "MAX_INPUTS", "MAX_LOADED_LAYERS", "TIMEOUT_S", "IDENTITY_SIZE", "LOAD_REPLY_SIZE",
           "Status", "Identity", "SampleResult", "network_id", "large_ram_mask",
           "large_ram_layers", "identity_bytes", "encode_sample", "result_size", "link_bytes",
           "decode_result", "decode_identity", "decode_load_reply", "ProtocolError"]

VERSION = 4  #: 4: inputs numbered by the core (inputs without synapses dropped)
CMD_IDENTIFY = ord("I")
CMD_SAMPLE = ord("S")
CMD_FEATURES = ord("X")
CMD_LOAD = ord("W")
RESP_RESULT = ord("R")
EOT = 0x8000  #: the end-of-timestep event
MAX_INPUTS = 0x8000  #: input indices must fit in 15 bits
MAX_TIMESTEPS = 0xFFFF
TIMEOUT_S = 0.1  #: a silence this long inside a command abandons it
IDENTITY_SIZE = 19
LOAD_REPLY_SIZE = 2
MAX_LOADED_LAYERS = 16  #: the identity's layer mask is a u16

_IDENTITY = struct.Struct("<BBHHHBIHBHB")
#: the identity's encoder byte
ENCODER_CODES = {None: 0, EncoderKind.RATE: 1, EncoderKind.LATENCY: 2, EncoderKind.DIRECT: 3}


class ProtocolError(ValueError):
    """Bytes that do not follow the protocol, or a sample the protocol cannot carry."""


class Status(enum.IntFlag):
    """Status byte of a result: what went wrong on the device during the sample (0 = nothing)."""

    BAD_INPUT = 1  #: an input index >= input size was received and dropped
    RX_OVERRUN = 2  #: a received byte was lost (the host sent faster than the device could take)
    RX_FRAMING = 4  #: a byte had no stop bit (baud rate mismatch or line noise)
    NOT_LOADED = 8  #: the synapses in large RAM were not loaded ('W'): the answer is garbage


@dataclass(frozen=True)
class Identity:
    """What a device says about the core it carries."""

    version: int
    input_size: int  #: the core's inputs (:attr:`snnhw.plan.CorePlan.input_size`)
    output_size: int
    timesteps: int
    lanes: int
    network_id: int
    large_ram_mask: int  #: bit k: layer k's synapses are loaded at run time
    encoder: Encoder | None  #: the on-chip encoder ('X' takes feature bytes), if any
    loaded: bool  #: those synapses have been loaded
    from_flash: bool = False  #: they were loaded from the board's flash at power-up
    flash_rejected: bool = False  #: the flash held no image for this network (blank or stale)
    flash_corrupt: bool = False  #: the flash's image failed its CRC (not loaded until 'W')


@dataclass(frozen=True)
class SampleResult:
    """The device's answer for one sample."""

    counts: np.ndarray  #: int64 [output_size]: output spikes per neuron over the sample
    pred: int  #: predicted class
    cycles: int  #: core clock cycles the sample took (including waiting for the UART)
    status: Status


def network_id(net: Network) -> int:
    """A 32-bit CRC of everything that determines what the network computes."""
    crc = zlib.crc32(f"{net.name}|{net.input_size}|{net.timesteps}".encode())
    for layer in net.layers:
        n = layer.neuron
        crc = zlib.crc32(f"|{layer.name}|{layer.kind}|{layer.codebook}|{layer.weight_bits}|"
                         f"{n.model}|{n.threshold}|{n.leak_shift}|{n.reset.value}|{n.v_bits}|"
                         f"{n.state_levels}".encode(), crc)
        if n.extensions():  # version-2 fields (a version-1 network keeps its identity)
            crc = zlib.crc32(f"|{n.fire.value}|{n.reset_timing.value}|{n.beta}|{n.beta_bits}|"
                             f"{n.beta_frac_bits}|{n.beta_rounding.value}|{n.bias}".encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(layer.index, dtype="<i4").tobytes(), crc)
    if net.encoder is not None:  # (networks without one keep the ids they had)
        crc = zlib.crc32(f"|{net.encoder.kind.value}|{net.encoder.seed}".encode(), crc)
    return crc


def large_ram_mask(plan: CorePlan) -> int:
    """The identity's mask of the layers whose synapses sit in large RAM."""
    mask = sum(1 << k for k, layer in enumerate(plan.layers) if layer.name in plan.large)
    if mask >> MAX_LOADED_LAYERS:
        raise ProtocolError(f"only the first {MAX_LOADED_LAYERS} layers can keep their "
                            f"synapses in large RAM")
    return mask


def large_ram_layers(net: Network, mask: int) -> list[str]:
    """The names of the layers in an identity's mask."""
    return [layer.name for k, layer in enumerate(net.layers) if mask >> k & 1]


def identity_bytes(plan: CorePlan, loaded: bool = True) -> bytes:
    """The device's answer to ``'I'`` for the planned core (``loaded``: its large-RAM layers
    have been loaded)."""
    net = plan.network
    return _IDENTITY.pack(CMD_IDENTIFY, VERSION, plan.input_size, net.output_size,
                          net.timesteps, plan.lanes, network_id(net), large_ram_mask(plan),
                          ENCODER_CODES[net.encoder and net.encoder.kind],
                          net.encoder.seed if net.encoder else 0, int(loaded))


def decode_identity(data: bytes) -> Identity:
    """Parse the answer to ``'I'``."""
    if len(data) != IDENTITY_SIZE or data[0] != CMD_IDENTIFY:
        raise ProtocolError(f"identity: expected {IDENTITY_SIZE} bytes starting with 'I', "
                            f"got {bytes(data[:IDENTITY_SIZE])!r}")
    _, *fields, code, seed, loaded = _IDENTITY.unpack(data)
    kinds = {number: kind for kind, number in ENCODER_CODES.items()}
    if code not in kinds or (code and not 1 <= seed <= 0xFFFF):
        raise ProtocolError(f"identity: unknown encoder {code} (seed {seed})")
    encoder = Encoder(kinds[code], seed) if code else None
    return Identity(*fields, encoder=encoder, loaded=bool(loaded & 1),
                    from_flash=bool(loaded & 2), flash_rejected=bool(loaded & 4),
                    flash_corrupt=bool(loaded & 8))


def decode_load_reply(data: bytes) -> bool:
    """Parse the answer to ``'W'``: whether the device is now loaded."""
    if len(data) != LOAD_REPLY_SIZE or data[0] != CMD_LOAD:
        raise ProtocolError(f"load reply: expected {LOAD_REPLY_SIZE} bytes starting with 'W', "
                            f"got {bytes(data)!r}")
    return bool(data[1] & 1)


def encode_sample(spikes: np.ndarray) -> bytes:
    """The ``'S'`` command for one sample of 0/1 spikes ``[timesteps, input_size]``."""
    spikes = np.asarray(spikes)
    if spikes.ndim != 2:
        raise ProtocolError(f"a sample must be [timesteps, inputs], got shape {spikes.shape}")
    timesteps, inputs = spikes.shape
    if timesteps > MAX_TIMESTEPS or inputs > MAX_INPUTS:
        raise ProtocolError(f"a sample carries at most {MAX_TIMESTEPS} timesteps of "
                            f"{MAX_INPUTS} inputs, got shape {spikes.shape}")
    words = []
    for step in spikes:
        words.extend(np.flatnonzero(step).tolist())
        words.append(EOT)
    return bytes([CMD_SAMPLE]) + struct.pack(f"<H{len(words)}H", timesteps, *words)


def encode_features_command(features: np.ndarray, input_size: int) -> bytes:
    """The ``'X'`` command for one sample's feature bytes ``[input_size]`` (0..255)."""
    x = check_features(np.asarray(features)[None], input_size, "features")
    return bytes([CMD_FEATURES]) + x.tobytes()


def result_size(output_size: int) -> int:
    """Bytes of the answer to ``'S'``."""
    return 2 + 2 * output_size + 2 + 4


def link_bytes(net: Network, command: str, inputs: np.ndarray | None = None) -> float:
    """Bytes a sample takes on the UART: the host's command and the board's answer. ``command``
    ``"X"``: the feature bytes for the on-chip encoder; ``"S"``: the spike events of ``inputs``
    (0/1 [samples, timesteps, network inputs], as the core takes them), their mean over the
    samples. At ``baud`` (10 bits a byte)
    the link carries ``baud / (10 * link_bytes(...))`` samples a second."""
    if command == "X":
        sent = 1 + net.input_size  # encode_features_command: the command byte, a byte a feature
    else:
        kept = kept_inputs(net)
        sent = float(np.mean([len(encode_sample(core_inputs(kept, x))) for x in inputs]))
    return sent + result_size(net.output_size)


def decode_result(data: bytes, output_size: int) -> SampleResult:
    """Parse the answer to ``'S'``."""
    if len(data) != result_size(output_size) or data[0] != RESP_RESULT:
        raise ProtocolError(f"result: expected {result_size(output_size)} bytes starting with "
                            f"'R', got {bytes(data[:16])!r}{'...' if len(data) > 16 else ''}")
    counts = np.frombuffer(data, "<u2", output_size, offset=2).astype(np.int64)
    pred, cycles = struct.unpack_from("<HI", data, 2 + 2 * output_size)
    return SampleResult(counts=counts, pred=pred, cycles=cycles, status=Status(data[1]))
