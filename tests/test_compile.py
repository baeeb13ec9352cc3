"""`snnhw compile`: Verilog that lints clean, memory images, report, template; errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from snnhw.cli import main
from snnhw.compiler import compile_network, core_report, generate_verilog, lint, top_name
from snnhw.errors import SnnhwError
from snnhw.hw.layout import LayerLayout
from snnhw.network import save
from snnhw.network.random import random_network


@pytest.fixture(scope="module")
def net():
    return random_network(np.random.default_rng(5), 30, [20, 4], density=0.5, codebook_size=3)


def test_compile_writes_every_file(net, tmp_path):
    report = compile_network(net, tmp_path / "out", lanes=2)
    out = tmp_path / "out"
    top = top_name(net)
    assert sorted(report["files"]) == sorted(
        [f"{top}.v", f"{top}_inst.v", "report.json", "mem/fc1.synapses.hex",
         "mem/fc1.pointers.hex", "mem/fc1.codebook.hex", "mem/fc2.synapses.hex",
         "mem/fc2.pointers.hex", "mem/fc2.codebook.hex"])
    for name in report["files"]:
        assert (out / name).is_file()
    assert json.loads((out / "report.json").read_text()) == report
    # The hex images hold the layout's words, one per line.
    lay = LayerLayout.build(net.layers[0], 2)
    words = [int(line, 16) for line in (out / "mem/fc1.synapses.hex").read_text().split()]
    assert words == lay.packed_words()
    codebook = (out / "mem/fc1.codebook.hex").read_text().split()
    mask = (1 << net.layers[0].weight_bits) - 1
    assert [int(c, 16) for c in codebook] == [c & mask for c in net.layers[0].codebook]
    template = (out / f"{top}_inst.v").read_text()
    assert f"{top} u_{top} (" in template and "${" not in template


def test_report_counts_memory_bits(net):
    report = core_report(net, lanes=1)
    fc1 = report["layers"][0]
    lay = LayerLayout.build(net.layers[0], 1)
    assert fc1["synapses"] == net.layers[0].synapse_count
    # One lane: one word per synapse, each {valid, 2-bit index, 5-bit address}.
    assert fc1["memory_bits"]["synapse"] == net.layers[0].synapse_count * (1 + 2 + 5)
    assert fc1["memory_bits"]["codebook"] == 3 * net.layers[0].weight_bits
    assert fc1["memory_bits"]["membrane"] == 20 * net.layers[0].neuron.v_bits
    assert fc1["memory_bits"]["accumulator"] == 20 * lay.acc_bits
    assert report["memory_bits"]["total"] == sum(
        sum(layer["memory_bits"].values()) for layer in report["layers"])


def test_dense_layer_stores_no_addresses():
    net = random_network(np.random.default_rng(1), 16, [8], density=1.0, codebook_size=4)
    fc1 = core_report(net, lanes=1)["layers"][0]
    assert fc1["layout"] == "implicit"
    assert fc1["memory_bits"]["synapse"] == 16 * 8 * 2 and fc1["memory_bits"]["pointer"] == 0


@pytest.mark.verilator
@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("density,codebook_size", [(1.0, 1), (0.3, 4), (0.0, 2), (0.7, 256)])
def test_verilog_lints_clean(tmp_path, lanes, density, codebook_size):
    net = random_network(np.random.default_rng(2), 12, [9, 3], density=density,
                         codebook_size=codebook_size, weight_bits=9)
    path = tmp_path / "core.v"
    path.write_text(generate_verilog(net, lanes))
    lint(path)


@pytest.mark.verilator
def test_lint_reports_a_real_problem(tmp_path):
    path = tmp_path / "bad.v"
    path.write_text("module bad(input a, output b); assign b = c; endmodule\n")
    with pytest.raises(SnnhwError, match=r"bad\.v: verilator lint failed: %Error"):
        lint(path)


def test_verilog_is_reproducible(net):
    assert generate_verilog(net, 2) == generate_verilog(net, 2)
    assert "/work/" not in generate_verilog(net, 1)


def test_bad_lanes_write_nothing(net, tmp_path, capsys):
    save(net, tmp_path / "model")
    assert main(["compile", str(tmp_path / "model"), "-o", str(tmp_path / "out"),
                 "--lanes", "0"]) == 2
    assert capsys.readouterr().err == "snnhw: error: --lanes: expected an integer in 1..64, got 0\n"
    assert main(["compile", str(tmp_path / "model"), "-o", str(tmp_path / "out"),
                 "--lanes", "two"]) == 2
    assert "got 'two'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.verilator
def test_cli_compile(net, tmp_path):
    save(net, tmp_path / "model")
    result = subprocess.run([sys.executable, "-m", "snnhw", "compile", str(tmp_path / "model"),
                             "-o", str(tmp_path / "out"), "--lanes", "2"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "lint clean" in result.stdout
    assert (tmp_path / "out" / f"{top_name(net)}.v").is_file()
