"""Conv2d layers in hardware: random conv -> dense networks co-simulated under Verilator against
the golden model, every spike and membrane potential, with input gaps and back-pressure, the
conv layer in the kernel layout (the kernel stored once, the engine generating the targets).

Each network is its own Verilator build, so the default run (``-m "not slow"``) builds four: one
hypothesis-drawn network (fixed, derandomized) at each of P = 1, 2, 4, and one at P = 2 that is
also checked against a golden model with one kernel tap moved. The slow test draws more, also
with the conv layer stored unrolled (the delta layout: the engine of a dense layer, fed the
unrolled matrix, which tests/test_conv_plan.py shows equal to its dense twin's words).
Hypothesis tries the simplest draw first, so :func:`cosim_networks` orders its choices to make
that one a rich network (3x3 kernel, stride 2, padding 1, two channels, gaps and back-pressure).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from snnhw.golden import simulate
from snnhw.plan import CorePlan, Layout
from snnhw.random_networks import random_inputs
from sim.runner import Simulator, compare
from conftest import assert_cosim_exact, cosim_examples
from test_conv import conv_network, shifted_tap

pytestmark = pytest.mark.verilator


def _check(net, lanes, gap, backpressure, seed, work, layout=Layout.KERNEL):
    assert_cosim_exact(net, lanes, gap, backpressure, seed, work, samples=3,
                       rates=(0.3, 0.1, 0.6), layouts={"conv1": layout})


@st.composite
def cosim_networks(draw):
    """Conv -> dense networks (kernels 1-3, strides 1-2, padding 0-1), the simplest the richest."""
    kernel = 3 - draw(st.integers(0, 2))
    padding = 1 - draw(st.integers(0, 1))
    size = st.integers(0, 6 - max(1, kernel - 2 * padding)).map(lambda n: 6 - n)
    return conv_network(
        np.random.default_rng(draw(st.integers(0, 2**32 - 1))), 2 - draw(st.integers(0, 1)),
        draw(size), draw(size), 3 - draw(st.integers(0, 2)), kernel, 2 - draw(st.integers(0, 1)),
        padding, codebook_size=draw(st.sampled_from([4, 2, 1])),
        density=draw(st.sampled_from([0.7, 0.3, 1.0])))


@pytest.mark.parametrize("lanes", [1, 2, 4])
@cosim_examples(1)
@given(net=cosim_networks(), gap=st.sampled_from([0.4, 0.0]),
       backpressure=st.sampled_from([0.6, 0.0]), seed=st.integers(0, 1000))
def test_random_conv_networks(tmp_path_factory, lanes, net, gap, backpressure, seed):
    _check(net, lanes, gap, backpressure, seed, tmp_path_factory.mktemp("conv"))


@pytest.mark.slow
@pytest.mark.parametrize("lanes,layout", [(2, Layout.KERNEL), (3, Layout.KERNEL),
                                          (3, Layout.DELTA)])
@cosim_examples(3)
@given(net=cosim_networks(), gap=st.sampled_from([0.4, 0.0]),
       backpressure=st.sampled_from([0.6, 0.0]), seed=st.integers(0, 1000))
def test_many_random_conv_networks(tmp_path_factory, lanes, layout, net, gap, backpressure,
                                   seed):
    _check(net, lanes, gap, backpressure, seed, tmp_path_factory.mktemp("conv"), layout)


@pytest.fixture(scope="module")
def strided_sim(tmp_path_factory):
    """A 2x2 kernel at stride 1 over three channels of 5x4 (the drawn networks have 3x3 at
    stride 2), three output channels in two lanes."""
    rng = np.random.default_rng(5)
    net = conv_network(rng, 3, 5, 4, 3, 2, 1, 0, codebook_size=4, density=0.6)
    inputs = random_inputs(rng, net, samples=4, rate=0.3)
    golden = simulate(net, inputs)
    assert all(golden.spikes[name].any() for name in golden.spikes), "the test needs spikes"
    plan = CorePlan.build(net, 2)
    assert plan.layers[0].synapses.kind is Layout.KERNEL
    return net, inputs, Simulator(plan, tmp_path_factory.mktemp("strided"))


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
