"""NIR graphs in and out (the Neuromorphic Intermediate Representation, ``pip install nir``).

Import reads a chain ``Input -> (Linear | Affine -> LIF | IF)* -> Output`` into float layers
(:class:`~snnhw.frontends.quantize.FloatLayer`) and quantizes them. NIR's neurons, discretised
with the step ``dt`` (NIR has none; snnTorch's export convention ``dt = 1e-4`` by default):

* ``LIF``: ``tau dv/dt = (v_leak - v) + r I`` with forward Euler gives
  ``v_t = beta v_{t-1} + g I_t``, ``beta = 1 - dt / tau``, ``g = r dt / tau`` (``g = 1`` where
  ``tau`` and ``r`` are both infinite: snnTorch's export of beta = 1, ``r = tau / dt``);
* ``IF``: ``dv/dt = r I`` gives ``v_t = v_{t-1} + r I_t`` (the gain is ``r``, as snnTorch and
  Sinabs read it);
* both fire on ``v > v_threshold`` and then set ``v = v_reset`` in the same step: reset to zero,
  immediate. NIR carries no reset mechanism (snnTorch's export drops it), so ``reset`` and
  ``reset_timing`` may override it (``subtract`` / ``deferred`` for an snnTorch Leaky).

The gain ``g`` is folded into the weights and bias before quantization. ``v_leak`` and
``v_reset`` other than 0, ``CubaLIF`` and every other node type are refused by name.

Export writes each layer as ``Affine`` (``Linear`` without bias) with the integer weights and an
``IF`` (no leak) or ``LIF`` (``tau = dt / (1 - beta)``, ``r = tau / dt``: snnTorch's convention)
with the integer threshold, and keeps what NIR cannot say (codebook and index, v_bits, reset,
timing, firing comparison, rounding, state levels) in the nodes' ``metadata``. Import uses that
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
from .quantize import FloatLayer, quantize

__all__ = ["DEFAULT_DT", "read_graph", "float_layers", "from_graph", "calibrate", "load_labels",
           "import_graph", "to_graph", "export_graph"]

#: snnTorch's export convention: a Leaky of beta is a LIF of tau = dt / (1 - beta), r = tau / dt.
DEFAULT_DT = 1e-4

_SYNAPSES = ("Linear", "Affine")
_NEURONS = ("LIF", "IF")


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


def _chain(graph, where: str) -> list[tuple[str, Any]]:
    """The graph's nodes from Input to Output, or a one-line refusal naming the node."""
    nodes, edges = graph.nodes, list(graph.edges)
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind == "CubaLIF":
            raise SnnhwError(f"{where}: node {name!r}: CubaLIF is not supported (snnhw's neuron "
                             f"has no synaptic current state)")
        if kind not in ("Input", "Output", *_SYNAPSES, *_NEURONS):
            raise SnnhwError(f"{where}: node {name!r}: unknown node type {kind} (snnhw imports "
                             f"Input, Output, Linear, Affine, LIF and IF)")
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
    for name in nodes:
        if len(successors[name]) > 1 or len(predecessors[name]) > 1:
            raise SnnhwError(f"{where}: node {name!r}: the graph is not a chain (it has "
                             f"{len(predecessors[name])} inputs and {len(successors[name])} "
                             f"outputs; snnhw has no recurrent or branching layers yet)")
    chain, name, seen = [], inputs[0], set()
    while True:
        chain.append((name, nodes[name]))
        seen.add(name)
        if not successors[name]:
            break
        name = successors[name][0]
        if name in seen:
            raise SnnhwError(f"{where}: node {name!r}: the graph is not a chain (it has a cycle "
                             f"through this node; snnhw has no recurrent layers yet)")
    if len(chain) != len(nodes):
        missing = next(n for n in nodes if n not in dict(chain))
        raise SnnhwError(f"{where}: node {missing!r}: not on the chain from the Input node (the "
                         f"graph is not a chain)")
    if type(chain[-1][1]).__name__ != "Output":
        raise SnnhwError(f"{where}: node {chain[-1][0]!r}: expected the chain to end in an Output "
                         f"node")
    body = chain[1:-1]
    if not body:
        raise SnnhwError(f"{where}: expected at least one layer between Input and Output")
    for number, (name, node) in enumerate(body):
        expected = _SYNAPSES if number % 2 == 0 else _NEURONS
        if type(node).__name__ not in expected:
            raise SnnhwError(f"{where}: node {name!r}: expected {' or '.join(expected)} here "
                             f"(layers are a Linear or Affine followed by a LIF or IF), got "
                             f"{type(node).__name__}")
    if len(body) % 2:
        raise SnnhwError(f"{where}: node {body[-1][0]!r}: expected a LIF or IF after it")
    return chain


def _array(where: str, value: Any, shape: tuple[int, ...] | None = None, *,
           infinite: bool = False) -> np.ndarray:
    """``value`` as float64 (broadcast to ``shape`` from a single value); NaN refused, and
    infinities unless ``infinite`` (LIF's tau and r: snnTorch writes beta = 1 as tau = r = inf)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SnnhwError(f"{where}: expected numbers, got {type(value).__name__}") from None
    if shape is not None:
        if array.size == 1 and len(shape) == 1:
            array = np.full(shape, float(array.reshape(-1)[0]))
        elif array.shape != shape:
            raise SnnhwError(f"{where}: expected shape {list(shape)}, got {list(array.shape)}")
    bad = np.isnan(array) if infinite else ~np.isfinite(array)
    if np.any(bad):
        raise SnnhwError(f"{where}: expected finite numbers, got {array[bad].ravel()[0]}")
    return array


def float_layers(graph, *, dt: float = DEFAULT_DT, reset: Reset | None = None,
                 reset_timing: ResetTiming | None = None, where: str = "graph"
                 ) -> tuple[list[FloatLayer], list[tuple[str, Any, str, Any]]]:
    """The float layers of a NIR chain (module docstring), and each layer's (synapse node name,
    synapse node, neuron node name, neuron node)."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not 0 < dt < np.inf:
        raise SnnhwError(f"dt: expected a number > 0, got {dt!r}")
    chain = _chain(graph, where)
    size_in = _size(f"{where}: node {chain[0][0]!r}.input_type",
                    chain[0][1].input_type.get("input", []))
    layers, nodes = [], []
    body = chain[1:-1]
    used_names: set[str] = set()
    for number in range(0, len(body), 2):
        (syn_name, syn), (neu_name, neu) = body[number], body[number + 1]
        swhere, nwhere = f"{where}: node {syn_name!r}", f"{where}: node {neu_name!r}"
        weight = _array(f"{swhere}.weight", syn.weight)
        if weight.ndim != 2:
            raise SnnhwError(f"{swhere}.weight: expected a 2-D [out, in] matrix, got shape "
                             f"{list(weight.shape)}")
        if weight.shape[1] != size_in:
            raise SnnhwError(f"{swhere}.weight: expected {size_in} inputs (the previous node's "
                             f"size), got shape {list(weight.shape)}")
        size = weight.shape[0]
        bias = _array(f"{swhere}.bias", syn.bias, (size,)) if type(syn).__name__ == "Affine" \
            else np.zeros(size)
        threshold = _array(f"{nwhere}.v_threshold", neu.v_threshold, (size,))
        if np.any(threshold <= 0):
            raise SnnhwError(f"{nwhere}.v_threshold: expected numbers > 0, got "
                             f"{threshold[threshold <= 0][0]:g}")
        v_reset = _array(f"{nwhere}.v_reset", getattr(neu, "v_reset", None) if
                         getattr(neu, "v_reset", None) is not None else 0.0, (size,))
        if np.any(v_reset != 0):
            raise SnnhwError(f"{nwhere}.v_reset: expected 0 (snnhw resets to 0 or by "
                             f"subtraction), got {v_reset[v_reset != 0][0]:g}")
        r = _array(f"{nwhere}.r", neu.r, (size,), infinite=type(neu).__name__ == "LIF")
        if type(neu).__name__ == "LIF":
            tau = _array(f"{nwhere}.tau", neu.tau, (size,), infinite=True)
            v_leak = _array(f"{nwhere}.v_leak", neu.v_leak, (size,))
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
        name = syn_name if _is_layer_name(syn_name) and syn_name not in used_names \
            else f"fc{number // 2 + 1}"
        used_names.add(name)
        layers.append(FloatLayer(
            name=name, weight=weight * gain[:, None], bias=bias * gain, beta=beta,
            threshold=threshold, reset=reset or Reset.ZERO,
            reset_timing=reset_timing or ResetTiming.IMMEDIATE, fire=Fire.GT))
        nodes.append((syn_name, syn, neu_name, neu))
        size_in = size
    out_where = f"{where}: node {chain[-1][0]!r}.output_type"
    size_out = _size(out_where, chain[-1][1].output_type.get("output", [size_in]))
    if size_out != size_in:
        raise SnnhwError(f"{out_where}: expected [{size_in}] (the last layer's size), got "
                         f"[{size_out}]")
    return layers, nodes


def _size(where: str, shape: Any) -> int:
    """The one dimension of a 1-D NIR type (an Input's or an Output's shape)."""
    values = _array(where, shape).reshape(-1)
    if values.size != 1 or not 1 <= values[0] <= 1 << 31 or values[0] != np.round(values[0]):
        raise SnnhwError(f"{where}: expected a 1-D shape [n], got {shown(values.tolist())}")
    return int(values[0])


def _is_layer_name(name: str) -> bool:
    import re
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)) and len(name) <= 64


def _exact_layer(floats: FloatLayer, syn: Any, neu: Any) -> Layer | None:
    """The integer layer the metadata of an snnhw export describes, if the graph's parameters
    still say the same; else None."""
    meta_syn, meta_neu = getattr(syn, "metadata", {}) or {}, getattr(neu, "metadata", {}) or {}
    if "snnhw_index" not in meta_syn or "snnhw_neuron" not in meta_neu:
        return None
    try:
        fields = json.loads(meta_neu["snnhw_neuron"])
        for field in ("threshold", "beta", "bias", "state_levels"):
            if isinstance(fields.get(field), list):
                fields[field] = tuple(fields[field])
        for field, kind in (("reset", Reset), ("fire", Fire), ("reset_timing", ResetTiming),
                            ("beta_rounding", Rounding)):
            if field in fields:
                fields[field] = kind(fields[field])
        layer = Layer(name=floats.name, index=np.asarray(meta_syn["snnhw_index"], np.int32),
                      codebook=tuple(int(c) for c in np.asarray(meta_syn["snnhw_codebook"])
                                     .reshape(-1)),
                      weight_bits=int(meta_syn["snnhw_weight_bits"]), neuron=Neuron(**fields))
        weights = layer.dense_weights()
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    same = (weights.shape == np.shape(syn.weight)
            and np.array_equal(weights, np.asarray(syn.weight))
            and np.array_equal(layer.neuron.values("threshold", layer.size),
                               np.asarray(neu.v_threshold).reshape(-1))
            and np.array_equal(layer.neuron.values("bias", layer.size),
                               np.asarray(getattr(syn, "bias", np.zeros(layer.size)))
                               .reshape(-1)))
    return layer if same else None


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
    exact = [_exact_layer(f, syn, neu) for f, (_, syn, _, neu) in zip(layers, nodes)]
    overridden = reset is not None or reset_timing is not None
    if all(layer is not None for layer in exact) and not overridden:
        net = Network(name=name, input_size=int(layers[0].weight.shape[1]), layers=exact,
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


def to_graph(net: Network, *, dt: float = DEFAULT_DT):
    """The NIR graph of ``net`` (module docstring)."""
    import nir
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([net.input_size])})}
    edges, previous = [], "input"
    for layer in net.layers:
        if layer.kind != "dense":  # a recurrent layer needs NIR's back edge: not written yet
            raise SnnhwError(f"layer {layer.name}: NIR export writes dense layers only, not "
                             f"kind {layer.kind!r}")
        neuron, size = layer.neuron, layer.size
        weight = layer.dense_weights().astype(np.float64)
        bias = neuron.values("bias", size).astype(np.float64)
        syn_meta = {"snnhw_index": layer.index.astype(np.int32),
                    "snnhw_codebook": np.asarray(layer.codebook, np.int64),
                    "snnhw_weight_bits": int(layer.weight_bits)}
        if np.any(bias):
            syn = nir.Affine(weight=weight, bias=bias, metadata=syn_meta)
        else:
            syn = nir.Linear(weight=weight, metadata=syn_meta)
        threshold = neuron.values("threshold", size).astype(np.float64)
        beta = _beta(neuron, size)
        neu_meta = {"snnhw_neuron": _neuron_metadata(neuron)}
        if np.all(beta == 1.0):
            neu = nir.IF(r=np.ones(size), v_threshold=threshold, v_reset=np.zeros(size),
                         metadata=neu_meta)
        else:
            with np.errstate(divide="ignore"):
                tau = dt / (1.0 - beta)
            neu = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(size), v_threshold=threshold,
                          v_reset=np.zeros(size), metadata=neu_meta)
        neuron_name = f"{layer.name}_neuron"
        nodes[layer.name], nodes[neuron_name] = syn, neu
        edges += [(previous, layer.name), (layer.name, neuron_name)]
        previous = neuron_name
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
