"""Training and evaluation loops shared by the float run and every fine-tuning stage."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .model import SNN

__all__ = ["loss_fn", "fit", "predict", "accuracy", "TrainSpikes"]

#: epoch -> training spikes uint8 [samples, timesteps, features] (rate coding redraws per epoch)
TrainSpikes = Callable[[int], np.ndarray]


def loss_fn(counts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on output spike counts, the readout the hardware uses (argmax of counts)."""
    return nn.functional.cross_entropy(counts, labels)


def fit(model: SNN, spikes: TrainSpikes, labels: np.ndarray, *, epochs: int, batch_size: int,
        lr: float, seed: int, progress: bool = False, desc: str = "train",
        extra_params: list[dict] | None = None) -> list[float]:
    """Train with Adam on cross-entropy of spike counts; return the mean loss of each epoch.

    The learning rate decays on a cosine to a tenth of ``lr`` over the run: the last epochs
    settle, which matters for the quantized stages whose weights hop between levels.

    ``extra_params`` are further optimizer parameter groups (cluster codebooks, with their own
    learning rate). The batch order comes from ``seed``, so runs repeat exactly.
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
        order = rng.permutation(len(y))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        total = 0.0
        bar = tqdm(batches, desc=f"{desc} {epoch + 1}/{epochs}", leave=False,
                   disable=not progress)
        for batch in bar:
            loss = loss_fn(model(x[batch]), y[batch])
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
def predict(model: SNN, spikes: np.ndarray, exact: bool = False,
            batch_size: int = 512) -> np.ndarray:
    """Return predicted classes: argmax of output spike counts, ties to the lowest index."""
    preds = []
    for i in range(0, len(spikes), batch_size):
        x = torch.from_numpy(spikes[i:i + batch_size].astype(np.float32))
        # torch.argmax returns the first maximal index, as DESIGN.md §1's readout requires
        preds.append(torch.argmax(model(x, exact=exact), dim=1).numpy())
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def accuracy(model: SNN, spikes: np.ndarray, labels: np.ndarray, exact: bool = False) -> float:
    """Return the fraction of samples classified correctly."""
    return float(np.mean(predict(model, spikes, exact) == labels))
