"""The cycle-bound model of the core (DESIGN.md §3), for reports and benchmarks."""

from __future__ import annotations

import numpy as np

__all__ = ["cycle_bounds", "lif_latency", "sweep_overhead", "BOUND_FORMULA",
           "SERIAL_BOUND_FORMULA", "SWEEP_OVERHEAD"]


def lif_latency(neuron) -> int:
    """Cycles from the hardware LIF unit's inputs to its outputs (:class:`snnhw.hw.LIFUnit`):
    leak, add, compare; with a state codebook also the level decode before them and a register
    before the snap to a level."""
    return 3 if neuron.state_levels is None else 5


def sweep_overhead(neuron) -> int:
    """Cycles a layer's sweep takes beyond one per neuron: the stages after the read of the last
    neuron (its lane select, the LIF unit, its write), and the cycle that emits the
    end-of-timestep event (in which the next sweep is already handed over)."""
    return lif_latency(neuron) + 3


#: :func:`sweep_overhead` of a neuron without a state codebook (two more with one).
SWEEP_OVERHEAD = 6

#: The bound of today's core shape (the accumulation of timestep t+1 overlaps the sweep of t), as
#: reports state it.
BOUND_FORMULA = (f"max(ceil(active synapse events / P), neurons) + {SWEEP_OVERHEAD} "
                 f"(+ 2 with a state codebook)")

#: The bound of the earlier shape, which swept only after the accumulation (for comparison).
SERIAL_BOUND_FORMULA = "ceil(active synapse events / P) + neurons"


def cycle_bounds(plan, inputs: np.ndarray, spikes: dict[str, np.ndarray], *,
                 serial: bool = False) -> np.ndarray:
    """Per layer, sample and timestep: max(ceil(active synapse events / P), neurons) + overhead.

    A layer accumulates the events of timestep t+1 (P synapses a cycle) while it sweeps the
    neurons of timestep t (one a cycle), so its cycles per timestep are bounded by the slower of
    the two, plus the layer's :func:`sweep_overhead`. With ``serial``, the bound of the earlier
    shape that swept only after accumulating: ceil(active synapse events / P) + neurons
    (:data:`SERIAL_BOUND_FORMULA`).

    The active synapse events of a layer are the synapses of the neurons that spiked into it at
    that timestep (``inputs`` for the first layer, then ``spikes[previous layer]``, e.g. from the
    golden model). Returns int64 [layers, samples, timesteps]; layers run concurrently, so a
    timestep's bound for the whole core is the maximum over layers.
    """
    per_layer = []
    pre = inputs.astype(np.int64)
    for layer_plan in plan.layers:
        layer = layer_plan.layer
        own = spikes[layer.name][:len(inputs)].astype(np.int64)
        pre = layer.connectivity.presynaptic(pre, own)  # a recurrent layer's own spikes too
        accumulate = -(-(pre @ layer.connectivity.fan_out()) // plan.lanes)
        if serial:
            per_layer.append(accumulate + layer.size)
        else:
            per_layer.append(np.maximum(accumulate, layer.size) + sweep_overhead(layer.neuron))
        pre = own
    return np.stack(per_layer)
