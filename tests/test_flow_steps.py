"""The flow as named steps: the step list, first_step/last_step, and re-runs after a source edit."""

import shutil
from pathlib import Path

import pytest
from conftest import TINY_RECIPE

import snnhw.flow
import snnhw.flow.stages as stages_module
from snnhw.errors import SnnhwError
from snnhw.flow.flow import _RECORDS, STEP_NAMES, STEPS, run_flow
from snnhw.flow.stages import Stages, source_digest, tree_digest


def test_step_list():
    assert STEP_NAMES == ("train", "golden", "compile", "cosim", "board", "report")
    assert snnhw.flow.STEP_NAMES == STEP_NAMES == tuple(name for name, _ in STEPS)
    assert all(step.__name__ == f"step_{name}" for name, step in STEPS)
    assert set(_RECORDS) == set(STEP_NAMES)


# --- snnhw's own source is part of every fingerprint -----------------------------------------

def test_source_edit_reruns_stage(tmp_path, monkeypatch):
    # Regression: fingerprints held only the version string, so after an edit to the hardware
    # generator 'compile' and 'co-simulation' were skipped and the report claimed bit-exactness.
    calls = []

    def compile_stage(log):
        calls.append(1)
        (tmp_path / "core.v").write_text("module x; endmodule\n")
        return {"n": len(calls)}

    def run():
        return Stages(tmp_path / "out", echo=lambda line: None).run(
            "compile", compile_stage, params={"lanes": 2}, outputs=[tmp_path / "core.v"])

    assert run() == {"n": 1}
    assert run() == {"n": 1}
    monkeypatch.setattr(stages_module, "source_digest", lambda: "edited generator")
    assert run() == {"n": 2}, "compile was skipped after an edit to snnhw's source"


def test_tree_digest_sees_source_edits(tmp_path):
    package = tmp_path / "snnhw"
    (package / "hw").mkdir(parents=True)
    (package / "hw" / "core.py").write_text("LANES = 1\n")
    (package / "rtl.v").write_text("module m; endmodule\n")
    before = tree_digest([package])
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "core.py").write_text("ignored")
    (package / "notes.md").write_text("not source")
    assert tree_digest([package]) == before
    assert tree_digest([package, package / "hw"]) == before  # a file seen twice counts once
    (package / "hw" / "core.py").write_text("LANES = 2\n")
    assert tree_digest([package]) != before
    (package / "hw" / "core.py").write_text("LANES = 1\n")
    (package / "hw" / "new.py").write_text("")
    assert tree_digest([package]) != before


def test_source_digest_covers_the_generator_and_is_computed_once():
    import snnhw.sim

    source_digest.cache_clear()
    digest = source_digest()
    assert source_digest() == digest and source_digest.cache_info().hits == 1
    roots = [Path(snnhw.__file__).parent, Path(snnhw.sim.__file__).parent]
    assert digest != tree_digest(roots[:1])  # the testbenches count too


def test_recall_returns_an_earlier_result(tmp_path):
    lines = []
    stages = Stages(tmp_path, echo=lines.append)
    with pytest.raises(SnnhwError, match=r"^step 'golden' has not run in .* \(no .*golden.json\); "
                                         r"run it first: try this$"):
        stages.recall("golden", label="golden model", hint=": try this")
    (tmp_path / "golden.npz").write_text("")
    Stages(tmp_path, echo=lines.append).run("golden", lambda log: {"accuracy": 0.5},
                                            params={"x": 1}, outputs=[tmp_path / "golden.npz"])
    again = Stages(tmp_path, echo=lines.append)
    assert again.recall("golden", params={"x": 1}, label="golden model") == {"accuracy": 0.5}
    assert lines[-1] == "[1] golden model: not run, using the result of an earlier run"
    assert again.recall("golden", params={"x": 2}, label="golden model") == {"accuracy": 0.5}
    assert lines[-1].endswith("earlier run (out of date: its parameters, inputs or snnhw "
                              "changed since)")
    assert again.timings == {}  # recalled steps took no time in this run
    (tmp_path / "golden.npz").unlink()
    with pytest.raises(SnnhwError, match=r"golden.npz is missing\); run it first$"):
        again.recall("golden", outputs=[tmp_path / "golden.npz"])


# --- first_step / last_step ------------------------------------------------------------------

@pytest.mark.parametrize("param", ["first_step", "last_step"])
def test_unknown_step_is_one_line(tmp_path, param):
    with pytest.raises(SnnhwError) as error:
        run_flow(None, tmp_path / "out", **{param: "simulate"})
    message = str(error.value)
    assert message.startswith(f"{param}: unknown step 'simulate'")
    assert "train, golden, compile, cosim, board, report" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_step_order_and_board_are_checked(tmp_path):
    with pytest.raises(SnnhwError, match=r"^first_step: 'cosim' comes after the last step "
                                         r"'golden'"):
        run_flow(None, tmp_path / "out", first_step="cosim", last_step="golden")
    with pytest.raises(SnnhwError, match=r"^last_step: step 'board' runs only with a board$"):
        run_flow(None, tmp_path / "out", last_step="board")
    assert not (tmp_path / "out").exists()


def test_the_board_and_clock_are_checked_before_any_work(tmp_path, capsys):
    from snnhw.cli import main

    assert main(["flow", "-o", str(tmp_path / "out"), "--board", "icebreaker",
                 "--clock", "900"]) == 2
    assert capsys.readouterr().err.startswith("snnhw: error: --clock: expected ")
    assert main(["flow", "-o", str(tmp_path / "out"), "--clock", "30"]) == 2
    assert capsys.readouterr().err == "snnhw: error: --clock: only with a board to build for\n"
    assert main(["flow", "-o", str(tmp_path / "out"), "--seeds", "3"]) == 2
    assert capsys.readouterr().err == "snnhw: error: --seeds: only with a board to build for\n"
    assert main(["flow", "-o", str(tmp_path / "out"), "--board", "icebreaker", "--seeds",
                 "0"]) == 2
    assert capsys.readouterr().err.startswith("snnhw: error: --seeds: expected ")
    assert main(["flow", "-o", str(tmp_path / "out"), "--board", "no-such-board"]) == 2
    assert "no-such-board" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_cli_names_the_flags(tmp_path, capsys):
    from snnhw.cli import main

    assert main(["flow", "-o", str(tmp_path / "out"), "--from", "cosim", "--to", "golden"]) == 2
    assert capsys.readouterr().err.startswith("snnhw: error: --from: 'cosim' comes after the "
                                              "last step 'golden'")
    assert not (tmp_path / "out").exists()


def test_first_step_needs_the_earlier_steps(tmp_path):
    with pytest.raises(SnnhwError) as error:
        run_flow(None, tmp_path / "out", first_step="compile", echo=lambda line: None)
    message = str(error.value)
    assert message.startswith("step 'train' has not run in ") and "\n" not in message
    assert message.endswith("run it first: first_step='train' (--from train)")


# --- on a tiny recipe, under Verilator --------------------------------------------------------

@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """A flow run up to the golden model: OUT holds model/ and golden.npz, nothing later."""
    root = tmp_path_factory.mktemp("steps")
    (root / "tiny.yaml").write_text(TINY_RECIPE)
    lines = []
    results = run_flow(root / "tiny.yaml", root / "out", samples=1, last_step="golden",
                       echo=lines.append)
    return root, results, "\n".join(lines)


@pytest.fixture
def trained(trained_once, tmp_path):
    """A copy of that run's directory, for one test to carry on from."""
    root = trained_once[0]
    shutil.copy(root / "tiny.yaml", tmp_path / "tiny.yaml")
    shutil.copytree(root / "out", tmp_path / "out")
    return tmp_path


def _flow(root: Path, **options) -> tuple[dict, str]:
    lines = []
    results = run_flow(root / "tiny.yaml", root / "out", samples=1, echo=lines.append,
                       **options)
    return results, "\n".join(lines)


@pytest.mark.slow
def test_last_step_stops_the_flow(trained_once):
    root, results, out = trained_once
    assert set(results) == {"train", "golden"} and 0 <= results["golden"]["accuracy"] <= 1
    assert "[1] train: done in " in out and "[2] golden model: done in " in out
    assert "compile" not in out
    assert (root / "out" / "golden.npz").is_file()
    assert not (root / "out" / "core").exists() and not (root / "out" / "report.json").exists()


@pytest.mark.slow
def test_first_step_names_the_missing_step(trained):
    with pytest.raises(SnnhwError, match=r"^step 'compile' has not run in .*run it first: "
                                         r"first_step='compile' \(--from compile\)$"):
        _flow(trained, first_step="cosim")


@pytest.mark.verilator
@pytest.mark.slow
def test_from_and_to_one_step_and_source_edits(trained, monkeypatch):
    results, out = _flow(trained, first_step="compile", last_step="compile")
    assert "[1] train: not run, using the result of an earlier run\n" in out
    assert "[2] golden model: not run, using the result of an earlier run\n" in out
    assert "[3] compile: done in " in out and "co-simulation" not in out
    assert set(results) == {"train", "golden", "compile"}
    assert (trained / "out" / "core" / "report.json").is_file()
    assert not (trained / "out" / "rtl.npz").exists()

    _, out = _flow(trained, first_step="compile", last_step="compile")
    assert "[3] compile: up to date, skipped" in out

    # An edit to snnhw (here: the digest of its source) re-runs compile, and says that the
    # earlier steps, not re-run, are out of date.
    monkeypatch.setattr(stages_module, "source_digest", lambda: "edited generator")
    _, out = _flow(trained, first_step="compile", last_step="compile")
    assert "[3] compile: done in " in out
    assert "[1] train: not run, using the result of an earlier run (out of date: " in out


@pytest.mark.verilator
@pytest.mark.slow
def test_from_cosim_to_the_end(trained):
    _flow(trained, first_step="compile", last_step="compile")
    numbers, out = _flow(trained, first_step="cosim")
    assert "[4] co-simulation: done in " in out and "[5] report: done in " in out
    assert "RTL bit-exact with the golden model on 1 test samples" in out
    assert "\nreport: " in out and "] board" not in out
    assert numbers["cycles"]["samples"] == 1
    assert (trained / "out" / "rtl.npz").is_file() and (trained / "out" / "report.html").is_file()
    _, out = _flow(trained)  # then the whole flow finds every step up to date
    for label in ("train", "golden model", "compile", "co-simulation", "report"):
        assert f"] {label}: up to date, skipped" in out


@pytest.mark.parametrize("errors, mismatches, message", [
    (["output stream: valid dropped"], [],
     "RTL is not bit-exact: 1 protocol error(s); first: output stream: valid dropped"),
    (["output stream: valid dropped"], ["sample 0, timestep 1, layer fc1, neuron 2: ..."] * 3,
     "RTL is not bit-exact: 3 value(s) differ from the golden model and 1 protocol error(s); "
     "first: output stream: valid dropped"),
])
def test_cosim_failure_counts_what_went_wrong(tmp_path, monkeypatch, errors, mismatches, message):
    """Protocol errors alone are not '0 values differ': the message counts each kind."""
    import snnhw.sim.runner as runner
    from snnhw.errors import CosimMismatch
    from snnhw.flow.flow import cosim_bit_exact

    def broken(plan, inputs, work_dir):
        return runner.CosimReport(rtl=None, golden=None, mismatches=mismatches,
                                  log=work_dir / "cosim.log", errors=errors)

    monkeypatch.setattr(runner, "cosim", broken)
    with pytest.raises(CosimMismatch) as raised:
        cosim_bit_exact(None, None, tmp_path, tmp_path / "cosim.log")
    assert str(raised.value) == message
    assert (tmp_path / "cosim.log").read_text().splitlines() == errors + mismatches
