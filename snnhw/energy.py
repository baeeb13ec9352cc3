"""Energy per inference from a per-operation model, fed with the golden model's spike counts.

The model counts the operations the core performs (DESIGN.md §3) and prices them with published
45 nm CMOS figures (M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, the table most SNN-accelerator papers use, e.g. Schaefer et al. 2023):

- integer add: 0.03 pJ at 8 bits, 0.1 pJ at 32 bits (interpolated linearly in the width);
- integer multiply: 0.2 pJ at 8 bits, 3.1 pJ at 32 bits (likewise);
- SRAM read of a 64-bit word: 10 pJ from an 8 KB array, 20 pJ from 32 KB, 100 pJ from 1 MB
  (interpolated in log(size), extended beyond the table and floored at 1 pJ; a narrower access
  costs proportionally less; a write is taken to cost the same as a read).

Operations per inference, per layer (these are snnhw's modelling choices, stated here):

- per incoming spike event: one pointer-memory read (addressed, delta and kernel layouts); a
  recurrent layer's own spikes of timestep t count as incoming events of t + 1;
- per synapse word streamed: one synapse-memory read of the whole word (P slots);
- per existing synapse reached by a spike: one codebook read, one accumulator read, one
  accumulate (add at the accumulator width) and one accumulator write;
- per neuron per timestep (the sweep): membrane and accumulator reads, the LIF update (two adds at
  the membrane width: leak and input; the compare and reset counted as one more add) and
  membrane and accumulator writes; a version-2 neuron adds what its unit does: one more add for
  a bias, one for a pending reset (deferred or immediate_snntorch), a multiply at the membrane
  width for beta instead of the leak's add, and a read of its per-neuron parameter ROM.

Absolute numbers are for an ASIC at 45 nm; an FPGA spends several times more. Use them to compare
networks and compression choices, not as a board measurement.
"""

from __future__ import annotations

import math

import numpy as np

from .network.format import ResetTiming
from .plan import CorePlan, per_neuron_bits
from .results import Result

__all__ = ["add_pj", "multiply_pj", "read_pj", "energy_per_inference"]

_ADD = ((8, 0.03), (32, 0.1))  # (bits, pJ)
_MULTIPLY = ((8, 0.2), (32, 3.1))  # (bits, pJ)
_SRAM_64BIT = ((8 * 1024 * 8, 10.0), (32 * 1024 * 8, 20.0), (1024 * 1024 * 8, 100.0))  # bits, pJ


def add_pj(bits: int) -> float:
    """Energy of one integer add of the given width."""
    return _linear(_ADD, bits)


def multiply_pj(bits: int) -> float:
    """Energy of one integer multiply of the given width."""
    return _linear(_MULTIPLY, bits)


def _linear(table, bits: int) -> float:
    (b0, e0), (b1, e1) = table
    return max(0.0, e0 + (bits - b0) * (e1 - e0) / (b1 - b0))


def _update_pj(neuron, width: int, parameter_bits: int, parameter_memory_bits: int) -> float:
    """One LIF update's arithmetic and parameter read (the module docstring's counts)."""
    adds = 3 + (neuron.bias != 0) + (neuron.reset_timing is not ResetTiming.IMMEDIATE)
    pj = adds * add_pj(width)
    if neuron.beta is not None:  # the multiply replaces the shift leak's add
        pj += multiply_pj(width) - add_pj(width)
    if parameter_bits:
        pj += read_pj(parameter_bits, parameter_memory_bits)
    return pj


def read_pj(word_bits: int, memory_bits: int) -> float:
    """Energy of reading one word of ``word_bits`` from a memory of ``memory_bits`` in total."""
    log_size = math.log(max(memory_bits, 1))
    points = [(math.log(bits), pj) for bits, pj in _SRAM_64BIT]
    # Piecewise linear in log(size); beyond the table, the nearest segment extended, and never
    # below 1 pJ per 64 bits (register-file-sized arrays).
    segment = 0 if log_size < points[1][0] else 1
    (s0, e0), (s1, e1) = points[segment], points[segment + 1]
    per_64 = max(1.0, e0 + (log_size - s0) * (e1 - e0) / (s1 - s0))
    return per_64 * word_bits / 64


def energy_per_inference(plan: CorePlan, inputs: np.ndarray, golden: Result) -> dict:
    """Mean energy per inference (pJ) of the planned core, by layer and kind of operation."""
    samples = inputs.shape[0]
    pre = plan.core_inputs(inputs).astype(np.int64)  # the events the core takes
    layers = []
    for lp in plan.layers:
        layer, lay, bits = lp.layer, lp.synapses, lp.memory_bits
        own = plan.in_plan_order(lp.name, golden.spikes[lp.name]).astype(np.int64)
        pre = layer.connectivity.presynaptic(pre, own)  # a recurrent layer's own spikes too
        spikes_in = pre.sum(axis=(1, 2)).mean()
        synapse_events = (pre.sum(axis=1) @ layer.connectivity.fan_out()).mean()
        words = (pre.sum(axis=1) @ lay.col_words).mean()
        updates = inputs.shape[1] * layer.size
        acc_rw = read_pj(lp.acc_bits, bits["accumulator"])
        v_rw = read_pj(lp.state_bits, bits["membrane"])
        parts = {
            "pointer reads": spikes_in * (read_pj(lay.pointer_bits, bits["pointer"])
                                          if lay.has_pointers else 0.0),
            "synapse reads": words * read_pj(lay.word_bits, bits["synapse"]),
            "codebook reads": synapse_events * read_pj(layer.weight_bits, bits["codebook"]),
            "accumulates": synapse_events * (2 * acc_rw + add_pj(lp.acc_bits)),
            "neuron updates": updates * (2 * v_rw + 2 * acc_rw + _update_pj(
                layer.neuron, max(layer.neuron.v_bits, lp.acc_bits),
                per_neuron_bits(layer.neuron), bits["parameter"])),
        }
        layers.append({
            "name": layer.name,
            "spikes_in": float(spikes_in),
            "synapse_events": float(synapse_events),
            "synapse_words": float(words),
            "neuron_updates": int(updates),
            "pj": {k: float(v) for k, v in parts.items()},
            "total_pj": float(sum(parts.values())),
        })
        pre = own
    kinds = layers[0]["pj"].keys()
    return {
        "model": "Horowitz ISSCC 2014, 45 nm; see snnhw/energy.py",
        "samples": samples,
        "layers": layers,
        "by_kind_pj": {k: sum(l["pj"][k] for l in layers) for k in kinds},
        "total_pj": sum(l["total_pj"] for l in layers),
    }
