"""Synapses in RAM loaded at run time (large RAM such as iCE40 SPRAM), co-simulated.

The core loads the synapse image through its ``load`` port and must then compute every spike
and membrane potential exactly as the golden model does, whether the RAM is a generic memory or
a grid of SB_SPRAM256KA primitives (simulated with Yosys' own model).
"""

from dataclasses import replace

import numpy as np
import pytest

from snnhw.compiler import generate_verilog, lint
from snnhw.golden import simulate
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan, Layout, PlanError, SynapseLayout, spram_tiles
from snnhw.sim.runner import Simulator, compare

pytestmark = pytest.mark.verilator


LAYOUTS = {"fc1": Layout.ADDRESSED}


@pytest.fixture(scope="module")
def net():
    # fc1 at 3 lanes: 21-bit addressed words (two 16-bit SPRAM slices; the plan would pick the
    # narrower delta words, LAYOUTS keeps them wide); fc2 dense.
    net = random_network(np.random.default_rng(1), 24, [40, 7], codebook_size=4, weight_bits=4,
                         density=0.4, timesteps=6, name="loaded")
    net.layers[1].index[net.layers[1].index < 0] = 0
    return net


@pytest.fixture(scope="module", params=[False, True], ids=["ram", "spram"])
def simulator(request, net, tmp_path_factory):
    return Simulator(CorePlan.build(net, 3, large=["fc1", "fc2"], spram=request.param,
                                    layouts=LAYOUTS),
                     tmp_path_factory.mktemp("synapses"))


def test_image_is_the_layers_words_in_order(net):
    # network order, whatever the order asked
    plan = CorePlan.build(net, 3, large=["fc2", "fc1"], layouts=LAYOUTS)
    image = plan.load_image()
    first, second = (layer.synapses for layer in plan.layers)
    assert first.word_bits == 21 and first.word_bytes == 3
    assert image == first.image() + second.image()
    assert image[:3] == first.packed_words()[0].to_bytes(3, "little")
    assert plan.load_size == len(image)
    assert CorePlan.build(net, 3).load_image() == b""
    assert spram_tiles(first.total_words, 21) == 2 and spram_tiles(20000, 4) == 2


def test_loaded_synapses_are_bit_exact(net, simulator):
    inputs = random_inputs(np.random.default_rng(5), net, 4, rate=0.4)
    rtl, out, errors = simulator.run(inputs, gap=0.3, backpressure=0.3, seed=2)
    assert errors == []
    assert compare(simulate(net, inputs), rtl, out) == []


def test_a_wrong_image_is_caught(net, simulator):
    # The comparison is sharp: one flipped codebook index in the image changes the result.
    inputs = np.ones((2, net.timesteps, net.input_size), np.uint8)
    plan = simulator.plan
    image = bytearray(plan.load_image())
    first = plan.layers[0].synapses
    image[first.total_words * first.word_bytes] ^= 0b11  # fc2's first word, lane 0's index
    rtl, out, errors = simulator.run(inputs, load_image=bytes(image))
    assert errors == []
    assert compare(simulate(net, inputs), rtl, out) != []


def test_unknown_large_ram_layer_is_refused(net):
    with pytest.raises(PlanError, match=r"^placement: fc3 is not a layer of loaded "
                                        r"\(fc1, fc2\)$"):
        CorePlan.build(net, 1, large=["fc3"])


def test_loaded_core_lints_clean(net, tmp_path):
    path = tmp_path / "core.v"
    path.write_text(generate_verilog(CorePlan.build(net, 3, large=["fc1"])))
    lint(path)


# Block RAM modes that split fc1's 21-bit words (148 of them) into 2-bit slices and a last 1-bit
# one, and fc2's 6-bit words into three 2-bit slices, each its own memory (as the ECP5 build
# does).
SLICING_MODES = ((64, 2), (32, 4))


def test_rom_split_by_width_is_bit_exact(net, tmp_path):
    plan = replace(CorePlan.build(net, 3, layouts=LAYOUTS), bram_modes=SLICING_MODES)
    assert [plan.synapse_slice_bits(layer) for layer in plan.layers] == [2, 2]
    verilog = generate_verilog(plan)
    assert verilog.count("reg [1:0] rom") >= 10  # fc1's ten 2-bit slices
    assert verilog.count('rom_style = "block"') == 11 + 3  # each slice in block RAM
    path = tmp_path / "core.v"
    path.write_text(verilog)
    lint(path)
    inputs = random_inputs(np.random.default_rng(5), net, 4, rate=0.4)
    rtl, out, errors = Simulator(plan, tmp_path / "sim").run(inputs, gap=0.3, backpressure=0.3,
                                                             seed=2)
    assert errors == []
    assert compare(simulate(net, inputs), rtl, out) == []


@pytest.mark.slow
def test_spram_banks_in_depth(tmp_path):
    """20,000 words: two SPRAM banks, the second selected by the top address bit."""
    rng = np.random.default_rng(2)
    net = random_network(rng, 200, [100, 10], codebook_size=4, weight_bits=4, density=1.0,
                         timesteps=4)
    assert SynapseLayout.build(net.layers[0], 1).total_words == 20000
    inputs = random_inputs(rng, net, 3)
    simulator = Simulator(CorePlan.build(net, 1, large=["fc1"], spram=True), tmp_path)
    rtl, out, errors = simulator.run(inputs)
    assert errors == [] and compare(simulate(net, inputs), rtl, out) == []
