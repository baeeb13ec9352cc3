"""The cycle-bound model of the core (DESIGN.md §3), for reports and benchmarks."""

from __future__ import annotations

import numpy as np

from ..network.format import ResetTiming
from .layout import Layout

__all__ = ["cycle_bounds", "spike_cycles", "lif_latency", "sweep_overhead", "BOUND_FORMULA",
           "SERIAL_BOUND_FORMULA", "LAYOUT_BOUND_FORMULA", "SWEEP_OVERHEAD"]


def lif_latency(neuron) -> int:
    """Cycles from the hardware LIF unit's inputs to its outputs (:class:`snnhw.hw.LIFUnit`):
    leak, add, compare; one more for each of: the level decode or the read of per-neuron
    parameters (a state codebook, or a per-neuron threshold, beta or bias), the pending reset
    (``reset_timing`` deferred or immediate_snntorch), the beta multiply, and (state codebook)
    the register before the snap to a level."""
    levels = neuron.state_levels is not None
    per_neuron = any(isinstance(getattr(neuron, field), tuple)
                     for field in ("threshold", "beta", "bias"))
    pending = neuron.reset_timing is not ResetTiming.IMMEDIATE
    return 3 + (levels or per_neuron) + pending + (neuron.beta is not None) + levels


def sweep_overhead(neuron) -> int:
    """Cycles a layer's sweep takes beyond one per neuron: the stages after the read of the last
    neuron (its lane select, the LIF unit, its write), and the cycle that emits the
    end-of-timestep event (in which the next sweep is already handed over)."""
    return lif_latency(neuron) + 3


#: :func:`sweep_overhead` of a version-1 neuron without a state codebook (two more with one; a
#: version-2 neuron adds the stages of its features, :func:`lif_latency`).
SWEEP_OVERHEAD = 6

#: The bound of today's core shape (the accumulation of timestep t+1 overlaps the sweep of t), as
#: reports state it.
BOUND_FORMULA = (f"max(sum over spiking inputs of max(1, ceil(synapses / P)), neurons) + "
                 f"{SWEEP_OVERHEAD} (+ 2 with a state codebook, + 1 to 3 for version-2 neuron "
                 f"features; a conv layer in the kernel layout: each spiking input costs the "
                 f"words of its channel's kernel column, at least 1)")

#: The bound with the synapse words the plan's layouts really take, as reports state it.
LAYOUT_BOUND_FORMULA = ("the same with each spiking input's column words in its layer's layout "
                        "(the busiest lane's synapses, + delta escapes) for ceil(synapses / P)")

#: The bound of the earlier shape, which swept only after the accumulation (for comparison).
SERIAL_BOUND_FORMULA = "ceil(active synapse events / P) + neurons"


def spike_cycles(layer_plan) -> np.ndarray:
    """Accumulation cycles a spike of each presynaptic neuron costs at least, int64 [fan_in]: its
    synapses P a cycle, and one cycle even when it has none (the engine reads a column a cycle
    at a time, and an empty column still takes its cycle). In the kernel layout, exactly the
    words of the input channel's column: every kept tap is read, also those that fall off the
    output's edge or between the stride's steps for this input."""
    synapses = layer_plan.synapses
    if synapses.kind is Layout.KERNEL:
        return np.maximum(1, synapses.col_words)
    return np.maximum(1, -(-layer_plan.layer.connectivity.fan_out() // layer_plan.lanes))


def cycle_bounds(plan, inputs: np.ndarray, spikes: dict[str, np.ndarray], *,
                 serial: bool = False, layout: bool = False) -> np.ndarray:
    """Per layer, sample and timestep: max(accumulation cycles, neurons) + overhead.

    A layer accumulates the events of timestep t+1 while it sweeps the neurons of timestep t (one
    a cycle), so its cycles per timestep are bounded by the slower of the two, plus the layer's
    :func:`sweep_overhead`. The accumulation takes, per spiking input, its synapses P a cycle
    and at least one cycle (:func:`spike_cycles`): a timestep of inputs without synapses is not
    free. With ``serial``, the bound of the earlier shape that swept only after accumulating:
    ceil(active synapse events / P) + neurons (:data:`SERIAL_BOUND_FORMULA`).
    With ``layout``, a spiking input costs the words its column really takes in the plan's
    layout (at least one): the largest lane's share of its synapses, plus the delta layout's
    escapes; the bound a core with this plan's synapse memories can reach
    (:data:`LAYOUT_BOUND_FORMULA`), between the ideal bound and the measured cycles.

    The spiking inputs of a layer are the neurons that spiked into it at that timestep
    (``inputs`` for the first layer, those the core takes, :meth:`CorePlan.core_inputs`; then
    ``spikes[previous layer]``, e.g. from the golden model, in network order); its active synapse
    events, their synapses. Returns int64 [layers, samples, timesteps]; layers run concurrently,
    so a timestep's bound for the whole core is the maximum over layers.
    """
    per_layer = []
    pre = plan.core_inputs(inputs).astype(np.int64)  # the events the core takes
    for layer_plan in plan.layers:
        layer = layer_plan.layer
        own = plan.in_plan_order(layer.name, spikes[layer.name][:len(inputs)]).astype(np.int64)
        pre = layer.connectivity.presynaptic(pre, own)  # a recurrent layer's own spikes too
        if serial:
            per_layer.append(-(-(pre @ layer.connectivity.fan_out()) // plan.lanes) + layer.size)
        else:
            cost = np.maximum(1, layer_plan.synapses.col_words) if layout else \
                spike_cycles(layer_plan)
            accumulate = pre @ cost
            per_layer.append(np.maximum(accumulate, layer.size) + sweep_overhead(layer.neuron))
        pre = own
    return np.stack(per_layer)
