"""Recurrent layers (``kind: recurrent``): format, golden model, torch, training and the models
of cycles and energy. The co-simulation is in test_recurrent_cosim.py.

The golden model is checked against a step-by-step reference written from the README's rule (own
spikes of t reach the layer at t + 1), and every comparison is shown to fail on a network whose
recurrence was dropped, so none of them could pass without the recurrence.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from snnhw.energy import energy_per_inference
from snnhw.errors import NetworkFormatError
from snnhw.golden import simulate
from snnhw.golden.model import lif_step
from snnhw.network import load, save
from snnhw.plan import CorePlan, cycle_bounds
from snnhw.random_networks import random_inputs, random_network
from conftest import assert_torch_matches_golden


def without_recurrence(net):
    """The same network with every recurrent synapse pruned: the model a forgotten feedback
    path computes."""
    layers = []
    for layer in net.layers:
        index = layer.index.copy()
        index[:, layer.external_fan_in:] = -1
        layers.append(replace(layer, index=index))
    return replace(net, layers=layers)


def reference(net, inputs):
    """Every layer's spikes, one timestep and one neuron sum at a time (README's rule)."""
    pre, out = inputs.astype(np.int64), {}
    for layer in net.layers:
        weights, external = layer.dense_weights(), layer.external_fan_in
        samples, steps, _ = pre.shape
        v = np.zeros((samples, layer.size), np.int64)
        spikes = np.zeros((samples, steps, layer.size), np.int64)
        for t in range(steps):
            current = pre[:, t] @ weights[:, :external].T
            if t and layer.kind == "recurrent":
                current += spikes[:, t - 1] @ weights[:, external:].T
            v, fired = lif_step(v, current, layer)
            spikes[:, t] = fired
        out[layer.name] = spikes.astype(np.uint8)
        pre = spikes
    return out


def _from(start: int, low: int, high: int) -> st.SearchStrategy[int]:
    """Integers ``low..high`` whose simplest draw (hypothesis' first) is ``start``."""
    return st.integers(0, high - low).map(lambda k: low + (start - low + k) % (high - low + 1))


@st.composite
def recurrent_networks(draw):
    """Recurrent (and mixed) networks: sizes, densities, codebooks, state codebooks.

    Hypothesis draws the simplest network first, and the co-simulation tests take one draw: the
    choices are ordered so that it is a busy one (two layers, the first recurrent, 12 inputs,
    10 and 6 neurons, 4 weight values, density 0.5, 6 timesteps, 4 state levels), not one neuron.
    """
    depth = draw(_from(2, 1, 3))
    recurrent = draw(st.lists(st.booleans(), min_size=depth, max_size=depth))
    recurrent[draw(st.integers(0, depth - 1))] = True  # at least one recurrent layer
    codebook_size = draw(st.sampled_from([4, 1, 2, 16]))
    v_bits = draw(_from(10, 5, 16))
    return random_network(
        np.random.default_rng(draw(st.integers(0, 2**32 - 1))),
        input_size=draw(_from(12, 1, 40)),
        sizes=[draw(_from(10 if k == 0 else 6, 1, 24)) for k in range(depth)],
        codebook_size=codebook_size,
        weight_bits=draw(_from(6, max(2, (codebook_size - 1).bit_length() + 1), 8)),
        density=draw(st.sampled_from([0.5, 0.1, 1.0])), v_bits=v_bits,
        leak_shift=draw(_from(2, 0, 4)), timesteps=draw(_from(6, 1, 8)),
        state_levels=draw(st.sampled_from([4, None, 9])), recurrent=recurrent)


@settings(max_examples=40, deadline=None)
@given(net=recurrent_networks(), seed=st.integers(0, 1000))
def test_golden_model_follows_the_rule(net, seed):
    inputs = random_inputs(np.random.default_rng(seed), net, samples=5, rate=0.4)
    expected = reference(net, inputs)
    for float_types in ((), (np.float32, np.float64)):
        result = simulate(net, inputs, float_types=float_types)
        for name, spikes in expected.items():
            np.testing.assert_array_equal(result.spikes[name], spikes, err_msg=name)


def _busy_recurrent_net(seed=3):
    """A recurrent layer whose feedback changes its spikes (redrawn until it does)."""
    rng = np.random.default_rng(seed)
    while True:
        net = random_network(rng, 10, [12, 5], density=0.7, timesteps=8,
                             recurrent=[True, True])
        inputs = random_inputs(rng, net, samples=8, rate=0.3)
        golden = simulate(net, inputs)
        dropped = simulate(without_recurrence(net), inputs)
        if all((golden.spikes[n] != dropped.spikes[n]).any() for n in golden.spikes):
            return net, inputs


def test_the_reference_sees_a_dropped_recurrence():
    net, inputs = _busy_recurrent_net()
    expected = reference(net, inputs)
    wrong = simulate(without_recurrence(net), inputs)
    assert any((wrong.spikes[n] != expected[n]).any() for n in expected)


def test_timestep_zero_has_no_own_spikes():
    """At t = 0 only the external input counts: the recurrent columns cannot change it."""
    net, inputs = _busy_recurrent_net()
    for name in simulate(net, inputs).spikes:
        np.testing.assert_array_equal(simulate(net, inputs).v_trace[name][:, 0],
                                      simulate(without_recurrence(net), inputs).v_trace[name][:, 0])


# -- the format -----------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    net, inputs = _busy_recurrent_net()
    save(net, tmp_path / "m")
    manifest = yaml.safe_load((tmp_path / "m" / "network.yaml").read_text())
    assert [layer["kind"] for layer in manifest["layers"]] == ["recurrent", "recurrent"]
    loaded = load(tmp_path / "m")
    assert [layer.external_fan_in for layer in loaded.layers] == [10, 12]
    for name, spikes in simulate(net, inputs).spikes.items():
        np.testing.assert_array_equal(simulate(loaded, inputs).spikes[name], spikes)


@pytest.mark.parametrize("columns", [10, 10 + 11, 10 + 13])
def test_a_recurrent_matrix_that_is_not_square_is_refused(tmp_path, columns):
    net, _ = _busy_recurrent_net()
    save(net, tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["fc1.index"] = np.zeros((12, columns), np.int8)
    np.savez(tmp_path / "m" / "arrays.npz", **arrays)
    with pytest.raises(NetworkFormatError) as info:
        load(tmp_path / "m")
    assert str(info.value) == (
        f"{tmp_path / 'm' / 'arrays.npz'}: fc1.index: expected shape [size, 10 + size] "
        f"(fan-in 10, then a square recurrent matrix of 12 columns, one per neuron of the "
        f"layer), got (12, {columns})")


def test_validate_names_the_layer(tmp_path):
    net, _ = _busy_recurrent_net()
    net.layers[1].index = net.layers[1].index[:, :12]  # the recurrent block left out
    with pytest.raises(NetworkFormatError, match=r"^out/arrays.npz: fc2.index: expected shape "
                                                 r"\[size, 12 \+ size\]"):
        net.validate("out")
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_bad_recurrent_network_in_one_line(tmp_path, capsys):
    from snnhw.cli import main

    net, _ = _busy_recurrent_net()
    save(net, tmp_path / "m")
    manifest = yaml.safe_load((tmp_path / "m" / "network.yaml").read_text())
    manifest["layers"][0]["size"] = 11
    (tmp_path / "m" / "network.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    assert main(["compile", str(tmp_path / "m"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fc1.index: expected shape [11, 10 + 11]" in err, err
    assert not (tmp_path / "out").exists()


# -- cycles and energy count the recurrent events -------------------------------------------------


def test_cycle_and_energy_models_count_own_events():
    net, inputs = _busy_recurrent_net()
    golden = simulate(net, inputs)
    plan = CorePlan.build(net, 1)
    layer = net.layers[0]
    fan_out = layer.connectivity.fan_out()
    external = inputs.astype(np.int64) @ fan_out[:layer.external_fan_in]
    own = golden.spikes["fc1"].astype(np.int64) @ fan_out[layer.external_fan_in:]
    events = external.copy()
    events[:, 1:] += own[:, :-1]  # own spikes of t are events of t + 1
    bounds = cycle_bounds(plan, inputs, golden.spikes, serial=True)
    np.testing.assert_array_equal(bounds[0], events + layer.size)
    energy = energy_per_inference(plan, inputs, golden)["layers"][0]
    assert energy["synapse_events"] == pytest.approx(events.sum(axis=1).mean())
    assert energy["spikes_in"] == pytest.approx(
        (inputs.sum(axis=(1, 2)) + golden.spikes["fc1"][:, :-1].sum(axis=(1, 2))).mean())


# -- torch ----------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(net=recurrent_networks(), seed=st.integers(0, 1000))
def test_torch_integer_mode_matches_golden(net, seed):
    assert_torch_matches_golden(net, random_inputs(np.random.default_rng(seed), net, samples=6,
                                                   rate=0.4))


def test_torch_without_its_recurrence_is_caught():
    from snnhw.train.export import exact_spikes
    from snnhw.train.model import from_network

    net, inputs = _busy_recurrent_net()
    wrong = exact_spikes(from_network(without_recurrence(net)), inputs)
    golden = simulate(net, inputs)
    assert any((wrong[n] != golden.spikes[n]).any() for n in golden.spikes)


def test_training_compresses_and_exports_a_recurrent_layer(tmp_path):
    """Float training, FSC pruning, QAT, clustering and threshold-centred states on a recurrent
    layer (digits read row by row), exported bit-exact against torch's integer mode."""
    from snnhw.train.pipeline import compress, finish, prepare
    from snnhw.train.recipe import parse_recipe

    recipe = parse_recipe({
        "name": "rec", "data": {"encoding": "rows", "timesteps": 8},
        "model": {"hidden": [16], "recurrent": [True]},
        "train": {"epochs": 1, "progress": False},
        "compress": [{"prune": {"method": "fsc", "sparsity": 0.5, "rounds": 1, "epochs": 1,
                                "score_samples": 64}},
                     {"qat": {"bits": 4, "epochs": 1}},
                     {"cluster": {"values": 4, "bits": 6, "epochs": 1}},
                     {"state": {"bits": 2, "scheme": "threshold", "epochs": 1}}],
    }, "r.yaml")
    ctx = prepare(recipe)
    assert ctx.model.layers[0].weight.shape == (16, 8 + 16)
    compress(ctx, recipe.compress)
    metrics = finish(ctx, tmp_path / "out")
    net = load(tmp_path / "out")
    assert net.layers[0].kind == "recurrent" and net.layers[1].kind == "dense"
    assert net.layers[0].neuron.state_levels is not None
    assert len(net.layers[0].neuron.state_levels) == 4
    assert metrics["spike_mismatches"] == 0 == metrics["v_mismatches"]
    # The recurrent block was pruned with the rest and still has weights.
    assert (ctx.model.layers[0].mask[:, 8:] == 0).any()
    assert net.layers[0].dense_weights()[:, 8:].any()


@pytest.mark.parametrize("data,message", [
    ({"model": {"hidden": [16], "recurrent": [True, False, True]}},
     "r.yaml: model.recurrent: expected at most one flag per layer (2: conv, hidden, then "
     "output), got [True, False, True]"),
    ({"data": {"encoding": "rows", "timesteps": 12}},
     "r.yaml: data.timesteps: expected a multiple of the image's 8 rows (encoding rows), got 12"),
])
def test_recipe_mistakes_name_the_field(data, message):
    from snnhw.train.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError) as info:
        parse_recipe(data, "r.yaml")
    assert str(info.value) == message


def test_rows_encoding_reads_one_row_per_step():
    from snnhw.train.encode import encode, encoded_features

    image = np.arange(16, dtype=float).reshape(1, 16) / 15  # a 4x4 image, brighter rows lower
    spikes = encode(image, "rows", 8)
    assert encoded_features("rows", 16) == 4 and spikes.shape == (1, 8, 4)
    np.testing.assert_array_equal(spikes[0, ::2], (image.reshape(4, 4) >= 0.5).astype(np.uint8))
    np.testing.assert_array_equal(spikes[0, 1::2], spikes[0, ::2])  # each row held two steps
