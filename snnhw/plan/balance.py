"""Lane balancing: which neuron of a layer the core keeps at which position (pure numpy).

The core keeps the neuron at position ``k`` in lane ``k % P`` (:mod:`snnhw.plan.layout`), and a
presynaptic spike costs its column's words: the largest lane's share of the column's synapses. A
network neuron order that spreads every column evenly over the lanes makes the same spikes cost
fewer cycles. :func:`lane_order` picks, for one layer, a permutation that lowers the layer's
column words ``sum over columns of max over lanes`` (greedy, heaviest neuron first, into the lane
where it adds least; then swaps between lanes while one lowers the sum; deterministic), or keeps
them and lowers the layer's stored bits (each lane's neurons heaviest first: shorter delta gaps,
also at one lane), or None when it finds none lower than the network's own order.
:func:`permuted` applies the orders to a network: each reordered layer's rows and per-neuron
parameters, the next layer's columns and a recurrent layer's own columns, so the permuted network
computes the same spikes, at the permuted positions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..network.format import Layer, Network
from .layout import WORDS_SLACK, SynapseLayout

__all__ = ["balanceable", "column_words", "lane_order", "permuted", "permuted_index"]

#: Swap passes at most, and the work (size * size * fan_in) above which only the greedy runs.
SWAP_PASSES = 8
SWAP_WORK = 1 << 27


def balanceable(network: Network, number: int) -> bool:
    """Whether layer ``number``'s neurons may be reordered: a dense or recurrent layer that is
    not the output layer (its neuron ids are the classes) and does not feed a convolution (whose
    input positions are fixed by its geometry)."""
    layers = network.layers
    return (number + 1 < len(layers) and layers[number].kind in ("dense", "recurrent")
            and layers[number + 1].kind in ("dense", "recurrent"))


def column_words(present: np.ndarray, lanes: int) -> int:
    """``sum over columns of max over lanes`` of the synapses ``present`` [size, fan_in] (rows
    in position order) puts in each lane: the addressed layout's synapse words."""
    lane = np.arange(len(present)) % lanes
    return int(np.stack([present[lane == p].sum(axis=0) for p in range(lanes)])
               .max(axis=0).sum())


def lane_order(layer: Layer, lanes: int, words_slack: float = WORDS_SLACK) -> np.ndarray | None:
    """Network neuron at each position (int64 [size]) that lowers the layer's column words, or
    keeps them and lowers the bits of the layout the plan picks for it (with ``words_slack``,
    :meth:`SynapseLayout.build`); None where the network's
    own order is as low. Each lane holds its neurons heaviest first (most synapses; ties in
    network order), so a column's synapses crowd at the lane's low addresses and neurons without
    synapses come last: the delta layout's gaps are short and need fewer escapes."""
    present = (layer.connectivity.unrolled() >= 0).astype(np.int64)
    size = len(present)
    if size <= 1:
        return None
    # The lanes as the network's order fills them, and (more than one lane) balanced.
    candidates = [[list(range(p, size, lanes)) for p in range(lanes)]]
    if lanes > 1:
        candidates.append(_balanced_lanes(present, lanes))
    weight = present.sum(axis=1)

    def cost(order: np.ndarray) -> tuple[int, int]:
        held = replace(layer, index=permuted_index(layer.index, order, None,
                                                   layer.kind == "recurrent"))
        return column_words(present[order], lanes), SynapseLayout.build(
            held, lanes, words_slack=words_slack).stored_bits

    best, best_cost = None, cost(np.arange(size))
    for members in candidates:
        order = np.empty(size, np.int64)
        for p, neurons in enumerate(members):
            order[p::lanes] = sorted(neurons, key=lambda j: (-weight[j], j))
        order_cost = cost(order)
        if order_cost < best_cost:
            best, best_cost = order, order_cost
    return best


def _balanced_lanes(present: np.ndarray, lanes: int) -> list[list[int]]:
    """The neurons of each lane that lower the column words (module notes)."""
    size = len(present)
    capacity = np.bincount(np.arange(size) % lanes, minlength=lanes)
    counts = np.zeros((present.shape[1], lanes), np.int64)  # synapses per column and lane
    members: list[list[int]] = [[] for _ in range(lanes)]
    for j in np.argsort(-present.sum(axis=1), kind="stable"):
        peak = counts.max(axis=1)
        added = np.maximum(0, counts + present[j][:, None] - peak[:, None]).sum(axis=0)
        full = np.array([len(m) >= c for m, c in zip(members, capacity)])
        lane = int(np.argmin(np.where(full, np.iinfo(np.int64).max, added)))
        members[lane].append(int(j))
        counts[:, lane] += present[j]
    if size * size * present.shape[1] <= SWAP_WORK:
        _swap(present, counts, members)
    return members


def _swap(present: np.ndarray, counts: np.ndarray, members: list[list[int]]) -> None:
    """Swap neurons between lanes while a swap lowers the column words (in place)."""
    lanes = len(members)
    for _ in range(SWAP_PASSES):
        improved = False
        for p in range(lanes):
            for q in range(p + 1, lanes):
                others = [r for r in range(lanes) if r not in (p, q)]
                rest = counts[:, others].max(axis=1) if others else 0
                if not members[q]:
                    continue  # a lane without neurons (fewer neurons than lanes)
                for a_at, a in enumerate(members[p]):
                    b = np.array(members[q], dtype=np.int64)
                    change = present[b] - present[a]  # [candidates, fan_in]
                    before = np.maximum(rest, counts[:, [p, q]].max(axis=1)).sum()
                    after = np.maximum(rest, np.maximum(counts[:, p] + change,
                                                        counts[:, q] - change)).sum(axis=1)
                    best = int(np.argmin(after))
                    if after[best] < before:
                        counts[:, p] += change[best]
                        counts[:, q] -= change[best]
                        members[p][a_at], members[q][best] = int(b[best]), a
                        improved = True
        if not improved:
            return


def permuted(network: Network, orders: dict[str, np.ndarray]) -> Network:
    """``network`` with the neurons of each layer named in ``orders`` at the positions its order
    gives (``orders[name][k]``: the neuron at position k): the same spikes, permuted."""
    layers, previous = [], None
    for layer in network.layers:
        order = orders.get(layer.name)
        index = permuted_index(layer.index, order, previous, layer.kind == "recurrent")
        if order is not None:
            neuron = replace(layer.neuron, **{
                field: tuple(getattr(layer.neuron, field)[k] for k in order)
                for field in ("threshold", "beta", "bias")
                if isinstance(getattr(layer.neuron, field), tuple)})
            layer = replace(layer, neuron=neuron)
        layers.append(replace(layer, index=index))
        previous = order
    return replace(network, layers=layers)


def permuted_index(index: np.ndarray, order: np.ndarray | None, previous: np.ndarray | None,
                   recurrent: bool) -> np.ndarray:
    """A layer's index matrix with its neurons at the positions ``order`` gives (its rows, and a
    recurrent layer's own columns) and the previous layer's at those ``previous`` gives (its
    external columns); None keeps an order. The inverse orders (``np.argsort``) undo it."""
    external = index.shape[1] - (index.shape[0] if recurrent else 0)
    if previous is not None:
        index = np.concatenate([index[:, previous], index[:, external:]], axis=1)
    if order is not None:
        index = index[order]
        if recurrent:
            index = np.concatenate([index[:, :external], index[:, external + order]], axis=1)
    return np.ascontiguousarray(index)
