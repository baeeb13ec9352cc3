"""The optional state codebook (neuron.state_levels): format, golden model, memory report."""

from dataclasses import replace

import numpy as np
import pytest
import yaml

from snnhw.plan import CorePlan, core_report
from snnhw.errors import NetworkFormatError
from snnhw.golden.model import lif_step, snap_to_levels
from snnhw.network import load, save
from snnhw.random_networks import random_network


@pytest.fixture
def model(tmp_path):
    net = random_network(np.random.default_rng(0), 6, [5], v_bits=8)
    net.layers[0].neuron = replace(net.layers[0].neuron, state_levels=(-20, 0, 3, 9, 12))
    save(net, tmp_path / "m")
    return tmp_path / "m"


def test_round_trip(model):
    assert load(model).layers[0].neuron.state_levels == (-20, 0, 3, 9, 12)


@pytest.mark.parametrize("levels,message", [
    ([0, 3, 3], "state_levels[2]: expected a level above the previous one (3), got 3"),
    ([-1, 5], "state_levels: expected a list that contains 0 (every sample starts from V = 0), "
              "got [-1, 5]"),
    ([0, 128], "state_levels[1]: expected an integer in -128..127 (v_bits 8), got 128"),
    ([0], "state_levels: expected a list of 2..256 integers, got (0,)"),
    ("0, 1", "state_levels: expected a list of integers, got '0, 1'"),
])
def test_bad_levels(model, levels, message):
    path = model / "network.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["layers"][0]["neuron"]["state_levels"] = levels
    path.write_text(yaml.safe_dump(manifest))
    with pytest.raises(NetworkFormatError) as error:
        load(model)
    assert str(error.value) == f"{path}: layers[0] (fc1).neuron.{message}"


def test_snap_is_nearest_with_ties_to_the_lower_level():
    levels = (-8, 0, 4, 5, 10)
    v = np.array([-9, -4, -3, 2, 3, 4, 5, 7, 8, 30])
    assert snap_to_levels(v, levels).tolist() == [-8, -8, 0, 0, 4, 4, 5, 5, 10, 10]


def test_snap_comes_after_the_reset(model):
    layer = load(model).layers[0]
    layer.neuron = replace(layer.neuron, threshold=10, leak_shift=0)
    # 0 + 11 = 11 >= 10: spike, subtract -> 1, snapped to 0; 0 + 7 = 7: no spike, snapped to 9.
    v, spikes = lif_step(np.array([0, 0]), np.array([11, 7]), layer)
    assert v.tolist() == [0, 9] and spikes.tolist() == [True, False]


def test_membrane_memory_holds_level_indices(model):
    fc1 = core_report(CorePlan.build(load(model), 1)).to_json()["layers"][0]
    assert fc1["memory_bits"]["membrane"] == 5 * 3  # 5 levels -> 3-bit indices, 5 neurons
