"""The golden model: DESIGN.md §2 in integer numpy, vectorised over samples. The oracle."""

from __future__ import annotations

import numpy as np

from ..network.format import Layer, Network, Reset
from ..results import Result, check_inputs

__all__ = ["simulate", "lif_step", "snap_to_levels"]


def lif_step(v: np.ndarray, current: np.ndarray, layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """Advance membrane potentials ``v`` by one timestep given input currents; return (v, spikes).

    Leak (floor shift), exact add, one saturation, threshold, reset, and (with a state
    codebook) the snap to the nearest state level: in that order.
    """
    neuron = layer.neuron
    if neuron.leak_shift:
        v = v - (v >> neuron.leak_shift)  # numpy >> on signed ints is arithmetic (floor)
    v = np.clip(v + current, neuron.v_min, neuron.v_max)
    spikes = v >= neuron.threshold
    if neuron.reset is Reset.SUBTRACT:
        v = np.where(spikes, v - neuron.threshold, v)
    else:
        v = np.where(spikes, 0, v)
    if neuron.state_levels is not None:
        v = snap_to_levels(v, neuron.state_levels)
    return v, spikes


def snap_to_levels(v: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
    """The nearest state level to each V; a V halfway between two levels takes the lower one."""
    level = np.asarray(levels, dtype=np.int64)
    doubled_midpoints = level[:-1] + level[1:]
    return level[np.searchsorted(doubled_midpoints, 2 * v, side="left")]


def simulate(net: Network, inputs: np.ndarray) -> Result:
    """Run ``net`` on spike ``inputs`` (0/1, [samples, timesteps, input_size]).

    Returns every spike of every layer, V after every timestep, and the final V.
    """
    inputs = check_inputs(net, inputs)
    samples, timesteps, _ = inputs.shape
    weights = [layer.dense_weights().T.copy() for layer in net.layers]  # [fan_in, size]
    v = [np.zeros((samples, layer.size), dtype=np.int64) for layer in net.layers]
    spikes = {layer.name: np.zeros((samples, timesteps, layer.size), np.uint8)
              for layer in net.layers}
    trace = {layer.name: np.zeros((samples, timesteps, layer.size), np.int64)
             for layer in net.layers}
    for t in range(timesteps):
        s = inputs[:, t, :].astype(np.int64)
        for number, layer in enumerate(net.layers):
            current = s @ weights[number]  # exact: int64 cannot overflow for valid networks
            v[number], fired = lif_step(v[number], current, layer)
            spikes[layer.name][:, t, :] = fired
            trace[layer.name][:, t, :] = v[number]
            s = fired.astype(np.int64)
    return Result(spikes=spikes, v_final={l.name: v[n] for n, l in enumerate(net.layers)},
                  v_trace=trace)
