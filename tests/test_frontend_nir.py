"""NIR graphs in and out (snnhw.frontends.nir, ``snnhw import`` / ``snnhw export``).

Exact round trips (``import(export(M)) == M``), snnTorch networks integer by construction through
snnTorch's own NIR export, and bad graphs: one line naming the node and field, exit 2, nothing
written.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from test_frontend_snntorch import integer_network, snntorch_spikes  # noqa: E402
from test_network_format import tiny_network, version_2_network  # noqa: E402
from snnhw.cli import main  # noqa: E402
from snnhw.frontends.nir import (export_graph, float_layers, from_graph, import_graph,  # noqa: E402
                                 to_graph)
from snnhw.frontends.quantize import simulate_float  # noqa: E402
from snnhw.golden import simulate  # noqa: E402
from snnhw.errors import SnnhwError  # noqa: E402
from snnhw.network import load, save  # noqa: E402
from snnhw.network.format import Fire, Reset, ResetTiming  # noqa: E402
from snnhw.random_networks import random_inputs, random_network  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_conv import conv_network, conv_networks  # noqa: E402
from test_recurrent import recurrent_networks  # noqa: E402


def same_network(a, b) -> bool:
    return (a.name, a.input_size, a.timesteps, len(a.layers)) == \
        (b.name, b.input_size, b.timesteps, len(b.layers)) and all(
        (x.name, x.kind, x.conv, x.codebook, x.weight_bits, x.neuron) ==
        (y.name, y.kind, y.conv, y.codebook, y.weight_bits, y.neuron)
        and np.array_equal(x.index, y.index) for x, y in zip(a.layers, b.layers))


def random_version_2_network(seed: int):
    rng = np.random.default_rng(seed)
    net = random_network(rng, 7, [6, 4], codebook_size=5, weight_bits=6, density=0.6, v_bits=12,
                         state_levels=4 if seed % 2 else None)
    if seed % 3:
        for layer in net.layers:
            layer.neuron = dataclasses.replace(
                layer.neuron, threshold=tuple(int(t) for t in rng.integers(1, 100, layer.size)),
                leak_shift=0, beta=int(rng.integers(0, 257)), beta_bits=9, beta_frac_bits=8,
                bias=tuple(int(b) for b in rng.integers(-5, 6, layer.size)))
    net.validate()
    return net


@pytest.mark.parametrize("net", [tiny_network(), version_2_network(),
                                 *[random_version_2_network(seed) for seed in range(6)]],
                         ids=["tiny", "version_2", *[f"random{seed}" for seed in range(6)]])
def test_import_of_export_is_the_same_network(tmp_path, net):
    export_graph(net, tmp_path / "g.nir")
    assert same_network(import_graph(tmp_path / "g.nir"), net)


def test_cli_round_trip(tmp_path, capsys):
    save(version_2_network(), tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "g.nir")]) == 0
    assert main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "back")]) == 0
    assert (tmp_path / "m" / "network.yaml").read_text() == \
        (tmp_path / "back" / "network.yaml").read_text()
    assert same_network(load(tmp_path / "back"), load(tmp_path / "m"))


def test_a_graph_edited_elsewhere_is_quantized_not_taken_from_the_metadata():
    net = tiny_network()
    graph = to_graph(net)
    graph.nodes["fc1"].weight = graph.nodes["fc1"].weight * 2  # a tool changed the weights
    back = from_graph(graph)
    assert np.array_equal(back.layers[0].dense_weights(), net.layers[0].dense_weights() * 2)


def snntorch_export(reset, reset_delay, seed):
    torch = pytest.importorskip("torch")
    pytest.importorskip("nirtorch")  # snnTorch's export_to_nir needs it
    from snntorch.export_nir import export_to_nir
    model = integer_network([20, 30, 10], reset=reset, reset_delay=reset_delay, seed=seed)
    twin = integer_network([20, 30, 10], reset=reset, reset_delay=reset_delay, seed=seed,
                           init_hidden=True)
    with np.errstate(divide="ignore"):  # snnTorch writes beta = 1 as tau = dt / 0
        graph = export_to_nir(twin, torch.zeros(20))
    return model, graph


@pytest.mark.parametrize("reset,reset_delay,timing", [
    ("subtract", True, ResetTiming.DEFERRED), ("subtract", False, ResetTiming.IMMEDIATE_SNNTORCH),
    ("zero", True, ResetTiming.DEFERRED), ("zero", False, ResetTiming.IMMEDIATE)])
def test_snntorch_export_is_exact_through_nir(tmp_path, reset, reset_delay, timing):
    # snnTorch's export drops the reset mechanism and reset_delay: the options give them back.
    model, graph = snntorch_export(reset, reset_delay, seed=3)
    nir.write(tmp_path / "g.nir", graph)
    net = import_graph(tmp_path / "g.nir", timesteps=25, reset=Reset(reset), reset_timing=timing)
    inputs = (np.random.default_rng(3).random((40, 25, 20)) < 0.4).astype(np.uint8)
    got = simulate(net, inputs)
    for layer, want in zip(net.layers, snntorch_spikes(model, inputs)):
        assert want.sum() > 0
        assert np.array_equal(got.spikes[layer.name], want), layer.name


def test_nir_semantics_without_metadata_are_reset_to_zero_at_once(tmp_path):
    # NIR's own LIF / IF: v > v_threshold, then v = 0 in the same step. An snnTorch network with
    # reset to zero and reset_delay=False is exactly that, with no options at all.
    model, graph = snntorch_export("zero", False, seed=4)
    net = from_graph(graph, timesteps=25)
    inputs = (np.random.default_rng(4).random((40, 25, 20)) < 0.4).astype(np.uint8)
    got = simulate(net, inputs)
    for layer, want in zip(net.layers, snntorch_spikes(model, inputs)):
        assert np.array_equal(got.spikes[layer.name], want), layer.name


def test_snntorch_import_nir_reads_our_export():
    # snnTorch's import_nir needs one threshold per layer (version_2_network has one per
    # neuron); it reads LIF as a Leaky with reset to zero at once, IF as beta 0.9 (docs/nir.md).
    snn_import = pytest.importorskip("snntorch.import_nir")
    net = tiny_network()
    module = snn_import.import_from_nir(to_graph(net))
    names = [name for name, _ in module.named_children()]
    assert names == ["fc1", "fc1_neuron", "fc2", "fc2_neuron"]


def test_calibration_report(tmp_path, capsys):
    _, graph = snntorch_export("zero", False, seed=5)
    nir.write(tmp_path / "g.nir", graph)
    inputs = (np.random.default_rng(5).random((30, 25, 20)) < 0.4).astype(np.uint8)
    np.save(tmp_path / "x.npy", inputs)
    np.save(tmp_path / "y.npy", np.arange(30) % 10)
    assert main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "m"), "--timesteps",
                 "25", "--calibration", str(tmp_path / "x.npy"), "--labels",
                 str(tmp_path / "y.npy")]) == 0
    report = json.loads((tmp_path / "m" / "import.json").read_text())
    assert report["prediction_agreement"] == 1.0
    assert report["layer_spike_agreement"] == {"fc1": 1.0, "fc2": 1.0}
    assert report["float_accuracy"] == report["integer_accuracy"]
    assert "predictions 1.0000; accuracy" in capsys.readouterr().out


# -- bad graphs ----------------------------------------------------------------------------------


def chain(*nodes, edges=None, metadata=None):
    """Input(3) -> nodes... -> Output, named n0, n1, ..."""
    names = [f"n{k}" for k in range(len(nodes))]
    size = 2
    all_nodes = {"input": nir.Input(input_type={"input": np.array([3])}),
                 **dict(zip(names, nodes)),
                 "output": nir.Output(output_type={"output": np.array([size])})}
    order = ["input", *names, "output"]
    return nir.NIRGraph(nodes=all_nodes, edges=edges or list(zip(order, order[1:])),
                        metadata=metadata or {}, type_check=False)


def affine(weight=None, bias=None):
    return nir.Affine(weight=np.ones((2, 3)) if weight is None else weight,
                      bias=np.zeros(2) if bias is None else bias)


def lif(**fields):
    values = dict(tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.zeros(2),
                  v_threshold=np.ones(2), v_reset=np.zeros(2))
    values.update(fields)
    return nir.LIF(**values)


BAD = {
    "cuba": (lambda: chain(affine(), nir.CubaLIF(
        tau_mem=np.ones(2), tau_syn=np.ones(2), r=np.ones(2), v_leak=np.zeros(2),
        v_threshold=np.ones(2))), "node 'n1': CubaLIF is not supported (snnhw's neuron has no "
                                  "synaptic current state)"),
    "unknown": (lambda: chain(affine(), nir.LI(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2))),
                "node 'n1': unknown node type LI (snnhw imports Input, Output, Linear, Affine, "
                "Conv2d, Flatten, LIF and IF, and subgraphs of them)"),
    "branch": (lambda: chain(affine(), lif(), edges=[("input", "n0"), ("n0", "n1"),
                                                     ("n1", "output"), ("n1", "n0")]),
               "node 'n0': the graph is not a chain (it has 2 inputs and 1 outputs; snnhw's only "
               "loops are a LIF or IF -> Linear or Affine -> the same LIF or IF back edge)"),
    "cycle": (lambda: chain(affine(), lif(), edges=[("input", "n0"), ("n0", "n1"),
                                                    ("n1", "input")]),
              "node 'input': the graph is not a chain (it has a cycle through this node; snnhw's "
              "only loops are a LIF or IF -> Linear or Affine -> the same LIF or IF back edge)"),
    "shape": (lambda: chain(affine(weight=np.ones((2, 4))), lif()),
              "node 'n0'.weight: expected 3 inputs (the previous node's size), got shape [2, 4]"),
    "bias shape": (lambda: chain(affine(bias=np.zeros(3)), lif()),
                   "node 'n0'.bias: expected shape [2], got [3]"),
    "nan": (lambda: chain(affine(weight=np.array([[1, np.nan, 0], [0, 0, 1]])), lif()),
            "node 'n0'.weight: expected finite numbers, got nan"),
    "inf": (lambda: chain(affine(), lif(v_threshold=np.array([1.0, np.inf]))),
            "node 'n1'.v_threshold: expected finite numbers, got inf"),
    "tau": (lambda: chain(affine(), lif(tau=np.array([1e-3, 0.0]))),
            "node 'n1'.tau: expected numbers > 0, got 0"),
    "threshold": (lambda: chain(affine(), lif(v_threshold=np.array([1.0, -1.0]))),
                  "node 'n1'.v_threshold: expected numbers > 0, got -1"),
    "v_leak": (lambda: chain(affine(), lif(v_leak=np.array([0.0, 0.5]))),
               "node 'n1'.v_leak: expected 0 (snnhw's neuron leaks towards 0), got 0.5"),
    "v_reset": (lambda: chain(affine(), lif(v_reset=np.array([0.0, -0.5]))),
                "node 'n1'.v_reset: expected 0 (snnhw resets to 0 or by subtraction), got -0.5"),
    "order": (lambda: chain(lif(), affine()), "node 'n0': expected Linear or Affine or Conv2d "
                                              "here (layers are a Linear, Affine or Conv2d "
                                              "followed by a LIF or IF), got LIF"),
}


def test_not_a_nir_file(tmp_path, capsys):
    path = tmp_path / "g.nir"
    path.write_text("hello\n")
    assert main(["import", str(path), "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"snnhw: error: {path}: not a NIR graph (") and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_docs_example_runs(monkeypatch, capsys):
    import re
    docs = (Path(__file__).resolve().parent.parent / "docs" / "nir.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/nir.md", "exec"), {})
    out = capsys.readouterr().out
    assert "agree on 2560 spikes" in out
    assert "rnn: ['recurrent', 'dense']" in out and "cnn: ['conv2d', 'dense']" in out
    assert out.count("every spike equal: True") == 2


def test_import_of_export_of_random_networks():
    # The golden model's property-test networks: version 1 and version 2 neurons of every kind.
    import tempfile

    from hypothesis import HealthCheck, given, settings

    from test_golden import networks_and_inputs

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(networks_and_inputs())
    def round_trip(case):
        net, _ = case
        with tempfile.TemporaryDirectory() as work:
            export_graph(net, Path(work) / "g.nir")
            assert same_network(import_graph(Path(work) / "g.nir"), net)

    round_trip()


# -- recurrent and conv2d layers -----------------------------------------------------------------


def without_metadata(graph):
    """The graph as another tool would write it: NIR's own parameters only."""
    for node in graph.nodes.values():
        node.metadata = {}
        if isinstance(node, nir.NIRGraph):
            without_metadata(node)
    return graph


@st.composite
def recurrent_or_conv_networks(draw):
    """The recurrent and conv2d property-test networks of test_recurrent / test_conv, a conv
    layer sometimes with a bias per channel, sometimes with no leak."""
    net = draw(st.one_of(recurrent_networks(), conv_networks()))
    if draw(st.booleans()):
        net.layers = [dataclasses.replace(layer, neuron=dataclasses.replace(
            layer.neuron, leak_shift=0)) for layer in net.layers]
    first = net.layers[0]
    if first.kind == "conv2d" and draw(st.booleans()):
        channels = first.connectivity.output_shape[0]
        bias = np.repeat(np.arange(channels) - 1, first.size // channels)
        first.neuron = dataclasses.replace(first.neuron, bias=tuple(int(b) for b in bias))
    net.validate()
    return net


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recurrent_or_conv_networks())
def test_import_of_export_of_recurrent_and_conv_networks(net):
    import tempfile
    with tempfile.TemporaryDirectory() as work:
        export_graph(net, Path(work) / "g.nir")
        back = import_graph(Path(work) / "g.nir")
    assert same_network(back, net)
    # The wrong models: the same graph with the recurrence or a kernel tap changed.
    layer = net.layers[0]
    index = layer.index.copy()
    index[(0,) * index.ndim] = -1 if index[(0,) * index.ndim] >= 0 else 0
    assert not same_network(back, dataclasses.replace(
        net, layers=[dataclasses.replace(layer, index=index), *net.layers[1:]]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recurrent_or_conv_networks(), st.integers(0, 1000))
def test_nir_parameters_alone_give_the_same_spikes(net, seed):
    # Without the metadata the importer reads NIR's own nodes (the back edge, the Conv2d and
    # its Flatten) and quantizes them: with no leak (the leak shift is not a NIR parameter) the
    # integer network fires exactly as the exported one (NIR's neurons fire on v > threshold).
    net.layers = [dataclasses.replace(layer, neuron=dataclasses.replace(
        layer.neuron, leak_shift=0, state_levels=None, v_bits=24, fire=Fire.GT))
        for layer in net.layers]
    net.validate()
    neuron = net.layers[0].neuron
    graph = without_metadata(to_graph(net))
    back = from_graph(graph, reset=neuron.reset, reset_timing=neuron.reset_timing,
                      timesteps=net.timesteps)
    assert [layer.kind for layer in back.layers] == [layer.kind for layer in net.layers]
    inputs = random_inputs(np.random.default_rng(seed), net, samples=6, rate=0.4)
    want, got = simulate(net, inputs), simulate(back, inputs)
    # ... and so do the float layers (what `snnhw import --calibration` runs)
    floats, _ = float_layers(graph, reset=neuron.reset, reset_timing=neuron.reset_timing)
    for mine, theirs, in_float in zip(net.layers, back.layers, simulate_float(floats, inputs)):
        assert np.array_equal(got.spikes[theirs.name], want.spikes[mine.name]), mine.name
        assert np.array_equal(in_float, want.spikes[mine.name]), mine.name
    # With snnhw's metadata and no override, the float layers reset as the export names.
    floats, _ = float_layers(to_graph(net))
    assert [f.reset for f in floats] == [layer.neuron.reset for layer in net.layers]
    for mine, in_float in zip(net.layers, simulate_float(floats, inputs)):
        assert np.array_equal(in_float, want.spikes[mine.name]), mine.name


def test_export_writes_snntorchs_recurrent_subgraph_and_a_conv2d(tmp_path):
    rng = np.random.default_rng(1)
    recurrent = random_network(rng, 5, [4, 3], recurrent=[True, False])
    graph = to_graph(recurrent)
    subgraph = graph.nodes["fc1_neuron"]
    assert isinstance(subgraph, nir.NIRGraph)
    assert sorted(subgraph.edges) == [("input", "lif"), ("lif", "output"), ("lif", "w_rec"),
                                      ("w_rec", "lif")]
    assert np.array_equal(subgraph.nodes["w_rec"].weight,
                          recurrent.layers[0].dense_weights()[:, 5:])
    conv = conv_network(rng, 2, 5, 5, 3, 3, 2, 1)
    graph = to_graph(conv)
    assert isinstance(graph.nodes["conv1"], nir.Conv2d)
    assert graph.nodes["conv1"].stride == (2, 2) and graph.nodes["conv1"].padding == (1, 1)
    assert ("conv1_neuron", "fc2_flatten") in graph.edges
    assert ("fc2_flatten", "fc2") in graph.edges
    nir.write(tmp_path / "g.nir", graph)  # NIR's own writer and reader take both
    assert same_network(import_graph(tmp_path / "g.nir"), conv)


def test_export_refuses_a_conv_bias_that_differs_within_a_channel(tmp_path, capsys):
    net = conv_network(np.random.default_rng(2), 1, 4, 4, 2, 3, 1, 1)
    layer = net.layers[0]
    layer.neuron = dataclasses.replace(layer.neuron, bias=tuple(range(layer.size)))
    save(net, tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "-o", str(tmp_path / "g.nir")]) == 2
    assert capsys.readouterr().err == (
        "snnhw: error: layer conv1: neuron.bias: expected one value per output channel (NIR's "
        "Conv2d has one bias per channel)\n")
    assert not (tmp_path / "g.nir").exists()


def rleaky_network(seed, sizes=(12, 10, 4)):
    """Linear -> RLeaky(all_to_all) -> Linear -> Leaky with integer weights and biases, beta 1,
    reset to zero at once (NIR's own neuron), and its twin of init_hidden for the export."""
    import snntorch as snn
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(seed)

    def build(init_hidden):
        first, second = torch.nn.Linear(sizes[0], sizes[1]), torch.nn.Linear(sizes[1], sizes[2])
        rleaky = snn.RLeaky(beta=torch.ones(sizes[1]), threshold=torch.full((sizes[1],), 4.0),
                            all_to_all=True, linear_features=sizes[1], reset_mechanism="zero",
                            reset_delay=False, init_hidden=init_hidden)
        leaky = snn.Leaky(beta=torch.ones(sizes[2]), threshold=torch.full((sizes[2],), 3.0),
                          reset_mechanism="zero", reset_delay=False, init_hidden=init_hidden)
        return torch.nn.Sequential(first, rleaky, second, leaky)
    model = build(False)
    with torch.no_grad():
        for linear in (model[0], model[1].recurrent, model[2]):
            linear.weight.copy_(torch.randint(-2, 4, linear.weight.shape, generator=g).float())
            linear.bias.copy_(torch.randint(-1, 2, linear.bias.shape, generator=g).float())
    twin = build(True)
    twin.load_state_dict(model.state_dict())
    return model, twin


def rleaky_spikes(model, inputs):
    """Both layers' spikes [samples, timesteps, size] from snnTorch's own forward."""
    import torch
    first, rleaky, second, leaky = model
    out = [[], []]
    with torch.no_grad():
        x = torch.from_numpy(inputs[:, 0]).float()
        spk, mem = torch.zeros(x.shape[0], rleaky.linear_features), None
        mem = torch.zeros_like(spk)
        mem2 = None
        for t in range(inputs.shape[1]):
            spk, mem = rleaky(first(torch.from_numpy(inputs[:, t]).float()), spk, mem)
            current = second(spk)
            mem2 = torch.zeros_like(current) if mem2 is None else mem2
            spk2, mem2 = leaky(current, mem2)
            out[0].append(spk.numpy().astype(np.uint8))
            out[1].append(spk2.numpy().astype(np.uint8))
    return [np.stack(spikes, axis=1) for spikes in out]


@pytest.mark.parametrize("seed", [0, 1])
def test_snntorch_rleaky_export_is_exact_through_nir(tmp_path, seed):
    pytest.importorskip("nirtorch")
    torch = pytest.importorskip("torch")
    from snntorch.export_nir import export_to_nir
    model, twin = rleaky_network(seed)
    with np.errstate(divide="ignore"):  # snnTorch writes beta = 1 as tau = dt / 0
        graph = export_to_nir(twin, torch.zeros(12))
    assert ("1.lif", "1.w_rec") in graph.edges  # nirtorch writes the back edge flat
    nir.write(tmp_path / "g.nir", graph)
    net = import_graph(tmp_path / "g.nir", timesteps=20)
    assert [layer.kind for layer in net.layers] == ["recurrent", "dense"]
    inputs = (np.random.default_rng(seed).random((30, 20, 12)) < 0.4).astype(np.uint8)
    got = simulate(net, inputs)
    for layer, want in zip(net.layers, rleaky_spikes(model, inputs)):
        assert want.sum() > 0
        assert np.array_equal(got.spikes[layer.name], want), layer.name
    # The wrong model: the recurrence dropped, snnTorch's spikes differ.
    index = net.layers[0].index.copy()
    index[:, 12:] = -1
    dropped = simulate(dataclasses.replace(net, layers=[dataclasses.replace(
        net.layers[0], index=index), net.layers[1]]), inputs)
    assert not np.array_equal(dropped.spikes[net.layers[0].name],
                              rleaky_spikes(model, inputs)[0])


def snntorch_conv_network(seed, init_hidden):
    """Conv2d(1 -> 3, 3x3, stride 2, padding 1) -> Leaky -> Flatten -> Linear(48 -> 4) -> Leaky on
    8x8 images, integer weights and biases, beta 1, reset to zero at once (NIR's own neuron)."""
    import snntorch as snn
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(seed)

    def leaky(shape, threshold):
        return snn.Leaky(beta=torch.ones(shape), threshold=torch.full(shape, threshold),
                         reset_mechanism="zero", reset_delay=False, init_hidden=init_hidden)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, stride=2, padding=1),
                                leaky((3, 4, 4), 2.0), torch.nn.Flatten(), torch.nn.Linear(48, 4),
                                leaky((4,), 3.0))
    with torch.no_grad():
        for layer in (model[0], model[3]):
            layer.weight.copy_(torch.randint(-1, 3, layer.weight.shape, generator=g).float())
            layer.bias.copy_(torch.randint(-1, 2, layer.bias.shape, generator=g).float())
    return model


def test_snntorch_conv_export_is_exact_through_nir(tmp_path):
    pytest.importorskip("nirtorch")
    torch = pytest.importorskip("torch")
    from snntorch.export_nir import export_to_nir
    model, twin = snntorch_conv_network(0, False), snntorch_conv_network(0, True)
    with np.errstate(divide="ignore"):  # snnTorch writes beta = 1 as tau = dt / 0
        graph = export_to_nir(twin, torch.zeros(1, 1, 8, 8), ignore_dims=[0])
    nir.write(tmp_path / "g.nir", graph)
    net = import_graph(tmp_path / "g.nir", timesteps=12)
    assert [layer.kind for layer in net.layers] == ["conv2d", "dense"]
    inputs = (np.random.default_rng(0).random((30, 12, 64)) < 0.4).astype(np.uint8)
    conv_layer, leaky, flatten, linear, leaky2 = model
    want, mems = [[], []], [None, None]
    with torch.no_grad():
        for t in range(inputs.shape[1]):
            current = conv_layer(torch.from_numpy(inputs[:, t]).float().reshape(-1, 1, 8, 8))
            mems[0] = torch.zeros_like(current) if mems[0] is None else mems[0]
            spk, mems[0] = leaky(current, mems[0])
            current = linear(flatten(spk))
            mems[1] = torch.zeros_like(current) if mems[1] is None else mems[1]
            spk2, mems[1] = leaky2(current, mems[1])
            want[0].append(flatten(spk).numpy().astype(np.uint8))
            want[1].append(spk2.numpy().astype(np.uint8))
    got = simulate(net, inputs)
    for layer, spikes in zip(net.layers, want):
        assert np.stack(spikes, axis=1).sum() > 0
        assert np.array_equal(got.spikes[layer.name], np.stack(spikes, axis=1)), layer.name
    # The wrong model: the kernel read with x and y swapped fires otherwise.
    swapped = dataclasses.replace(net.layers[0], index=net.layers[0].index.transpose(0, 1, 3, 2))
    assert not np.array_equal(simulate(dataclasses.replace(net, layers=[swapped, net.layers[1]]),
                                       inputs).spikes[swapped.name], np.stack(want[0], axis=1))


def conv(weight, input_shape=(1, 3), stride=1, padding=0, dilation=1, bias=None):
    weight = np.asarray(weight, np.float64)
    return nir.Conv2d(input_shape=input_shape, weight=weight, stride=stride, padding=padding,
                      dilation=dilation, groups=1,
                      bias=np.zeros(weight.shape[0]) if bias is None else bias)


def edited(node, **fields):
    """``node`` with fields set after NIR's own checks (which fail on a stride of 0)."""
    for field, value in fields.items():
        setattr(node, field, value)
    return node


BAD_RC = {
    "back edge shape": (lambda: chain(affine(), lif(), nir.Linear(weight=np.ones((2, 3))), edges=[
        ("input", "n0"), ("n0", "n1"), ("n1", "output"), ("n1", "n2"), ("n2", "n1")]),
        "node 'n2'.weight: expected the square [2, 2] recurrent matrix of 'n1', got shape "
        "[2, 3]"),
    "conv channels": (lambda: chain(conv(np.ones((2, 2, 1, 1))), lif()),
                      "node 'n0'.input_shape: expected [height, width] with 2 x height x width "
                      "= 3 (the previous node's size), got (1, 3)"),
    "stride per axis": (lambda: chain(conv(np.ones((2, 1, 1, 1)), stride=(1, 2)), lif()),
                        "node 'n0'.stride: expected one integer >= 0 for both axes, got [1, 2]"),
    "dilation": (lambda: chain(conv(np.ones((2, 1, 1, 1)), dilation=2), lif()),
                 "node 'n0'.dilation: expected 1, got [2, 2]"),
    "kernel": (lambda: chain(conv(np.ones((2, 1, 2, 2))), lif()),
               "node 'n0'.weight: expected a kernel of at most 1 (the padded input), got 2"),
    "flatten": (lambda: chain(affine(), lif(), nir.Flatten(
        input_type={"input": np.array([2])}, start_dim=1)),
        "node 'n2': expected a Flatten of every dimension (start_dim 0, end_dim -1), got 1, -1"),
    "conv back edge": (lambda: chain(conv(np.ones((2, 1, 1, 1))), lif(),
                                     nir.Linear(weight=np.ones((6, 6))), edges=[
        ("input", "n0"), ("n0", "n1"), ("n1", "output"), ("n1", "n2"), ("n2", "n1")]),
        "node 'n2': expected no back edge to a convolution's neuron node 'n1' (snnhw's "
        "recurrent layers are dense)"),
}


ALL_BAD = {**BAD, **BAD_RC}


@pytest.mark.parametrize("case", sorted(ALL_BAD))
def test_bad_graphs_are_one_line_and_write_nothing(tmp_path, capsys, case):
    make, message = ALL_BAD[case]
    path = tmp_path / "g.nir"
    nir.write(path, make())
    status = main(["import", str(path), "-o", str(tmp_path / "m")])
    assert (status, capsys.readouterr().err) == (2, f"snnhw: error: {path}: {message}\n")
    assert not (tmp_path / "m").exists()


def test_a_stride_of_0_is_one_line():
    # NIR's reader fails on it itself ("not a NIR graph"); a graph built in memory reaches ours.
    graph = chain(edited(conv(np.ones((2, 1, 1, 1))), stride=0), lif())
    with pytest.raises(SnnhwError) as error:
        from_graph(graph)
    assert str(error.value) == "graph: node 'n0'.stride: expected an integer >= 1, got 0"
