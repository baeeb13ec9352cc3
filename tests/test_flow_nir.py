"""``snnhw flow --nir GRAPH.nir``: the flow from an imported network (no training), its report
with the float-vs-integer agreement, and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from test_frontend_nir import snntorch_export  # noqa: E402
from test_frontend_snntorch import snntorch_spikes  # noqa: E402
from snnhw.cli import main  # noqa: E402
from snnhw.results import Result  # noqa: E402


@pytest.fixture
def graph(tmp_path):
    """An snnTorch network (integer by construction, deferred subtract) exported to NIR, and 6
    samples of inputs with labels."""
    model, exported = snntorch_export("subtract", True, seed=5)
    nir.write(tmp_path / "g.nir", exported)
    inputs = (np.random.default_rng(5).random((6, 10, 20)) < 0.4).astype(np.uint8)
    np.save(tmp_path / "x.npy", inputs)
    np.save(tmp_path / "y.npy", np.arange(6) % 10)
    return model, inputs, tmp_path


@pytest.mark.verilator
def test_flow_from_a_nir_graph(graph, capsys):
    model, inputs, tmp = graph
    out = tmp / "out"
    assert main(["flow", "--nir", str(tmp / "g.nir"), "--inputs", str(tmp / "x.npy"),
                 "--labels", str(tmp / "y.npy"), "--reset", "subtract", "--reset-timing",
                 "deferred", "--samples", "3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train" not in printed.split("\n")[0] and "NIR graph" in printed.split("\n")[0]
    report = json.loads((out / "report.json").read_text())
    # Integer by construction: the import is exact, and the report says so.
    assert report["import"]["prediction_agreement"] == 1.0
    assert report["import"]["layer_spike_agreement"] == {"fc1": 1.0, "fc2": 1.0}
    assert "Import: float NIR graph against the integer network" in \
        (out / "report.html").read_text()
    assert "metrics.json" not in {p.name for p in (out / "model").iterdir()}
    # The co-simulated core computed snnTorch's own spikes.
    rtl = Result.load(out / "rtl.npz")
    for name, want in zip(["fc1", "fc2"], snntorch_spikes(model, inputs[:3])):
        assert np.array_equal(rtl.spikes[name], want), name


@pytest.mark.parametrize("argv,message", [
    (["--nir", "{tmp}/missing.nir", "--inputs", "{tmp}/x.npy", "--labels", "{tmp}/y.npy"],
     "{tmp}/missing.nir: expected a NIR file, but it does not exist"),
    (["--nir", "{tmp}/g.nir", "--labels", "{tmp}/y.npy"],
     "--inputs: a .npy file: a flow from a NIR graph needs test inputs and their labels"),
    (["--inputs", "{tmp}/x.npy"], "--inputs: only with a NIR graph to start from"),
    (["--nir", "{tmp}/g.nir", "--inputs", "{tmp}/y.npy", "--labels", "{tmp}/y.npy"],
     "{tmp}/y.npy: expected 0/1 spikes [samples, timesteps, inputs], got shape [6]"),
    (["--nir", "{tmp}/g.nir", "--inputs", "{tmp}/x.npy", "--labels", "{tmp}/x.npy"],
     "{tmp}/x.npy: expected integer labels of shape [6] (one per input sample), got uint8 "
     "[6, 10, 20]"),
    (["{tmp}/recipe.yaml", "--nir", "{tmp}/g.nir"],
     "{tmp}/recipe.yaml: a recipe trains a network; --nir imports one instead (give one of "
     "them)"),
])
def test_bad_flow_from_nir(graph, capsys, argv, message):
    _, _, tmp = graph
    (tmp / "recipe.yaml").write_text("name: x\n")
    out = tmp / "out"
    status = main(["flow", *[a.format(tmp=tmp) for a in argv], "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert (status, err) == (2, "snnhw: error: " + message.format(tmp=tmp))
    assert len(err.splitlines()) == 1
    assert not (out / "model" / "network.yaml").exists()
