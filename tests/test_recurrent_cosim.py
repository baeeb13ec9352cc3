"""Recurrent layers in hardware: random recurrent networks co-simulated under Verilator against the
golden model, every spike and every membrane potential, with input gaps and back-pressure.

Each network is its own Verilator build (~10 s or more), so the hypothesis-drawn networks are
few and fixed (derandomized): hypothesis draws the simplest example first, and
:func:`test_recurrent.recurrent_networks` orders its choices to make that one busy (two layers,
gaps and back-pressure). The slow test draws more.
"""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from snnhw.golden import simulate
from snnhw.plan import CorePlan
from snnhw.random_networks import random_inputs, random_network
from snnhw.sim.runner import Simulator, compare, cosim
from conftest import assert_cosim_exact, cosim_examples
from test_recurrent import recurrent_networks, without_recurrence

pytestmark = pytest.mark.verilator


def _check(net, lanes, gap, backpressure, seed, work):
    assert_cosim_exact(net, lanes, gap, backpressure, seed, work, samples=3,
                       rates=(0.3, 0.1, 0.6))


@pytest.mark.parametrize("lanes", [1, 2, 4])
@cosim_examples(1)
@given(net=recurrent_networks(), gap=st.sampled_from([0.4, 0.0]),
       backpressure=st.sampled_from([0.6, 0.0]), seed=st.integers(0, 1000))
def test_random_recurrent_networks(tmp_path_factory, lanes, net, gap, backpressure, seed):
    _check(net, lanes, gap, backpressure, seed, tmp_path_factory.mktemp("rec"))


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [2, 3])
@cosim_examples(3)
@given(net=recurrent_networks(), gap=st.sampled_from([0.4, 0.0]),
       backpressure=st.sampled_from([0.6, 0.0]), seed=st.integers(0, 1000))
def test_many_random_recurrent_networks(tmp_path_factory, lanes, net, gap, backpressure, seed):
    _check(net, lanes, gap, backpressure, seed, tmp_path_factory.mktemp("rec"))


@pytest.fixture(scope="module")
def busy():
    """Two recurrent layers and a dense one, whose feedback changes the spikes of each."""
    rng = np.random.default_rng(11)
    while True:
        net = random_network(rng, 12, [14, 9, 4], density=0.6, timesteps=7,
                             recurrent=[True, False, True], state_levels=None)
        inputs = random_inputs(rng, net, samples=4, rate=0.3)
        golden, dropped = simulate(net, inputs), simulate(without_recurrence(net), inputs)
        if all((golden.spikes[n] != dropped.spikes[n]).any() for n in ("fc1", "fc3")):
            return net, inputs


@pytest.fixture(scope="module")
def busy_sim(busy, tmp_path_factory):
    plan = CorePlan.build(busy[0], 2)
    # Lane balancing reorders both recurrent fc1 (its rows and own columns) and fc2.
    assert [lp.order is not None for lp in plan.layers] == [True, True, False]
    return Simulator(plan, tmp_path_factory.mktemp("busy"))


@pytest.mark.parametrize("gap,backpressure", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.8), (0.5, 0.8)])
def test_gaps_and_backpressure(busy, busy_sim, gap, backpressure):
    net, inputs = busy
    rtl, out_spikes, errors = busy_sim.run(inputs, gap=gap, backpressure=backpressure, seed=5)
    assert errors == []
    assert compare(simulate(net, inputs), rtl, out_spikes) == []


def test_a_golden_model_without_the_recurrence_fails(busy, busy_sim):
    net, inputs = busy
    rtl, out_spikes, _ = busy_sim.run(inputs, backpressure=0.5, seed=2)
    mismatches = compare(simulate(without_recurrence(net), inputs), rtl, out_spikes)
    assert mismatches and mismatches[0].layer == "fc1"


@pytest.fixture(scope="module")
def chatty():
    """A recurrent layer whose neurons mostly fire: more own spikes per timestep than its output
    queue holds, so each sweep stalls until the merger has fed its spikes back."""
    rng = np.random.default_rng(0)
    net = random_network(rng, 6, [40, 5], density=0.7, timesteps=8, recurrent=[True, False])
    net.layers[0] = replace(net.layers[0], codebook=(-3, 2, 5, 7))  # mostly excitatory
    return net, random_inputs(rng, net, samples=6, rate=0.3)


def test_own_spikes_beyond_the_output_queue(chatty, tmp_path):
    """Several such samples in one harness run: a merger that closed timestep t + 1 before the
    own eot of t (the engine then waits in DRAIN for a sweep that waits on the merger) hangs."""
    net, inputs = chatty
    plan = CorePlan.build(net, 2)
    own_spikes = simulate(net, inputs).spikes["fc1"]
    own = own_spikes.sum(axis=2)
    assert own.max() > 2 * plan.layers[0].queue_depth
    assert (simulate(without_recurrence(net), inputs).spikes["fc1"] != own_spikes).any()
    report = cosim(plan, inputs, tmp_path)
    assert report.errors == []
    assert report.mismatches == [], "\n".join(map(str, report.mismatches[:10]))
