"""Random integer networks and spike inputs, for examples, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .format import Layer, Network, Neuron, Reset

__all__ = ["random_network", "random_inputs"]


def random_network(
    rng: np.random.Generator,
    input_size: int,
    sizes: Sequence[int],
    *,
    codebook_size: int = 4,
    weight_bits: int = 4,
    density: float = 1.0,
    v_bits: int = 12,
    leak_shift: int = 3,
    reset: Reset = Reset.SUBTRACT,
    threshold: int | None = None,
    timesteps: int = 16,
    name: str = "random",
) -> Network:
    """Return a valid network with random codebooks and a fraction ``density`` of synapses kept.

    The default threshold makes a neuron fire after a handful of strong inputs, so spikes
    propagate through every layer.
    """
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    layers = []
    fan_in = input_size
    for number, size in enumerate(sizes):
        span = hi - lo + 1
        count = min(codebook_size, span)
        # Mostly positive weights keep the network active; the codebook always holds negatives
        # too when it can, so inhibition is exercised.
        codebook = rng.choice(np.arange(lo, hi + 1), size=count, replace=False)
        # Positive entries are drawn three times as often as the others.
        odds = np.where(codebook > 0, 3.0, 1.0)
        index = rng.choice(count, size=(size, fan_in), p=odds / odds.sum()).astype(np.int32)
        index[rng.random((size, fan_in)) >= density] = -1
        vmax = (1 << (v_bits - 1)) - 1
        drive = 0.1 * fan_in * density * float(np.abs(codebook).mean())  # at ~20 % input rate
        theta = threshold if threshold is not None else int(np.clip(drive, 1, vmax))
        layers.append(Layer(
            name=f"fc{number + 1}", index=index, codebook=tuple(int(c) for c in codebook),
            weight_bits=weight_bits,
            neuron=Neuron(threshold=min(theta, vmax), leak_shift=min(leak_shift, v_bits - 1),
                          reset=reset, v_bits=v_bits)))
        fan_in = size
    return Network(name=name, input_size=input_size, layers=layers, timesteps=timesteps)


def random_inputs(rng: np.random.Generator, net: Network, samples: int,
                  timesteps: int | None = None, rate: float = 0.2) -> np.ndarray:
    """Return Bernoulli spike inputs, uint8 [samples, timesteps, input_size]."""
    timesteps = timesteps or net.timesteps
    return (rng.random((samples, timesteps, net.input_size)) < rate).astype(np.uint8)
