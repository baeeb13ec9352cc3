"""The board top level (core + UART bridge + UART) under Verilator, driven by the host driver.

The host side is :class:`snnhw.host.Device` itself, talking to the RTL's pins through a UART
model in the cocotb testbench; every answer must equal the golden model's counts and prediction.
"""

from pathlib import Path

import numpy as np
import pytest

from snnhw.boards.config import check_baud, find_board
from snnhw.boards.flash import CMD_READ, CMD_WAKE, HEADER_SIZE, FlashBoot, flash_file, synapse_file
from snnhw.boards.protocol import (VERSION, IDENTITY_SIZE, Status, decode_result, encode_sample,
                                   identity_bytes, network_id, result_size)
from snnhw.golden import simulate
from snnhw.network import load
from snnhw.network.encoder import Encoder, encode_features
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan
from snnhw.sim.board_runner import BoardSimulator
from snnhw.sim.board_tb import extra_input

pytestmark = pytest.mark.verilator

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"
_icebreaker = find_board("icebreaker")
ICEBREAKER = check_baud(_icebreaker.clock_hz, _icebreaker.uart.baud)  #: its clocks per UART bit


def _check(net, lanes, run, inputs, mask=0, boot=None):
    """``boot``: the identity's loaded, from-flash, flash-rejected and flash-corrupt flags
    (default: loaded without a flash when nothing is in large RAM, else not loaded yet)."""
    if net.encoder is not None:  # feature bytes: the golden model reads the encoder's spikes
        inputs = encode_features(net.encoder, inputs, net.timesteps)
    golden = simulate(net, inputs)
    assert run.errors == [] and run.framing_errors == 0
    inputs_of_core = CorePlan.build(net, lanes).input_size  # those with synapses
    assert run.identity.tolist() == [VERSION, inputs_of_core, net.output_size, net.timesteps, lanes,
                                     network_id(net), mask, *(boot or [int(mask == 0), 0, 0, 0])]
    np.testing.assert_array_equal(run.counts, golden.counts)
    np.testing.assert_array_equal(run.pred, golden.pred)
    np.testing.assert_array_equal(run.leds, golden.pred)  # the LED output shows the class
    assert (run.status == 0).all() and (run.cycles > 0).all()


#: The small board's network inputs without synapses: the first, the last and one between.
PRUNED_INPUTS = [0, 9, 23]


@pytest.fixture(scope="module")
def small_board(tmp_path_factory):
    """``small_board(lanes)``: a small network, samples, and its board, built once a module."""
    boards = {}

    def get(lanes):
        if lanes not in boards:
            # Seeds whose samples fire outputs and predict different classes (with 7 + lanes,
            # the one-lane network never fired an output: no argmax was checked).
            rng = np.random.default_rng({1: 17, 2: 15}[lanes])
            net = random_network(rng, 24, [12, 4], density=0.6, timesteps=5, name="small")
            # Inputs without synapses: the board numbers only the others (snnhw.plan.inputs).
            net.layers[0].index[:, PRUNED_INPUTS] = -1
            inputs = random_inputs(rng, net, 6, rate=0.4)
            # The iCEBreaker's rate: 4 clocks a bit (12 MHz / 3 Mbaud), the fewest the UART takes.
            sim = BoardSimulator(CorePlan.build(net, lanes),
                                 tmp_path_factory.mktemp(f"board{lanes}"), divisor=ICEBREAKER,
                                 timeout=1500)
            boards[lanes] = net, inputs, sim
        return boards[lanes]

    return get


@pytest.mark.parametrize("lanes", [1, 2])
def test_uart_top_bit_exact_and_recovers(small_board, lanes):
    net, inputs, sim = small_board(lanes)
    # First half a sample and a silence (the board must drop it), then an out-of-range input
    # (the board must flag it), then the samples.
    run = sim.run(inputs, abandon=True, bad_input=True)
    assert run.bad_input_status == int(Status.BAD_INPUT)
    _check(net, lanes, run, inputs)


#: The faults that disturb the exchange they hit, and the host's error for it (see
#: ``snnhw.sim.board_tb.fault_session``); the others must pass unnoticed. ``{t}``: the host's
#: read timeout, ``{result}``: the size of a result, ``{identity}``: the identity's bytes.
FAULT_ERRORS = {
    "garbage_idle": "",
    "garbage_command": "sim-uart: garbled answer to 'S': result: expected {result} bytes "
                       "starting with 'R', got {identity}",
    "garbage_inside": "sim-uart: no answer to 'S' (sample result, {result} bytes) within {t} s",
    "word_inside": "",
    "truncated": "",
    "framing_idle": "",
    "framing_inside": "sim-uart: no answer to 'S' (sample result, {result} bytes) within {t} s",
    "busy": "",
    "silent": "sim-uart: no answer to 'I' (identity, 19 bytes) within {t} s",
    "cut_answer": "sim-uart: the answer to 'S' (sample result, {result} bytes) stopped after 5 "
                  "bytes: nothing more came within {t} s",
}


def test_uart_top_recovers_from_link_faults(small_board):
    """Garbage, truncated frames, framing errors, bytes while busy, a silent board: after each
    (and the host's ``resync()`` where the exchange broke) the next answers are exact."""
    net, inputs, sim = small_board(1)
    run = sim.run(inputs[:3], faults=True)
    _check(net, 1, run, inputs[:3])
    faults = run.faults
    plan = CorePlan.build(net, 1)
    size, identity = result_size(net.output_size), identity_bytes(plan)
    errors = {name: str(faults[f"{name}/error"]) for name in FAULT_ERRORS}
    assert errors == {name: text.format(t=run.read_timeout_s, result=size,
                                        identity=repr(identity[:size]))
                      for name, text in FAULT_ERRORS.items()}
    # After every fault the board answers the next identify and samples exactly.
    golden = simulate(net, inputs[1:3])
    for name in FAULT_ERRORS:
        assert str(faults[f"{name}/check_error"]) == "", name
        np.testing.assert_array_equal(faults[f"{name}/counts"], golden.counts, err_msg=name)
        np.testing.assert_array_equal(faults[f"{name}/pred"], golden.pred, err_msg=name)
        assert (faults[f"{name}/status"] == 0).all(), name
    # An event word slipped into a sample makes another valid sample: the board answers that one.
    assert plan.input_size == 24 - len(PRUNED_INPUTS)
    altered = inputs[:1].copy()
    altered[0, 0, plan.kept_inputs[extra_input(plan.core_inputs(inputs))]] = 1
    answer = decode_result(bytes(faults["word_inside/answer"]), net.output_size)
    assert answer.status == 0
    assert answer.counts.tolist() == simulate(net, altered).counts[0].tolist()
    # A sample with an 'I' right behind it, then one with garbage behind it: two exact results,
    # the identity in between.
    busy = bytes(faults["busy/answer"])
    assert busy[size:size + IDENTITY_SIZE] == identity and len(busy) == 2 * size + IDENTITY_SIZE
    first = simulate(net, inputs[:1])
    for data in busy[:size], busy[size + IDENTITY_SIZE:]:
        result = decode_result(data, net.output_size)
        assert result.status == 0 and result.pred == first.pred[0]
        assert result.counts.tolist() == first.counts[0].tolist()


@pytest.mark.parametrize("spram", [False, True], ids=["ram", "spram"])
def test_uart_top_loads_synapses_into_large_ram(tmp_path, spram):
    # The host finds the board unloaded, sees a sample before loading flagged, loads the
    # synapse image over the UART ('W'), then every sample is bit-exact.
    rng = np.random.default_rng(11)
    net = random_network(rng, 30, [20, 5], density=0.5, timesteps=4, name="loaded")
    inputs = random_inputs(rng, net, 4, rate=0.4)
    large_ram = ["fc1", "fc2"] if spram else ["fc2"]
    plan = CorePlan.build(net, 2, large=large_ram, spram=spram)
    # After loading, a stray 'W' and a silence must leave the synapses loaded.
    run = BoardSimulator(plan, tmp_path / "work", divisor=6).run(inputs, stray_load=True)
    assert run.unloaded_status == int(Status.NOT_LOADED) and run.loaded_after_stray == 1
    _check(net, 2, run, inputs, mask=3 if spram else 2)


def test_uart_top_boots_synapses_from_flash(tmp_path):
    """Power-up with a flash model holding flash.bin: the board reads its SPRAM synapses from it
    and answers every sample exactly without a 'W'; a stale header makes it wait for the host's
    load instead, and so does an image that fails its CRC."""
    rng = np.random.default_rng(36)  # a network whose outputs fire on these samples
    net = random_network(rng, 30, [20, 5], density=0.5, timesteps=4, name="flashed")
    inputs = random_inputs(rng, net, 4, rate=0.4)
    plan = CorePlan.build(net, 2, large=["fc1", "fc2"], spram=True)
    offset = 8192
    bitstream = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()  # stands in for one
    synapses = synapse_file(plan)
    sim = BoardSimulator(plan, tmp_path / "work", divisor=ICEBREAKER, timeout=1500,
                         flash=FlashBoot(offset, half_period=1, wake_cycles=8))
    golden = simulate(net, inputs)
    assert golden.counts.sum() > 10 and len(set(golden.pred)) > 1
    run = sim.run(inputs, flash_image=flash_file(bitstream, synapses, offset))
    _check(net, 2, run, inputs, mask=3, boot=[1, 1, 0, 0])
    assert run.flash_commands == [CMD_WAKE, CMD_READ]
    assert run.flash_bytes_read == len(synapses)
    # Nothing went over the UART but 'I' and the samples.
    assert run.bytes_sent == 1 + sum(len(encode_sample(sample)) for sample in inputs)

    # A stale flash (another network's id) or an erased one: the board loads nothing from it
    # and reports that; the host loads over the UART, and the answers are exact again.
    stale = bytearray(synapses)
    stale[4] ^= 1
    for image in flash_file(bitstream, bytes(stale), offset), b"":
        run = sim.run(inputs[:2], flash_image=image)
        assert run.unloaded_status == int(Status.NOT_LOADED)
        assert run.flash_bytes_read == HEADER_SIZE
        _check(net, 2, run, inputs[:2], mask=3, boot=[0, 0, 1, 0])

    # A good header over an image with one bit flipped, or whose CRC is wrong: the board reads
    # it all, finds the CRC wrong, and counts its synapses as not loaded; the host loads them
    # over the UART, and the answers are exact.
    for flipped in HEADER_SIZE + 3, len(synapses) - 1:
        corrupt = bytearray(synapses)
        corrupt[flipped] ^= 0x10
        run = sim.run(inputs[:2], flash_image=flash_file(bitstream, bytes(corrupt), offset))
        assert run.unloaded_status == int(Status.NOT_LOADED)
        assert run.flash_bytes_read == len(synapses)
        _check(net, 2, run, inputs[:2], mask=3, boot=[0, 0, 0, 1])


@pytest.mark.slow
def test_uart_top_example_network(tmp_path):
    net = load(EXAMPLE)
    inputs = np.load(EXAMPLE / "inputs.npy")[:4]
    run = BoardSimulator(CorePlan.build(net, 1), tmp_path / "work", divisor=6).run(inputs)
    _check(net, 1, run, inputs)


@pytest.mark.parametrize("encoder", [None, "rate", "latency", "direct"])
def test_uart_top_verilog_is_lint_clean(tmp_path, encoder):
    from amaranth.back import verilog

    from snnhw.boards.top import UARTTop
    from snnhw.compiler import lint
    net = random_network(np.random.default_rng(3), 20, [8, 3], density=0.5)
    net.encoder = encoder and Encoder(encoder, 99)
    path = tmp_path / "snnhw_board.v"
    path.write_text(verilog.convert(UARTTop(CorePlan.build(net, 2), divisor=104,
                                            timeout=1_200_000),
                                    name="snnhw_board", emit_src=False))
    assert lint(path) == ""


def test_uart_top_with_flash_reader_is_lint_clean(tmp_path):
    from amaranth.back import verilog

    from snnhw.boards.top import UARTTop
    from snnhw.compiler import lint
    net = random_network(np.random.default_rng(3), 20, [8, 3], density=0.5)
    # A generic RAM for fc1: Yosys' SPRAM model is not lint clean itself.
    plan = CorePlan.build(net, 2, large=["fc1"])
    path = tmp_path / "snnhw_board.v"
    path.write_text(verilog.convert(UARTTop(plan, divisor=4, timeout=1_200_000,
                                            flash=FlashBoot.at(1 << 20, 12e6)),
                                    name="snnhw_board", emit_src=False))
    assert lint(path) == ""


@pytest.mark.parametrize("kind", ["rate", "latency"])
def test_uart_top_encodes_feature_bytes_on_chip(tmp_path, kind):
    # The host sends raw feature bytes ('X'); the board's encoder makes the spikes. Every answer
    # equals the golden model's on the numpy encoder's spikes, at the iCEBreaker's baud divisor.
    rng = np.random.default_rng(13)  # a network whose outputs fire on these bytes
    net = random_network(rng, 20, [10, 4], density=0.6, timesteps=6, name="encoded")
    seed = int(rng.integers(1, 0x10000))
    net.encoder = Encoder(kind, seed)
    features = rng.integers(0, 256, (5, net.input_size)).astype(np.uint8)
    features[0] = 0
    run = BoardSimulator(CorePlan.build(net, 2), tmp_path / "work", divisor=ICEBREAKER,
                         timeout=1500).run(features)
    golden = simulate(net, encode_features(net.encoder, features, net.timesteps))
    _check(net, 2, run, features)
    np.testing.assert_array_equal(run.counts, golden.counts)
    assert golden.counts.sum() > 5 and len(set(golden.pred)) > 1
    # On the wire: 'I', then 'X' and the feature bytes a sample (benchmarks/boards.py's count).
    assert run.bytes_sent == 1 + len(features) * (1 + net.input_size)
    if kind == "rate":
        # Another seed gives other counts: the comparison above would catch a wrong seed.
        wrong = simulate(net, encode_features(Encoder(kind, seed % 0xFFFF + 1), features,
                                              net.timesteps))
        assert (wrong.counts != run.counts).any()
