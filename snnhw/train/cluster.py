"""Clustering-aware training (SpikeFit CAT, PAPERS.md §5): M learnable weight values per layer.

Each layer has a codebook ``c`` of M values (threshold units), initialised by 1-D k-means over its
kept weights. Forward: every weight takes the value of its nearest codebook entry,
``w_hat = c[argmin_k |w - c_k|]``, with the entries themselves rounded to a ``bits``-bit grid so
the result is integer; backward: straight through to the latent ``w`` and, through the gather,
``dL/dc_k = sum of dL/dw_hat over the weights assigned to k``. So the values move to where the
loss wants them while the assignment follows the latent weights: a layer never uses more than M
distinct values (two entries may round to the same level, giving fewer).

Gradual clustering (:meth:`ClusterQuantizer.cluster_fraction`) leaves some weights ``free``
(float, in units of the step) while the rest train to compensate, as incremental quantization
(INQ, Zhou et al. 2017) does; the network is integer only once no weight is free.
"""

from __future__ import annotations

import torch
from torch import nn

from .quant import Snap, WeightQuantizer, _snap, ste

__all__ = ["kmeans_1d", "ClusterQuantizer"]


def kmeans_1d(values: torch.Tensor, k: int, iterations: int = 30) -> torch.Tensor:
    """Return ``k`` sorted cluster centres of 1-D ``values`` (Lloyd's algorithm).

    Centres start evenly spaced between the smallest and largest value, as Deep Compression
    (Han et al., 2016) recommends for weights: it keeps the rare large weights, which matter most,
    representable, where density-based starts crowd the centres around 0. Deterministic, so a
    recipe run repeats exactly.
    """
    values = values.detach().flatten().float()
    centres = torch.linspace(float(values.min()), float(values.max()), k)
    for _ in range(iterations):
        assign = torch.argmin((values[:, None] - centres[None, :]).abs(), dim=1)
        sums = torch.zeros(k).index_add_(0, assign, values)
        counts = torch.zeros(k).index_add_(0, assign, torch.ones_like(values))
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    return torch.sort(centres).values


class ClusterQuantizer(WeightQuantizer):
    """M learnable values per layer, each on a ``bits``-bit symmetric grid.

    Parameters
    ----------
    weights, mask : torch.Tensor
        The layer's latent weights and synapse mask, to initialise the codebook by k-means.
    values : int
        M, the number of distinct weight values.
    bits : int
        Precision of the values (grid step = max|c| / (2**(bits-1) - 1)).
    """

    def __init__(self, weights: torch.Tensor, mask: torch.Tensor, values: int, bits: int):
        super().__init__()
        if not isinstance(values, int) or values < 2:
            raise ValueError(f"Cluster count must be an integer >= 2, not {values!r}")
        self.levels = values
        self.qmax = (1 << (bits - 1)) - 1
        kept = weights.detach()[mask > 0]
        self.codebook = nn.Parameter(kmeans_1d(kept if kept.numel() else weights, values))
        #: weights not clustered yet (bool, the weights' shape), or None: all clustered
        self.free: torch.Tensor | None = None

    def cluster_fraction(self, weights: torch.Tensor, mask: torch.Tensor, fraction: float) -> None:
        """Cluster at least ``fraction`` of the kept weights: those clustered already stay, then
        the free ones nearest a codebook value (fraction 1: all; the layer is integer again)."""
        if fraction >= 1.0:
            self.free = None
            return
        w = weights.detach()
        kept = mask > 0
        free = kept.clone() if self.free is None else self.free & kept
        error = (w[..., None] - self.codebook.detach()).abs().min(dim=-1).values
        more = int(fraction * int(kept.sum())) - int((kept & ~free).sum())
        if more > 0:
            nearest = torch.argsort(torch.where(free, error, torch.inf).flatten(),
                                    stable=True)[:more]
            free.view(-1)[nearest] = False
        self.free = free

    def forward(self, w: torch.Tensor, mask: torch.Tensor,
                snap: Snap = None) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.codebook
        step = _snap(torch.clamp(c.detach().abs().max() / self.qmax, min=1e-8), snap)
        scaled = c / step
        levels = ste(scaled, torch.clamp(torch.floor(scaled.detach() + 0.5),
                                         -self.qmax, self.qmax))
        assign = torch.argmin((w.detach()[..., None] - c.detach()).abs(), dim=-1)
        x = w / step
        clustered = levels[assign] + (x - x.detach())
        return (clustered if self.free is None else torch.where(self.free, x, clustered)), step
