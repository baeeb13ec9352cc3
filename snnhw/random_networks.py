"""Random integer networks and spike inputs, for examples, tests, benchmarks and fuzzing.

Thresholds are calibrated by running the golden model, so this sits above both the network
format and the golden model (the format package imports neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .golden.model import lif_step
from .network.format import Layer, Network, Neuron, Reset

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
    state_levels: int | None = None,
    recurrent: Sequence[bool] = (),
    name: str = "random",
) -> Network:
    """Return a valid network with random codebooks and a fraction ``density`` of synapses kept.

    ``recurrent[l]`` makes layer ``l`` a ``kind: recurrent`` layer (its own spikes of timestep t
    reach it at t + 1 through a square matrix of the same density and codebook).

    The default threshold makes a neuron fire after a handful of strong inputs, so spikes
    propagate through every layer.
    """
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    vmax = (1 << (v_bits - 1)) - 1
    # Thresholds are calibrated on random inputs so that every layer fires at a moderate rate.
    spikes = (rng.random((8, 8, input_size)) < 0.2).astype(np.int64)
    layers = []
    fan_in = input_size
    for number, size in enumerate(sizes):
        count = min(codebook_size, hi - lo + 1)
        codebook = rng.choice(np.arange(lo, hi + 1), size=count, replace=False)
        # Positive entries are drawn three times as often as the others.
        odds = np.where(codebook > 0, 3.0, 1.0)
        kind = "recurrent" if number < len(recurrent) and recurrent[number] else "dense"
        columns = fan_in + (size if kind == "recurrent" else 0)
        index = rng.choice(count, size=(size, columns), p=odds / odds.sum()).astype(np.int32)
        index[rng.random((size, columns)) >= density] = -1
        layer = Layer(name=f"fc{number + 1}", kind=kind, index=index,
                      codebook=tuple(int(c) for c in codebook), weight_bits=weight_bits,
                      neuron=Neuron(threshold=1, leak_shift=min(leak_shift, v_bits - 1),
                                    reset=reset, v_bits=v_bits))
        currents = spikes @ layer.dense_weights()[:, :fan_in].T
        best = None
        for theta in _candidate_thresholds(currents, vmax):
            layer.neuron = replace(layer.neuron, threshold=threshold or theta)
            fired = _run_layer(layer, currents)
            rate = fired.mean()
            if best is None or abs(rate - 0.25) < abs(best[0] - 0.25):
                best = (rate, layer.neuron, fired)
            if threshold:
                break
        layer.neuron, spikes = best[1], best[2].astype(np.int64)
        if state_levels:
            layer.neuron = replace(layer.neuron, state_levels=_random_levels(
                rng, layer.neuron, min(state_levels, vmax + 1 - layer.neuron.v_min)))
        layers.append(layer)
        fan_in = size
    return Network(name=name, input_size=input_size, layers=layers, timesteps=timesteps)


def random_inputs(rng: np.random.Generator, net: Network, samples: int,
                  timesteps: int | None = None, rate: float = 0.2) -> np.ndarray:
    """Return Bernoulli spike inputs, uint8 [samples, timesteps, input_size]."""
    timesteps = timesteps or net.timesteps
    return (rng.random((samples, timesteps, net.input_size)) < rate).astype(np.uint8)


def _candidate_thresholds(currents: np.ndarray, vmax: int) -> list[int]:
    positive = currents[currents > 0]
    base = float(np.percentile(positive, 50)) if positive.size else 1.0
    return sorted({int(np.clip(base * f, 1, vmax)) for f in (0.5, 1, 2, 4, 8)})


def _run_layer(layer: Layer, currents: np.ndarray) -> np.ndarray:
    """The layer's spikes for its external ``currents`` (plus its recurrent ones, if any)."""
    feedback = layer.dense_weights()[:, layer.external_fan_in:].T
    v = np.zeros((currents.shape[0], currents.shape[2]), np.int64)
    fired = np.zeros(currents.shape, bool)
    for t in range(currents.shape[1]):
        current = currents[:, t] + (fired[:, t - 1] @ feedback if t and feedback.size else 0)
        v, fired[:, t] = lif_step(v, current, layer)
    return fired


def _random_levels(rng: np.random.Generator, neuron: Neuron, count: int) -> tuple[int, ...]:
    """``count`` distinct levels including 0, half of them within a threshold of the threshold."""
    low, high = max(neuron.v_min, -neuron.threshold), min(neuron.v_max, 2 * neuron.threshold)
    chosen = {0}
    while len(chosen) < min(1 + count // 2, high - low + 1):
        chosen.add(int(rng.integers(low, high + 1)))
    while len(chosen) < count:
        chosen.add(int(rng.integers(neuron.v_min, neuron.v_max + 1)))
    return tuple(sorted(chosen))
