"""Recipes: typed, defaulted, and every mistake rejected in one line naming the file and field."""

from __future__ import annotations

import sys

import pytest

from snnhw.cli import main
from snnhw.train.recipe import (ClusterStage, Dataset, PruneMethod, PruneStage, QatStage,
                                Recipe, RecipeError, Rounding, load_recipe, parse_recipe,
                                recipe_to_dict)


def write(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_empty_recipe_is_the_default():
    assert parse_recipe({}) == Recipe()


def test_stages_parse_in_order_with_enums(tmp_path):
    recipe = load_recipe(write(tmp_path, """
data: {dataset: mnist}
compress:
  - prune: {method: fsc, sparsity: 0.5}
  - qat: {bits: [4, ternary]}
  - cluster:
"""))
    assert recipe.data.dataset is Dataset.MNIST
    assert recipe.compress == [PruneStage(method=PruneMethod.FSC, sparsity=0.5),
                               QatStage(bits=[4, "ternary"]), ClusterStage()]
    assert parse_recipe(recipe_to_dict(recipe)) == recipe


@pytest.mark.parametrize("text, message", [
    ("epochs: 3", "r.yaml: epochs: unknown field (expected one of compress, data, export, "),
    ("train: {epoch: 3}", "r.yaml: train.epoch: unknown field"),
    ("train: {epochs: three}", "r.yaml: train.epochs: expected an integer, got 'three'"),
    ("train: {epochs: true}", "r.yaml: train.epochs: expected an integer, got True"),
    ("data: {encoding: morse}", "r.yaml: data.encoding: expected 'rate' or 'latency' or 'direct'"),
    ("compress: [{qta: {}}]", "r.yaml: compress[0]: unknown stage 'qta' (expected one of prune"),
    ("compress: [{qat: {bits: 1}}]", "r.yaml: compress[0].qat.bits: expected a bit width in 2..16"),
    ("compress: [{qat: {bits: binary}}]", "r.yaml: compress[0].qat.bits: expected an integer or "),
    ("compress: [{qat: {bits: [4]}}]",
     "r.yaml: compress[0].qat.bits: expected one precision per layer (2), got [4]"),
    ("compress: [{prune: {sparsity: 1.5}}]", "r.yaml: compress[0].prune.sparsity: expected a val"),
    ("compress: [{prune: {sparsity: 0.5, input_columns: 0.6}}]",
     "r.yaml: compress[0].prune.input_columns: expected a fraction of the inputs (at most the "
     "sparsity) in 0.0..0.5, got 0.6"),
    ("{model: {conv: [{}]}, compress: [{prune: {input_columns: 0.2}}]}",
     "r.yaml: compress[0].prune.input_columns: expected 0 with conv layers"),
    ("compress: [{cluster: {values: 9, bits: 3}}]",
     "r.yaml: compress[0].cluster.values: expected at most 2**bits - 1 = 7 values at 3 bits"),
    ("compress: [{cluster: {distill: {weight: 1.5}}}]",
     "r.yaml: compress[0].cluster.distill.weight: expected a value in 0.0..1.0, got 1.5"),
    ("compress: [{state: {distill: {temperature: 0}}}]",
     "r.yaml: compress[0].state.distill.temperature: expected a temperature in 0.01..100.0, got 0"),
    ("compress: [{prune: {distill: {wieght: 1}}}]",
     "r.yaml: compress[0].prune.distill.wieght: unknown field (expected one of temperature, wei"),
    ("compress: [{search: {budget: 0.2, choices: [2, 4]}}]",
     "r.yaml: compress[0].search.budget: expected at least 2 / 8 (the narrowest choice), got 0.2"),
    ("compress: [{search: {holdout: 0.9}}]",
     "r.yaml: compress[0].search.holdout: expected a fraction in 0.01..0.5, got 0.9"),
    ("compress: [{ptq: {distill: {}}}]", "r.yaml: compress[0].ptq.distill: unknown field"),
    ("compress: [{ptq: {rounding: up}}]", "r.yaml: compress[0].ptq.rounding: expected 'truncate'"),
    ("model: {hidden: [64, 0]}", "r.yaml: model.hidden[1]: expected a layer size in 1..65536"),
    ("seed: -1", "r.yaml: seed: expected a seed >= 0, got -1"),
    ("data: {test_seed: -5}", "r.yaml: data.test_seed: expected a seed >= 0, got -5"),
    ("compress: [{ptq: {rounding: stochastic, seed: -2}}]",
     "r.yaml: compress[0].ptq.seed: expected a seed >= 0, got -2"),
    ("[1, 2]", "r.yaml: expected a mapping, got [1, 2]"),
    ("a: [", "r.yaml: not valid YAML at line 1"),
])
def test_mistakes_name_file_and_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert str(error.value).startswith(str(path.parent / message))
    assert "\n" not in str(error.value)


def test_cli_rejects_bad_recipe_in_one_line_without_torch(tmp_path, capsys):
    path = write(tmp_path, "compress: [{prune: {sparsity: 0.5, metod: fsc}}]")
    had_torch = "torch" in sys.modules
    assert main(["train", str(path), "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err == (f"snnhw: error: {path}: compress[0].prune.metod: unknown field (expected one "
                   f"of distill, epochs, input_columns, lr, method, rounds, score_samples, "
                   f"sparsity)\n")
    assert not (tmp_path / "m").exists()
    if not had_torch:
        assert "torch" not in sys.modules


@pytest.mark.parametrize("stages, message", [
    ("[{ptq: {}}, {qat: {}}]", "compress[1].qat: cannot follow compress[0].ptq, which froze the "
                               "weights; put ptq last, or use qat in its place"),
    ("[{qat: {}}, {ptq: {}}, {cluster: {}}]",
     "compress[2].cluster: cannot follow compress[1].ptq, which froze the weights; put ptq last"),
    ("[{ptq: {}}, {state: {bits: 8}}]", "compress[1].state: cannot follow compress[0].ptq, which "
                                        "froze the weights; put ptq last, or use qat in its place"),
    ("[{ptq: {}}, {ptq: {bits: 4}}]", "compress[1].ptq: cannot follow compress[0].ptq, which "
                                      "froze the weights; keep one ptq, last"),
    ("[{ptq: {}}, {prune: {}}, {qat: {}}]", "compress[1].prune: cannot follow compress[0].ptq"),
    ("[{ptq: {}}, {hessian: {}}]", "compress[1].hessian: cannot follow compress[0].ptq"),
])
def test_stage_order_is_checked_before_training(tmp_path, capsys, stages, message):
    path = write(tmp_path, f"train: {{epochs: 1000}}\ncompress: {stages}\n")
    with pytest.raises(RecipeError) as error:
        load_recipe(path)
    assert str(error.value).startswith(f"{path}: {message}")
    assert "\n" not in str(error.value)
    # The CLI refuses it at once: no data loaded, no float training, no traceback.
    had_torch = "torch" in sys.modules
    assert main(["train", str(path), "-o", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err == f"snnhw: error: {error.value}\n"
    assert not (tmp_path / "m").exists()
    if not had_torch:
        assert "torch" not in sys.modules


def test_ptq_last_is_a_valid_order():
    recipe = parse_recipe({"compress": [{"prune": {}}, {"qat": {}}, {"ptq": {}}]})
    assert [type(stage).__name__ for stage in recipe.compress] == ["PruneStage", "QatStage",
                                                                   "PtqStage"]


def test_floats_must_be_finite(tmp_path):
    for text in ("train: {lr: .nan}", "train: {lr: .inf}", "compress: [{qat: {lr: -.inf}}]"):
        with pytest.raises(RecipeError, match=r": (train|compress\[0\]\.qat)\.lr: expected a "
                                              r"finite number"):
            load_recipe(write(tmp_path, text))


def test_rounding_values():
    assert [r.value for r in Rounding] == ["truncate", "nearest", "stochastic"]


def test_example_recipes_are_valid():
    from pathlib import Path
    examples = sorted((Path(__file__).parent.parent / "examples" / "recipes").glob("*.yaml"))
    assert len(examples) >= 8
    for path in examples:
        load_recipe(path)


def test_snnhw_and_its_cli_do_not_import_torch():
    import subprocess
    code = ("import sys, snnhw, snnhw.cli, snnhw.golden, snnhw.network, snnhw.train.recipe; "
            "snnhw.cli.build_parser(); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
