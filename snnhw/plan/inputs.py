"""Which network inputs the core has: those with a synapse (pure numpy).

A network input without any synapse in the first layer adds nothing to any neuron, so the core
need not hear of it. When the first layer is dense and the network has no on-chip encoder (whose
rate draws run over every feature), the core numbers its inputs by the network inputs that keep
at least one synapse, in network order: core input ``k`` is network input ``kept[k]``. The
first layer's pointer memory then holds only those columns, and whatever turns a network's
input spikes into core input events (the host, the co-simulation drivers, the cycle model)
passes them through :func:`core_inputs`, which drops the others. Every other layer, and a
network whose inputs all keep a synapse, keeps the network's numbering.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..network.format import Network

__all__ = ["kept_inputs", "compacted", "core_inputs"]


def kept_inputs(network: Network) -> np.ndarray | None:
    """The network input at each core input (int64, increasing), or None where the core takes
    the network's inputs as they are (see the module)."""
    first = network.layers[0]
    if first.kind != "dense" or network.encoder is not None:
        return None
    kept = np.flatnonzero(first.connectivity.fan_out() > 0)
    return kept if 0 < len(kept) < network.input_size else None


def compacted(network: Network, kept: np.ndarray | None) -> Network:
    """``network`` with its first layer's columns (and ``input_size``) those of ``kept``."""
    if kept is None:
        return network
    first = replace(network.layers[0],
                    index=np.ascontiguousarray(network.layers[0].index[:, kept]))
    return replace(network, input_size=len(kept), layers=[first, *network.layers[1:]])


def core_inputs(kept: np.ndarray | None, spikes: np.ndarray) -> np.ndarray:
    """Network input ``spikes`` [..., network inputs] as the core takes them [..., core
    inputs]: the spikes of inputs without synapses dropped."""
    return spikes if kept is None else spikes[..., kept]
