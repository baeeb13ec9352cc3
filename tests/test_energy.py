"""The energy model: documented figures, and costs that follow the operations performed."""

import numpy as np
import pytest

from snnhw.energy import add_pj, energy_per_inference, read_pj
from snnhw.golden import simulate
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan


def test_published_figures():
    assert add_pj(8) == pytest.approx(0.03) and add_pj(32) == pytest.approx(0.1)
    assert read_pj(64, 8 * 1024 * 8) == pytest.approx(10.0)
    assert read_pj(64, 32 * 1024 * 8) == pytest.approx(20.0)
    assert read_pj(64, 1024 * 1024 * 8) == pytest.approx(100.0)
    assert read_pj(32, 32 * 1024 * 8) == pytest.approx(10.0)
    assert read_pj(64, 16) == pytest.approx(1.0)  # floor for tiny arrays


def test_energy_follows_spikes():
    net = random_network(np.random.default_rng(0), 32, [16, 4], density=0.5, timesteps=4)
    silent = np.zeros((2, 4, 32), np.uint8)
    busy = random_inputs(np.random.default_rng(1), net, samples=2, rate=0.5)
    plan = CorePlan.build(net, 1)
    quiet = energy_per_inference(plan, silent, simulate(net, silent))
    loud = energy_per_inference(plan, busy, simulate(net, busy))
    # Silence: only the neuron sweeps cost energy.
    assert quiet["by_kind_pj"]["synapse reads"] == 0 == quiet["by_kind_pj"]["accumulates"]
    assert quiet["by_kind_pj"]["neuron updates"] == loud["by_kind_pj"]["neuron updates"] > 0
    assert loud["total_pj"] > quiet["total_pj"]
    fc1 = loud["layers"][0]
    assert fc1["synapse_events"] == pytest.approx(
        (busy.sum(axis=1) @ (net.layers[0].index >= 0).sum(axis=0)).mean())


def test_version_2_neurons_cost_their_operations():
    # A beta multiply, a bias add and a pending reset cost more per update than the shift leak;
    # per-neuron parameters add a ROM read.
    import dataclasses

    from snnhw.energy import multiply_pj
    from snnhw.network.format import ResetTiming
    net = random_network(np.random.default_rng(0), 32, [16, 4], density=0.5, timesteps=4)
    inputs = np.zeros((1, 4, 32), np.uint8)

    def update_pj(**fields):
        changed = dataclasses.replace(net)
        changed.layers = [dataclasses.replace(net.layers[0], neuron=dataclasses.replace(
            net.layers[0].neuron, **fields)), net.layers[1]]
        plan = CorePlan.build(changed, 1)
        return energy_per_inference(plan, inputs, simulate(changed, inputs))["layers"][0]["pj"][
            "neuron updates"]

    v1 = update_pj()
    beta = update_pj(leak_shift=0, beta=200, beta_bits=9, beta_frac_bits=8)
    assert multiply_pj(8) == pytest.approx(0.2) and multiply_pj(32) == pytest.approx(3.1)
    assert beta > v1
    assert update_pj(bias=2) > v1 and update_pj(reset_timing=ResetTiming.DEFERRED) > v1
    assert update_pj(bias=tuple(range(16))) > update_pj(bias=2)
