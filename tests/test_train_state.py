"""Threshold-centred state quantization (SQUAT): the levels, and torch == golden on every V.

The state levels are a pure function (``snnhw.train.state.threshold_levels``) with checkable
properties; the torch integer mode snaps V to them exactly as the golden model does (ties to the
lower level, after the reset), which is checked on every spike and every membrane potential of
random networks with state levels and of a trained model exported with ``scheme: threshold``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from snnhw.golden import simulate
from snnhw.golden.model import snap_to_levels as golden_snap
from snnhw.network import Reset, load
from snnhw.random_networks import random_inputs, random_network
from snnhw.cli.train import summary
from snnhw.train.export import exact_run, to_network
from snnhw.train.model import SNN, from_network, snap_to_levels
from snnhw.train.pipeline import compress, finish, prepare
from snnhw.train.quant import make_quantizer
from snnhw.train.recipe import (RecipeError, StateScheme, StateStage, load_recipe,
                                parse_recipe)
from snnhw.train.state import (ThresholdLevels, min_threshold_for, rounded_snntorch_levels,
                               snntorch_levels, threshold_levels)

EXAMPLE = Path(__file__).parent.parent / "examples" / "recipes" / "digits_state_threshold4.yaml"


def assert_same_spikes_and_v(net, model, inputs):
    """Every spike and every V after every timestep, torch integer mode vs the golden model."""
    golden = simulate(net, inputs)
    spikes, v = exact_run(model, inputs)
    assert list(spikes) == list(golden.spikes) == list(v)
    for name in golden.spikes:
        assert golden.spikes[name].any(), f"{name} never fires: the comparison would be vacuous"
        np.testing.assert_array_equal(spikes[name], golden.spikes[name], err_msg=name)
        np.testing.assert_array_equal(v[name], golden.v_trace[name], err_msg=name)
    return golden


# -- the levels ---------------------------------------------------------------------------------


def gaps_away_from_threshold(levels, threshold):
    """(gaps below θ counted downward from θ, gaps above θ counted upward)."""
    levels = np.asarray(levels)
    below, above = levels[levels < threshold], levels[levels >= threshold]
    return np.diff(below)[::-1], np.diff(above)


RANGES = [(64, 16, 0.0, 0.2), (100, 16, 0.5, 0.2), (300, 12, 0.0, 1.0), (255, 10, 0.0, 0.2),
          (64, 8, 1.0, 1.0)]  # the last is clipped to the 8-bit V range


@pytest.mark.parametrize("bits, threshold, v_bits, lower, upper", [
    (bits, max(threshold, min_threshold_for(bits, lower, upper)), v_bits, lower, upper)
    for bits in range(2, 9) for threshold, v_bits, lower, upper in RANGES
    if max(threshold, min_threshold_for(bits, lower, upper)) < 1 << (v_bits - 1)])
def test_threshold_levels_properties(bits, threshold, v_bits, lower, upper):
    v_min, v_max = -(1 << (v_bits - 1)), (1 << (v_bits - 1)) - 1
    levels = threshold_levels(bits, threshold, v_bits, lower, upper)
    assert len(levels) == 1 << bits
    assert all(isinstance(level, int) for level in levels)
    assert list(levels) == sorted(set(levels))  # sorted and distinct
    assert 0 in levels
    bottom = max(v_min, -round(threshold * (1 + lower)))
    top = min(v_max, round(threshold * (1 + upper)))
    assert bottom <= levels[0] and levels[-1] <= top
    assert levels[0] == bottom  # the codes reach the bottom of the range
    assert threshold - 1 in levels  # the last state that does not fire yet
    # Denser near θ: on both sides gaps never shrink moving away from θ, and they do grow.
    down, up = gaps_away_from_threshold(levels, threshold)
    assert np.all(np.diff(down) >= 0) and np.all(np.diff(up) >= 0), (down, up)
    assert down[0] < down[-1]


def test_levels_match_the_snntorch_shape_where_the_grid_allows():
    """On a grid fine enough for no code to collapse, snnhw's levels are SQUAT's, rounded."""
    ours = np.array(threshold_levels(3, 4096, 24, ratio=0.5))
    paper = snntorch_levels(3, ratio=0.5) * 4096
    # 0 is pinned and the gaps are whole integers, so compare the shape: the gaps away from θ.
    ours_down, _ = gaps_away_from_threshold(ours, 4096)
    paper_down, _ = gaps_away_from_threshold(paper, 4096)
    np.testing.assert_allclose(ours_down[1:4] / ours_down[:3], paper_down[1:4] / paper_down[:3],
                               rtol=0.02)


@pytest.mark.parametrize("bits", [3, 4, 5, 6, 7, 8])
def test_rounding_snntorch_levels_wastes_codes_and_ours_keeps_them_all(bits):
    threshold = max(64, min_threshold_for(bits))
    rounded = rounded_snntorch_levels(bits, threshold, 16)
    assert len(rounded) < (1 << bits)  # the paper's known weakness on an integer grid
    assert 0 in rounded and list(rounded) == sorted(set(rounded))  # still a valid codebook
    assert len(set(threshold_levels(bits, threshold, 16))) == 1 << bits
    assert ThresholdLevels(bits, rounded=True)(threshold, 16) == rounded


def test_the_4_bit_levels_at_threshold_64():
    """The levels docs/training.md quotes, spelled out."""
    assert threshold_levels(4, 64, 16) == (-64, 0, 30, 44, 51, 54, 55, 56, 57, 58, 59, 60, 61,
                                           62, 63, 64)
    assert rounded_snntorch_levels(4, 64, 16) == (-64, 0, 32, 48, 56, 60, 62, 63, 64)


def test_levels_that_cannot_fit_name_the_threshold_needed():
    with pytest.raises(ValueError, match="raise the threshold to at least 256"):
        threshold_levels(8, 64, 16)
    with pytest.raises(ValueError, match="2..8 bits"):
        threshold_levels(9, 4096, 24)


# -- snapping -----------------------------------------------------------------------------------


def test_torch_snap_equals_golden_snap_including_ties():
    rng = np.random.default_rng(0)
    levels = np.array([-64, -10, 0, 4, 7, 30, 31, 64])
    midpoints = (levels[:-1] + levels[1:]) / 2
    v = np.concatenate([np.arange(-200, 200), midpoints[midpoints == np.floor(midpoints)],
                        rng.integers(-1000, 1000, 500)]).astype(np.int64)
    expected = golden_snap(v, tuple(levels))
    assert golden_snap(np.array([-37, 2, 19]), tuple(levels)).tolist() == [-64, 0, 30]
    for dtype in (torch.float64, torch.float32):
        ours = snap_to_levels(torch.tensor(v, dtype=dtype), torch.tensor(levels, dtype=dtype))
        np.testing.assert_array_equal(ours.numpy().astype(np.int64), expected)


def random_levels(rng, neuron, count):
    """Sorted, distinct, even levels (so that some midpoints are integers: ties) with 0."""
    span = min(2 * neuron.threshold, neuron.v_max) // 2
    pool = 2 * np.arange(max(neuron.v_min // 2, -span), span + 1)
    pool = pool[pool != 0]
    chosen = rng.choice(pool, size=min(count, pool.size) - 1, replace=False)
    return tuple(int(level) for level in np.sort(np.append(chosen, 0)))


@pytest.mark.parametrize("seed", range(6))
def test_random_networks_with_state_levels_match_golden_on_every_v(seed):
    rng = np.random.default_rng(100 + seed)
    v_bits = [6, 8, 12][seed % 3]
    while True:  # redraw until every layer fires and the levels change some V
        net = random_network(rng, 12, [10, 7, 4], density=[1.0, 0.6][seed % 2], v_bits=v_bits,
                             leak_shift=[0, 1, 3][seed % 3], weight_bits=5,
                             reset=[Reset.SUBTRACT, Reset.ZERO][seed % 2])
        plain = simulate(net, inputs := random_inputs(rng, net, samples=40, timesteps=20,
                                                      rate=0.4))
        for layer in net.layers:
            count = int(rng.choice([2, 4, 16, 64, 256]))
            layer.neuron = replace(layer.neuron,
                                   state_levels=random_levels(rng, layer.neuron, count))
        net.validate("random")
        golden = simulate(net, inputs)
        fires = all(s.any() for s in golden.spikes.values())
        if fires and any((golden.v_trace[k] != plain.v_trace[k]).any() for k in plain.v_trace):
            break
    model = from_network(net)
    assert_same_spikes_and_v(net, model, inputs)
    for layer in net.layers:  # V only ever holds a level
        assert np.isin(golden.v_trace[layer.name], layer.neuron.state_levels).all()
    # The float32 path used in training computes the same spikes as the float64 check.
    out32 = model.run(torch.from_numpy(inputs.astype(np.float32)))
    for s32, (name, s64) in zip(out32, exact_run(model, inputs)[0].items()):
        np.testing.assert_array_equal(s32.detach().numpy(), s64, err_msg=name)


@pytest.mark.parametrize("bits", [2, 4, 6])
@pytest.mark.parametrize("reset", [Reset.SUBTRACT, Reset.ZERO])
def test_quantized_model_with_threshold_levels_exports_bit_exact(bits, reset):
    torch.manual_seed(bits)
    model = SNN([16, 12, 5], leak_shift=2, v_bits=12, reset=reset, min_threshold=64)
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.mul_(3.0)
    for layer in model.layers:
        layer.quantizer = make_quantizer(4)
        layer.state_scheme = ThresholdLevels(bits)
    net = to_network(model, "q", timesteps=12)
    for layer in net.layers:
        assert layer.neuron.state_levels == threshold_levels(bits, layer.neuron.threshold, 12)
    inputs = (np.random.default_rng(1).random((64, 12, 16)) < 0.5).astype(np.uint8)
    assert_same_spikes_and_v(net, model, inputs)


def test_float_layer_snaps_to_levels_in_threshold_units_with_a_straight_through_gradient():
    torch.manual_seed(0)
    model = SNN([16, 8], leak_shift=3, min_threshold=64)
    layer = model.layers[0]
    layer.state_scheme, layer.keep_v = ThresholdLevels(3), True
    inputs = (torch.rand(32, 10, 16) < 0.5).float()
    model(inputs).sum().backward()
    units = np.array(threshold_levels(3, 64, layer.v_bits)) / 64
    assert np.isin(layer.v_trace.numpy(), units.astype(np.float32)).all()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


# -- training, export, recipes ------------------------------------------------------------------


TINY = {"name": "tiny", "data": {"timesteps": 6}, "model": {"hidden": [12], "min_threshold": 16},
        "train": {"epochs": 2, "batch_size": 128, "progress": False}}


def test_trained_threshold_state_model_exports_levels_and_matches_golden(tmp_path):
    recipe = parse_recipe({**TINY, "compress": [
        {"qat": {"bits": 4, "epochs": 1}},
        {"state": {"bits": 4, "scheme": "threshold", "epochs": 1}}]})
    ctx = prepare(recipe)
    compress(ctx, recipe.compress)
    metrics = finish(ctx, tmp_path / "m")
    net = load(tmp_path / "m")
    stage = metrics["stages"][2]
    assert stage["stage"] == "state" and stage["scheme"] == "threshold"
    for layer, levels in zip(net.layers, stage["levels"]):
        neuron = layer.neuron
        assert neuron.threshold >= min_threshold_for(4) and neuron.v_bits == 16
        assert neuron.state_levels == threshold_levels(4, neuron.threshold, 16) == tuple(levels)
    golden = assert_same_spikes_and_v(net, ctx.model, ctx.test_spikes)
    for layer in net.layers:
        assert np.isin(golden.v_trace[layer.name], layer.neuron.state_levels).all()
    assert metrics["spike_mismatches"] == metrics["v_mismatches"] == 0
    state = metrics["state_memory"]
    assert state["bits"] == 4 * (12 + 10) and state["v_bits_total"] == 16 * (12 + 10)
    assert state["layers"]["fc1"]["levels"] == list(net.layers[0].neuron.state_levels)
    assert "state memory 88 bits = 25.0 % of V at v_bits (352 bits)" in summary(metrics, "m")


def test_example_recipe_is_threshold_centred_4_bit():
    stage = load_recipe(EXAMPLE).compress[-1]
    assert stage == StateStage(bits=4, scheme=StateScheme.THRESHOLD, upper=0.2, epochs=10)


@pytest.mark.parametrize("state, message", [
    ("{bits: 9, scheme: threshold}", "compress[0].state.bits: expected a threshold-centred "
                                     "state width in 2..8, got 9"),
    ("{bits: 4, scheme: threshold, ratio: 1.5}", "compress[0].state.ratio: expected a ratio"),
    ("{bits: 4, scheme: threshold, lower: -1}", "compress[0].state.lower: expected a value >= 0"),
    ("{bits: 7, scheme: threshold}\nmodel: {v_bits: 8, min_threshold: 16}",
     "compress[0].state.bits: 128 levels need a threshold of at least 128, which does not fit "
     "model.v_bits 8"),
])
def test_bad_threshold_state_stages_are_rejected(tmp_path, state, message):
    path = tmp_path / "r.yaml"
    path.write_text(f"compress: [{{state: {state.splitlines()[0]}}}]\n"
                    + "\n".join(state.splitlines()[1:]))
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert str(error.value).startswith(f"{path}: {message}")
