"""Field widths that every part of snnhw derives the same way (pure arithmetic, no HDL)."""

from __future__ import annotations

import numpy as np

from ..network.format import Layer, Neuron

__all__ = ["bits_for", "addr_bits", "signed_bits_for", "membrane_bits", "accumulator_bits",
           "per_neuron_bits"]


def bits_for(count: int) -> int:
    """Bits of an unsigned field that holds values 0..count-1 (0 bits when count <= 1)."""
    return max(0, int(count) - 1).bit_length()


def addr_bits(count: int) -> int:
    """Bits of an address field over ``count`` items; at least 1, so that it is a real port."""
    return max(1, bits_for(count))


def signed_bits_for(lo: int, hi: int) -> int:
    """Bits of a signed field that holds every value in lo..hi."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def membrane_bits(neuron: Neuron) -> int:
    """Bits the membrane memory stores per neuron: V, or the index of its state level."""
    if neuron.state_levels is None:
        return neuron.v_bits
    return max(1, bits_for(len(neuron.state_levels)))


def per_neuron_bits(neuron: Neuron) -> int:
    """Bits the LIF unit's ROMs hold per neuron: its own threshold and bias (v_bits each) and
    beta (beta_bits), for each that the layer stores per neuron (0 when none)."""
    widths = {"threshold": neuron.v_bits, "bias": neuron.v_bits, "beta": neuron.beta_bits}
    return sum(bits for field, bits in widths.items()
               if isinstance(getattr(neuron, field), tuple))


def accumulator_bits(layer: Layer) -> int:
    """Signed width of a layer's input current: no timestep's synaptic sum can overflow it."""
    weights = layer.dense_weights()
    lowest = int(np.minimum(weights, 0).sum(axis=1).min())
    highest = int(np.maximum(weights, 0).sum(axis=1).max())
    return signed_bits_for(lowest, highest)
