"""The emitted memory images hold the network: ``mem/*.hex`` read back to index matrices.

Co-simulation runs the core with the memory contents it was generated with, so a wrong hex
writer (or a wrong packing shared by the writer and the generator) would pass it; these tests
decode the files a user loads independently of the packing code and compare with the network.
"""

import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest

from snnhw.compiler import compile_network, read_back
from snnhw.golden import simulate
from snnhw.network import Network
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan, Layout


def _network(density: float) -> Network:
    # 9 and 5 neurons: lanes 2 and 3 leave padding slots in the last bank word.
    return random_network(np.random.default_rng(11), 13, [9, 5], density=density,
                          codebook_size=4, weight_bits=4, timesteps=6)


def _plan(net: Network, lanes: int, layout: Layout | None) -> CorePlan:
    """The plan, every layer in ``layout`` (None: the plan's choice). A forced layout takes the
    fewest bits (``words_slack=math.inf``): the delta layout's narrowest gaps, so that escapes
    are read back too."""
    if layout is None:
        return CorePlan.build(net, lanes)
    return CorePlan.build(net, lanes, layouts={layer.name: layout for layer in net.layers},
                          words_slack=math.inf)


def _rebuilt(net: Network, out) -> Network:
    """``net`` with every layer's index matrix and codebook replaced by the read-back ones."""
    images = read_back(out)
    assert [image.name for image in images] == [layer.name for layer in net.layers]
    layers = [replace(layer, index=image.index, codebook=image.codebook)
              for layer, image in zip(net.layers, images)]
    return replace(net, layers=layers)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """One compile per (density, lanes): each writes Verilog too, which takes a moment."""
    cache = {}

    def get(density: float, lanes: int, layout: Layout | None = None):
        key = density, lanes, layout
        if key not in cache:
            net = _network(density)
            out = tmp_path_factory.mktemp(f"d{density}-p{lanes}")
            compile_network(_plan(net, lanes, layout), out)
            cache[key] = net, out
        return cache[key]

    return get


@pytest.mark.parametrize("lanes", [1, 2, 3])
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("layout", [None, Layout.ADDRESSED, Layout.DELTA],
                         ids=["chosen", "addressed", "delta"])
def test_images_read_back_to_the_network(compiled, density, lanes, layout):
    net, out = compiled(density, lanes, layout)
    if layout:
        assert json.loads((out / "report.json").read_text())["layers"][0]["layout"] == \
            layout.value
    back = _rebuilt(net, out)
    for layer, got in zip(net.layers, back.layers):
        np.testing.assert_array_equal(got.index, np.where(layer.index < 0, -1, layer.index))
        assert got.codebook == layer.codebook
    # The test covers what it claims: the layouts it meant, and negative weights (the sign of a
    # two's complement codebook entry).
    assert (density < 1.0) == (net.layers[0].synapse_count < net.layers[0].index.size)
    assert any(c < 0 for layer in net.layers for c in layer.codebook)
    # A pruned layer is held in a balanced, heaviest-first neuron order, which read-back undoes.
    ordered = json.loads((out / "report.json").read_text())["layers"][0]["neuron_order"]
    assert (ordered is not None) == (0 < density < 1)
    # So the read-back network computes exactly what the original does.
    inputs = random_inputs(np.random.default_rng(lanes), net, samples=4, rate=0.4)
    want, got = simulate(net, inputs), simulate(back, inputs)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v_trace[name], want.v_trace[name])
    if density > 0:
        assert want.spikes["fc2"].any(), "the test needs spikes"


def _differs(net: Network, out) -> bool:
    """Whether ``out``'s images no longer read back to ``net`` (or no longer decode at all)."""
    try:
        back = _rebuilt(net, out)
    except ValueError:
        return True
    return any(not np.array_equal(got.index, np.where(layer.index < 0, -1, layer.index))
               or got.codebook != layer.codebook for layer, got in zip(net.layers, back.layers))


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("delta", [1, -1])
@pytest.mark.parametrize("layout", [Layout.ADDRESSED, Layout.DELTA], ids=lambda k: k.value)
def test_an_off_by_one_pointer_is_caught(compiled, tmp_path, lanes, delta, layout):
    net, out = compiled(0.3, lanes, layout)
    copy = shutil.copytree(out, tmp_path / "out")  # the other tests keep the good images
    assert not _differs(net, copy)
    path = copy / "mem" / "fc1.pointers.hex"
    lines = path.read_text().splitlines()
    # A column in the middle with words of its own, its start moved by one: the word it then
    # reads in place of its own first (last) one is another (heaviest-first lanes make equal
    # neighbouring words likely: a shift that swaps a word for its twin changes nothing).
    lay = _plan(net, lanes, layout).layers[0].synapses
    words = lay.packed_words() + [None]

    def shifted_differs(i):
        start, end = int(lay.col_start[i]), int(lay.col_start[i] + lay.col_words[i])
        return words[end] != words[start] if delta > 0 else words[start - 1] != words[end - 1]
    column = next(i for i in range(len(lines) // 2, len(lines))
                  if lay.col_words[i] > 0 and shifted_differs(i))
    width = len(lines[column])
    lines[column] = f"{int(lines[column], 16) + delta:0{width}x}"
    path.write_text("\n".join(lines) + "\n")
    assert _differs(net, copy)


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_wrong_gap_is_caught(compiled, tmp_path, lanes):
    """A delta slot's gap one off (the next synapse of its lane moves too), or an escape read
    as a synapse: the read-back network differs."""
    net, out = compiled(0.3, lanes, Layout.DELTA)
    lay = _plan(net, lanes, Layout.DELTA).layers[0].synapses
    escape = (1 << lay.gap_bits) - 1
    gaps = lay.words & np.uint64(escape)
    for pick in (gaps < escape - 1, gaps == escape):  # a synapse; an escape
        assert pick.any(), "the test needs both kinds of slot"
        w, p = np.argwhere(pick)[len(np.argwhere(pick)) // 2]
        copy = shutil.copytree(out, tmp_path / f"out{int(pick.sum())}")
        path = copy / "mem" / "fc1.synapses.hex"
        lines = path.read_text().splitlines()
        flip = 1 if gaps[w, p] < escape - 1 else 1 << (lay.gap_bits - 1)  # escape -> gap
        word = int(lines[w], 16) ^ (flip << (p * lay.slot_bits))
        lines[w] = f"{word:0{len(lines[w])}x}"
        path.write_text("\n".join(lines) + "\n")
        assert _differs(net, copy)


def test_a_lost_codebook_sign_is_caught(compiled, tmp_path):
    net, out = compiled(1.0, 1)
    copy = shutil.copytree(out, tmp_path / "out")
    # A writer without the mask writes Python's hex of a negative number: not a word.
    path = copy / "mem" / "fc1.codebook.hex"
    path.write_text("".join(f"{c:01x}\n" for c in net.layers[0].codebook))
    with pytest.raises(ValueError, match="fc1.codebook.hex"):
        read_back(copy)


def test_a_lost_neuron_order_is_caught(compiled, tmp_path):
    """The memories hold fc1's neurons in the core's order: read back without it, fc1's rows
    and fc2's columns are in the wrong places."""
    net, out = compiled(0.3, 2)
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    report = json.loads((copy / "report.json").read_text())
    assert report["layers"][0]["neuron_order"] is not None
    report["layers"][0]["neuron_order"] = None
    (copy / "report.json").write_text(json.dumps(report))
    assert not _differs(net, out) and _differs(net, copy)


@pytest.mark.parametrize("lanes", [1, 2])
def test_images_of_a_network_with_pruned_inputs_read_back(tmp_path, lanes):
    """The first layer's memories hold only the inputs with synapses (report.json kept_inputs):
    read back, each column lands at its network input; shifted by one, they do not."""
    net = _network(0.3)
    net.layers[0].index[:, [0, 6, 12]] = -1
    compile_network(_plan(net, lanes, Layout.DELTA), tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["kept_inputs"] == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    assert report["core_inputs"] == 10 and report["layers"][0]["fan_in"] == 10
    assert not _differs(net, tmp_path / "out")
    report["kept_inputs"] = [k + 1 for k in report["kept_inputs"]]
    (tmp_path / "out" / "report.json").write_text(json.dumps(report))
    assert _differs(net, tmp_path / "out")
