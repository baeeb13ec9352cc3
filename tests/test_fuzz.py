"""The fuzzer of ``benchmarks/fuzz.py``: random networks co-simulated at scale, and a wrong golden
model is reported with a reproducer."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from snnhw.errors import SnnhwError
from snnhw.golden import simulate
from snnhw.network import load
from snnhw.results import Result

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz.py"
_spec = importlib.util.spec_from_file_location("benchmarks_fuzz", _PATH)
fuzz = sys.modules.setdefault("benchmarks_fuzz", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(fuzz)


class Echo:
    """Stands in for the Verilator build: the "RTL" is the golden model itself."""

    def __init__(self, plan, work_dir, *, timesteps):
        self.net = plan.network
        assert timesteps == self.net.timesteps

    def run(self, inputs, *, gap, backpressure, seed):
        result = simulate(self.net, inputs)
        return result, result.spikes[self.net.layers[-1].name], []


def off_by_one(net, inputs) -> Result:
    """A wrong golden model: the last layer's first neuron reads one higher in every sample."""
    result = simulate(net, inputs)
    last = net.layers[-1].name
    result.v_trace[last][:, :, 0] += 1
    return result


def _run(tmp_path, argv, **kwargs):
    lines = []
    status = fuzz.main(argv + ["--out", str(tmp_path / "out")], log=lines.append, **kwargs)
    return status, lines


def test_draws_cover_the_format():
    """Many draws reach every feature: depths, densities 0 and 1, both resets, both ends of
    v_bits, large codebooks, state codebooks, silent and saturating thresholds."""
    drawn = [fuzz.draw_network(np.random.default_rng([0, n]), f"n{n}") for n in range(150)]
    layers = [layer for d in drawn for layer in d.net.layers]
    assert {len(d.net.layers) for d in drawn} == {1, 2, 3}
    assert {0.0, 1.0} <= {d.density for d in drawn}
    assert {l.neuron.reset.value for l in layers} == {"subtract", "zero"}
    assert {4, 32} <= {l.neuron.v_bits for l in layers}
    assert max(len(l.codebook) for l in layers) > 16
    assert any(l.neuron.state_levels for l in layers)
    assert {"1", "max"} <= {d.threshold_scale for d in drawn}
    assert any(l.neuron.leak_shift == 0 for l in layers)
    inputs = fuzz.draw_inputs(np.random.default_rng(1), drawn[0].net, 200)
    rates = inputs.reshape(200, -1).mean(axis=1)
    assert rates.min() == 0.0 and rates.max() == 1.0


def test_cases_are_shared_over_networks_and_lanes(tmp_path):
    status, lines = _run(tmp_path, ["--cases", "20", "--networks", "3", "--lanes", "1", "2"],
                         simulator=Echo)
    assert status == 0
    runs = [line for line in lines if line.startswith("[")]
    assert len(runs) == 6 and all(line.endswith("OK") for line in runs)
    assert sum(int(line.split("samples=")[1].split()[0]) for line in runs) == 20
    assert "fuzz: 20 cases (3 networks x 2 lanes), 0 mismatches" in lines[-3]
    assert lines[-1].startswith("10,000 cases: ~")
    assert not (tmp_path / "out").exists()


def test_a_wrong_golden_model_is_reported_with_a_reproducer(tmp_path):
    status, lines = _run(tmp_path, ["--cases", "6", "--networks", "1", "--lanes", "2"],
                         simulator=Echo, golden=off_by_one)
    assert status == 1
    assert "fuzz: 6 cases (1 networks x 1 lanes), 6 mismatches" in "\n".join(lines)
    assert any("MISMATCH in 6 case(s)" in line for line in lines)
    directory = tmp_path / "out" / "mismatch-fuzz0-0-p2"
    command = f"snnhw cosim {directory / 'model'} --inputs {directory / 'inputs.npy'} " \
              f"--out {directory / 'rtl.npz'} --lanes 2"
    assert any(command in line for line in lines)
    # The reproducer is the network and the failing samples, loadable as the CLI loads them.
    net = load(directory / "model")
    inputs = np.load(directory / "inputs.npy")
    assert inputs.shape == (3, net.timesteps, net.input_size)
    case = json.loads((directory / "case.json").read_text())
    assert case["lanes"] == 2 and case["samples_in_run"] == [0, 1, 2]


class Hangs(Echo):
    """A simulation that stops without a result, as a hung core does."""

    def run(self, inputs, *, gap, backpressure, seed):
        raise SnnhwError("co-simulation of x.v stopped without a result; see cosim.log")


def test_a_simulation_that_stops_fails_its_cases(tmp_path):
    status, lines = _run(tmp_path, ["--cases", "4", "--networks", "1", "--lanes", "1"],
                         simulator=Hangs)
    assert status == 1
    assert any("stopped without a result" in line for line in lines)
    assert "fuzz: 4 cases (1 networks x 1 lanes), 4 mismatches" in "\n".join(lines)
    assert (tmp_path / "out" / "mismatch-fuzz0-0-p1" / "inputs.npy").exists()


@pytest.mark.verilator
@pytest.mark.slow
def test_random_networks_under_verilator(tmp_path):
    """Two networks, two lane counts, 40 cases: every spike and membrane potential matches;
    then the same builds against a wrong golden model report the mismatch."""
    work = ["--work", str(tmp_path / "work")]
    status, lines = _run(tmp_path, ["--cases", "40", "--networks", "2", "--lanes", "1", "3",
                                    "--seed", "5"] + work)
    assert status == 0, "\n".join(lines)
    assert "fuzz: 40 cases (2 networks x 2 lanes), 0 mismatches" in "\n".join(lines)
    status, lines = _run(tmp_path, ["--cases", "4", "--networks", "1", "--lanes", "1",
                                    "--seed", "5"] + work, golden=off_by_one)
    assert status == 1
    assert (tmp_path / "out" / "mismatch-fuzz5-0-p1" / "inputs.npy").exists()
