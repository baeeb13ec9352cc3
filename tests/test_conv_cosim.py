"""Conv2d layers in hardware (stored unrolled): random conv -> dense networks co-simulated under
Verilator against the golden model, every spike and membrane potential, with input gaps and
back-pressure.

Each network is its own Verilator build, so the default run builds four: one hypothesis-drawn
network (fixed, derandomized) at each of P = 1, 2, 4, and one at P = 2 that is also checked
against a golden model with one kernel tap moved. The slow test draws more.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from snnhw.golden import simulate
from snnhw.plan import CorePlan
from snnhw.random_networks import random_inputs
from sim.runner import Simulator, compare
from conftest import assert_cosim_exact
from test_conv import conv_network, conv_networks, shifted_tap

pytestmark = pytest.mark.verilator


def _examples(count):
    return settings(max_examples=count, deadline=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def _check(net, lanes, gap, backpressure, seed, work):
    assert_cosim_exact(net, lanes, gap, backpressure, seed, work, samples=3,
                       rates=(0.1, 0.3, 0.6))


@pytest.mark.parametrize("lanes", [1, 2, 4])
@_examples(1)
@given(net=conv_networks(), gap=st.sampled_from([0.0, 0.4]),
       backpressure=st.sampled_from([0.0, 0.6]), seed=st.integers(0, 1000))
def test_random_conv_networks(tmp_path_factory, lanes, net, gap, backpressure, seed):
    _check(net, lanes, gap, backpressure, seed, tmp_path_factory.mktemp("conv"))


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [2, 3])
@_examples(3)
@given(net=conv_networks(), gap=st.sampled_from([0.0, 0.4]),
       backpressure=st.sampled_from([0.0, 0.6]), seed=st.integers(0, 1000))
def test_many_random_conv_networks(tmp_path_factory, lanes, net, gap, backpressure, seed):
    _check(net, lanes, gap, backpressure, seed, tmp_path_factory.mktemp("conv"))


@pytest.fixture(scope="module")
def strided_sim(tmp_path_factory):
    """Stride 2, padding 1, two input channels: taps that reach some outputs and not others."""
    rng = np.random.default_rng(5)
    net = conv_network(rng, 2, 6, 5, 3, 3, 2, 1, codebook_size=4, density=0.7)
    inputs = random_inputs(rng, net, samples=4, rate=0.3)
    golden = simulate(net, inputs)
    assert all(golden.spikes[name].any() for name in golden.spikes), "the test needs spikes"
    return net, inputs, Simulator(CorePlan.build(net, 2), tmp_path_factory.mktemp("strided"))


@pytest.mark.parametrize("gap,backpressure", [(0.0, 0.0), (0.5, 0.8)])
def test_gaps_and_backpressure(strided_sim, gap, backpressure):
    net, inputs, sim = strided_sim
    rtl, out_spikes, errors = sim.run(inputs, gap=gap, backpressure=backpressure, seed=3)
    assert errors == []
    assert compare(simulate(net, inputs), rtl, out_spikes) == []


def test_a_golden_model_with_one_tap_moved_fails(strided_sim):
    net, inputs, sim = strided_sim
    rtl, out_spikes, _ = sim.run(inputs, backpressure=0.5, seed=2)
    wrong = shifted_tap(net)
    assert (wrong.layers[0].connectivity.unrolled() != net.layers[0].connectivity.unrolled()).any()
    mismatches = compare(simulate(wrong, inputs), rtl, out_spikes)
    assert mismatches and mismatches[0].layer == "conv1"
