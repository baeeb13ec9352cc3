"""The board top level (core + UART bridge + UART) under Verilator, driven by the host driver.

The host side is :class:`snnhw.host.Device` itself, talking to the RTL's pins through a UART
model in the cocotb testbench; every answer must equal the golden model's counts and prediction.
"""

from pathlib import Path

import numpy as np
import pytest

from snnhw.boards.protocol import Status, network_id
from snnhw.golden import simulate
from snnhw.network import load
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan
from snnhw.sim.board_runner import BoardSimulator

pytestmark = pytest.mark.verilator

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"


def _check(net, lanes, run, inputs, mask=0):
    golden = simulate(net, inputs)
    assert run.errors == [] and run.framing_errors == 0
    assert run.identity.tolist() == [2, net.input_size, net.output_size, net.timesteps, lanes,
                                     network_id(net), mask, int(mask == 0)]
    np.testing.assert_array_equal(run.counts, golden.counts)
    np.testing.assert_array_equal(run.pred, golden.pred)
    np.testing.assert_array_equal(run.leds, golden.pred)  # the LED output shows the class
    assert (run.status == 0).all() and (run.cycles > 0).all()


@pytest.mark.parametrize("lanes", [1, 2])
def test_uart_top_bit_exact_and_recovers(tmp_path, lanes):
    rng = np.random.default_rng(7 + lanes)
    net = random_network(rng, 24, [12, 4], density=0.6, timesteps=5, name="small")
    inputs = random_inputs(rng, net, 6, rate=0.4)
    sim = BoardSimulator(CorePlan.build(net, lanes), tmp_path / "work", divisor=8, timeout=1500)
    # First half a sample and a silence (the board must drop it), then an out-of-range input
    # (the board must flag it), then the samples.
    run = sim.run(inputs, abandon=True, bad_input=True)
    assert run.bad_input_status == int(Status.BAD_INPUT)
    _check(net, lanes, run, inputs)


@pytest.mark.parametrize("spram", [False, True], ids=["ram", "spram"])
def test_uart_top_loads_synapses_into_large_ram(tmp_path, spram):
    # The host finds the board unloaded, sees a sample before loading flagged, loads the
    # synapse image over the UART ('W'), then every sample is bit-exact.
    rng = np.random.default_rng(11)
    net = random_network(rng, 30, [20, 5], density=0.5, timesteps=4, name="loaded")
    inputs = random_inputs(rng, net, 4, rate=0.4)
    large_ram = ["fc1", "fc2"] if spram else ["fc2"]
    plan = CorePlan.build(net, 2, large=large_ram, spram=spram)
    run = BoardSimulator(plan, tmp_path / "work", divisor=6).run(inputs)
    assert run.unloaded_status == int(Status.NOT_LOADED)
    _check(net, 2, run, inputs, mask=3 if spram else 2)


@pytest.mark.slow
def test_uart_top_example_network(tmp_path):
    net = load(EXAMPLE)
    inputs = np.load(EXAMPLE / "inputs.npy")[:4]
    run = BoardSimulator(CorePlan.build(net, 1), tmp_path / "work", divisor=6).run(inputs)
    _check(net, 1, run, inputs)


def test_uart_top_verilog_is_lint_clean(tmp_path):
    from amaranth.back import verilog

    from snnhw.boards.top import UARTTop
    from snnhw.compiler import lint
    net = random_network(np.random.default_rng(3), 20, [8, 3], density=0.5)
    path = tmp_path / "snnhw_board.v"
    path.write_text(verilog.convert(UARTTop(CorePlan.build(net, 2), divisor=104,
                                            timeout=1_200_000),
                                    name="snnhw_board", emit_src=False))
    assert lint(path) == ""
