"""`snnhw flow` end to end on a tiny recipe: every stage, the report, re-runs, a failing stage."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RECIPE

import snnhw.compiler
from snnhw.cli import main
from snnhw.errors import SnnhwError

pytestmark = [pytest.mark.verilator, pytest.mark.slow]


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    (root / "tiny.yaml").write_text(TINY_RECIPE)
    return root


def _flow(root: Path, *extra: str) -> int:
    return main(["flow", str(root / "tiny.yaml"), "-o", str(root / "out"), "--samples", "1",
                 *extra])


def test_flow_end_to_end(flow_run, capsys):
    assert _flow(flow_run) == 0
    out = capsys.readouterr().out
    for stage in ("train", "golden model", "compile", "co-simulation", "report"):
        assert f"] {stage}: done in " in out
    assert "RTL bit-exact with the golden model on 1 test samples" in out
    result = flow_run / "out"
    for name in ("model/network.yaml", "model/metrics.json", "golden.npz", "rtl.npz",
                 "report.html", "report.json", "figures/raster.png", "figures/membrane.png"):
        assert (result / name).is_file(), name
    numbers = json.loads((result / "report.json").read_text())
    assert numbers["cycles"]["samples"] == 1
    assert set(numbers["accuracy"]) >= {"float", "after prune", "after cluster", "golden model",
                                       "RTL (1 samples)"}
    assert all(layer["unique_weights"] <= 4 for layer in numbers["layers"])
    rtl = np.load(result / "rtl.npz")
    golden = np.load(result / "golden.npz")
    np.testing.assert_array_equal(rtl["pred"], golden["pred"][:1])


def test_rerun_skips_unchanged_stages(flow_run, capsys):
    assert _flow(flow_run) == 0
    out = capsys.readouterr().out
    for stage in ("train", "golden model", "compile", "co-simulation", "report"):
        assert f"] {stage}: up to date, skipped" in out


def test_changed_parameter_reruns_only_what_depends_on_it(flow_run, capsys):
    assert _flow(flow_run, "--lanes", "1") == 0
    out = capsys.readouterr().out
    assert "] train: up to date, skipped" in out
    assert "] compile: done in" in out and "] co-simulation: done in" in out


def test_failing_stage_is_named(flow_run, capsys, monkeypatch):
    def broken_lint(path):
        raise SnnhwError(f"{path}: verilator lint failed: %Warning-FAKE")

    monkeypatch.setattr(snnhw.compiler, "lint", broken_lint)
    assert _flow(flow_run, "--lanes", "3") == 2
    err = capsys.readouterr().err
    assert err.startswith("snnhw: error: stage 'compile' failed: ")
    assert "%Warning-FAKE" in err and "(log: " in err and err.count("\n") == 1


def test_bad_recipe_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("name: x\nmodel: {hiden: [3]}\n")
    assert main(["flow", str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnhw: error: ") and "hiden" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
