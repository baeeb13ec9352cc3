"""NIR graphs in and out (the Neuromorphic Intermediate Representation, ``pip install nir``).

Import reads a chain ``Input -> (Linear | Affine | Conv2d -> LIF | IF)* -> Output`` into float
layers (:class:`~snnhw.frontends.quantize.FloatLayer`) and quantizes them. A neuron node with a
back edge through a Linear or Affine (snnTorch's RLeaky: a NIRGraph subgraph, or its nodes written
flat as nirtorch does) is a recurrent layer; Flatten nodes of every dimension are left out
(snnhw's neurons are channel-major already). NIR's neurons, discretised with the step ``dt``
(NIR has none; snnTorch's export convention ``dt = 1e-4`` by default):

* ``LIF``: ``tau dv/dt = (v_leak - v) + r I`` with forward Euler gives
  ``v_t = beta v_{t-1} + g I_t``, ``beta = 1 - dt / tau``, ``g = r dt / tau`` (``g = 1`` where
  ``tau`` and ``r`` are both infinite: snnTorch's export of beta = 1, ``r = tau / dt``);
* ``IF``: ``dv/dt = r I`` gives ``v_t = v_{t-1} + r I_t`` (the gain is ``r``, as snnTorch and
  Sinabs read it);
* both fire on ``v > v_threshold`` and then set ``v = v_reset`` in the same step: reset to zero,
  immediate. NIR carries no reset mechanism (snnTorch's export drops it), so ``reset`` and
  ``reset_timing`` may override it (``subtract`` / ``deferred`` for an snnTorch Leaky); without
  them, a neuron node whose metadata is snnhw's (an ``snnhw export``) resets as that names.

The gain ``g`` is folded into the weights and bias before quantization. ``v_leak`` and
``v_reset`` other than 0, ``CubaLIF`` and every other node type are refused by name.

Export writes each layer as ``Affine`` (``Linear`` without bias; ``Conv2d`` for a conv2d layer,
then a ``Flatten`` before a flat node) with the integer weights and an ``IF`` (no leak) or ``LIF``
(``tau = dt / (1 - beta)``, ``r = tau / dt``: snnTorch's convention) with the integer threshold
(a recurrent layer's inside a subgraph with its back edge, as snnTorch writes RLeaky), and keeps
what NIR cannot say (codebook and index, v_bits, reset, timing, firing comparison, rounding,
state levels) in the nodes' ``metadata``. Import uses that
metadata when the graph's own parameters still match it, so ``import(export(M)) == M``; a graph
whose parameters were changed elsewhere is quantized like any other.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import shown
from ..errors import NetworkFormatError, SnnhwError
from ..network.format import (Fire, Layer, Network, Neuron, Reset, ResetTiming, Rounding,
                              atomic_write)
from ..network.connectivity import Conv2d, ConvGeometry
from .quantize import FloatLayer, quantize

__all__ = ["DEFAULT_DT", "read_graph", "float_layers", "from_graph", "calibrate", "load_labels",
           "import_graph", "to_graph", "export_graph"]

#: snnTorch's export convention: a Leaky of beta is a LIF of tau = dt / (1 - beta), r = tau / dt.
DEFAULT_DT = 1e-4

_SYNAPSES = ("Linear", "Affine")
_CONV = "Conv2d"
_NEURONS = ("LIF", "IF")
_BACK_EDGE = "a LIF or IF -> Linear or Affine -> the same LIF or IF back edge"


def read_graph(path: str | os.PathLike):
    """Read a NIR file; raise one line naming it if it is not one."""
    import nir
    path = Path(path)
    if not path.is_file():
        raise SnnhwError(f"{path}: expected a NIR file, but it "
                         f"{'is not a file' if path.exists() else 'does not exist'}")
    try:
        # Our own checks name the node and field; NIR's type check would say less.
        return nir.read(path, type_check=False)
    except Exception as error:  # h5py and nir raise many kinds; all mean "not a NIR graph"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SnnhwError(f"{path}: not a NIR graph ({reason})") from None


def _inlined(graph, where: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The graph's nodes and edges with each NIRGraph node (a subgraph: snnTorch's RLeaky) replaced
    by its own nodes, named ``subgraph.node``, as nirtorch writes them flat."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entries: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        if type(node).__name__ != "NIRGraph":
            nodes[name] = node
            continue
        inner, inner_edges = _inlined(node, f"{where}: node {name!r}")
        ends = [[n for n, v in inner.items() if type(v).__name__ == kind]
                for kind in ("Input", "Output")]
        if [len(found) for found in ends] != [1, 1]:
            raise SnnhwError(f"{where}: node {name!r}: expected a subgraph with one Input and one "
                             f"Output node, got {len(ends[0])} and {len(ends[1])}")
        (first,), (last,) = ends
        entries[name] = [f"{name}.{t}" for s, t in inner_edges if s == first]
        exits[name] = [f"{name}.{s}" for s, t in inner_edges if t == last]
        nodes.update({f"{name}.{n}": v for n, v in inner.items() if n not in (first, last)})
        edges += [(f"{name}.{s}", f"{name}.{t}") for s, t in inner_edges
                  if first not in (s, t) and last not in (s, t)]
    for source, target in graph.edges:
        edges += [(s, t) for s in exits.get(source, [source])
                  for t in entries.get(target, [target])]
    return nodes, edges


def _flattens_all(node: Any) -> bool:
    """A Flatten of every (non-batch) dimension into one: channel-major as snnhw's neurons are."""
    dims = len(np.asarray((node.input_type or {}).get("input", [])).reshape(-1))
    return node.start_dim == 0 and node.end_dim in (-1, dims - 1)


def _chain(graph, where: str) -> tuple[list[tuple[str, Any]], dict[str, tuple[str, Any]]]:
    """The graph's nodes from Input to Output (Flatten nodes left out) and each recurrent neuron
    node's back edge (neuron name -> (synapse name, synapse)), or a one-line refusal naming the
    node."""
    nodes, edges = _inlined(graph, where)
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind == "CubaLIF":
            raise SnnhwError(f"{where}: node {name!r}: CubaLIF is not supported (snnhw's neuron "
                             f"has no synaptic current state)")
        if kind not in ("Input", "Output", "Flatten", *_SYNAPSES, _CONV, *_NEURONS):
            raise SnnhwError(f"{where}: node {name!r}: unknown node type {kind} (snnhw imports "
                             f"Input, Output, Linear, Affine, Conv2d, Flatten, LIF and IF, and "
                             f"subgraphs of them)")
    inputs = [name for name, node in nodes.items() if type(node).__name__ == "Input"]
    if len(inputs) != 1:
        raise SnnhwError(f"{where}: expected one Input node, got {len(inputs)}")
    successors: dict[str, list[str]] = {name: [] for name in nodes}
    predecessors: dict[str, list[str]] = {name: [] for name in nodes}
    for source, target in edges:
        for end in (source, target):
            if end not in nodes:
                raise SnnhwError(f"{where}: edge {source!r} -> {target!r}: no node {end!r}")
        successors[source].append(target)
        predecessors[target].append(source)
    # Recurrence: a Linear or Affine whose only input and only output is one LIF or IF.
    recurrent: dict[str, tuple[str, Any]] = {}
    for name, node in nodes.items():
        neuron = predecessors[name][0] if len(predecessors[name]) == 1 else None
        if (type(node).__name__ in _SYNAPSES and successors[name] == [neuron]
                and type(nodes[neuron]).__name__ in _NEURONS):
            if neuron in recurrent:
                raise SnnhwError(f"{where}: node {name!r}: a second back edge to {neuron!r} "
                                 f"(expected one recurrent Linear or Affine per neuron node)")
            recurrent[neuron] = (name, node)
            successors[neuron].remove(name)
            predecessors[neuron].remove(name)
    left_out = {name for name, _ in recurrent.values()}
    for name, node in nodes.items():
        if type(node).__name__ == "Flatten" and len(predecessors[name]) == 1 \
                and len(successors[name]) == 1:
            if not _flattens_all(node):
                raise SnnhwError(f"{where}: node {name!r}: expected a Flatten of every dimension "
                                 f"(start_dim 0, end_dim -1), got {node.start_dim}, "
                                 f"{node.end_dim}")
            (before,), (after,) = predecessors[name], successors[name]
            successors[before][successors[before].index(name)] = after
            predecessors[after][predecessors[after].index(name)] = before
            left_out.add(name)
    for name in nodes:
        if name not in left_out and (len(successors[name]) > 1 or len(predecessors[name]) > 1):
            raise SnnhwError(f"{where}: node {name!r}: the graph is not a chain (it has "
                             f"{len(predecessors[name])} inputs and {len(successors[name])} "
                             f"outputs; snnhw's only loops are {_BACK_EDGE})")
    chain, name, seen = [], inputs[0], set()
    while True:
        chain.append((name, nodes[name]))
        seen.add(name)
        if not successors[name]:
            break
        name = successors[name][0]
        if name in seen:
            raise SnnhwError(f"{where}: node {name!r}: the graph is not a chain (it has a cycle "
                             f"through this node; snnhw's only loops are {_BACK_EDGE})")
    if len(chain) != len(nodes) - len(left_out):
        missing = next(n for n in nodes if n not in dict(chain) and n not in left_out)
        raise SnnhwError(f"{where}: node {missing!r}: not on the chain from the Input node (the "
                         f"graph is not a chain)")
    if type(chain[-1][1]).__name__ != "Output":
        raise SnnhwError(f"{where}: node {chain[-1][0]!r}: expected the chain to end in an Output "
                         f"node")
    body = chain[1:-1]
    if not body:
        raise SnnhwError(f"{where}: expected at least one layer between Input and Output")
    for number, (name, node) in enumerate(body):
        expected = (*_SYNAPSES, _CONV) if number % 2 == 0 else _NEURONS
        if type(node).__name__ not in expected:
            raise SnnhwError(f"{where}: node {name!r}: expected {' or '.join(expected)} here "
                             f"(layers are a Linear, Affine or Conv2d followed by a LIF or IF), "
                             f"got {type(node).__name__}")
    if len(body) % 2:
        raise SnnhwError(f"{where}: node {body[-1][0]!r}: expected a LIF or IF after it")
    return chain, recurrent


def _array(where: str, value: Any, shape: tuple[int, ...] | None = None, *,
           infinite: bool = False) -> np.ndarray:
    """``value`` as float64 (broadcast to ``shape`` from a single value); NaN refused, and
    infinities unless ``infinite`` (LIF's tau and r: snnTorch writes beta = 1 as tau = r = inf)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SnnhwError(f"{where}: expected numbers, got {type(value).__name__}") from None
    if shape is not None:
        if array.size == 1:
            array = np.full(shape, float(array.reshape(-1)[0]))
        elif array.shape != shape:
            raise SnnhwError(f"{where}: expected shape {list(shape)}, got {list(array.shape)}")
    bad = np.isnan(array) if infinite else ~np.isfinite(array)
    if np.any(bad):
        raise SnnhwError(f"{where}: expected finite numbers, got {array[bad].ravel()[0]}")
    return array


def float_layers(graph, *, dt: float = DEFAULT_DT, reset: Reset | None = None,
                 reset_timing: ResetTiming | None = None, where: str = "graph"
                 ) -> tuple[list[FloatLayer], list[tuple[str, Any, str, Any, Any]]]:
    """The float layers of a NIR chain (module docstring), and each layer's (synapse node name,
    synapse node, neuron node name, neuron node, back-edge synapse node or None)."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0 < dt < np.inf:
        raise SnnhwError(f"dt: expected a number > 0, got {dt!r}")
    chain, recurrent = _chain(graph, where)
    input_where = f"{where}: node {chain[0][0]!r}.input_type"
    input_type = chain[0][1].input_type.get("input", [])
    # shape: (channels, height, width) where the previous node's output is an image, else None
    shape = _image(input_where, input_type) if np.size(input_type) == 3 else None
    size_in = int(np.prod(shape)) if shape else _size(input_where, input_type)
    layers, nodes = [], []
    body = chain[1:-1]
    used_names: set[str] = set()
    for number in range(0, len(body), 2):
        (syn_name, syn), (neu_name, neu) = body[number], body[number + 1]
        swhere, nwhere = f"{where}: node {syn_name!r}", f"{where}: node {neu_name!r}"
        back_name, back = recurrent.get(neu_name, (None, None))
        weight = _array(f"{swhere}.weight", syn.weight)
        conv = None
        if type(syn).__name__ == _CONV:
            if back is not None:
                raise SnnhwError(f"{where}: node {back_name!r}: expected no back edge to a "
                                 f"convolution's neuron node {neu_name!r} (snnhw's recurrent "
                                 f"layers are dense)")
            conv = _geometry(swhere, syn, weight, shape, size_in)
            size = Conv2d(np.zeros(weight.shape, np.int64), conv).size
            channel_bias = _array(f"{swhere}.bias", syn.bias, (weight.shape[0],))
            bias = np.repeat(channel_bias, size // weight.shape[0])
        else:
            if weight.ndim != 2:
                raise SnnhwError(f"{swhere}.weight: expected a 2-D [out, in] matrix, got shape "
                                 f"{list(weight.shape)}")
            if weight.shape[1] != size_in:
                raise SnnhwError(f"{swhere}.weight: expected {size_in} inputs (the previous "
                                 f"node's size), got shape {list(weight.shape)}")
            size = weight.shape[0]
            bias = _array(f"{swhere}.bias", syn.bias, (size,)) \
                if type(syn).__name__ == "Affine" else np.zeros(size)
        if back is not None:
            bwhere = f"{where}: node {back_name!r}"
            back_weight = _array(f"{bwhere}.weight", back.weight)
            if back_weight.shape != (size, size):
                raise SnnhwError(f"{bwhere}.weight: expected the square [{size}, {size}] "
                                 f"recurrent matrix of {neu_name!r}, got shape "
                                 f"{list(back_weight.shape)}")
            weight = np.concatenate([weight, back_weight], axis=1)
            if type(back).__name__ == "Affine":  # its bias reaches the neurons every step
                bias = bias + _array(f"{bwhere}.bias", back.bias, (size,))
        neuron_shape = Conv2d(weight, conv).output_shape if conv else (size,)

        def values(field: str, value: Any, infinite: bool = False) -> np.ndarray:
            return _array(f"{nwhere}.{field}", value, neuron_shape, infinite=infinite).reshape(-1)
        threshold = values("v_threshold", neu.v_threshold)
        if np.any(threshold <= 0):
            raise SnnhwError(f"{nwhere}.v_threshold: expected numbers > 0, got "
                             f"{threshold[threshold <= 0][0]:g}")
        v_reset = values("v_reset", getattr(neu, "v_reset", None) if
                         getattr(neu, "v_reset", None) is not None else 0.0)
        if np.any(v_reset != 0):
            raise SnnhwError(f"{nwhere}.v_reset: expected 0 (snnhw resets to 0 or by "
                             f"subtraction), got {v_reset[v_reset != 0][0]:g}")
        r = values("r", neu.r, infinite=type(neu).__name__ == "LIF")
        if type(neu).__name__ == "LIF":
            tau = values("tau", neu.tau, infinite=True)
            v_leak = values("v_leak", neu.v_leak)
            if np.any(v_leak != 0):
                raise SnnhwError(f"{nwhere}.v_leak: expected 0 (snnhw's neuron leaks towards "
                                 f"0), got {v_leak[v_leak != 0][0]:g}")
            if np.any(~(tau > 0)):
                raise SnnhwError(f"{nwhere}.tau: expected numbers > 0, got "
                                 f"{tau[~(tau > 0)][0]:g}")
            if np.any(tau < dt):
                raise SnnhwError(f"{nwhere}.tau: expected numbers >= dt ({dt:g}; beta = 1 - "
                                 f"dt / tau would be negative), got {tau[tau < dt][0]:g}")
            with np.errstate(invalid="ignore", divide="ignore"):
                beta = 1.0 - dt / tau
                gain = np.where(np.isinf(tau) & np.isinf(r), 1.0, r * dt / tau)
        else:
            beta, gain = np.ones(size), r
        if not np.all(np.isfinite(gain)):
            raise SnnhwError(f"{nwhere}.r: expected a finite input gain r * dt / tau, got "
                             f"{gain[~np.isfinite(gain)][0]}")
        if conv:  # the kernel is shared by a channel's positions: so must its gain be
            per_channel = gain.reshape(weight.shape[0], -1)
            if np.any(per_channel != per_channel[:, :1]):
                raise SnnhwError(f"{nwhere}.r: expected one input gain r * dt / tau per channel "
                                 f"(the Conv2d's kernel is shared across positions)")
            weight = weight * per_channel[:, 0, None, None, None]
        else:
            weight = weight * gain[:, None]
        default = f"{'conv' if conv else 'fc'}{number // 2 + 1}"
        name = syn_name if _is_layer_name(syn_name) and syn_name not in used_names else default
        used_names.add(name)
        exported = _exported_reset(neu)
        layers.append(FloatLayer(
            name=name, weight=weight, bias=bias * gain, beta=beta,
            threshold=threshold, reset=reset or exported.get("reset", Reset.ZERO),
            reset_timing=reset_timing or exported.get("reset_timing", ResetTiming.IMMEDIATE),
            fire=Fire.GT,
            kind="conv2d" if conv else "recurrent" if back is not None else "dense", conv=conv))
        nodes.append((syn_name, syn, neu_name, neu, back))
        size_in, shape = size, neuron_shape if conv else None
    out_where = f"{where}: node {chain[-1][0]!r}.output_type"
    size_out = _size(out_where, chain[-1][1].output_type.get("output", [size_in]))
    if size_out != size_in:
        raise SnnhwError(f"{out_where}: expected [{size_in}] (the last layer's size), got "
                         f"[{size_out}]")
    return layers, nodes


def _image(where: str, shape: Any) -> tuple[int, int, int]:
    """A (channels, height, width) NIR type (an image input's shape)."""
    values = _array(where, shape).reshape(-1)
    if values.size != 3 or np.any(values < 1) or np.any(values != np.round(values)):
        raise SnnhwError(f"{where}: expected a shape [channels, height, width], got "
                         f"{shown(values.tolist())}")
    return tuple(int(v) for v in values)


def _one_value(where: str, value: Any) -> int:
    """A stride or padding: one integer >= 0 for both axes (snnhw's ConvGeometry)."""
    values = np.asarray(value, dtype=object).reshape(-1)
    if values.size not in (1, 2) or len(set(values.tolist())) != 1 or \
            not isinstance(values[0], (int, np.integer)) or values[0] < 0:
        raise SnnhwError(f"{where}: expected one integer >= 0 for both axes, got "
                         f"{shown(np.asarray(value).tolist())}")
    return int(values[0])


def _geometry(where: str, conv: Any, kernel: np.ndarray, shape: tuple[int, int, int] | None,
              size_in: int) -> ConvGeometry:
    """Where a nir.Conv2d's kernel slides, checked against the previous node's output."""
    if kernel.ndim != 4 or kernel.shape[2] != kernel.shape[3]:
        raise SnnhwError(f"{where}.weight: expected a square kernel [out_channels, "
                         f"in_channels, K, K], got shape {list(kernel.shape)}")
    for field in ("dilation", "groups"):
        if _one_value(f"{where}.{field}", getattr(conv, field)) != 1:
            raise SnnhwError(f"{where}.{field}: expected 1, got "
                             f"{shown(np.asarray(getattr(conv, field)).tolist())}")
    stride = _one_value(f"{where}.stride", conv.stride)
    padding = _one_value(f"{where}.padding", conv.padding)
    if stride < 1:
        raise SnnhwError(f"{where}.stride: expected an integer >= 1, got {stride}")
    given = None if conv.input_shape is None else \
        tuple(int(v) for v in np.asarray(conv.input_shape).reshape(-1))
    if shape is None:  # after a flat node: the Conv2d's own input_shape says the image
        if given is None or len(given) != 2 or kernel.shape[1] * given[0] * given[1] != size_in:
            raise SnnhwError(f"{where}.input_shape: expected [height, width] with "
                             f"{kernel.shape[1]} x height x width = {size_in} (the previous "
                             f"node's size), got {given}")
        shape = (int(kernel.shape[1]), *given)
    elif kernel.shape[1] != shape[0] or given not in (None, shape[1:]):
        raise SnnhwError(f"{where}: expected a kernel of {shape[0]} input channels over "
                         f"{shape[1]} x {shape[2]} (the previous node's output "
                         f"{list(shape)}), got weight {list(kernel.shape)}, input_shape {given}")
    padded = min(shape[1:]) + 2 * padding
    if padded < kernel.shape[2]:
        raise SnnhwError(f"{where}.weight: expected a kernel of at most {padded} (the padded "
                         f"input), got {kernel.shape[2]}")
    return ConvGeometry(shape, stride, padding)


def _size(where: str, shape: Any) -> int:
    """The one dimension of a 1-D NIR type (an Input's or an Output's shape)."""
    values = _array(where, shape).reshape(-1)
    if values.size != 1 or not 1 <= values[0] <= 1 << 31 or values[0] != np.round(values[0]):
        raise SnnhwError(f"{where}: expected a 1-D shape [n], got {shown(values.tolist())}")
    return int(values[0])


def _is_layer_name(name: str) -> bool:
    import re
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)) and len(name) <= 64


def _exact_layer(floats: FloatLayer, syn: Any, neu: Any, back: Any) -> Layer | None:
    """The integer layer the metadata of an snnhw export describes, if the graph's parameters
    still say the same; else None."""
    meta_syn, meta_neu = getattr(syn, "metadata", {}) or {}, getattr(neu, "metadata", {}) or {}
    if "snnhw_index" not in meta_syn or "snnhw_neuron" not in meta_neu:
        return None
    try:
        fields = _neuron_fields(neu)
        layer = Layer(name=floats.name, index=np.asarray(meta_syn["snnhw_index"], np.int32),
                      codebook=tuple(int(c) for c in np.asarray(meta_syn["snnhw_codebook"])
                                     .reshape(-1)),
                      weight_bits=int(meta_syn["snnhw_weight_bits"]), neuron=Neuron(**fields),
                      kind=floats.kind, conv=floats.conv)
        weights = layer.connectivity.stored_weights(layer.codebook)
        size = layer.size
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    graph_weights = [np.asarray(syn.weight)] + ([np.asarray(back.weight)] if back else [])
    graph_bias = np.asarray(getattr(syn, "bias", np.zeros(size)), np.float64).reshape(-1)
    graph_bias = np.repeat(graph_bias, size // graph_bias.size)  # a Conv2d's: one per channel
    if back is not None:
        graph_bias = graph_bias + np.asarray(getattr(back, "bias", np.zeros(size))).reshape(-1)
    graph_weight = np.concatenate(graph_weights, axis=1)  # a recurrent layer's [ff | back edge]
    same = weights.shape == graph_weight.shape and np.array_equal(weights, graph_weight) \
        and np.array_equal(layer.neuron.values("threshold", size),
                           np.asarray(neu.v_threshold).reshape(-1)) \
        and np.array_equal(layer.neuron.values("bias", size), graph_bias)
    return layer if same else None


def _neuron_fields(neu) -> dict:
    """The :class:`~snnhw.network.Neuron` fields an snnhw export's neuron metadata holds (lists
    as tuples, enumerations as their members); raises KeyError, TypeError or ValueError where
    there is none or it does not parse."""
    fields = json.loads((getattr(neu, "metadata", {}) or {})["snnhw_neuron"])
    for field in ("threshold", "beta", "bias", "state_levels"):
        if isinstance(fields.get(field), list):
            fields[field] = tuple(fields[field])
    for field, kind in (("reset", Reset), ("fire", Fire), ("reset_timing", ResetTiming),
                        ("beta_rounding", Rounding)):
        if field in fields:
            fields[field] = kind(fields[field])
    return fields


def _exported_reset(neu) -> dict:
    """The ``reset`` and ``reset_timing`` an snnhw export's neuron metadata names, so that its
    float graph runs as the network it came from ({} without metadata that parses)."""
    try:
        fields = _neuron_fields(neu)
    except (KeyError, TypeError, ValueError):
        return {}
    return {field: fields[field] for field in ("reset", "reset_timing") if field in fields}


def from_graph(graph, *, name: str | None = None, timesteps: int | None = None,
               weight_bits: int = 8, codebook: int | None = None, beta_frac_bits: int = 16,
               beta_rounding: Rounding = Rounding.NEAREST, dt: float = DEFAULT_DT,
               reset: Reset | None = None, reset_timing: ResetTiming | None = None,
               where: str = "graph") -> Network:
    """The integer network of a NIR graph (module docstring). ``name`` and ``timesteps``
    default to the export's metadata, else ``nir`` and 16."""
    layers, nodes = float_layers(graph, dt=dt, reset=reset, reset_timing=reset_timing,
                                 where=where)
    meta = getattr(graph, "metadata", {}) or {}
    if name is None:
        name = str(meta.get("snnhw_name", "nir"))
    if timesteps is None:
        timesteps = int(meta.get("snnhw_timesteps", 16))
    exact = [_exact_layer(f, syn, neu, back) for f, (_, syn, _, neu, back) in zip(layers, nodes)]
    overridden = reset is not None or reset_timing is not None
    if all(layer is not None for layer in exact) and not overridden:
        net = Network(name=name, input_size=layers[0].external_fan_in, layers=exact,
                      timesteps=timesteps)
        try:
            net.validate(where)
            return net
        except NetworkFormatError:
            pass  # metadata that does not make a valid network: quantize the graph instead
    return quantize(layers, name=name, timesteps=timesteps, weight_bits=weight_bits,
                    codebook=codebook, beta_frac_bits=beta_frac_bits,
                    beta_rounding=beta_rounding, where=where)


def calibrate(graph, net: Network, inputs: np.ndarray, labels: np.ndarray | None = None, *,
              dt: float = DEFAULT_DT, reset: Reset | None = None,
              reset_timing: ResetTiming | None = None, where: str = "graph",
              source: str = "inputs") -> dict:
    """Run the float graph and its integer network ``net`` side by side on 0/1 ``inputs``:
    per-layer spike agreement, prediction agreement and, with ``labels``, both accuracies
    (what ``snnhw import --calibration`` writes to ``MODEL/import.json``)."""
    from ..golden import simulate
    from .quantize import agreement, simulate_float
    floats, _ = float_layers(graph, dt=dt, reset=reset, reset_timing=reset_timing, where=where)
    result = simulate(net, inputs)
    measured = agreement(simulate_float(floats, inputs),
                         [result.spikes[layer.name] for layer in net.layers])
    report = {"calibration": source, "samples": int(inputs.shape[0]),
              "layer_spike_agreement": dict(zip([layer.name for layer in net.layers],
                                                measured["layer_spike_agreement"])),
              "prediction_agreement": measured["prediction_agreement"]}
    if labels is not None:
        report["float_accuracy"] = float(np.mean(measured["float_predictions"] == labels))
        report["integer_accuracy"] = float(np.mean(measured["integer_predictions"] == labels))
    return report


def load_labels(path: str | os.PathLike, samples: int) -> np.ndarray:
    """Integer labels from a .npy file, one per sample; raise naming the file otherwise."""
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise SnnhwError(f"{path}: not a readable .npy array ({error})") from None
    if labels.dtype.kind not in "iu" or labels.shape != (samples,):
        raise SnnhwError(f"{path}: expected integer labels of shape [{samples}] (one per "
                         f"calibration sample), got {labels.dtype} {list(labels.shape)}")
    return labels


def import_graph(path: str | os.PathLike, **options) -> Network:
    """:func:`from_graph` of the NIR file at ``path`` (errors name the file)."""
    return from_graph(read_graph(path), where=str(path), **options)


def _neuron_metadata(neuron: Neuron) -> str:
    fields = {}
    for field in dataclasses.fields(Neuron):
        value = getattr(neuron, field.name)
        if hasattr(value, "value"):
            value = value.value
        elif isinstance(value, tuple):
            value = [int(v) for v in value]
        fields[field.name] = value
    return json.dumps(fields)


def _beta(neuron: Neuron, size: int) -> np.ndarray:
    """The float leak multiplier of each neuron (1 where it does not leak)."""
    if neuron.beta is not None:
        return neuron.values("beta", size) / float(1 << neuron.beta_frac_bits)
    return np.full(size, 1.0 - (2.0 ** -neuron.leak_shift if neuron.leak_shift else 0.0))


def _neuron_node(neuron: Neuron, shape: tuple[int, ...], dt: float):
    """A layer's IF (no leak) or LIF (snnTorch's convention) of parameter shape ``shape``."""
    import nir
    size = int(np.prod(shape))
    threshold = neuron.values("threshold", size).astype(np.float64).reshape(shape)
    beta = _beta(neuron, size).reshape(shape)
    metadata = {"snnhw_neuron": _neuron_metadata(neuron)}
    if np.all(beta == 1.0):
        return nir.IF(r=np.ones(shape), v_threshold=threshold, v_reset=np.zeros(shape),
                      metadata=metadata)
    with np.errstate(divide="ignore"):
        tau = dt / (1.0 - beta)
    return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(shape), v_threshold=threshold,
                   v_reset=np.zeros(shape), metadata=metadata)


def _synapse_node(layer: Layer):
    """A layer's Affine (Linear without bias) or Conv2d, its integer weights as floats."""
    import nir
    size, kernel = layer.size, layer.connectivity.stored_weights(layer.codebook)
    bias = layer.neuron.values("bias", size).astype(np.float64)
    metadata = {"snnhw_index": layer.index.astype(np.int32),
                "snnhw_codebook": np.asarray(layer.codebook, np.int64),
                "snnhw_weight_bits": int(layer.weight_bits)}
    if layer.kind == "conv2d":
        per_channel = bias.reshape(kernel.shape[0], -1)
        if np.any(per_channel != per_channel[:, :1]):
            raise SnnhwError(f"layer {layer.name}: neuron.bias: expected one value per output "
                             f"channel (NIR's Conv2d has one bias per channel)")
        geometry = layer.conv
        return nir.Conv2d(input_shape=geometry.input_shape[1:], weight=kernel.astype(np.float64),
                          stride=geometry.stride, padding=geometry.padding, dilation=1, groups=1,
                          bias=per_channel[:, 0], metadata=metadata)
    weight = kernel[:, :layer.external_fan_in].astype(np.float64)
    if np.any(bias):
        return nir.Affine(weight=weight, bias=bias, metadata=metadata)
    return nir.Linear(weight=weight, metadata=metadata)


def to_graph(net: Network, *, dt: float = DEFAULT_DT):
    """The NIR graph of ``net`` (module docstring)."""
    import nir
    first = net.layers[0]
    shape = first.conv.input_shape if first.kind == "conv2d" else (net.input_size,)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges, previous = [], "input"

    def flatten_before(name: str) -> None:  # an image output going into a flat node
        nonlocal previous
        if len(shape) == 3:
            nodes[f"{name}_flatten"] = nir.Flatten(input_type={"input": np.array(shape)},
                                                   start_dim=0, end_dim=-1)
            edges.append((previous, f"{name}_flatten"))
            previous = f"{name}_flatten"
    for layer in net.layers:
        if layer.kind != "conv2d":
            flatten_before(layer.name)
        shape = layer.connectivity.output_shape if layer.kind == "conv2d" else (layer.size,)
        neuron = _neuron_node(layer.neuron, shape, dt)
        if layer.kind == "recurrent":  # snnTorch's RLeaky: the neuron and its back edge
            weights = layer.dense_weights()[:, layer.external_fan_in:].astype(np.float64)
            neuron = nir.NIRGraph(
                nodes={"input": nir.Input(input_type={"input": np.array(shape)}),
                       "lif": neuron, "w_rec": nir.Linear(weight=weights),
                       "output": nir.Output(output_type={"output": np.array(shape)})},
                edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
        neuron_name = f"{layer.name}_neuron"
        nodes[layer.name], nodes[neuron_name] = _synapse_node(layer), neuron
        edges += [(previous, layer.name), (layer.name, neuron_name)]
        previous = neuron_name
    flatten_before("output")
    nodes["output"] = nir.Output(output_type={"output": np.array([net.output_size])})
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={"snnhw_name": net.name, "snnhw_timesteps": int(net.timesteps)})


def export_graph(net: Network, path: str | os.PathLike, *, dt: float = DEFAULT_DT) -> None:
    """Write ``net`` as a NIR file at ``path``, atomically."""
    import nir
    path = Path(path)
    graph = to_graph(net, dt=dt)
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    atomic_write(path, buffer.getvalue())
