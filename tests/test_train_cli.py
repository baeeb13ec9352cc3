"""``snnhw train`` end to end on tiny recipes: files, metrics, bit-exactness, reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnhw.cli import main
from snnhw.golden import simulate
from snnhw.network import load

TINY = """
name: tiny
data: {timesteps: 4}
model: {hidden: [12], min_threshold: 16}
train: {epochs: 2, batch_size: 128, progress: false}
"""

JOINT = TINY + """
compress:
  - prune: {method: fsc, sparsity: 0.6, rounds: 2, epochs: 1, score_samples: 128}
  - qat: {bits: [4, ternary], epochs: 1}
  - cluster: {values: 3, bits: 4, epochs: 1}
"""


def train(tmp_path, text, name="m"):
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(text)
    out = tmp_path / name
    assert main(["train", str(recipe), "-o", str(out), "--no-progress"]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_default_recipe_exports_a_bit_exact_network(tmp_path, capsys):
    out, metrics = train(tmp_path, TINY)
    printed = capsys.readouterr().out
    assert "torch<->golden agreement 100.00 % (0 of" in printed
    net = load(out)
    assert net.name == "tiny" and net.timesteps == 4 and [l.size for l in net.layers] == [12, 10]
    inputs, labels = np.load(out / "test_inputs.npy"), np.load(out / "test_labels.npy")
    assert inputs.shape == (450, 4, 64)
    golden = simulate(net, inputs)
    assert metrics["golden_accuracy"] == pytest.approx(np.mean(golden.pred == labels))
    assert metrics["agreement"] == 1.0 and metrics["spike_mismatches"] == 0
    assert metrics["spikes_compared"] == 450 * 4 * 22
    assert [s["stage"] for s in metrics["stages"]] == ["float", "export_ptq"]
    memory = metrics["memory"]
    assert memory["fp32_bits"] == 32 * (64 * 12 + 12 * 10)
    assert memory["ratio_fp32"] == pytest.approx(memory["bits"] / memory["fp32_bits"])
    for key in ("unique_weights", "sparsity", "bits"):
        assert key in memory["layers"]["fc1"]
    assert (out / "recipe.yaml").read_text().startswith("\nname: tiny")


def test_joint_recipe_prunes_quantizes_clusters_and_repeats_exactly(tmp_path):
    out, metrics = train(tmp_path, JOINT, "a")
    assert [s["stage"] for s in metrics["stages"]] == ["float", "prune", "qat", "cluster"]
    assert metrics["spike_mismatches"] == 0 and metrics["agreement"] == 1.0
    for name, layer in metrics["memory"]["layers"].items():
        assert layer["sparsity"] >= 0.6 and layer["unique_weights"] <= 3
    again, metrics_again = train(tmp_path, JOINT, "b")
    for a, b in zip(load(out).layers, load(again).layers):
        np.testing.assert_array_equal(a.dense_weights(), b.dense_weights())
    assert metrics_again["stages"][-1]["accuracy"] == metrics["stages"][-1]["accuracy"]


@pytest.mark.parametrize("stage", ["ptq: {bits: 4, rounding: stochastic}",
                                   "hessian: {budget: 0.5, probes: 2, samples: 64, epochs: 1}",
                                   "search: {budget: 0.5, holdout: 0.1, epochs: 1}",
                                   "state: {bits: 6, epochs: 1}",
                                   "cluster: {values: 3, rounds: 3, epochs: 1}"])
def test_other_stages_export_bit_exact(tmp_path, stage):
    out, metrics = train(tmp_path, TINY + f"compress:\n  - {stage}\n")
    assert metrics["spike_mismatches"] == 0
    if stage.startswith("state"):
        assert all(layer.neuron.v_bits == 6 for layer in load(out).layers)
    if stage.startswith("cluster"):  # gradual: every weight clustered in the end
        assert metrics["stages"][1]["rounds"] == 3
        assert all(layer["unique_weights"] <= 3 for layer in metrics["memory"]["layers"].values())
    if stage.startswith(("hessian", "search")):
        info = metrics["stages"][1]
        assert info["allocated_bits"] <= info["budget_bits"]
        assert [layer["unique_weights"] <= (1 << b) - 1 for layer, b in
                zip(metrics["memory"]["layers"].values(), info["bits"])] == [True, True]
    if stage.startswith("hessian"):
        assert len(info["traces"]) == len(info["layer_alone_drop"]) == 2
    if stage.startswith("search"):  # each step kept the lowering with the best accuracy
        assert info["holdout_samples"] == 135
        bits, tried = [8, 8], list(info["tried"])
        while tried:
            step = tried[:sum(b > 2 for b in bits)]
            del tried[:len(step)]
            assert all(sum(a != b for a, b in zip(t["bits"], bits)) == 1 for t in step)
            bits = max(step, key=lambda t: t["accuracy"])["bits"]  # ties: the first
        assert bits == info["bits"]


def test_same_recipe_and_seed_give_the_same_network_whatever_the_process_did_before():
    """Reproducible training: the recipe pins torch's thread count (it decides how float sums
    are split; 1 and 2 threads give different weights after one epoch of this recipe), every
    draw is seeded, so neither the ambient thread count nor the global RNGs matter."""
    import torch

    from snnhw.train.export import to_network
    from snnhw.train.pipeline import compress, prepare
    from snnhw.train.recipe import parse_recipe

    recipe = parse_recipe({"name": "r", "model": {"hidden": [64]},
                           "train": {"epochs": 1, "progress": False}})
    runs = []
    for ambient_threads, global_seed in ((2, 1), (1, 2)):
        torch.set_num_threads(ambient_threads)
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        ctx = prepare(recipe)
        assert torch.get_num_threads() == recipe.train.threads == 1
        assert torch.are_deterministic_algorithms_enabled()
        weights = [layer.weight.detach().clone() for layer in ctx.model.layers]
        compress(ctx, [])
        runs.append((weights, to_network(ctx.model, "r", 16)))
    (weights_a, net_a), (weights_b, net_b) = runs
    for a, b in zip(weights_a, weights_b):
        assert torch.equal(a, b)
    for a, b in zip(net_a.layers, net_b.layers):
        np.testing.assert_array_equal(a.dense_weights(), b.dense_weights())
        assert a.neuron == b.neuron


def test_stages_after_pruning_keep_the_mask_and_the_codebook():
    """Joint compression's mechanisms: the mask the prune stage reached (its target sparsity)
    stays fixed through clustering and state training, and every layer keeps at most M values."""
    import torch

    from snnhw.train.export import to_network
    from snnhw.train.pipeline import apply_stages, prepare
    from snnhw.train.recipe import parse_recipe

    recipe = parse_recipe({
        "name": "j", "data": {"timesteps": 4}, "model": {"hidden": [12], "min_threshold": 16},
        "train": {"epochs": 1, "batch_size": 128, "progress": False},
        "compress": [{"prune": {"method": "fsc", "sparsity": 0.7, "rounds": 3, "epochs": 1,
                                "score_samples": 64}},
                     {"cluster": {"values": 3, "bits": 8, "epochs": 1, "lr": 0.01}},
                     {"state": {"bits": 4, "scheme": "threshold", "epochs": 1}}]})
    ctx = prepare(recipe)
    apply_stages(ctx, recipe.compress[:1])
    masks = [layer.mask.clone() for layer in ctx.model.layers]
    for mask in masks:
        assert int((mask == 0).sum()) == round(0.7 * mask.numel())
    apply_stages(ctx, recipe.compress[1:])
    net = to_network(ctx.model, "j", 4)
    for layer, mask, spec in zip(ctx.model.layers, masks, net.layers):
        assert torch.equal(layer.mask, mask)
        weights = spec.dense_weights()
        assert np.all(weights[mask.numpy() == 0] == 0)
        assert len(np.unique(weights[weights != 0])) <= 3
    assert [s["stage"] for s in ctx.stages] == ["float", "prune", "cluster", "state"]


def test_on_chip_recipe_trains_on_the_boards_encoder(tmp_path):
    # data.on_chip_seed: the exported network records the encoder, and its test spikes are the
    # board's encoder's on the saved feature bytes (what a host sends with 'X').
    from snnhw.network.encoder import Encoder, encode_features

    out, metrics = train(tmp_path, TINY.replace("data: {timesteps: 4}",
                                                "data: {timesteps: 4, on_chip_seed: 4321}"))
    net = load(out)
    assert net.encoder == Encoder("rate", 4321)
    features = np.load(out / "test_features.npy")
    assert features.dtype == np.uint8 and features.shape == (450, 64)
    inputs = np.load(out / "test_inputs.npy")
    np.testing.assert_array_equal(inputs, encode_features(net.encoder, features, 4))
    assert (inputs != encode_features(Encoder("rate", 4322), features, 4)).any()
    assert metrics["agreement"] == 1.0 and metrics["spike_mismatches"] == 0
