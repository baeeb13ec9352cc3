"""`snnhw compile`: Verilog that lints clean, memory images, report, template; errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from snnhw.cli import main
from snnhw.compiler import compile_network, generate_verilog, lint
from snnhw.errors import SnnhwError
from snnhw.network import save
from snnhw.plan import WORDS_SLACK, CorePlan, Layout, core_report, top_name
from snnhw.random_networks import random_network


@pytest.fixture(scope="module")
def net():
    return random_network(np.random.default_rng(5), 30, [20, 4], density=0.5, codebook_size=3)


def test_compile_writes_every_file(net, tmp_path):
    plan = CorePlan.build(net, 2)
    compile_network(plan, tmp_path / "out")
    out = tmp_path / "out"
    top = top_name(net)
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["files"]) == sorted(
        [f"{top}.v", f"{top}_inst.v", "report.json", "mem/fc1.synapses.hex",
         "mem/fc1.pointers.hex", "mem/fc1.codebook.hex", "mem/fc2.synapses.hex",
         "mem/fc2.pointers.hex", "mem/fc2.codebook.hex"])
    for name in report["files"]:
        assert (out / name).is_file()
    assert report == core_report(plan).to_json() | {"files": report["files"]}
    # The hex images hold the layout's words, one per line.
    lay = plan.layers[0].synapses
    words = [int(line, 16) for line in (out / "mem/fc1.synapses.hex").read_text().split()]
    assert words == lay.packed_words()
    codebook = (out / "mem/fc1.codebook.hex").read_text().split()
    mask = (1 << net.layers[0].weight_bits) - 1
    assert [int(c, 16) for c in codebook] == [c & mask for c in net.layers[0].codebook]
    template = (out / f"{top}_inst.v").read_text()
    assert f"{top} u_{top} (" in template and "${" not in template


def test_report_counts_memory_bits(net):
    plan = CorePlan.build(net, 1, layouts={"fc1": Layout.ADDRESSED})
    report = core_report(plan).to_json()
    fc1 = report["layers"][0]
    assert fc1["synapses"] == net.layers[0].synapse_count
    # One lane: one word per synapse, each {valid, 2-bit index, 5-bit address}.
    assert fc1["layout"] == "addressed" and fc1["gap_bits"] == 0
    assert fc1["memory_bits"]["synapse"] == net.layers[0].synapse_count * (1 + 2 + 5)
    # A spike reads its column's words, one a synapse here, at least one.
    assert fc1["spike_words"] == int(np.maximum(1, net.layers[0].connectivity.fan_out()).sum())
    # The layout the plan picks by itself stores fewer bits: delta, {gap, 2-bit index} a slot.
    chosen = core_report(CorePlan.build(net, 1)).to_json()["layers"][0]
    assert chosen["layout"] == "delta" and chosen["gap_bits"] >= 1
    assert chosen["memory_bits"]["synapse"] == chosen["synapse_words"] * (chosen["gap_bits"] + 2)
    assert fc1["spike_words"] <= chosen["spike_words"] <= (1 + WORDS_SLACK) * fc1["spike_words"]
    assert (sum(chosen["memory_bits"][k] for k in ("synapse", "pointer"))
            < sum(fc1["memory_bits"][k] for k in ("synapse", "pointer")))
    assert fc1["memory_bits"]["codebook"] == 3 * net.layers[0].weight_bits
    assert fc1["memory_bits"]["membrane"] == 20 * net.layers[0].neuron.v_bits
    # Two accumulator banks: timestep t+1 accumulates while t is swept.
    assert fc1["memory_bits"]["accumulator"] == 2 * 20 * plan.layers[0].acc_bits
    assert report["memory_bits"]["total"] == sum(
        sum(layer["memory_bits"].values()) for layer in report["layers"])


def test_dense_layer_stores_no_addresses():
    net = random_network(np.random.default_rng(1), 16, [8], density=1.0, codebook_size=4)
    fc1 = core_report(CorePlan.build(net, 1)).to_json()["layers"][0]
    assert fc1["layout"] == "implicit"
    assert fc1["memory_bits"]["synapse"] == 16 * 8 * 2 and fc1["memory_bits"]["pointer"] == 0


@pytest.mark.verilator
@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("density,codebook_size", [(1.0, 1), (0.3, 4), (0.0, 2), (0.7, 256)])
def test_verilog_lints_clean(tmp_path, lanes, density, codebook_size):
    net = random_network(np.random.default_rng(2), 12, [9, 3], density=density,
                         codebook_size=codebook_size, weight_bits=9)
    path = tmp_path / "core.v"
    path.write_text(generate_verilog(CorePlan.build(net, lanes)))
    lint(path)


@pytest.mark.verilator
def test_lint_reports_a_real_problem(tmp_path):
    path = tmp_path / "bad.v"
    path.write_text("module bad(input a, output b); assign b = c; endmodule\n")
    with pytest.raises(SnnhwError, match=r"bad\.v: verilator lint failed: %Error"):
        lint(path)


def test_verilog_is_reproducible(net):
    assert generate_verilog(CorePlan.build(net, 2)) == generate_verilog(CorePlan.build(net, 2))
    assert "/work/" not in generate_verilog(CorePlan.build(net, 1))


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


def test_sparsity_has_one_definition(tmp_path):
    """A zero codebook entry adds nothing, as a pruned synapse does: the compile report, the
    layer and the training export all count both (regression: compile counted pruned only)."""
    from snnhw.train.export import layer_memory

    net = random_network(np.random.default_rng(4), 10, [6], density=0.5, codebook_size=3)
    layer = net.layers[0]
    layer.codebook = (0,) + layer.codebook[1:]
    zeros = np.count_nonzero(layer.index == 0) + np.count_nonzero(layer.index < 0)
    fc1 = core_report(CorePlan.build(net, 1)).layers[0]
    assert fc1.sparsity == layer.sparsity == zeros / layer.index.size
    assert layer_memory(layer)["sparsity"] == layer.sparsity
    assert fc1.sparsity > 1 - layer.synapse_count / layer.index.size


def test_compile_leaves_no_stale_memory_images(tmp_path):
    """Compiling a dense network where a pruned one was compiled removes its pointer images."""
    pruned = random_network(np.random.default_rng(6), 12, [5], density=0.5)
    dense = random_network(np.random.default_rng(6), 12, [5], density=1.0)
    compile_network(CorePlan.build(pruned, 1), tmp_path / "out")
    assert (tmp_path / "out" / "mem" / "fc1.pointers.hex").exists()
    compile_network(CorePlan.build(dense, 1), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "mem").iterdir()) == [
        "fc1.codebook.hex", "fc1.synapses.hex"]
