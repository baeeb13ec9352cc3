"""Pruning to a target sparsity: magnitude, or Fisher spike contribution (FSC), with fine-tuning.

FSC (SpikeFit, PAPERS.md §5; its exact formula is not public, this is snnhw's formulation). In an
SNN the gradient of one sample's loss with respect to synapse j <- i is a sum over the timesteps in
which the presynaptic neuron spiked,

    G_n[j, i] = sum_t dL_n/dI_j(t) * s_i(t),

so ``W[j, i] * G_n[j, i]`` is the first-order change of that sample's loss if the synapse is
removed: the contribution its spikes make. The score is the Fisher-style expectation of its square
over samples, ``S[j, i] = W[j, i]**2 * E_n[G_n[j, i]**2]`` (an empirical-Fisher Optimal Brain
Damage saliency gated by spikes: a synapse whose input never fires scores 0 whatever its weight).
SpikeFit's neuron-level score ``E[(sum_t dL/ds_i(t) * s_i(t))**2]`` is the same idea summed over a
neuron's fan-out; scoring synapses lets every layer meet its weight-sparsity target exactly.

Both methods prune per layer, in ``rounds`` steps on the cubic schedule of Zhu & Gupta (2017)
(sparsity_r = target * (1 - (1 - r/R)**3)), fine-tuning after each step; a pruned synapse stays
pruned (its score is -inf), and pruned weights take no part in quantization scales.
"""

from __future__ import annotations

import numpy as np
import torch

from .fit import loss_fn
from .model import SNN, LIFLayer
from .recipe import PruneMethod

__all__ = ["magnitude_scores", "fsc_scores", "prune_columns", "prune_layer", "schedule"]


def schedule(target: float, rounds: int) -> list[float]:
    """Return the sparsity after each round (cubic ramp ending exactly at ``target``)."""
    return [target * (1.0 - (1.0 - r / rounds) ** 3) for r in range(1, rounds + 1)]


def magnitude_scores(model: SNN) -> list[torch.Tensor]:
    """Return |w| of every layer's latent weights."""
    return [layer.weight.detach().abs() for layer in model.layers]


def fsc_scores(model: SNN, spikes: np.ndarray, labels: np.ndarray,
               batch_size: int = 64) -> list[torch.Tensor]:
    """Return the FSC score of every synapse, ``W**2 * sum_n G_n**2`` (see the module notes)."""
    totals = [torch.zeros_like(layer.weight) for layer in model.layers]
    for layer in model.layers:
        layer.record = True
    try:
        for i in range(0, len(labels), batch_size):
            x = torch.from_numpy(spikes[i:i + batch_size].astype(np.float32))
            y = torch.from_numpy(np.asarray(labels[i:i + batch_size], dtype=np.int64))
            # A summed loss makes dL/dI of sample n exactly the gradient of that sample's loss.
            loss = loss_fn(model(x), y) * len(y)
            model.zero_grad()
            loss.backward()
            for total, layer in zip(totals, model.layers):
                inputs, currents = layer.recorded
                per_sample = layer.synapse_gradients(inputs, currents.grad)
                total += (per_sample ** 2).sum(dim=0)
    finally:
        for layer in model.layers:
            layer.record, layer.recorded = False, None
    model.zero_grad()
    return [total * _effective(layer) ** 2 for total, layer in zip(totals, model.layers)]


def _effective(layer: LIFLayer) -> torch.Tensor:
    with torch.no_grad():
        return layer.integer_weights()[0].detach().float()


def prune_layer(layer: LIFLayer, scores: torch.Tensor, sparsity: float) -> None:
    """Prune the lowest-scoring synapses of ``layer`` until ``sparsity`` of them are pruned
    (or keep those already pruned, where :func:`prune_columns` pruned more)."""
    count = max(int(round(sparsity * layer.mask.numel())), int((layer.mask == 0).sum()))
    scores = torch.where(layer.mask > 0, scores.float(), torch.full_like(scores, -np.inf))
    # A stable sort breaks ties by position, so pruning is reproducible.
    order = torch.sort(scores.flatten(), stable=True).indices
    mask = torch.ones(layer.mask.numel())
    mask[order[:count]] = 0.0
    with torch.no_grad():
        layer.mask.copy_(mask.view_as(layer.mask))


def prune_columns(layer: LIFLayer, scores: torch.Tensor, fraction: float) -> None:
    """Prune every synapse of the ``fraction`` of ``layer``'s inputs whose kept synapses' scores
    sum lowest (inputs already without synapses first; a recurrent layer's own columns are not
    inputs)."""
    count = int(round(fraction * layer.fan_in))
    kept = layer.mask[:, :layer.fan_in] > 0
    sums = torch.where(kept, scores[:, :layer.fan_in].float(), 0.0).sum(dim=0)
    sums = torch.where(kept.any(dim=0), sums, torch.full_like(sums, -np.inf))
    columns = torch.sort(sums, stable=True).indices[:count]
    with torch.no_grad():
        layer.mask[:, columns] = 0.0


def scores_for(method: PruneMethod, model: SNN, spikes: np.ndarray,
               labels: np.ndarray) -> list[torch.Tensor]:
    """Return each layer's saliency scores for a pruning method."""
    if method is PruneMethod.MAGNITUDE:
        return magnitude_scores(model)
    if method is PruneMethod.FSC:
        return fsc_scores(model, spikes, labels)
    raise ValueError(f"Unknown pruning method {method!r}")
