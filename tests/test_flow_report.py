"""The report page: every section present, figures embedded and written as PNG, numbers as JSON."""

import copy
import json

import numpy as np

from snnhw.energy import energy_per_inference
from snnhw.flow.report import ReportData, write_report
from snnhw.flow.stages import Stages, StageFailed
from snnhw.golden import simulate
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan, cycle_bounds


def _data():
    net = random_network(np.random.default_rng(0), 20, [12, 4], density=0.5, timesteps=5)
    inputs = random_inputs(np.random.default_rng(1), net, samples=10, rate=0.4)
    golden = simulate(net, inputs)
    rtl = copy.deepcopy(golden)
    rtl.cycles = np.full((3, 5), 40)
    rtl.spikes = {k: v[:3] for k, v in rtl.spikes.items()}
    rtl.v_trace = {k: v[:3] for k, v in rtl.v_trace.items()}
    labels = np.random.default_rng(2).integers(0, 4, size=10)
    plan = CorePlan.build(net, 2)
    return ReportData(plan=plan,
                      accuracy={"float": 0.9, "compressed": 0.85, "golden": 0.85, "RTL": 1.0},
                      labels=labels, golden=golden, rtl=rtl, rtl_inputs=inputs[:3],
                      energy=energy_per_inference(plan, inputs, golden),
                      board={"board": "icebreaker", "fmax_mhz": 30.1, "clock_mhz": 12,
                             "baud": 3_000_000,
                             "resources": {"logic": {"used": 10, "available": 5280}}})


def test_report_has_every_section(tmp_path):
    data = _data()
    page = write_report(tmp_path, data, verdict="bit-exact").read_text()
    for heading in ("Accuracy", "Layers", "Spikes and membranes", "Cycles per timestep",
                    "Energy per inference", "Board"):
        assert f"<h2>{heading}" in page
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == sorted(f"{n}.png" for n in ("accuracy", "confusion", "memory", "raster",
                                                   "membrane", "cycles", "energy"))
    for png in (tmp_path / "figures").iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.count("data:image/png;base64,") == len(figures)  # self-contained
    numbers = json.loads((tmp_path / "report.json").read_text())
    assert np.array(numbers["confusion_matrix"]).sum() == 10
    assert numbers["layers"][0]["fp32_bits"] == 32 * 12 * 20
    bound = cycle_bounds(data.plan, data.rtl_inputs, data.golden.spikes).max(axis=0)
    assert numbers["cycles"]["bound_mean"] == bound.mean()
    words = cycle_bounds(data.plan, data.rtl_inputs, data.golden.spikes, layout=True).max(axis=0)
    assert numbers["cycles"]["layout_bound_mean"] == words.mean() >= bound.mean()
    # 5 timesteps of 40 cycles a sample, at the 12 MHz the bitstream runs at
    assert numbers["board"]["cycles_per_image"] == 200
    assert numbers["board"]["us_per_image"] == 200 / 12
    assert numbers["board"]["core_samples_per_s"] == 12e6 / 200
    # the link: 'S' commands of the co-simulated samples plus the answers, 10 bits a byte
    from snnhw.boards.protocol import encode_sample, result_size
    sent = np.mean([len(encode_sample(x)) for x in data.rtl_inputs]) + result_size(4)
    link = numbers["board"]["link"]
    assert link["command"] == "S" and link["bytes_per_sample"] == sent
    assert link["samples_per_s"] == 3_000_000 / (10 * sent)
    assert (f"<td>icebreaker</td><td>12</td><td>30.1</td><td>200.0</td><td>16.7</td>"
            f"<td>60000</td><td>{link['samples_per_s']:.0f}</td>") in page
    # with an on-chip encoder the host sends the features: one command byte and a byte each
    from snnhw.network.encoder import Encoder
    data.plan.network.encoder = Encoder("rate", 1)
    write_report(tmp_path, data, verdict="bit-exact")
    link = json.loads((tmp_path / "report.json").read_text())["board"]["link"]
    assert link["command"] == "X" and link["bytes_per_sample"] == 1 + 20 + result_size(4)


def test_stages_skip_when_unchanged_and_name_failures(tmp_path):
    lines, calls = [], []
    source = tmp_path / "in.txt"
    source.write_text("a")

    def action(log):
        calls.append(1)
        (tmp_path / "out.txt").write_text(source.read_text())
        return {"n": len(calls)}

    def run():
        return Stages(tmp_path / "flow", echo=lines.append).run(
            "copy", action, params={"x": 1}, inputs=[source], outputs=[tmp_path / "out.txt"])

    assert run() == {"n": 1}
    assert run() == {"n": 1} and len(calls) == 1 and lines[-1] == "[1] copy: up to date, skipped"
    source.write_text("b")
    assert run() == {"n": 2}

    def broken(log):
        raise RuntimeError("boom")

    stages = Stages(tmp_path / "flow", echo=lines.append)
    try:
        stages.run("compile", broken)
    except StageFailed as error:
        assert str(error).startswith("stage 'compile' failed: RuntimeError: boom (traceback in ")
        assert "Traceback" in stages.log("compile").read_text()
    else:
        raise AssertionError("a failing stage must raise")


def test_report_says_which_inputs_the_core_takes(tmp_path):
    """Where inputs have no synapse, the report names how many the core takes; where all do, it
    says nothing about them."""
    import dataclasses

    data = _data()
    write_report(tmp_path / "all", data)
    numbers = json.loads((tmp_path / "all" / "report.json").read_text())
    assert numbers["core_inputs"] == numbers["network_inputs"] == 20
    assert "inputs: the others" not in (tmp_path / "all" / "report.html").read_text()

    net = data.network
    net.layers[0].index[:, [0, 7, 19]] = -1  # three inputs without synapses
    data = dataclasses.replace(data, plan=CorePlan.build(net, 2))
    page = write_report(tmp_path / "pruned", data).read_text()
    numbers = json.loads((tmp_path / "pruned" / "report.json").read_text())
    assert (numbers["core_inputs"], numbers["network_inputs"]) == (17, 20)
    assert "The core takes 17 of the network's 20 inputs: the others have no synapse in fc1" in page
