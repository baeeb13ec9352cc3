"""Weight quantizers: latent float weights -> integer levels, with straight-through gradients.

Units. A layer's latent weights live in *threshold units* (the float neuron fires at 1.0). A
quantizer returns integer levels ``K`` and a step ``s`` (threshold units per level), so ``K * s``
approximates the weights. The layer then picks integer units (``LIFLayer.integer_weights``).

Straight-through estimators are written ``ste(x, q) = q.detach() + (x - x.detach())``, never
``x + (q - x).detach()``: the forward value is then exactly ``q`` (``x - x`` is exactly 0 in
floating point), which the bit-exact integer mode depends on, and the gradient is that of ``x``.

Rounding follows Q-SpiNN (PAPERS.md §4), in units of the step: truncation ``floor(x)``,
round-to-nearest ``floor(x + 1/2)`` (halves go up, unlike ``torch.round``'s half-to-even) and
stochastic ``floor(x) + Bernoulli(x - floor(x))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .recipe import Bits, Rounding

__all__ = ["ste", "round_levels", "WeightQuantizer", "UniformQuantizer", "TernaryQuantizer",
           "make_quantizer", "Snap"]

#: maps a step to the nearest step the layer can represent (fixed-threshold layers), or None
Snap = Callable[[float], float] | None


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Return ``q`` in the forward pass and pass the gradient straight through to ``x``."""
    return q.detach() + (x - x.detach())


def round_levels(x: torch.Tensor, rounding: Rounding | str,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Round ``x`` (already divided by the step) to integers by a Q-SpiNN scheme."""
    rounding = Rounding(rounding)
    if rounding is Rounding.TRUNCATE:
        return torch.floor(x)
    if rounding is Rounding.NEAREST:
        return torch.floor(x + 0.5)
    if rounding is Rounding.STOCHASTIC:
        low = torch.floor(x)
        draw = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return low + (draw < (x - low)).to(x.dtype)
    raise ValueError(f"Unknown rounding {rounding!r}")


def _masked(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Magnitudes of the synapses that exist (pruned ones must not set the scale)."""
    kept = w.detach().abs()[mask > 0]
    return kept if kept.numel() else w.detach().abs().new_ones(1)


def _snap(step: torch.Tensor, snap: Snap) -> torch.Tensor:
    return step if snap is None else step.new_tensor(snap(float(step)))


class WeightQuantizer(nn.Module):
    """Base class: ``forward(w, mask, snap) -> (K, step)``; ``K`` integer-valued, STE gradient."""

    #: most distinct levels this quantizer can produce (for checks and reports)
    levels: int

    def forward(self, w: torch.Tensor, mask: torch.Tensor,
                snap: Snap = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class UniformQuantizer(WeightQuantizer):
    """Symmetric uniform levels ``-qmax..qmax`` (``qmax = 2**(bits-1) - 1``).

    The level range is symmetric so that 0 is a level (pruned and quantized-to-zero weights cost
    no synapse) and sign flips cost nothing; it uses 2**bits - 1 of the 2**bits codes. The step
    is the one among ``CLIPS`` fractions of ``max|w| / qmax`` with the least squared error: at
    2-4 bits the largest weight is a poor scale (at 2 bits it zeroes almost every weight), and a
    few clipped outliers cost less than the lost resolution.

    Parameters
    ----------
    bits : int
        Signed precision, 2..16.
    rounding : Rounding
        How to round to levels; QAT uses nearest, PTQ may use any.
    generator : torch.Generator, optional
        Random source of stochastic rounding.
    """

    def __init__(self, bits: int, rounding: Rounding | str = Rounding.NEAREST,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(bits, int) or not 2 <= bits <= 16:
            raise ValueError(f"Bit width must be an integer in 2..16, not {bits!r}")
        self.bits = bits
        self.qmax = (1 << (bits - 1)) - 1
        self.levels = 2 * self.qmax + 1
        self.rounding = Rounding(rounding)
        self.generator = generator

    #: fractions of max|w| tried as the clipping range
    CLIPS = tuple(0.25 + 0.05 * i for i in range(16))

    def step(self, w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Return the step (over the kept weights) with the least squared rounding error."""
        mags = _masked(w, mask)
        steps = torch.clamp(mags.max() * mags.new_tensor(self.CLIPS) / self.qmax, min=1e-8)
        levels = torch.clamp(torch.floor(mags[None, :] / steps[:, None] + 0.5), max=self.qmax)
        error = ((levels * steps[:, None] - mags[None, :]) ** 2).sum(dim=1)
        return steps[torch.argmin(error)]

    def forward(self, w, mask, snap=None):
        step = _snap(self.step(w, mask), snap)
        x = w / step
        q = torch.clamp(round_levels(x.detach(), self.rounding, self.generator),
                        -self.qmax, self.qmax)
        return ste(x, q), step


class TernaryQuantizer(WeightQuantizer):
    """Ternary weights {-a, 0, +a} with the TWN rule: zero below 0.7 mean|w|, a = mean of the rest.

    The magnitude ``a`` is the step, so the levels are -1, 0, 1 (Li & Liu, Ternary Weight
    Networks, 2016: the threshold that approximately minimises the L2 error for Gaussian weights).
    """

    levels = 3

    def forward(self, w, mask, snap=None):
        mags = _masked(w, mask)
        delta = 0.7 * mags.mean()
        big = mags[mags > delta]
        step = _snap(torch.clamp(big.mean() if big.numel() else mags.max(), min=1e-8), snap)
        x = w / step
        q = torch.sign(x.detach()) * (w.detach().abs() > delta).to(w.dtype)
        return ste(x, q), step


def make_quantizer(bits: Bits, rounding: Rounding | str = Rounding.NEAREST,
                   generator: torch.Generator | None = None) -> WeightQuantizer:
    """Return the quantizer for a recipe precision: a bit width or ``"ternary"``."""
    if bits == "ternary":
        if Rounding(rounding) is not Rounding.NEAREST:
            raise ValueError(f"Ternary weights use their own rounding rule, not {rounding!r}")
        return TernaryQuantizer()
    return UniformQuantizer(bits, rounding, generator)


def integer_scale(step: float, min_threshold: int,
                  threshold: int | None) -> tuple[int, int]:
    """Return ``(m, T)``: integer weights are ``m * K`` and the integer threshold is ``T``.

    With a free threshold, ``m`` is the smallest multiplier that makes ``T = round(m / step)`` at
    least ``min_threshold``: scaling all weights of a layer by ``m`` costs only codebook width,
    never synapse memory, and buys a precise threshold and a fine-grained floor leak (at small V,
    ``V >> leak_shift`` is 0 and the neuron would not leak at all). With a fixed threshold (state
    quantization) the step has been snapped to a multiple of ``1 / T``, so ``m = step * T``.
    """
    if threshold is None:
        m = max(1, math.ceil(min_threshold * step - 1e-9))
        return m, max(1, int(math.floor(m / step + 0.5)))
    return max(1, int(math.floor(step * threshold + 0.5))), threshold


def snap_to_threshold(threshold: int) -> Callable[[float], float]:
    """Return a snap function: steps become positive multiples of ``1 / threshold``."""
    def snap(step: float) -> float:
        return max(1, math.floor(step * threshold + 0.5)) / threshold
    return snap
