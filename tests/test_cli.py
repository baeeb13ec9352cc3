"""The ``snnhw`` command line: one-line usage errors, flags checked while parsing, layering."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from snnhw.cli import build_parser, main
from snnhw.flow.flow import STEP_NAMES
from snnhw.plan import MAX_LANES

ROOT = Path(__file__).resolve().parent.parent

#: Every command that has --lanes, with the other arguments it needs to get that far.
WITH_LANES = {
    "compile": ["m", "-o", "out"],
    "cosim": ["m", "--inputs", "x.npy", "--out", "r.npz"],
    "build": ["m", "--board", "icebreaker", "-o", "out"],
    "flow": ["-o", "out"],
}


def _fails(capsys, argv: list[str]) -> str:
    """Run ``snnhw argv``, which must be a usage error; return its one line."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("snnhw: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err.rstrip("\n")


@pytest.mark.parametrize("command", sorted(WITH_LANES))
@pytest.mark.parametrize("value, got", [("0", "0"), ("x", "'x'"),
                                        (str(MAX_LANES + 1), str(MAX_LANES + 1)),
                                        ("-1", "-1"), ("1.5", "'1.5'")])
def test_bad_lanes_is_one_line_naming_the_flag(capsys, tmp_path, monkeypatch, command, value, got):
    monkeypatch.chdir(tmp_path)
    line = _fails(capsys, [command, *WITH_LANES[command], "--lanes", value])
    assert line == f"snnhw: error: --lanes: expected an integer in 1..{MAX_LANES}, got {got}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["1", str(MAX_LANES)])
def test_lanes_at_the_limits_parse(value):
    args = build_parser().parse_args(["compile", "m", "-o", "out", "--lanes", value])
    assert args.lanes == int(value)


def test_defaults_are_numbers_not_text():
    parser = build_parser()
    assert parser.parse_args(["compile", "m", "-o", "out"]).lanes == 1
    flow = parser.parse_args(["flow", "-o", "out"])
    assert isinstance(flow.lanes, int)
    assert flow.samples is None  # the whole test split
    assert parser.parse_args(["flow", "-o", "out", "--samples", "3"]).samples == 3
    assert flow.first_step is flow.last_step is None  # the flow's own defaults


def test_missing_required_flag_is_one_line(capsys):
    line = _fails(capsys, ["simulate", "m", "--out", "r.npz"])
    assert line == "snnhw: error: the following arguments are required: --inputs"


@pytest.mark.parametrize("argv, flag", [
    (["flow", "-o", "out", "--samples", "0"], "--samples: expected a positive integer, got 0"),
    (["cosim", "m", "--inputs", "x", "--out", "r", "--show", "-1"], "--show: expected"),
    (["build", "m", "--board", "b", "-o", "o", "--baud", "fast"], "--baud: expected"),
    (["build", "m", "--board", "b", "-o", "o", "--synapses", "disk"], "--synapses: invalid choice"),
    (["flow", "-o", "out", "--from", "nowhere"], "--from: invalid choice: 'nowhere'"),
    (["flow", "-o", "out", "--to"], "--to: expected one argument"),
    (["compile", "m", "-o", "out", "--fast"], "unrecognized arguments: --fast"),
    (["frobnicate"], "COMMAND: invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_usage_errors_are_one_line(capsys, argv, flag):
    assert _fails(capsys, argv).startswith(f"snnhw: error: {flag}")


def test_flow_passes_steps_and_numbers(monkeypatch):
    import snnhw.flow.flow
    calls = []
    monkeypatch.setattr(snnhw.flow.flow, "run_flow",
                        lambda *args, **kwargs: calls.append((args, kwargs)))
    first, last = STEP_NAMES[1], STEP_NAMES[-2]
    assert main(["flow", "r.yaml", "-o", "out", "--lanes", "4", "--samples", "3",
                 "--from", first, "--to", last]) == 0
    assert calls == [(("r.yaml", "out"), {"samples": 3, "lanes": 4, "board": None, "clock": "auto",
                                          "seeds": 1, "first_step": first, "last_step": last, "nir": None,
                                          "inputs": None, "labels": None, "reset": None,
                                          "reset_timing": None})]


def test_help_lists_every_command_of_the_readme():
    result = subprocess.run([sys.executable, "-m", "snnhw.cli", "--help"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: snnhw ")
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `snnhw (\w+)", table, re.M)
    listed = re.findall(r"^    (\w+) {2,}\w", result.stdout, re.M)
    assert len(documented) == 9 and sorted(listed) == sorted(documented)


def test_usage_error_exits_2_from_the_shell():
    result = subprocess.run([sys.executable, "-m", "snnhw", "compile", "m", "-o", "out",
                             "--lanes", "0"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"snnhw: error: --lanes: expected an integer in 1..{MAX_LANES}, got 0\n"


def test_library_errors_name_the_flag_that_set_the_parameter(tmp_path, capsys):
    """The library names its parameters (``board: ...``); the CLI shows the flag instead."""
    from snnhw.boards.config import find_board
    from snnhw.errors import ParameterError

    with pytest.raises(ParameterError, match=r"^board: unknown board 'nosuch'"):
        find_board("nosuch")
    model = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"
    assert main(["build", str(model), "--board", "nosuch", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnhw: error: --board: unknown board 'nosuch' (known: ")
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()
