"""Threshold-centred membrane state levels (SQUAT, PAPERS.md §3), built on the integer grid.

SQUAT's threshold-centred scheme keeps the membrane on ``2**bits`` levels that are exponentially
denser near the threshold θ, where a small error decides whether a neuron fires. snnTorch places
them on ``[-θ(1 + lower), θ(1 + upper)]`` with geometric gaps of ratio ``m`` (by bit width, see
:data:`SQUAT_RATIOS`); :func:`snntorch_levels` is that construction in threshold units. Rounded to
an integer grid of threshold ``T`` its gaps next to θ (``T * m**k``, far below 1) collapse onto
the same integers and waste codes: at 4 bits and ``T = 64`` only 9 of the 16 codes survive.

:func:`threshold_levels` is snnhw's integer construction (docs/training.md): all ``2**bits``
levels are distinct integers in the v_bits range, 0 is one of them (every sample starts from
V = 0), and gaps never shrink away from θ. Gaps are ``max(1, c * r**j)`` with ``r = 1 / m``,
``j`` counting away from θ and ``c`` the largest scale that fits the range, so the codes that
would collapse next to θ become gaps of exactly 1 and the scale of all the others shrinks to
make room: the collapsed codes are redistributed over the sparse part of the range.

This module imports numpy only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..network.format import signed_range

__all__ = ["SQUAT_RATIOS", "squat_ratio", "snntorch_levels", "rounded_snntorch_levels",
           "threshold_levels", "ThresholdLevels", "FixedLevels", "min_threshold_for"]

#: snnTorch's geometric ratio m of the threshold-centred levels by state bit width; >= 8: 0.95
SQUAT_RATIOS = {1: 0.05, 2: 0.1, 3: 0.3, 4: 0.5, 5: 0.7, 6: 0.9, 7: 0.925}

#: widths the integer construction supports: at least the 3 levels T - 1, 0 and the bottom of
#: the range, at most the format's 256 levels
MIN_BITS, MAX_BITS = 2, 8


def squat_ratio(bits: int) -> float:
    """Return snnTorch's default geometric ratio ``m`` for a state of ``bits`` bits."""
    return SQUAT_RATIOS.get(bits, 0.95)


def _split(count: int, below: float, above: float) -> int:
    """Return how many of ``count`` levels go above θ, in proportion to the two sub-ranges."""
    return int(math.floor(count * above / (below + above) + 0.5))


def snntorch_levels(bits: int, lower: float = 0.0, upper: float = 0.2,
                    ratio: float | None = None) -> np.ndarray:
    """Return SQUAT's threshold-centred levels in threshold units (θ = 1), as PAPERS.md §3 states.

    ``2**bits`` levels on ``[-(1 + lower), 1 + upper]``, split below/above θ in proportion to the
    two sub-ranges; below θ the gaps grow by ``1 / m`` per level away from θ down to the bottom
    of the range; above θ the levels start at θ and their gaps grow up to the top. Kept for
    comparison: on an integer grid these levels collapse (see :func:`threshold_levels`).
    """
    count, growth = 1 << bits, 1.0 / (ratio or squat_ratio(bits))
    n_above = _split(count, 2.0 + lower, upper)
    n_below = count - n_above
    below = 1.0 - (2.0 + lower) * _unit_cumsum(n_below, growth)
    above = 1.0 + upper * np.concatenate([[0.0], _unit_cumsum(n_above - 1, growth)])[:n_above]
    return np.sort(np.concatenate([below, above]))


def rounded_snntorch_levels(bits: int, threshold: int, v_bits: int, lower: float = 0.0,
                            upper: float = 0.2, ratio: float | None = None) -> tuple[int, ...]:
    """Return :func:`snntorch_levels` rounded to the integer grid, for comparison.

    What a direct port does: ``round(T * level)``, clipped to the v_bits range. Levels that round
    to the same integer merge (their codes are lost); 0 is added, or replaces the level nearest
    to it when no code is free, because every sample starts from V = 0.
    """
    v_min, v_max = signed_range(v_bits)
    scaled = np.floor(snntorch_levels(bits, lower, upper, ratio) * threshold + 0.5)
    levels = np.unique(np.clip(scaled, v_min, v_max)).astype(np.int64)
    if 0 not in levels:
        if len(levels) == 1 << bits:
            levels = np.delete(levels, np.argmin(np.abs(levels)))
        levels = np.union1d(levels, [0])
    return tuple(int(level) for level in levels)


def _unit_cumsum(count: int, growth: float) -> np.ndarray:
    """Cumulative sums of ``count`` geometric gaps (ratio ``growth``), scaled to end at 1."""
    if count <= 0:
        return np.zeros(0)
    sums = np.cumsum(growth ** np.arange(count))
    return sums / sums[-1]


def _geometric_gaps(count: int, span: int, growth: float) -> np.ndarray:
    """Return ``count`` integer gaps, each >= 1, non-decreasing, summing to ``span``.

    Gap ``j`` is ``max(1, floor(c * growth**j))`` for the largest ``c`` whose gaps fit in
    ``span``; the few units left over go, one each, to the largest (last) gaps.
    """
    if not 1 <= count <= span:
        raise ValueError(f"Cannot place {count} gaps of at least 1 in a span of {span}")
    powers = growth ** np.arange(count)

    def gaps(scale: float) -> np.ndarray:
        return np.maximum(1, np.floor(scale * powers)).astype(np.int64)

    low, high = 0.0, span + 1.0  # gaps(0) sum to count <= span, gaps(span + 1) to more
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if gaps(middle).sum() <= span:
            low = middle
        else:
            high = middle
    result = gaps(low)
    extra = int(span - result.sum())
    # Between low and high each gap grows by at most 1, so fewer than count units are left.
    assert 0 <= extra < count, (extra, count)
    if extra:
        result[count - extra:] += 1
    return result


def _below_threshold(count: int, threshold: int, bottom: int, growth: float) -> np.ndarray:
    """Return ``count`` levels from ``threshold - 1`` down to ``bottom`` with 0 among them.

    The gaps grow away from θ; 0 is pinned by fitting ``[0, θ - 1]`` and ``[bottom, 0]``
    separately. The split (how many gaps lie above 0) is the one nearest to where the unpinned
    fit crosses 0 whose gaps still never shrink away from θ; one always exists (with one gap
    below 0, that gap spans ``-bottom >= θ``, wider than any gap above 0).
    """
    top = threshold - 1
    gaps = count - 1
    unpinned = np.cumsum(_geometric_gaps(gaps, top - bottom, growth))
    nearest = int(np.argmin(np.abs(unpinned - top))) + 1  # gaps above 0 in the unpinned fit
    fits = range(max(1, gaps + bottom), min(top, gaps - 1) + 1)  # both segments feasible
    for above_zero in sorted(fits, key=lambda a: (abs(a - nearest), -a)):
        steps = np.concatenate([_geometric_gaps(above_zero, top, growth),
                                _geometric_gaps(gaps - above_zero, -bottom, growth)])
        if np.all(np.diff(steps) >= 0):
            return top - np.concatenate([[0], np.cumsum(steps)])
    raise AssertionError("unreachable: one gap below 0 always keeps the gaps non-decreasing")


@functools.lru_cache(maxsize=1024)
def threshold_levels(bits: int, threshold: int, v_bits: int, lower: float = 0.0,
                     upper: float = 0.2, ratio: float | None = None) -> tuple[int, ...]:
    """Return ``2**bits`` sorted, distinct integer state levels centred on ``threshold``.

    The range is ``[-round(T(1 + lower)), round(T(1 + upper))]`` clipped to the v_bits range;
    the levels are split below/above θ in proportion to the lengths of the two parts.
    Below θ: from ``T - 1`` (one step short of firing) down to the bottom, 0 included. Above:
    from ``T`` up to the top. Gaps are geometric with ratio ``1 / m`` away from θ (m: snnTorch's
    ratio for the width, or ``ratio``), but at least 1 (see the module docstring).

    Raises ValueError when the range holds too few integers (raise the threshold; see
    :func:`min_threshold_for`).
    """
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"Threshold-centred states need {MIN_BITS}..{MAX_BITS} bits, not {bits}")
    count, growth = 1 << bits, 1.0 / (ratio or squat_ratio(bits))
    v_min, v_max = signed_range(v_bits)
    bottom = max(v_min, -int(math.floor(threshold * (1.0 + lower) + 0.5)))
    top = min(v_max, int(math.floor(threshold * (1.0 + upper) + 0.5)))
    below_points, above_points = threshold - bottom, max(0, top - threshold + 1)
    if threshold < 2 or bottom > -1 or count > below_points + above_points:
        raise ValueError(f"{count} state levels do not fit [{bottom}, {top}] around threshold "
                         f"{threshold} at v_bits {v_bits}; raise the threshold to at least "
                         f"{min_threshold_for(bits, lower, upper)}")
    # Split as snntorch_levels does (by the lengths below and above θ), but with at least 3
    # levels below (T - 1, 0, bottom) and no more on a side than it has integers.
    n_above = _split(count, threshold - bottom, max(0, top - threshold))
    n_above = min(n_above, above_points, count - 3)
    n_above = max(n_above, count - below_points)
    levels = _below_threshold(count - n_above, threshold, bottom, growth)
    if n_above:
        steps = _geometric_gaps(n_above - 1, top - threshold, growth) if n_above > 1 else []
        levels = np.concatenate([levels, threshold + np.concatenate([[0], np.cumsum(steps)])])
    return tuple(int(level) for level in np.sort(levels))


def min_threshold_for(bits: int, lower: float = 0.0, upper: float = 0.2) -> int:
    """Return the smallest integer threshold whose range holds ``2**bits`` distinct levels.

    snnhw asks for a threshold of at least ``2**bits`` (the range then holds over twice as many
    integers as levels, so the geometry has room), and at least what the count needs.
    """
    count = 1 << bits
    return max(count, int(math.ceil(count / (2.0 + lower + upper))) + 2)


@dataclass(frozen=True)
class ThresholdLevels:
    """A layer's state scheme: threshold-centred levels recomputed for its current threshold."""

    bits: int
    lower: float = 0.0
    upper: float = 0.2
    #: geometric ratio m; None: snnTorch's default for ``bits``
    ratio: float | None = None
    #: use :func:`rounded_snntorch_levels` (the direct port, for comparison) instead of
    #: :func:`threshold_levels`
    rounded: bool = False

    def __call__(self, threshold: int, v_bits: int) -> tuple[int, ...]:
        build = rounded_snntorch_levels if self.rounded else threshold_levels
        return build(self.bits, threshold, v_bits, self.lower, self.upper, self.ratio)


@dataclass(frozen=True)
class FixedLevels:
    """A layer's state scheme: the levels of a loaded network, whatever its threshold."""

    levels: tuple[int, ...]

    def __call__(self, threshold: int, v_bits: int) -> tuple[int, ...]:
        return self.levels
