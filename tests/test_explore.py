"""``snnhw explore``: space files, Pareto fronts, and a tiny sweep on a 2-worker LocalCluster
with a point that fails, a worker that dies, and a resumed run that recomputes nothing."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from snnhw.cli import main
from snnhw.errors import SnnhwError
from snnhw.explore.pareto import dominates, pareto_front
from snnhw.explore.space import load_space

#: The base of every space here: trains in about a second once torch is loaded.
BASE = {"name": "tiny", "data": {"dataset": "digits", "timesteps": 4},
        "model": {"hidden": [8]}, "train": {"epochs": 1, "progress": False},
        "compress": [{"qat": {"bits": 4, "epochs": 1}}]}


def _space(tmp_path: Path, **fields) -> Path:
    document = {"recipe": BASE, "axes": {"compress[0].bits": [2, 4]}} | fields
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# -- Pareto fronts --------------------------------------------------------------------------------


def _brute_force(points: list[tuple[float, float]]) -> set[int]:
    return {k for k, p in enumerate(points)
            if not any(dominates(q, p) for j, q in enumerate(points) if j != k)}


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    for size in (0, 1, 2, 5, 30):
        # Few distinct values: many ties in cost, in value and in both.
        points = [(float(c), float(v)) for c, v in rng.integers(0, 6, size=(size, 2))]
        front = pareto_front(points)
        assert set(front) == _brute_force(points)
        assert len(front) == len(set(front))
        assert [points[k][0] for k in front] == sorted(points[k][0] for k in front)


def test_pareto_front_of_real_valued_points():
    rng = np.random.default_rng(7)
    points = [tuple(p) for p in rng.random((200, 2))]
    assert set(pareto_front(points)) == _brute_force(points)


# -- space files ----------------------------------------------------------------------------------


def test_a_grid_with_stage_shorthand_lanes_and_a_range(tmp_path):
    space = load_space(_space(tmp_path, boards=["icebreaker"], axes={
        "compress[0].bits": [2, 4], "model.hidden": [[8], [4, 4]],
        "lanes": {"from": 1, "to": 2}}))
    assert len(space.points) == 8 == space.grid_size
    assert [b.name for b in space.boards] == ["icebreaker"]
    point = space.points[5]
    assert point.params == {"compress[0].bits": 4, "model.hidden": [8], "lanes": 2}
    assert point.recipe["compress"][0]["qat"]["bits"] == 4 and point.lanes == 2
    assert point.recipe["model"]["hidden"] == [8]
    assert point.id == "p0005"


def test_a_union_of_grids_swaps_the_stage_and_drops_duplicates(tmp_path):
    space = load_space(_space(tmp_path, axes=[
        {"compress[0]": [{"ptq": {}}], "compress[0].bits": [2, 4],
         "compress[0].rounding": ["truncate", "nearest"]},
        {"compress[0].qat.bits": [2, 4, 4]}]))
    assert len(space.points) == 6 and space.grid_size == 7
    assert [list(p.recipe["compress"][0]) for p in space.points] == [["ptq"]] * 4 + [["qat"]] * 2
    assert space.points[1].recipe["compress"][0]["ptq"] == {"bits": 2, "rounding": "nearest",
                                                            "seed": 0}


def test_random_draws_are_seeded(tmp_path):
    axes = {"compress[0].bits": [2, 3, 4, 5, 6], "lanes": [1, 2, 4]}
    one = load_space(_space(tmp_path, axes=axes, random={"draws": 4, "seed": 3}))
    two = load_space(_space(tmp_path, axes=axes, random={"draws": 4, "seed": 3}))
    other = load_space(_space(tmp_path, axes=axes, random={"draws": 4, "seed": 4}))
    assert len(one.points) == 4 and one.grid_size == 15
    assert [p.params for p in one.points] == [p.params for p in two.points]
    assert [p.params for p in one.points] != [p.params for p in other.points]


def test_a_recipe_file_relative_to_the_space(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "base.yaml").write_text(yaml.safe_dump(BASE))
    space = load_space(_space(tmp_path, recipe="recipes/base.yaml"))
    assert len(space.points) == 2


def _never(*args, **kwargs):
    raise AssertionError("a point ran before the space file was checked")


@pytest.mark.parametrize("fields,message", [
    ({"axes": {"model.hiden": [[8]]}},
     "axes.model.hiden: unknown axis (the recipe says model.hiden: unknown field (expected one "
     "of conv, hidden, init_rate, leak_shift, min_threshold, recurrent, reset, surrogate_slope, "
     "v_bits))"),
    ({"axes": {"compress[3].bits": [2]}},
     "axes.compress[3].bits: unknown axis (compress has 1 item(s) in the recipe, so no [3])"),
    ({"axes": {"compress[0].bits": []}}, "axes.compress[0].bits: empty range (no values)"),
    ({"axes": {"data.timesteps": {"from": 8, "to": 4}}},
     "axes.data.timesteps: empty range (from 8 to 4 has no values)"),
    ({"axes": {"compress[0].bits": [4, 1]}},
     "axes.compress[0].bits: the recipe rejects 1: compress[0].qat.bits: expected a bit width "
     "in 2..16, got 1"),
    ({"axes": {"lanes": [1, 0]}}, "axes.lanes[1]: expected an integer in 1..64, got 0"),
    ({"boards": ["icebreaker", "nosuchboard"]}, "boards[1]: unknown board 'nosuchboard' (known: "
     "arty-a7-35, icebreaker, orangecrab, ulx3s-85f, upduino3; or give the path of a board "
     "file)"),
    ({"axes": {"boards": ["icebreaker"]}}, "axes.boards: unknown axis: boards are not an axis; "
     "list them under 'boards:' and every point is checked on each"),
    ({"random": {"draws": 3}}, "random.draws: expected an integer in 1..2 (the grid's points), "
     "got 3"),
    ({"grid": {}}, "grid: unknown field (expected one of recipe, axes, boards, random)"),
])
def test_a_bad_space_file_is_one_line_before_any_point_runs(capsys, monkeypatch, tmp_path,
                                                            fields, message):
    monkeypatch.setattr("snnhw.explore.sweep.run_sweep", _never)
    path = _space(tmp_path, **fields)
    status = main(["explore", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert err == f"snnhw: error: {path}: {message}\n"
    assert not (tmp_path / "out").exists()


def test_workers_are_for_the_local_cluster_only(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("snnhw.explore.sweep.run_sweep", _never)
    status = main(["explore", str(_space(tmp_path)), "-o", str(tmp_path / "out"),
                   "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"])
    assert status == 2
    assert capsys.readouterr().err == ("snnhw: error: --workers: sizes the LocalCluster; with "
                                       "--scheduler the cluster has its own workers\n")


def test_a_bad_base_recipe_names_its_field(tmp_path):
    path = _space(tmp_path, recipe=BASE | {"model": {"hidden": [0]}})
    with pytest.raises(SnnhwError, match=r"space.yaml: recipe: model.hidden\[0\]: expected a "
                                         r"layer size in 1..65536, got 0$"):
        load_space(path)


# -- a sweep on Dask ------------------------------------------------------------------------------


class Hook:
    """Runs on the worker before each point: logs it, fails p0001, kills p0002's worker once."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self, point: str) -> None:
        with open(self.folder / "calls", "a") as log:
            log.write(point + "\n")
        if point == "p0001":
            raise RuntimeError("this point fails on purpose")
        if point == "p0002" and not (self.folder / "killed").exists():
            (self.folder / "killed").touch()
            os._exit(1)  # the worker process dies mid-point; its nanny starts another


@pytest.fixture(scope="module")
def client():
    import cloudpickle
    from distributed import Client

    from snnhw.explore.sweep import local_cluster
    # The workers need not import this test module to run the hook.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = local_cluster(2)
    with Client(cluster) as client:
        yield client
    cluster.close()


def test_a_sweep_with_a_failure_and_a_lost_worker_then_a_resume(tmp_path, client, capsys):
    from snnhw.explore.sweep import run_sweep
    from snnhw.flow.flow import FlowConfig
    path = _space(tmp_path, boards=["icebreaker"],
                  axes={"compress[0].bits": [2, 4], "lanes": [1, 2]})
    space = load_space(path)
    out = tmp_path / "out"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    summary = run_sweep(space, out, client, progress=False, hook=Hook(hooks))
    assert (hooks / "killed").exists()  # p0002's worker did die
    assert (summary.points, summary.computed, summary.read_back, summary.failed) == (4, 4, 0, 1)
    status = {r["id"]: r["status"] for r in summary.records}
    assert status == {"p0000": "ok", "p0001": "failed", "p0002": "ok", "p0003": "ok"}
    failed = summary.records[1]
    assert failed["error"] == "RuntimeError: this point fails on purpose"
    # Two trainings (bits 2, bits 4), each shared by its two lane counts.
    assert summary.models_trained == 2
    ok = summary.records[0]["metrics"]
    assert 0 <= ok["accuracy"] <= 1 and ok["weight_memory_bits"] > 0
    assert ok["cycles_per_image"] > 0 and ok["energy_pj_per_image"] > 0
    board = ok["boards"]["icebreaker"]
    assert board["us_per_image"] == pytest.approx(ok["cycles_per_image"] / 12)
    assert board["logic"] > 0 and board["fits"] is True
    # Same model, more lanes: fewer cycles, the same accuracy and weights.
    two_lanes = summary.records[2 - 1 + 2]["metrics"]  # p0003: bits 4, lanes 2
    four_bits = summary.records[2]["metrics"]  # p0002: bits 4, lanes 1
    assert two_lanes["accuracy"] == four_bits["accuracy"]
    assert two_lanes["cycles_per_image"] < four_bits["cycles_per_image"]

    records = json.loads((out / "points.json").read_text())["points"]
    assert [r["id"] for r in records] == ["p0000", "p0001", "p0002", "p0003"]
    rows = list(csv.DictReader((out / "points.csv").open()))
    assert rows[1]["status"] == "failed" and rows[1]["compress[0].bits"] == "2"
    assert rows[3]["icebreaker.fits"] == "true"
    pareto = json.loads((out / "pareto.json").read_text())
    assert set(pareto) == {"weight_memory", "energy", "us_icebreaker", "logic_icebreaker"}
    for front in pareto.values():
        assert front["points"] and {p["id"] for p in front["points"]} <= {"p0000", "p0002",
                                                                          "p0003"}
    assert "Pareto front" in (out / "report.html").read_text() or \
        "<img" in (out / "report.html").read_text()
    for point in space.points:  # every point's recipe is one snnhw flow takes
        recipe = FlowConfig.load(out / "recipes" / f"{point.id}.yaml", tmp_path / "flow").recipe
        assert recipe.compress[0].bits == point.params["compress[0].bits"]

    calls = (hooks / "calls").read_text().splitlines()
    again = run_sweep(space, out, client, progress=False, hook=Hook(hooks))
    assert (again.computed, again.read_back, again.failed, again.models_trained) == (0, 4, 1, 0)
    assert (hooks / "calls").read_text().splitlines() == calls  # nothing ran on a worker
    assert [r["metrics"] for r in again.records] == [r["metrics"] for r in summary.records]

    # A new lane count: two new points, on the models the first run left in OUT/models.
    (tmp_path / "wider").mkdir()
    wider = load_space(_space(tmp_path / "wider", boards=["icebreaker"],
                              axes={"compress[0].bits": [2, 4], "lanes": [1, 2, 4]}))
    third = run_sweep(wider, out, client, progress=False, hook=Hook(hooks))
    assert (third.computed, third.read_back, third.models_trained) == (2, 4, 0)
    assert [r["status"] for r in third.records] == ["ok", "failed", "ok", "ok", "ok", "ok"]
    assert third.records[2]["metrics"]["model"] == third.records[0]["metrics"]["model"]

    # The command, on the same cluster: resumes too; exit 1 because a point failed.
    capsys.readouterr()
    assert main(["explore", str(path), "-o", str(out), "--no-progress",
                 "--scheduler", client.scheduler.address]) == 1
    assert "4 point(s): 0 computed (0 model(s) trained), 4 read back, 1 failed" in \
        capsys.readouterr().out
    assert len(json.loads((out / "points.json").read_text())["points"]) == 4


def test_a_finished_sweep_resumes_without_any_cluster(tmp_path):
    """Nothing left to run, nothing to verify: the command starts no cluster, and waits on no
    results (which Dask cannot do without a client), in a process that has no client at all."""
    import subprocess

    from snnhw.explore.sweep import _record, point_key
    path = _space(tmp_path, boards=["icebreaker"])
    space = load_space(path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "points.json").write_text(json.dumps({"points": [
        _record(p, point_key(p, space), "failed", error="RuntimeError: an earlier run")
        for p in space.points]}))
    run = subprocess.run([sys.executable, "-m", "snnhw", "explore", str(path), "-o", str(out),
                          "--no-progress", "--verify", "1"], capture_output=True, text=True,
                         timeout=300)
    assert "Traceback" not in run.stderr
    assert run.returncode == 1  # the points (read back) failed
    assert "2 point(s): 0 computed (0 model(s) trained), 2 read back, 2 failed" in run.stdout
    assert "verifying 0 point(s)" in run.stdout


def test_a_point_trained_through_shared_prefixes_is_the_recipe_trained_alone(tmp_path):
    """The chain of prefix tasks gives the network ``snnhw train`` gives for the point's recipe
    (``OUT/recipes/<point>.yaml``), bit for bit."""
    from snnhw.explore import tasks
    from snnhw.network import load
    from snnhw.train.pipeline import run_recipe
    from snnhw.train.recipe import parse_recipe, recipe_to_dict
    stages = [{"prune": {"sparsity": 0.5, "rounds": 1, "epochs": 1}},
              {"qat": {"bits": 4, "epochs": 1}}]
    recipe = recipe_to_dict(parse_recipe(BASE | {"compress": stages}))
    checkpoint = tasks.train_float(recipe)
    for stage in range(len(recipe["compress"])):
        checkpoint = tasks.train_stage(checkpoint, recipe, stage)
    shared = tasks.export_model(checkpoint, recipe, "key", str(tmp_path / "models"))
    assert (tmp_path / "models" / "key" / "metrics.json").exists()
    run_recipe(parse_recipe(recipe), tmp_path / "alone", progress=False)
    alone = load(tmp_path / "alone")
    for ours, theirs in zip(shared.network.layers, alone.layers):
        assert np.array_equal(ours.dense_weights(), theirs.dense_weights())
        assert ours.neuron == theirs.neuron


@pytest.mark.parametrize("name", ["digits_precision", "digits_prune_cluster",
                                  "digits_prune_cluster_reduced", "digits_verify"])
def test_the_example_spaces_load(name):
    space = load_space(Path(__file__).parent.parent / "examples" / "spaces" / f"{name}.yaml")
    assert len(space.points) == {"digits_precision": 84, "digits_prune_cluster": 60,
                                 "digits_prune_cluster_reduced": 18, "digits_verify": 3}[name]


def test_the_space_file_of_the_docs_loads(tmp_path):
    import re
    root = Path(__file__).parent.parent
    example = re.search(r"```yaml\n(.*?)```", (root / "docs" / "explore.md").read_text(), re.S)
    path = root / "examples" / "spaces" / "docs_example.yaml"  # its recipe path is relative
    try:
        path.write_text(example.group(1))
        space = load_space(path)
    finally:
        path.unlink()
    assert space.grid_size == 3 * 2 * 4 * 3 and len(space.points) == 20


def test_points_that_share_a_prefix_share_its_training_key(tmp_path):
    from snnhw.explore.tasks import MEASURE_SOURCES, TRAINING_SOURCES, training_keys
    space = load_space(_space(tmp_path, recipe=BASE | {"compress": [
        {"prune": {"sparsity": 0.5}}, {"qat": {"bits": 4}}]},
        axes={"compress[1].bits": [2, 4], "compress[0].sparsity": [0.5, 0.8], "name": ["a", "b"]}))
    keys = [training_keys(p.recipe) for p in space.points]
    assert len({k[0] for k in keys}) == 1  # one float training
    assert len({k[1] for k in keys}) == 2  # two prunings
    assert len({k[-1] for k in keys}) == 4  # four models: the name is not part of training
    # Editing the report, the CLI, the flow or the RTL generator keeps finished training.
    assert not any(part.startswith(("explore/results", "cli", "flow", "hw", "compiler"))
                   for part in MEASURE_SOURCES)
    assert set(TRAINING_SOURCES) < set(MEASURE_SOURCES)


# -- --verify: co-simulation and bitstreams of the best points ----------------------------------


def _small_board(tmp_path: Path) -> Path:
    """The iCEBreaker with 100 logic cells: every build fails its fit check, in a second."""
    root = Path(__file__).parent.parent
    board = yaml.safe_load((root / "boards" / "icebreaker.yaml").read_text())
    board["name"] = "small"
    board["budget"]["logic"] = 100
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(board))
    return path


def _check_verified(out, record, samples):
    """The verification of ``record`` against the golden model and the RTL's saved results."""
    from snnhw.golden import simulate
    from snnhw.network import load
    from snnhw.results import Result
    model = out / "models" / record["metrics"]["model"]
    network, inputs = load(model), np.load(model / "test_inputs.npy")[:samples]
    labels = np.load(model / "test_labels.npy")[:samples]
    golden = simulate(network, inputs)
    rtl = Result.load(out / "verify" / record["id"] / "cosim" / "rtl.npz")
    for layer, spikes in golden.spikes.items():  # every spike, checked here once more
        assert np.array_equal(rtl.spikes[layer], spikes)
    cosim = record["verify"]["cosim"]
    assert cosim["bit_exact"] and cosim["samples"] == samples == len(rtl.cycles)
    assert cosim["accuracy"] == float(np.mean(golden.pred == labels))
    assert cosim["cycles_per_image"] == float(rtl.cycles.sum(axis=1).mean()) > 0


def test_verify_cosimulates_the_best_point_records_failures_and_resumes(tmp_path, client,
                                                                         monkeypatch):
    """--verify 1 on a 2-worker cluster: the most accurate front point is co-simulated
    bit-exactly; its build for a board it cannot fit is recorded as failed; a second run reads
    everything back; a wrong golden model makes the verification's comparison fail."""
    import snnhw.sim.runner
    from snnhw.errors import CosimMismatch
    from snnhw.explore.sweep import run_sweep
    from snnhw.explore.verify import cosim_point
    from snnhw.explore.tasks import load_trained
    path = _space(tmp_path, boards=[str(_small_board(tmp_path))],
                  axes={"compress[0].bits": [2, 4]})
    space = load_space(path)
    out = tmp_path / "out"
    summary = run_sweep(space, out, client, progress=False, verify=1, verify_samples=20)
    assert (summary.failed, summary.verified, summary.verify_failed) == (0, 1, 1)
    best = max(summary.records, key=lambda r: (r["metrics"]["accuracy"],
                                               -r["metrics"]["weight_memory_bits"]))
    other = next(r for r in summary.records if r is not best)
    assert "verify" not in other
    verify = best["verify"]
    assert verify["status"] == "failed"
    assert verify["boards"]["small"]["error"].startswith("FitError: ")
    assert "does not fit small" in verify["boards"]["small"]["error"]
    assert verify["error"] == verify["boards"]["small"]["error"]
    _check_verified(out, best, 20)
    assert (out / "verify" / best["id"] / "cosim").is_dir()
    rows = {row["id"]: row for row in csv.DictReader((out / "points.csv").open())}
    assert rows[best["id"]]["verify"] == "failed" and rows[other["id"]]["verify"] == ""
    assert float(rows[best["id"]]["measured_cycles_per_image"]) == \
        verify["cosim"]["cycles_per_image"]
    assert "Verified points (--verify)" in (out / "report.html").read_text()

    # Resumed: the verification is read back, nothing is co-simulated again.
    again = run_sweep(space, out, client, progress=False, verify=1, verify_samples=20)
    assert (again.computed, again.verified, again.verify_read_back, again.verify_failed) == \
        (0, 0, 1, 1)
    assert next(r for r in again.records if r["id"] == best["id"])["verify"] == verify

    # A golden model that differs in one spike: the verification's comparison fails.
    trained = load_trained(out / "models" / best["metrics"]["model"], "key")
    right = snnhw.sim.runner.simulate

    def wrong(network, inputs):
        result = right(network, inputs)
        next(iter(result.spikes.values()))[0, 0, 0] ^= 1  # first layer, sample 0, step 0
        return result

    monkeypatch.setattr(snnhw.sim.runner, "simulate", wrong)
    with pytest.raises(CosimMismatch, match=r"RTL is not bit-exact: \d+ value\(s\) differ from "
                       r"the golden model; first: sample 0, timestep 0"):
        cosim_point(trained, best["lanes"], 20, str(out / "verify" / best["id"] / "cosim"))


@pytest.mark.slow
@pytest.mark.fpga
def test_verify_builds_a_bitstream_with_measured_logic_clock_and_fmax(tmp_path, capsys):
    """The command: --verify 1 with the iCEBreaker; the build's numbers beside the estimate.
    On a LocalCluster, so that the models and builds stay in OUT (models/, verify/)."""
    path = _space(tmp_path, boards=["icebreaker"], axes={"compress[0].bits": [4]})
    out = tmp_path / "out"
    assert main(["explore", str(path), "-o", str(out), "--no-progress", "--verify", "1",
                 "--verify-samples", "10", "--workers", "1"]) == 0
    assert "--verify 1: 1 verified, 0 read back, 0 failed" in capsys.readouterr().out
    record = json.loads((out / "points.json").read_text())["points"][0]
    _check_verified(out, record, 10)
    built = record["verify"]["boards"]["icebreaker"]
    utilization = json.loads((out / "verify" / record["id"] / "icebreaker" /
                              "utilization.json").read_text())
    assert built["logic"] == utilization["resources"]["logic"]["used"] > 0
    assert built["fmax_mhz"] == utilization["fmax_mhz"] >= built["clock_mhz"] >= 12
    assert built["us_per_image"] == pytest.approx(
        record["verify"]["cosim"]["cycles_per_image"] / built["clock_mhz"])
    assert list((out / "verify" / record["id"] / "icebreaker").glob("*.bin"))
