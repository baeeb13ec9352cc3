"""Integer spike encoders: a sample's raw feature bytes (0..255) -> 0/1 spikes [T, features].

What a board computes on the chip (:class:`snnhw.hw.encoder.FeatureEncoder`) from the bytes
the host sends, and what the golden model, the torch integer model and training compute here
in numpy: one definition, integer arithmetic only, so every spike is reproducible. A network
records its encoder (``encoder:`` in ``network.yaml``); without one, its spikes are made
elsewhere and sent as events.

For feature ``f`` with byte value ``x`` at timestep ``t`` of ``T``:

- ``rate``: spike iff ``r(t, f) < x``, so with probability ``x / 256``. ``r`` is the low byte of
  a 16-bit Galois LFSR (taps :data:`LFSR_TAPS`, shifting right) advanced :data:`LFSR_STEPS`
  steps before each draw. It starts from ``seed`` at every sample and draws in the order
  ``t = 0..T-1``, ``f = 0..features-1`` (one draw per feature and timestep).
- ``latency``: one spike at ``t = ((255 - x) * (T - 1) + 127) // 255`` (``(1 - x/255)(T-1)``
  rounded half up): brighter fires earlier; ``x = 0`` never fires.
- ``direct``: spike iff ``x >= 128``, at every timestep.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = ["EncoderKind", "Encoder", "FEATURE_MAX", "LFSR_TAPS", "LFSR_STEPS", "lfsr_step",
           "rate_draws", "latency_step", "encode_features", "check_features"]

FEATURE_MAX = 255  #: features are bytes
LFSR_TAPS = 0xB400  #: x^16 + x^14 + x^13 + x^11 + 1: a maximal-length (65535-state) LFSR
LFSR_STEPS = 8  #: LFSR steps per draw, so that consecutive draws share no bits


class EncoderKind(enum.Enum):
    RATE = "rate"
    LATENCY = "latency"
    DIRECT = "direct"


@dataclass(frozen=True)
class Encoder:
    """How a network turns feature bytes into input spikes."""

    kind: EncoderKind
    seed: int = 1  #: rate: the LFSR's state at the start of every sample, 1..65535

    def __post_init__(self):
        object.__setattr__(self, "kind", EncoderKind(self.kind))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) \
                or not 1 <= self.seed <= 0xFFFF:
            raise ValueError(f"Encoder seed must be an integer in 1..65535, not {self.seed!r}")


def lfsr_step(state: int) -> int:
    """One step of the Galois LFSR."""
    return (state >> 1) ^ (LFSR_TAPS if state & 1 else 0)


def rate_draws(seed: int, count: int) -> np.ndarray:
    """The first ``count`` draws (uint8) of a sample, from ``seed``."""
    draws = np.empty(count, np.uint8)
    state = seed
    for k in range(count):
        for _ in range(LFSR_STEPS):
            state = lfsr_step(state)
        draws[k] = state & 0xFF
    return draws


def latency_step(x: np.ndarray, timesteps: int) -> np.ndarray:
    """The timestep at which each feature byte fires under latency coding (x = 0 never fires)."""
    return ((FEATURE_MAX - np.asarray(x, np.int64)) * (timesteps - 1) + 127) // FEATURE_MAX


def check_features(features: np.ndarray, input_size: int, where: str = "features") -> np.ndarray:
    """``features`` as uint8 [samples, input_size]; ValueError (one line) if they are not."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[1] != input_size:
        raise ValueError(f"{where}: expected [samples, {input_size}] feature bytes, "
                         f"got shape {x.shape}")
    if x.dtype.kind not in "iub":
        raise ValueError(f"{where}: expected integers in 0..{FEATURE_MAX}, got {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > FEATURE_MAX):
        raise ValueError(f"{where}: expected integers in 0..{FEATURE_MAX}, got values in "
                         f"{x.min()}..{x.max()}")
    return x.astype(np.uint8)


def encode_features(encoder: Encoder, features: np.ndarray, timesteps: int) -> np.ndarray:
    """Spikes uint8 [samples, timesteps, features] from feature bytes [samples, features]."""
    x = check_features(features, np.shape(features)[-1])
    samples, size = x.shape
    if encoder.kind is EncoderKind.RATE:
        draws = rate_draws(encoder.seed, timesteps * size).reshape(timesteps, size)
        return (draws[None] < x[:, None, :]).astype(np.uint8)
    if encoder.kind is EncoderKind.LATENCY:
        steps = np.arange(timesteps)[None, :, None]
        return ((latency_step(x, timesteps)[:, None, :] == steps)
                & (x[:, None, :] > 0)).astype(np.uint8)
    return np.repeat((x >= 128).astype(np.uint8)[:, None, :], timesteps, axis=1)
