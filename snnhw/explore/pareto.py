"""Pareto fronts of two objectives: a cost to minimise against a value to maximise."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["pareto_front", "dominates"]


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``a`` = (cost, value) dominates ``b``: no worse in both, better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points of (cost, value) pairs, by increasing cost.

    Points that tie exactly are all on the front (neither dominates the other). One sort and
    one sweep: a point is on the front when it has the best value at its cost and a value
    strictly above the best of every cheaper point.
    """
    order = sorted(range(len(points)), key=lambda k: (points[k][0], -points[k][1]))
    front: list[int] = []
    best_cheaper = float("-inf")  # best value of all points strictly cheaper than the group
    n = 0
    while n < len(order):
        cost = points[order[n]][0]
        group = []
        while n < len(order) and points[order[n]][0] == cost:
            group.append(order[n])
            n += 1
        top = points[group[0]][1]  # the group is sorted by value, best first
        if top > best_cheaper:
            front += [k for k in group if points[k][1] == top]
            best_cheaper = top
    return front
