"""Hessian-aware mixed precision (Lui & Neftci 2021; HAWQ-V2/V3 allocation; PAPERS.md §1).

The trace of each layer's Hessian block is estimated with Hutchinson's estimator,
``Tr(H_l) ~ mean over Rademacher v of v^T H_l v``, where ``H v`` comes from double
back-propagation (as PyHessian does). In an SNN this is the Hessian of the *surrogate* loss: the
spike's surrogate (a sigmoid, see model.py) is twice differentiable and written without in-place
operations, so autograd can differentiate its backward pass.

Allocation: the sensitivity of layer l at b bits is ``Omega_l(b) = Tr(H_l) / n_l * ||Q_b(W_l) -
W_l||^2``; the chosen bit vector minimises the sum of Omega under the memory budget
``sum_l n_l * b_l <= budget * sum_l n_l * 8`` (n_l = kept synapses). With few layers every
combination is tried (an exact integer program); beyond ``EXHAUSTIVE`` combinations a greedy pass
lowers, one bit at a time, the layer whose sensitivity grows least per bit saved.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch

from .fit import loss_fn
from .model import SNN
from .quant import UniformQuantizer

__all__ = ["hutchinson_traces", "perturbations", "allocate_bits", "lower_greedily",
           "budget_bits"]

EXHAUSTIVE = 200_000


def hutchinson_traces(model: SNN, spikes: np.ndarray, labels: np.ndarray, probes: int,
                      seed: int = 0) -> list[float]:
    """Return the estimated Hessian trace of the loss with respect to each layer's weights."""
    params = [layer.weight for layer in model.layers]
    x = torch.from_numpy(spikes.astype(np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    generator = torch.Generator().manual_seed(seed)
    totals = [0.0] * len(params)
    for _ in range(probes):
        vs = [torch.randint(0, 2, p.shape, generator=generator).float() * 2 - 1 for p in params]
        # One layer at a time (v is zero elsewhere), as PyHessian does: a joint v would add the
        # cross terms v_l^T H_lm v_m, zero in expectation but a large share of the variance.
        for n, (grad, param, v) in enumerate(zip(grads, params, vs)):
            (hv,) = torch.autograd.grad(grad, param, grad_outputs=v, retain_graph=True)
            totals[n] += float((hv * v).sum())
    return [t / probes for t in totals]


@torch.no_grad()
def perturbations(model: SNN, choices: list[int]) -> list[dict[int, float]]:
    """Return ``||Q_b(W_l) - W_l||^2`` of each layer's kept weights at each bit width."""
    out = []
    for layer in model.layers:
        w = layer.weight * layer.mask
        row = {}
        for bits in choices:
            levels, step = UniformQuantizer(bits)(w, layer.mask)
            row[bits] = float(((levels * step - w) ** 2).sum())
        out.append(row)
    return out


def allocate_bits(traces: list[float], counts: list[int], perturbation: list[dict[int, float]],
                  choices: list[int], budget_bits: float) -> list[int]:
    """Return per-layer bits minimising ``sum Omega_l(b_l)`` with ``sum n_l * b_l <= budget``.

    Raises ValueError if even the smallest choice for every layer exceeds the budget.
    """
    choices = sorted(set(choices))
    if sum(n * choices[0] for n in counts) > budget_bits:
        raise ValueError(f"Memory budget of {budget_bits:.0f} bits is below the smallest "
                         f"allocation ({sum(n * choices[0] for n in counts)} bits)")
    omega = [{b: max(t, 0.0) / max(n, 1) * p[b] for b in choices}
             for t, n, p in zip(traces, counts, perturbation)]
    if len(choices) ** len(counts) <= EXHAUSTIVE:
        best = None
        for bits in itertools.product(choices, repeat=len(counts)):
            if sum(n * b for n, b in zip(counts, bits)) > budget_bits:
                continue
            # Ties go to more memory-efficient, then lexicographically smaller, allocations.
            key = (sum(o[b] for o, b in zip(omega, bits)),
                   sum(n * b for n, b in zip(counts, bits)), bits)
            if best is None or key < best:
                best = key
        return list(best[2])

    def cost(bits: list[int], layer: int) -> float:  # sensitivity added per bit saved
        lower = choices[choices.index(bits[layer]) - 1]
        saved = counts[layer] * (bits[layer] - lower)
        return (omega[layer][lower] - omega[layer][bits[layer]]) / max(saved, 1)
    return lower_greedily(counts, choices, budget_bits, cost)


def lower_greedily(counts: list[int], choices: list[int], budget_bits: float,
                   cost: Callable[[list[int], int], float]) -> list[int]:
    """Start every layer at the widest choice and lower, one choice at a time, the layer whose
    ``cost(bits, layer)`` of going one choice lower is least, until ``sum n_l * b_l`` fits the
    budget (ties to the first layer). The caller checks that the narrowest allocation fits."""
    choices = sorted(set(choices))
    bits = [choices[-1]] * len(counts)
    while sum(n * b for n, b in zip(counts, bits)) > budget_bits:
        candidates = [l for l in range(len(bits)) if bits[l] > choices[0]]
        layer = min(candidates, key=lambda l: cost(bits, l))
        bits[layer] = choices[choices.index(bits[layer]) - 1]
    return bits


def budget_bits(counts: list[int], budget: float) -> float:
    """Return the bit budget: ``budget`` times the kept synapses at 8 bits each."""
    return budget * 8 * sum(counts)
