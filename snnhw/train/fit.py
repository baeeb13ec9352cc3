"""Training and evaluation loops shared by the float run and every fine-tuning stage."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .model import SNN
from .recipe import Distill

__all__ = ["loss_fn", "distill_loss", "fit", "predict", "accuracy", "TrainSpikes"]

#: epoch -> training spikes uint8 [samples, timesteps, features] (rate coding redraws per epoch)
TrainSpikes = Callable[[int], np.ndarray]


def loss_fn(counts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on output spike counts, the readout the hardware uses (argmax of counts)."""
    return nn.functional.cross_entropy(counts, labels)


def distill_loss(counts: torch.Tensor, labels: torch.Tensor, teacher_counts: torch.Tensor,
                 distill: Distill) -> torch.Tensor:
    """Hinton et al.'s loss: cross-entropy blended with the KL divergence from the teacher's
    softened counts, scaled by T**2 so its gradient keeps its size as T changes."""
    t = distill.temperature
    soft = nn.functional.kl_div(nn.functional.log_softmax(counts / t, dim=1),
                                nn.functional.log_softmax(teacher_counts / t, dim=1),
                                reduction="batchmean", log_target=True)
    return (1.0 - distill.weight) * loss_fn(counts, labels) + distill.weight * t * t * soft


def fit(model: SNN, spikes: TrainSpikes, labels: np.ndarray, *, epochs: int, batch_size: int,
        lr: float, seed: int, progress: bool = False, desc: str = "train",
        extra_params: list[dict] | None = None, teacher: SNN | None = None,
        distill: Distill | None = None) -> list[float]:
    """Train with Adam on cross-entropy of spike counts; return the mean loss of each epoch.

    The learning rate decays on a cosine to a tenth of ``lr`` over the run: the last epochs
    settle, which matters for the quantized stages whose weights hop between levels.

    ``extra_params`` are further optimizer parameter groups (cluster codebooks, with their own
    learning rate). The batch order comes from ``seed``, so runs repeat exactly.

    With ``distill``, the loss is :func:`distill_loss` towards ``teacher``'s output spike counts
    on the same training spikes (computed once per epoch, without gradients).
    """
    from tqdm.auto import tqdm

    params = [{"params": [layer.weight for layer in model.layers], "lr": lr}]
    optimizer = torch.optim.Adam(params + (extra_params or []))
    rng = np.random.default_rng(seed)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    steps = max(1, epochs * -(-len(y) // batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps,
                                                          eta_min=0.1 * lr)
    losses = []
    model.train()
    for epoch in range(epochs):
        x = torch.from_numpy(spikes(epoch).astype(np.float32))
        if distill is not None:
            teacher_counts = _counts(teacher, x, batch_size=512)
        order = rng.permutation(len(y))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        total = 0.0
        bar = tqdm(batches, desc=f"{desc} {epoch + 1}/{epochs}", leave=False,
                   disable=not progress)
        for batch in bar:
            counts = model(x[batch])
            loss = (loss_fn(counts, y[batch]) if distill is None else
                    distill_loss(counts, y[batch], teacher_counts[batch], distill))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        losses.append(total / len(y))
    model.eval()
    return losses


@torch.no_grad()
def _counts(model: SNN, x: torch.Tensor, batch_size: int, exact: bool = False) -> torch.Tensor:
    """Output spike counts of ``model`` on ``x`` (float32 spikes), in batches, without gradients."""
    return torch.cat([model(x[i:i + batch_size], exact=exact)
                      for i in range(0, len(x), batch_size)])


@torch.no_grad()
def predict(model: SNN, spikes: np.ndarray, exact: bool = False,
            batch_size: int = 512) -> np.ndarray:
    """Return predicted classes: argmax of output spike counts, ties to the lowest index."""
    if len(spikes) == 0:
        return np.zeros(0, np.int64)
    counts = _counts(model, torch.from_numpy(spikes.astype(np.float32)), batch_size, exact)
    # torch.argmax returns the first maximal index, as DESIGN.md §1's readout requires
    return torch.argmax(counts, dim=1).numpy()


def accuracy(model: SNN, spikes: np.ndarray, labels: np.ndarray, exact: bool = False) -> float:
    """Return the fraction of samples classified correctly."""
    return float(np.mean(predict(model, spikes, exact) == labels))
