"""Version-2 neurons (snnTorch / NIR semantics) co-simulated under Verilator, bit for bit.

Networks from snnhw.frontends and random version-2 networks, with several lanes, idle input
cycles and output back-pressure: every spike and membrane potential of every layer at every
timestep equals the golden model's, and for snnTorch networks that are integer by construction
every spike equals snnTorch's own forward.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from snnhw.cli import main
from snnhw.network import Network
from snnhw.network.format import Fire, Reset, ResetTiming, Rounding
from snnhw.plan import CorePlan
from snnhw.random_networks import random_inputs, random_network
from snnhw.results import Result
from snnhw.sim.runner import cosim

pytestmark = pytest.mark.verilator


def mixed_network(seed: int) -> Network:
    """A random network whose layers use every version-2 feature between them."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, 12, [9, 7, 5], codebook_size=6, weight_bits=5, density=0.7,
                         v_bits=10, timesteps=6, state_levels=None)

    def per_neuron(lo, hi, size):
        return tuple(int(x) for x in rng.integers(lo, hi + 1, size))

    first, second, third = net.layers
    thr = first.neuron.threshold
    first.neuron = dataclasses.replace(
        first.neuron, fire=Fire.GT, reset_timing=ResetTiming.DEFERRED,
        threshold=per_neuron(max(1, thr // 2), thr * 2, first.size), bias=per_neuron(-3, 4, 9))
    second.neuron = dataclasses.replace(
        second.neuron, leak_shift=0, reset_timing=ResetTiming.IMMEDIATE_SNNTORCH,
        beta=per_neuron(200, 256, second.size), beta_bits=9, beta_frac_bits=8,
        beta_rounding=Rounding.NEAREST, bias=2)
    third.neuron = dataclasses.replace(
        third.neuron, leak_shift=0, reset=Reset.ZERO, reset_timing=ResetTiming.DEFERRED,
        fire=Fire.GT, beta=29, beta_bits=5, beta_frac_bits=5,
        state_levels=tuple(sorted({-512, -40, -7, 0, 3, 8, 15, 300, 511,
                                   third.neuron.threshold, third.neuron.threshold - 1})))
    net.validate()
    return net


def reset_none_network(seed: int) -> Network:
    """Reset none with per-neuron beta (floor) and bias, then per-neuron threshold and bias."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, 10, [8, 6], codebook_size=4, weight_bits=4, density=0.8,
                         v_bits=9, timesteps=5)
    first, second = net.layers
    first.neuron = dataclasses.replace(
        first.neuron, leak_shift=0, reset=Reset.NONE, beta=tuple(range(8, 16)), beta_bits=5,
        beta_frac_bits=4, bias=tuple(int(b) for b in rng.integers(-2, 3, first.size)))
    second.neuron = dataclasses.replace(
        second.neuron, threshold=tuple(int(t) for t in rng.integers(1, 20, second.size)),
        bias=tuple(int(b) for b in rng.integers(4, 12, second.size)))
    net.validate()
    return net


def _cosim(net: Network, inputs: np.ndarray, lanes: int, gap: float, backpressure: float,
           tmp_path):
    report = cosim(CorePlan.build(net, lanes), inputs, tmp_path / "work", gap=gap,
                   backpressure=backpressure, seed=lanes)
    assert report.errors == []
    assert report.mismatches == [], "\n".join(map(str, report.mismatches[:10]))
    for layer in net.layers:  # the comparison saw spikes in every layer
        assert report.rtl.spikes[layer.name].shape == report.golden.spikes[layer.name].shape
        assert report.golden.spikes[layer.name].sum() > 0, layer.name
    return report


@pytest.mark.parametrize("make,lanes,gap,backpressure", [
    (mixed_network, 3, 0.3, 0.5),
    (reset_none_network, 2, 0.0, 0.5),
])
def test_random_version_2_networks(make, lanes, gap, backpressure, tmp_path):
    net = make(seed=lanes)
    inputs = random_inputs(np.random.default_rng(lanes), net, samples=3, rate=0.4)
    _cosim(net, inputs, lanes, gap, backpressure, tmp_path)


def test_snntorch_networks(tmp_path):
    # A tutorial-style float network (beta 0.9, biases, deferred subtract) made integer, and
    # one integer by construction (per-neuron thresholds, deferred reset to zero) whose RTL
    # spikes are snnTorch's own.
    pytest.importorskip("snntorch")
    from test_frontend_snntorch import float_network, integer_network, snntorch_spikes

    from snnhw.frontends.snntorch import from_module
    inputs = (np.random.default_rng(7).random((3, 8, 20)) < 0.4).astype(np.uint8)
    floats = from_module(float_network(sizes=(20, 12, 6)), timesteps=8, weight_bits=8,
                         beta_frac_bits=10)
    assert floats.layers[0].neuron.beta is not None
    _cosim(floats, inputs, 2, 0.3, 0.5, tmp_path / "float")
    model = integer_network([20, 14, 6], reset="zero", reset_delay=True, seed=2,
                            per_neuron_threshold=True)
    exact = from_module(model, timesteps=8)
    report = _cosim(exact, inputs, 3, 0.0, 0.5, tmp_path / "exact")
    for layer, want in zip(exact.layers, snntorch_spikes(model, inputs)):
        assert np.array_equal(report.rtl.spikes[layer.name], want), layer.name


def test_cli_cosim_of_an_imported_nir_graph(tmp_path):
    # snnTorch -> NIR (snnTorch's own export) -> snnhw import -> snnhw cosim: exit 0, bit-exact.
    pytest.importorskip("nir")
    from test_frontend_nir import snntorch_export
    from test_frontend_snntorch import snntorch_spikes
    import nir

    model, graph = snntorch_export("subtract", True, seed=3)
    nir.write(tmp_path / "g.nir", graph)
    inputs = (np.random.default_rng(3).random((2, 10, 20)) < 0.4).astype(np.uint8)
    np.save(tmp_path / "x.npy", inputs)
    assert main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "m"), "--timesteps",
                 "10", "--reset", "subtract", "--reset-timing", "deferred"]) == 0
    assert main(["cosim", str(tmp_path / "m"), "--inputs", str(tmp_path / "x.npy"), "--out",
                 str(tmp_path / "r.npz"), "--lanes", "2"]) == 0
    rtl = Result.load(tmp_path / "r.npz")
    for name, want in zip(["fc1", "fc2"], snntorch_spikes(model, inputs)):
        assert want.sum() > 0
        assert np.array_equal(rtl.spikes[name], want), name
