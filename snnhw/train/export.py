"""Export a trained model to the integer network (DESIGN.md §1), and measure its weight memory.

Export reads the integer weights and thresholds that the model's integer mode computes with, so
the network computes exactly the spikes the torch model computes in integer mode; a zero weight
and a pruned synapse are the same thing to §2's sum, which lets export pick whichever storage is
smaller for each layer:

- **dense**: every synapse stores a codebook index; 0 is a codebook entry if any weight is 0.
- **sparse**: zero weights become -1 (no synapse) and only the others are stored, each with the
  post-neuron address, as the hardware's addressed layout does. Zeros made by quantization then
  count as sparsity, as Schaefer et al. (PAPERS.md §2) count them.

A layer with a state scheme also exports its integer ``state_levels`` (at its final threshold);
the membrane memory then stores a level index per neuron, ``ceil(log2(levels))`` bits instead of
v_bits (:func:`state_memory_report`).

Weight memory is the fewest bits the core can store the model in at one lane
(:class:`snnhw.plan.SynapseLayout` by bits alone, ``words_slack=math.inf``): synapse and pointer
memories plus the codebook, entries * weight_bits. The compiled core may spend a few % more bits
on fewer synapse words (cycles; :data:`snnhw.plan.WORDS_SLACK`), which ``snnhw compile``'s
report.json states. References: fp32 and 8-bit dense matrices, 32 and 8 bits per synapse of the
unpruned layer.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..network.connectivity import ConvGeometry
from ..network.format import Layer, Network, Neuron
from ..plan import CorePlan, SynapseLayout, bits_for, membrane_bits, signed_bits_for
from .model import SNN

__all__ = ["to_network", "layer_memory", "memory_report", "state_memory_report", "exact_run",
           "exact_spikes"]


def _weight_memory(layer: Layer, layout: SynapseLayout | None = None) -> int:
    """Bits of the layer's synapse and pointer memories in the core (one lane, the fewest bits:
    ``layout`` where the caller has built it); a convolution stores its kernel once, a codebook
    index per tap (one more code where a tap is pruned)."""
    if layer.kind == "conv2d":
        pruned = bool((layer.index < 0).any())
        return int(layer.index.size) * max(1, bits_for(len(layer.codebook) + pruned))
    return (layout or SynapseLayout.build(layer, 1, words_slack=math.inf)).stored_bits


def _encode(weights: np.ndarray, neuron: Neuron, kind: str = "dense",
            conv: ConvGeometry | None = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return (index, codebook) for integer weights, in whichever layout the core stores smaller.

    A zero weight is either no synapse (index -1, the addressed layout: only existing synapses
    are stored, each with its target address) or a codebook entry 0 (the implicit layout: every
    synapse stored, no addresses); the two compute the same thing.
    """
    nonzero = np.unique(weights[weights != 0])
    if nonzero.size == 0:  # a layer with no synapse at all still needs a valid codebook
        nonzero = np.array([0])
    sparse_index = np.searchsorted(nonzero, weights).astype(np.int32)
    sparse_index[weights == 0] = -1
    candidates = [(sparse_index, nonzero)]
    if (weights == 0).any():
        codebook = np.union1d(nonzero, [0])
        candidates.append((np.searchsorted(codebook, weights).astype(np.int32), codebook))

    def bits(candidate):
        index, codebook = candidate
        return _weight_memory(Layer(name="l", index=index, codebook=tuple(codebook.tolist()),
                                    weight_bits=16, neuron=neuron, kind=kind, conv=conv))

    index, codebook = min(candidates, key=bits)
    return index, tuple(int(c) for c in codebook)


def to_network(model: SNN, name: str, timesteps: int) -> Network:
    """Return the integer network of a model whose layers are all in integer mode."""
    layers = []
    for number, layer in enumerate(model.layers):
        weights, threshold = layer.integer_weights()
        if threshold is None:
            raise ValueError(f"Layer fc{number + 1} still has float weights; quantize it "
                             f"(qat/ptq stage or export.bits) before exporting")
        w = weights.detach().double().numpy()
        if not np.array_equal(w, np.round(w)):
            raise AssertionError(f"Layer fc{number + 1}: integer mode produced non-integer "
                                 f"weights (a bug in a quantizer)")
        w = w.astype(np.int64)
        if threshold > layer.v_range[1]:
            raise ValueError(f"Layer fc{number + 1}: threshold {threshold} does not fit "
                             f"v_bits {layer.v_bits}; raise model.v_bits or lower "
                             f"model.min_threshold")
        neuron = Neuron(threshold=int(threshold), leak_shift=layer.leak_shift,
                        reset=layer.reset, v_bits=layer.v_bits,
                        state_levels=layer.state_levels(int(threshold)))
        kind = "conv2d" if layer.conv else "recurrent" if layer.recurrent else "dense"
        conv = layer.conv.geometry if layer.conv else None
        index, codebook = _encode(w, neuron, kind, conv)
        layers.append(Layer(
            name=f"fc{number + 1}", kind=kind, conv=conv, index=index, codebook=codebook,
            weight_bits=signed_bits_for(min(codebook), max(codebook)), neuron=neuron))
    net = Network(name=name, input_size=model.input_size, layers=layers, timesteps=timesteps)
    net.validate(name)
    return net


def layer_memory(layer: Layer, layout: SynapseLayout | None = None) -> dict[str, int | float]:
    """Return the weight memory of one network layer and its reference sizes, in bits
    (``layout``: its one-lane layout of the fewest bits, where the caller has it; built
    otherwise)."""
    entries = len(layer.codebook)
    if layer.kind != "conv2d" and layout is None:
        layout = SynapseLayout.build(layer, 1, words_slack=math.inf)
    synapse_bits = _weight_memory(layer, layout)
    weights = layer.connectivity.stored_weights(layer.codebook)
    return {
        "synapse_bits": int(synapse_bits),
        "codebook_bits": entries * layer.weight_bits,
        "bits": int(synapse_bits + entries * layer.weight_bits),
        "fp32_bits": 32 * layer.index.size,
        "int8_bits": 8 * layer.index.size,
        "unique_weights": int(np.unique(weights[weights != 0]).size),
        "sparsity": layer.sparsity,
        "layout": "kernel" if layer.kind == "conv2d" else layout.kind.value,
    }


def memory_report(net: Network) -> dict:
    """Return per-layer and total weight memory with ratios to fp32 and dense 8-bit, each layer
    as the core holds it at one lane in the fewest bits (its neurons in the plan's order)."""
    layers = {lp.name: layer_memory(lp.layer, lp.synapses)
              for lp in CorePlan.build(net, 1, words_slack=math.inf).layers}
    total = sum(m["bits"] for m in layers.values())
    fp32 = sum(m["fp32_bits"] for m in layers.values())
    int8 = sum(m["int8_bits"] for m in layers.values())
    return {"layers": layers, "bits": total, "fp32_bits": fp32, "int8_bits": int8,
            "ratio_fp32": total / fp32, "ratio_int8": total / int8}


def state_memory_report(net: Network) -> dict:
    """Return the membrane memory per layer and in total: stored bits vs V kept at v_bits.

    A layer with state levels stores a level index per neuron (:func:`snnhw.plan.membrane_bits`),
    one without stores V itself, v_bits wide.
    """
    layers = {}
    for layer in net.layers:
        neuron = layer.neuron
        per_neuron = membrane_bits(neuron)
        layers[layer.name] = {
            "levels": None if neuron.state_levels is None else list(neuron.state_levels),
            "bits_per_neuron": per_neuron, "v_bits": neuron.v_bits, "neurons": layer.size,
            "bits": per_neuron * layer.size, "v_bits_total": neuron.v_bits * layer.size}
    bits = sum(m["bits"] for m in layers.values())
    full = sum(m["v_bits_total"] for m in layers.values())
    return {"layers": layers, "bits": bits, "v_bits_total": full, "ratio": bits / full}


@torch.no_grad()
def exact_run(model: SNN, inputs: np.ndarray) -> tuple[dict[str, np.ndarray],
                                                       dict[str, np.ndarray]]:
    """Run the integer mode exactly (float64); return each layer's spikes (uint8) and V after
    every timestep (int64), both [samples, timesteps, size] as the golden model's result."""
    for layer in model.layers:
        layer.keep_v = True
    try:
        out = model.run(torch.from_numpy(inputs.astype(np.float64)), exact=True)
        traces = {f"fc{n + 1}": layer.v_trace.numpy().astype(np.int64)
                  for n, layer in enumerate(model.layers)}
    finally:
        for layer in model.layers:
            layer.keep_v, layer.v_trace = False, None
    return {f"fc{n + 1}": s.numpy().astype(np.uint8) for n, s in enumerate(out)}, traces


def exact_spikes(model: SNN, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Run the integer mode exactly (float64) and return each layer's spikes as uint8 arrays."""
    return exact_run(model, inputs)[0]
