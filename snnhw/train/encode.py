"""Spike encoders: intensities in [0, 1] -> uint8 0/1 spikes [samples, timesteps, features].

The integer network only takes binary spikes (DESIGN.md §1), so every encoder produces them, in
numpy, and the test set's spikes are written next to the exported model: torch, the golden model
and the RTL then read the very same spikes instead of re-drawing them.

- ``rate``: spike with probability ``x * max_rate`` independently at each step (seeded).
- ``latency``: one spike per pixel with x > 0, at step ``round((1 - x) * (T - 1))``, so brighter
  pixels fire earlier; dark pixels never fire.
- ``direct``: the image binarised at 0.5 and repeated at every step. (A float "direct" input is
  not expressible in the format, which carries spikes only; this is its binary counterpart.)
- ``rows``: a square image binarised at 0.5 and read one row per step (each row held for
  ``timesteps / rows`` steps): ``sqrt(features)`` inputs, a sequence task for recurrent layers.

With ``lfsr_seed`` the intensities become bytes ``round(x * 255)`` and the board's integer
encoder of the same kind makes the spikes (:mod:`snnhw.network.encoder`), bit for bit as on chip.
"""

from __future__ import annotations

import numpy as np

from ..network.encoder import Encoder, encode_features
from .recipe import Encoding

__all__ = ["encode", "encoded_features", "feature_bytes"]


def feature_bytes(x: np.ndarray) -> np.ndarray:
    """Intensities in [0, 1] as the bytes a host sends the board's encoder."""
    return np.round(np.clip(np.asarray(x, np.float64), 0.0, 1.0) * 255).astype(np.uint8)


def encoded_features(encoding: Encoding | str, features: int) -> int:
    """Inputs per timestep of ``features`` intensities encoded as ``encoding``."""
    return _side(features) if Encoding(encoding) is Encoding.ROWS else features


def _side(features: int) -> int:
    side = int(round(features ** 0.5))
    if side * side != features:
        raise ValueError(f"Encoding rows needs a square image, not {features} features")
    return side


def encode(x: np.ndarray, encoding: Encoding | str, timesteps: int, *, seed: int = 0,
           max_rate: float = 1.0, lfsr_seed: int | None = None) -> np.ndarray:
    """Encode intensities ``x`` [samples, features] in [0, 1] as spikes."""
    encoding = Encoding(encoding)
    if lfsr_seed is not None:
        return encode_features(Encoder(encoding.value, lfsr_seed), feature_bytes(x), timesteps)
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    samples, features = x.shape
    if encoding is Encoding.RATE:
        rng = np.random.default_rng(seed)
        draws = rng.random((samples, timesteps, features))
        return (draws < x[:, None, :] * max_rate).astype(np.uint8)
    if encoding is Encoding.LATENCY:
        step = np.floor((1.0 - x) * (timesteps - 1) + 0.5).astype(np.int64)
        spikes = np.zeros((samples, timesteps, features), np.uint8)
        n, f = np.nonzero(x > 0)
        spikes[n, step[n, f], f] = 1
        return spikes
    if encoding is Encoding.DIRECT:
        return np.repeat((x >= 0.5).astype(np.uint8)[:, None, :], timesteps, axis=1)
    if encoding is Encoding.ROWS:
        side = _side(features)
        if timesteps % side:
            raise ValueError(f"Encoding rows needs a multiple of {side} timesteps, not {timesteps}")
        rows = (x >= 0.5).astype(np.uint8).reshape(samples, side, side)
        return np.repeat(rows, timesteps // side, axis=1)
    raise ValueError(f"Unknown encoding {encoding!r}")
