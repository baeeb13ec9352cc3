"""Bundled data sets with fixed splits, and the three spike encoders."""

from __future__ import annotations

import numpy as np
import pytest

from snnhw.train.data import load_data
from snnhw.train.encode import encode


def test_digits_split_is_fixed_and_stratified():
    a, b = load_data("digits"), load_data("digits")
    assert a.x_train.shape == (1347, 64) and a.x_test.shape == (450, 64)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert 0.0 <= a.x_train.min() and a.x_train.max() == 1.0
    assert a.classes == 10 and min(np.bincount(a.y_test)) >= 43


def test_mnist_subset_is_bundled():
    data = load_data("mnist")
    assert data.x_train.shape == (3750, 784) and data.x_test.shape == (1250, 784)
    assert data.x_train.max() == 1.0 and data.classes == 10


X = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)


def test_rate_is_seeded_and_matches_intensity():
    x = np.repeat(X, 500, axis=0)
    a = encode(x, "rate", 40, seed=3)
    assert a.dtype == np.uint8 and a.shape == (500, 40, 4)
    np.testing.assert_array_equal(a, encode(x, "rate", 40, seed=3))
    assert not np.array_equal(a, encode(x, "rate", 40, seed=4))
    np.testing.assert_allclose(a.mean(axis=(0, 1)), [0.0, 0.25, 0.5, 1.0], atol=0.01)
    np.testing.assert_allclose(encode(x, "rate", 40, seed=3, max_rate=0.5).mean(axis=(0, 1)),
                               [0.0, 0.125, 0.25, 0.5], atol=0.01)


def test_latency_fires_once_earlier_when_brighter():
    spikes = encode(X, "latency", 9)
    np.testing.assert_array_equal(spikes.sum(axis=1), [[0, 1, 1, 1]])
    assert [int(np.argmax(spikes[0, :, f])) for f in (1, 2, 3)] == [6, 4, 0]


def test_direct_repeats_the_binarised_image():
    spikes = encode(X, "direct", 5)
    np.testing.assert_array_equal(spikes, np.tile([[0, 0, 1, 1]], (1, 5, 1)))


def test_unknown_encoding():
    with pytest.raises(ValueError):
        encode(X, "morse", 4)
