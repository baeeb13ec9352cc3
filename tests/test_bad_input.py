"""Bad input that used to get through (issue 13): each is one line on stderr, exit 2, nothing
written, no traceback, and the check comes before the first expensive step."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from test_network_format import tiny_network
from snnhw.cli import main
from snnhw.network import save


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    save(tiny_network(), path)
    return path


def _run(capsys, *argv) -> tuple[int, str]:
    """Run ``snnhw argv``; return the status and stderr, which must be one line."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("snnhw: error: "), err
    return status, err.removeprefix("snnhw: error: ").rstrip("\n")


def _inputs(tmp_path: Path, array: np.ndarray) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, array)
    return path


def _edit(model: Path, change) -> None:
    manifest = yaml.safe_load((model / "network.yaml").read_text())
    change(manifest)
    (model / "network.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def _never(*args, **kwargs):
    raise AssertionError("the expensive step ran before the check")


# -- output paths ---------------------------------------------------------------------------------


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("keep me\n")
    return path


def test_compile_into_an_existing_file(capsys, model, a_file):
    status, err = _run(capsys, "compile", model, "-o", a_file)
    assert status == 2
    assert err == (f"-o/--out: expected a directory to write into, but '{a_file}' is an existing "
                   f"file")
    assert a_file.read_text() == "keep me\n"


def test_compile_below_a_file(capsys, model, a_file):
    status, err = _run(capsys, "compile", model, "-o", a_file / "sub" / "out")
    assert status == 2
    assert err == (f"-o/--out: cannot write '{a_file / 'sub' / 'out'}': '{a_file}' is a file, "
                   f"not a directory")


@pytest.mark.parametrize("argv", [
    ["compile", "{model}", "-o", ""],
    ["build", "{model}", "--board", "icebreaker", "-o", ""],
    ["simulate", "{model}", "--inputs", "{x}", "--out", ""],
    ["cosim", "{model}", "--inputs", "{x}", "--out", ""],
    ["cosim", "{model}", "--inputs", "{x}", "--out", "{tmp}/r.npz", "--work-dir", ""],
    ["train", "{tmp}/recipe.yaml", "-o", ""],
    ["flow", "-o", ""],
])
def test_an_empty_output_path(capsys, tmp_path, model, argv):
    x = _inputs(tmp_path, np.zeros((1, 2, 3), np.uint8))
    argv = [a.format(model=model, x=x, tmp=tmp_path) for a in argv]
    status, err = _run(capsys, *argv)
    assert status == 2
    assert re.fullmatch(r"(-o/--out|--out|--work-dir): expected a path to write to, got ''", err)


def test_build_into_an_existing_file(capsys, model, a_file):
    status, err = _run(capsys, "build", model, "--board", "icebreaker", "-o", a_file)
    assert status == 2
    assert err == (f"-o/--out: expected a directory to write into, but '{a_file}' is an existing "
                   f"file")


def test_simulate_out_is_a_directory_or_below_a_file(capsys, tmp_path, model, a_file):
    x = _inputs(tmp_path, np.zeros((1, 2, 3), np.uint8))
    status, err = _run(capsys, "simulate", model, "--inputs", x, "--out", tmp_path)
    assert (status, err) == (2, f"--out: expected a file to write, but '{tmp_path}' is a directory")
    status, err = _run(capsys, "simulate", model, "--inputs", x, "--out", a_file / "r.npz")
    assert status == 2
    assert err == f"--out: cannot write '{a_file / 'r.npz'}': '{a_file}' is a file, not a directory"
    status, err = _run(capsys, "simulate", model, "--inputs", x, "--out", tmp_path / "no" / "r.npz")
    assert status == 2
    assert err == (f"--out: cannot write '{tmp_path / 'no' / 'r.npz'}': directory "
                   f"'{tmp_path / 'no'}' does not exist")


def test_cosim_output_paths_fail_before_the_verilator_build(capsys, monkeypatch, tmp_path, model,
                                                            a_file):
    import snnhw.sim.runner
    monkeypatch.setattr(snnhw.sim.runner, "cosim", _never)
    x = _inputs(tmp_path, np.zeros((1, 2, 3), np.uint8))
    status, err = _run(capsys, "cosim", model, "--inputs", x, "--out", tmp_path)
    assert (status, err) == (2, f"--out: expected a file to write, but '{tmp_path}' is a directory")
    status, err = _run(capsys, "cosim", model, "--inputs", x, "--out", tmp_path / "r.npz",
                       "--work-dir", a_file)
    assert status == 2
    assert err == (f"--work-dir: expected a directory to write into, but '{a_file}' is an "
                   f"existing file")
    # The default build directory (R.npz's name + '.cosim') is an existing file.
    (tmp_path / "r.cosim").write_text("")
    status, err = _run(capsys, "cosim", model, "--inputs", x, "--out", tmp_path / "r.npz")
    assert status == 2
    assert err == (f"{tmp_path / 'r.cosim'}: expected a build directory (--work-dir, default "
                   f"R.npz's name + '.cosim'), but it is an existing file")


def test_cosim_with_more_timesteps_than_the_core_counts(capsys, monkeypatch, tmp_path, model):
    import snnhw.sim.runner
    monkeypatch.setattr(snnhw.sim.runner, "cosim", _never)
    x = _inputs(tmp_path, np.zeros((1, 70_000, 3), np.uint8))
    status, err = _run(capsys, "cosim", model, "--inputs", x, "--out", tmp_path / "r.npz")
    assert status == 2
    assert err == (f"{x}: expected at most 65535 timesteps (the core counts timesteps in 16 "
                   f"bits), got 70000")


# -- arrays ---------------------------------------------------------------------------------------


def _npy_header(shape: str, descr: str = "'|u1'") -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"
    header = header.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


@pytest.mark.parametrize("content,why", [
    (b"", "not a .npy array (the file is empty)"),
    (b"hello, world", "not a .npy array (no .npy magic string at its start)"),
    (b"\x93NUMPY\x01\x00\x10\x00{garbage}       \n",
     "not a .npy array (its header cannot be read)"),
    (_npy_header("(1000000, 1000000, 3)"),
     "expected at most 2147483648 elements, but its header declares shape (1000000, 1000000, 3) "
     "(3e+12 bytes)"),
    (_npy_header("(1, 2, 3)", "'|O'"),
     "expected an array of numbers, got one of Python objects (dtype object)"),
    (_npy_header("(4, 5, 3)"),
     "not a readable .npy array (its data is shorter than its header's shape (4, 5, 3) needs)"),
    (_npy_header("(4, 5, 7)"),
     "expected shape [samples, timesteps, 3] (input_size of tiny), got (4, 5, 7)"),
])
def test_a_bad_inputs_file(capsys, tmp_path, model, content, why):
    x = tmp_path / "x.npy"
    x.write_bytes(content)
    out = tmp_path / "r.npz"
    status, err = _run(capsys, "simulate", model, "--inputs", x, "--out", out)
    assert (status, err) == (2, f"{x}: {why}")
    assert not out.exists()


# -- YAML -----------------------------------------------------------------------------------------


def test_yaml_nested_20000_levels_deep(capsys, tmp_path, model):
    (model / "network.yaml").write_text("layers: " + "[" * 20_000 + "]" * 20_000 + "\n")
    status, err = _run(capsys, "compile", model, "-o", tmp_path / "out")
    assert (status, err) == (2, f"{model / 'network.yaml'}: line 1: nested more than 100 levels "
                                f"deep")
    assert not (tmp_path / "out").exists()


def test_yaml_duplicate_key(capsys, tmp_path, model):
    text = (model / "network.yaml").read_text()
    assert text.count("threshold: 5\n") == 1
    text = text.replace("    threshold: 5\n", "    threshold: 5\n    threshold: 6\n")
    (model / "network.yaml").write_text(text)
    line = text.splitlines().index("    threshold: 6") + 1
    status, err = _run(capsys, "compile", model, "-o", tmp_path / "out")
    assert (status, err) == (2, f"{model / 'network.yaml'}: line {line}: duplicate key "
                                f"'threshold' (first given at line {line - 1})")


def test_recipe_duplicate_key(capsys, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: a\ntrain: {epochs: 1}\nname: b\n")
    status, err = _run(capsys, "train", recipe, "-o", tmp_path / "m")
    assert (status, err) == (2, f"{recipe}: line 3: duplicate key 'name' (first given at line 1)")


# -- limits of the core that the format does not have ---------------------------------------------


@pytest.mark.parametrize("timesteps", [70_000, 10**30])
def test_more_timesteps_than_the_core_counts(capsys, tmp_path, model, timesteps):
    _edit(model, lambda m: m.update(timesteps=timesteps))
    status, err = _run(capsys, "compile", model, "-o", tmp_path / "out")
    assert (status, err) == (2, f"{model / 'network.yaml'}: timesteps: expected at most 65535 "
                                f"(the core counts timesteps in 16 bits), got {timesteps}")
    assert not (tmp_path / "out").exists()


def test_a_layer_name_too_long_for_a_file_name(capsys, tmp_path, model):
    name = "n" * 3000

    def rename(manifest):
        manifest["layers"][0]["name"] = name
        manifest["layers"][0]["weights"] = "fc1.index"  # the array keeps its key

    _edit(model, rename)
    status, err = _run(capsys, "compile", model, "-o", tmp_path / "out")
    assert (status, err) == (2, f"{model / 'network.yaml'}: layers[0].name: expected at most 64 "
                                f"characters (it names files and Verilog modules), got 3000: "
                                f"'nnnnnnnnnnnnnnnnnnnn'...")


# -- generated text -------------------------------------------------------------------------------


def test_a_network_name_cannot_inject_verilog(capsys, tmp_path, model):
    _edit(model, lambda m: m.update(name="tiny\nmodule evil; endmodule"))
    status, err = _run(capsys, "compile", model, "-o", tmp_path / "out")
    assert status == 2
    assert err == (f"{model / 'network.yaml'}: name: expected a non-empty name of letters, "
                   f"digits, '_', '.' and '-', got 'tiny\\nmodule evil; endmodule'")


def test_verilog_comments_are_escaped(tmp_path):
    # A Network built in Python skips the loader's checks; the instance template still escapes.
    from snnhw.compiler.output import _instance_template
    from snnhw.plan import CorePlan
    net = tiny_network()
    net.name = "tiny\nmodule evil; endmodule"
    text = _instance_template(CorePlan.build(net, 1))
    assert "from network 'tiny\\x0amodule evil; endmodule'" in text
    assert not any(line.startswith("module") for line in text.splitlines())


def test_a_layer_name_with_a_newline(capsys, tmp_path, model):
    _edit(model, lambda m: m["layers"][0].update(name="fc\n1"))
    status, err = _run(capsys, "compile", model, "-o", tmp_path / "out")
    assert status == 2
    assert err == (f"{model / 'network.yaml'}: layers[0].name: expected an identifier "
                   f"([A-Za-z_][A-Za-z0-9_]*), got 'fc\\n1'")


# -- recipes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("line,field,got", [
    ("compress: [{prune: {sparsity: .nan}}]", "compress[0].prune.sparsity", "nan"),
    ("data: {max_rate: .nan}", "data.max_rate", "nan"),
    ("model: {surrogate_slope: .inf}", "model.surrogate_slope", "inf"),
    ("model: {surrogate_slope: inf}", "model.surrogate_slope", "'inf'"),
])
def test_recipe_non_finite_numbers_fail_before_training(capsys, monkeypatch, tmp_path, line,
                                                        field, got):
    import snnhw.train.pipeline
    monkeypatch.setattr(snnhw.train.pipeline, "run_recipe", _never)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: t\n{line}\n")
    status, err = _run(capsys, "train", recipe, "-o", tmp_path / "m")
    assert (status, err) == (2, f"{recipe}: {field}: expected a finite number, got {got}")
    assert not (tmp_path / "m").exists()


def test_recipe_init_rate_out_of_range_fails_before_training(capsys, monkeypatch, tmp_path):
    import snnhw.train.pipeline
    monkeypatch.setattr(snnhw.train.pipeline, "run_recipe", _never)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: t\nmodel: {init_rate: 1.5}\n")
    status, err = _run(capsys, "train", recipe, "-o", tmp_path / "m")
    assert (status, err) == (2, f"{recipe}: model.init_rate: expected a value in 0.01..0.99, "
                                f"got 1.5")
    assert not (tmp_path / "m").exists()


# -- late checks ----------------------------------------------------------------------------------


def test_flow_refuses_an_unknown_board_before_training(capsys, tmp_path):
    status, err = _run(capsys, "flow", "-o", tmp_path / "out", "--board", "nosuchboard")
    assert status == 2
    assert err.startswith("--board: unknown board 'nosuchboard' (known: ")
    assert not (tmp_path / "out").exists()  # the flow's configuration failed: nothing trained


def test_a_board_whose_platform_is_not_a_platform_class(tmp_path):
    from snnhw.boards.build import _platform
    from snnhw.boards.config import BOARDS_DIR, BoardError, load_board
    text = (BOARDS_DIR / "icebreaker.yaml").read_text()
    platform = re.search(r"^platform: *(\S+)", text, re.M).group(1)
    for bad, what in [("collections:OrderedDict", "a class, but not a Platform"),
                      ("os.path:join", "function")]:
        board = tmp_path / "board.yaml"
        board.write_text(text.replace(platform, bad))
        with pytest.raises(BoardError) as info:
            _platform(load_board(board))
        assert str(info.value) == (f"{board}: platform: expected an Amaranth platform class, "
                                   f"but {bad} is {what}")


def test_build_refuses_more_inputs_than_the_protocol_carries(capsys, monkeypatch, tmp_path):
    import snnhw.boards.build
    from snnhw.network import Layer, Network, Neuron, Reset
    monkeypatch.setattr(snnhw.boards.build, "build", _never)
    layer = Layer(name="fc1", index=np.zeros((2, 40_000), np.int8), codebook=(1,), weight_bits=2,
                  neuron=Neuron(threshold=3, leak_shift=0, reset=Reset.ZERO, v_bits=4))
    model = tmp_path / "wide"
    save(Network(name="wide", input_size=40_000, layers=[layer]), model)
    status, err = _run(capsys, "build", model, "--board", "icebreaker", "-o", tmp_path / "out")
    assert (status, err) == (2, f"{model / 'network.yaml'}: input_size: expected at most 32768 "
                                f"for a board (its protocol's limit), got 40000")


@pytest.mark.parametrize("name", ["two words", "a\\nb", "n" * 65, "''"])
def test_recipe_name_that_cannot_name_a_network(capsys, monkeypatch, tmp_path, name):
    import snnhw.train.pipeline
    monkeypatch.setattr(snnhw.train.pipeline, "run_recipe", _never)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f'name: "{name}"\n' if name != "''" else "name: ''\n")
    status, err = _run(capsys, "train", recipe, "-o", tmp_path / "m")
    assert status == 2
    assert err.startswith(f"{recipe}: name: expected a network name of 1..64 letters, digits, "
                          f"'_', '.' and '-', got ")
