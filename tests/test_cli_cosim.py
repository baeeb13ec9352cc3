"""`snnhw cosim` from the command line: bit-exact run, reported mismatches, waves, bad input."""

import numpy as np
import pytest

import snnhw.sim.runner as runner
from snnhw.cli import main
from snnhw.golden import simulate
from snnhw.network import save
from snnhw.random_networks import random_inputs, random_network
from snnhw.results import Result

pytestmark = pytest.mark.verilator


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    net = random_network(np.random.default_rng(11), 20, [10, 3], density=0.7, timesteps=4)
    save(net, root / "model")
    np.save(root / "x.npy", random_inputs(np.random.default_rng(1), net, samples=2, rate=0.4))
    return root, net


def test_cosim_bit_exact(model, capsys):
    root, net = model
    assert main(["cosim", str(root / "model"), "--inputs", str(root / "x.npy"),
                 "--out", str(root / "r.npz"), "--work-dir", str(root / "work")]) == 0
    assert "bit-exact" in capsys.readouterr().out
    rtl = np.load(root / "r.npz")
    golden = simulate(net, np.load(root / "x.npy"))
    for layer in net.layers:
        np.testing.assert_array_equal(rtl[f"spikes/{layer.name}"], golden.spikes[layer.name])
        np.testing.assert_array_equal(rtl[f"v_final/{layer.name}"], golden.v_final[layer.name])
    np.testing.assert_array_equal(rtl["pred"], golden.pred)
    assert rtl["cycles"].shape == (2, 4) and (rtl["cycles"] > 0).all()


def test_cosim_reports_mismatches_and_leaves_waves(model, capsys, monkeypatch):
    root, net = model

    def wrong_golden(network, inputs) -> Result:
        result = simulate(network, inputs)
        result.spikes["fc2"][1, 2, 0] ^= 1  # the golden model now disagrees on one spike
        return result

    monkeypatch.setattr(runner, "simulate", wrong_golden)
    code = main(["cosim", str(root / "model"), "--inputs", str(root / "x.npy"),
                 "--out", str(root / "bad.npz"), "--work-dir", str(root / "work-waves"),
                 "--waves", "--show", "3"])
    out = capsys.readouterr().out
    assert code == 1
    assert "MISMATCH" in out
    first = [line for line in out.splitlines() if line.startswith("  sample ")]
    assert first[0].startswith("  sample 1, timestep 2, layer fc2, neuron 0: spike expected")
    assert len(first) == 2  # the spike, and the same spike on the output stream
    vcd = list((root / "work-waves").glob("failing-sample-*.vcd"))
    assert len(vcd) == 1 and vcd[0].stat().st_size > 1000
    assert f"waves of the first failing sample: {vcd[0]}" in out


def test_cosim_bad_inputs(model, capsys, tmp_path):
    root, _ = model
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 7), np.uint8))
    assert main(["cosim", str(root / "model"), "--inputs", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "r.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected shape [samples, timesteps, 20]" in err
    assert not (tmp_path / "r.npz").exists()
