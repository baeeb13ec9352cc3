"""Random networks of every shape, co-simulated under Verilator against the golden model.

Every spike and every membrane potential of every layer at every timestep must match, with random
idle cycles on the input stream and random back-pressure on the output stream.
"""

import math
import tempfile
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import assert_cosim_exact

from amaranth.hdl import Const, Mux, Signal

from snnhw.golden import simulate
from snnhw.hw import engine
from snnhw.network import Network, Reset
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import CorePlan, Layout, cycle_bounds
from snnhw.plan.cycles import SWEEP_OVERHEAD
from snnhw.sim.runner import Simulator, compare, cosim

pytestmark = pytest.mark.verilator


@st.composite
def networks(draw):
    """Networks across the shapes the format allows: codebooks of 1..256 entries, v_bits 4..24,
    fan-in 1..300, dense and 0..99 % pruned, layers with no synapses at all, state codebooks."""
    depth = draw(st.integers(1, 3))
    codebook_size = draw(st.sampled_from([1, 2, 3, 4, 16, 100, 256]))
    weight_bits = draw(st.integers(max(1, (codebook_size - 1).bit_length()), 12))
    density = draw(st.sampled_from([0.0, 0.01, 0.2, 0.5, 0.9, 1.0]))
    v_bits = draw(st.integers(4, 24))
    net = random_network(
        np.random.default_rng(draw(st.integers(0, 2**32 - 1))),
        input_size=draw(st.integers(1, 300)),
        sizes=draw(st.lists(st.integers(1, 40), min_size=depth, max_size=depth)),
        codebook_size=codebook_size, weight_bits=weight_bits, density=density, v_bits=v_bits,
        leak_shift=draw(st.integers(0, v_bits - 1)),
        reset=draw(st.sampled_from([Reset.SUBTRACT, Reset.ZERO])),  # the core's resets
        timesteps=draw(st.integers(1, 6)),
        state_levels=draw(st.sampled_from([None, None, 2, 5, 16])))
    # Scale thresholds up and down so that both saturation and silence occur.
    scale = draw(st.sampled_from([0.25, 1.0, 4.0]))
    for layer in net.layers:
        n = layer.neuron
        theta = int(np.clip(round(n.threshold * scale), 1, n.v_max))
        layer.neuron = replace(n, threshold=theta)
    return net


def _check(net: Network, lanes: int, gap: float, backpressure: float, seed: int):
    with tempfile.TemporaryDirectory() as work:
        assert_cosim_exact(net, lanes, gap, backpressure, seed, work)


# Each example builds its own Verilator model (~10 s on 2 cores): a fixed, derandomized set of
# examples keeps CI bounded, and shrinking (dozens more builds) is left out; hypothesis still
# prints the failing network in full.
_slow = settings(max_examples=10, deadline=None, derandomize=True,
                 phases=[Phase.explicit, Phase.generate],
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.slow
@_slow
@given(net=networks(), gap=st.sampled_from([0.0, 0.3]), backpressure=st.sampled_from([0.0, 0.5]),
       seed=st.integers(0, 1000))
def test_random_networks_one_lane(net, gap, backpressure, seed):
    _check(net, 1, gap, backpressure, seed)


@pytest.mark.slow
@_slow
@given(net=networks(), lanes=st.sampled_from([2, 3, 4, 8]), gap=st.sampled_from([0.0, 0.3]),
       backpressure=st.sampled_from([0.0, 0.5]), seed=st.integers(0, 1000))
def test_random_networks_many_lanes(net, lanes, gap, backpressure, seed):
    _check(net, lanes, gap, backpressure, seed)


#: Network inputs of the small network without synapses (the first, the last, a run): the core
#: numbers only the others (snnhw.plan.inputs), and the drivers drop these inputs' events.
PRUNED_INPUTS = [0, 5, 6, 7, 13, 23]


def _small_network() -> Network:
    """Two pruned layers and a dense one, so that one core can hold every synapse layout; some
    inputs without synapses."""
    net = random_network(np.random.default_rng(7), 24, [16, 12, 6], density=0.4, timesteps=5)
    net.layers[0].index[:, PRUNED_INPUTS] = -1
    last = net.layers[-1]
    fill = np.random.default_rng(8).integers(0, len(last.codebook), last.index.shape)
    last.index = np.where(last.index < 0, fill, last.index).astype(np.int32)
    return net


#: Per lane count, the layouts of the pruned layers (the dense fc3 stays implicit): every layout
#: at P = 1, 2 and 4.
SMALL_LAYOUTS = {1: (Layout.DELTA, Layout.ADDRESSED), 2: (Layout.ADDRESSED, Layout.DELTA),
                 4: (Layout.DELTA, Layout.ADDRESSED)}


@pytest.fixture(scope="module")
def small_net():
    return _small_network()


@pytest.fixture(scope="module", params=sorted(SMALL_LAYOUTS), ids=lambda p: f"lanes{p}")
def small_sim(request, small_net, tmp_path_factory):
    """One Verilator build per lane count, each with every layout (one per layer)."""
    fc1, fc2 = SMALL_LAYOUTS[request.param]
    # The delta layout at the gap width of the fewest bits (words_slack=inf): narrow enough to
    # need escapes (the plan's own width leaves almost none).
    plan = CorePlan.build(small_net, request.param, layouts={"fc1": fc1, "fc2": fc2},
                          words_slack=math.inf)
    assert [lp.synapses.kind for lp in plan.layers] == [fc1, fc2, Layout.IMPLICIT]
    # The plan holds the pruned layers' neurons in another order (balanced lanes at P > 1, each
    # lane heaviest first): the probes' hidden spikes are mapped back to network order before
    # the comparison.
    assert [lp.order is not None for lp in plan.layers] == [True, True, False]
    # The core's inputs are the network's with synapses.
    assert plan.kept_inputs.tolist() == sorted(set(range(24)) - set(PRUNED_INPUTS))
    assert plan.layers[0].layer.fan_in == plan.input_size == 24 - len(PRUNED_INPUTS)
    delta = next(lp.synapses for lp in plan.layers if lp.synapses.kind is Layout.DELTA)
    escape = (1 << delta.gap_bits) - 1
    assert ((delta.words & np.uint64(escape)) == escape).any(), "the test needs escapes"
    return Simulator(plan, tmp_path_factory.mktemp(f"small{request.param}"))


@pytest.mark.parametrize("gap,backpressure", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.7), (0.5, 0.7)])
def test_idle_and_backpressure_patterns(small_net, small_sim, gap, backpressure):
    inputs = random_inputs(np.random.default_rng(1), small_net, samples=3, rate=0.4)
    rtl, out_spikes, errors = small_sim.run(inputs, gap=gap, backpressure=backpressure, seed=3)
    golden = simulate(small_net, inputs)
    assert errors == []
    assert compare(golden, rtl, out_spikes) == []
    assert all(spikes.any() for spikes in golden.spikes.values()), "the test needs spikes"


def test_stalls_cost_cycles_not_results(small_net, small_sim):
    inputs = random_inputs(np.random.default_rng(2), small_net, samples=1, rate=0.4)
    fast, _, _ = small_sim.run(inputs)
    # Idle enough that the input, not fc1's synapse words, paces the core at every lane count.
    slow, _, _ = small_sim.run(inputs, gap=0.9, backpressure=0.9, seed=1)
    assert slow.cycles.sum() > fast.cycles.sum()
    np.testing.assert_array_equal(fast.spikes["fc3"], slow.spikes["fc3"])


def test_a_wrong_model_is_caught(small_net, small_sim):
    """The comparison can fail: the RTL of one network against the golden model of another."""
    inputs = random_inputs(np.random.default_rng(4), small_net, samples=2, rate=0.4)
    rtl, out_spikes, _ = small_sim.run(inputs)
    other = _small_network()
    layer = other.layers[0]
    layer.neuron = type(layer.neuron)(threshold=layer.neuron.threshold + 1,
                                      leak_shift=layer.neuron.leak_shift,
                                      reset=layer.neuron.reset, v_bits=layer.neuron.v_bits)
    mismatches = compare(simulate(other, inputs), rtl, out_spikes)
    assert mismatches
    first = mismatches[0]
    assert first.layer == "fc1" and first.what in ("spike", "v")
    assert str(first).startswith(f"sample {first.sample}, timestep {first.timestep}, layer fc1")


def test_a_wrong_neuron_order_is_caught(small_net, small_sim, monkeypatch):
    """The hidden spikes are compared in network order: map them back by a wrong order (two
    neurons of fc1 exchanged) and the comparison fails on fc1 alone."""
    order = small_sim.plan.layers[0].order.copy()
    order[[0, 1]] = order[[1, 0]]
    wrong = replace(small_sim.plan, layers=(replace(small_sim.plan.layers[0], order=order),)
                    + small_sim.plan.layers[1:])
    monkeypatch.setattr(small_sim, "plan", wrong)
    inputs = random_inputs(np.random.default_rng(4), small_net, samples=2, rate=0.4)
    rtl, out_spikes, _ = small_sim.run(inputs)
    mismatches = compare(simulate(small_net, inputs), rtl, out_spikes)
    assert mismatches and {m.layer for m in mismatches} == {"fc1"}


@pytest.mark.parametrize("shift", [1, -1])
def test_a_wrong_input_map_is_caught(small_net, small_sim, monkeypatch, shift):
    """The drivers send each input's events to the core input the plan maps it to: map them off
    by one and the comparison fails from fc1 on."""
    plan = small_sim.plan
    wrong = np.clip(plan.kept_inputs + shift, 0, small_net.input_size - 1)
    monkeypatch.setattr(small_sim, "plan", replace(plan, kept_inputs=wrong))
    inputs = random_inputs(np.random.default_rng(4), small_net, samples=2, rate=0.4)
    rtl, out_spikes, errors = small_sim.run(inputs)
    mismatches = compare(simulate(small_net, inputs), rtl, out_spikes)
    assert errors == [] and mismatches and mismatches[0].layer == "fc1"


def test_pruned_inputs_send_no_events(small_net, small_sim):
    """Spikes of the inputs without synapses change nothing and cost no cycle: the core never
    hears of them."""
    inputs = random_inputs(np.random.default_rng(5), small_net, samples=2, rate=0.4)
    louder = inputs.copy()
    louder[:, :, PRUNED_INPUTS] = 1
    quiet, _, _ = small_sim.run(inputs)
    loud, _, _ = small_sim.run(louder)
    assert compare(simulate(small_net, louder), loud) == []
    np.testing.assert_array_equal(quiet.cycles, loud.cycles)


_decode_delta = engine._decode_delta


def _decode_without_escape_steps(m, slot, gap_bits, *, first, valid, slot_valid, slot_addr,
                                 slot_index, name):
    """A wrong delta decode: an escape advances by its gap field only, ignoring its index."""
    gap, index = slot[:gap_bits], slot[gap_bits:]
    escape = gap.all()
    running = Signal.like(slot_addr, name=name)
    start = Mux(first, Const((1 << len(running)) - 1, len(running)), running)
    m.d.comb += [slot_addr.eq(start + gap + ~escape), slot_valid.eq(valid & ~escape),
                 slot_index.eq(index)]
    with m.If(valid):
        m.d.sync += running.eq(slot_addr)


def _decode_without_column_reset(m, slot, gap_bits, *, first, **kwargs):
    """A wrong delta decode: the running address carries over from the previous column."""
    _decode_delta(m, slot, gap_bits, first=Const(0), **kwargs)


@pytest.mark.parametrize("wrong", [_decode_without_escape_steps, _decode_without_column_reset])
def test_a_wrong_delta_decode_is_caught(tmp_path, monkeypatch, wrong):
    """The RTL with a broken delta decode must differ from the golden model."""
    net = random_network(np.random.default_rng(3), 20, [40], density=0.15, timesteps=4)
    plan = CorePlan.build(net, 1, layouts={"fc1": Layout.DELTA}, words_slack=math.inf)
    lay = plan.layers[0].synapses
    escape = (1 << lay.gap_bits) - 1
    steps = (lay.words >> np.uint64(lay.gap_bits))[(lay.words & np.uint64(escape)) == escape]
    assert steps.any(), "the test needs escapes that step more than once"
    monkeypatch.setattr(engine, "_decode_delta", wrong)
    inputs = random_inputs(np.random.default_rng(0), net, samples=2, rate=0.4)
    report = cosim(plan, inputs, tmp_path)
    assert report.mismatches, "a wrong decode went unnoticed"


@pytest.mark.parametrize("lanes", [1, 3])
def test_state_codebook(tmp_path, lanes):
    """Threshold-centred state levels: the membrane memory holds level indices."""
    net = random_network(np.random.default_rng(8), 20, [12, 5], density=0.7, v_bits=10,
                         timesteps=6, state_levels=7)
    inputs = random_inputs(np.random.default_rng(2), net, samples=3, rate=0.4)
    report = cosim(CorePlan.build(net, lanes), inputs, tmp_path, gap=0.2, backpressure=0.3)
    assert report.errors == [] and report.mismatches == []
    for layer in net.layers:
        assert set(np.unique(report.rtl.v_trace[layer.name])) <= set(layer.neuron.state_levels)
    assert len(set(np.unique(report.golden.v_trace["fc1"]))) > 2, "the test needs varied states"


def test_cycles_grow_with_events_not_weights(tmp_path):
    """Event driven: silence costs only the neuron sweep, whatever the weight matrix size."""
    net = random_network(np.random.default_rng(3), 200, [8], density=1.0, timesteps=4)
    sim = Simulator(CorePlan.build(net, 1), tmp_path)
    silent = np.zeros((1, 4, 200), np.uint8)
    busy = random_inputs(np.random.default_rng(0), net, samples=1, rate=0.5)
    quiet, _, _ = sim.run(silent)
    loud, _, _ = sim.run(busy)
    # 8 neurons to sweep plus a few cycles of pipeline and handshakes; 200 x 8 weights unused.
    assert quiet.cycles[0, 1:].max() < 30
    assert loud.cycles[0, 1:].min() > 8 * busy[0, 1:].sum(axis=1).min() // 2


def test_accumulation_overlaps_the_sweep(tmp_path):
    """Double-buffered accumulators: timestep t+1's events accumulate while t's neurons are
    swept, so a layer with as many synapse words as neurons per timestep takes about
    max(events / P, neurons) cycles, not events / P + neurons (the serial shape's bound)."""
    lanes, size, fan_in, active = 4, 64, 32, 4
    net = random_network(np.random.default_rng(5), fan_in, [size], density=1.0, timesteps=8)
    # Exactly `active` dense inputs spike per timestep: 4 x 64 / 4 = 64 synapse words, and 64
    # neurons to sweep.
    inputs = np.zeros((2, 8, fan_in), np.uint8)
    rng = np.random.default_rng(0)
    for s in range(2):
        for t in range(8):
            inputs[s, t, rng.choice(fan_in, active, replace=False)] = 1
    plan = CorePlan.build(net, lanes)
    report = cosim(plan, inputs, tmp_path)
    assert report.errors == [] and report.mismatches == []
    assert report.golden.spikes["fc1"].any(), "the test needs output traffic"
    bound = cycle_bounds(plan, inputs, report.golden.spikes)[0]
    serial = cycle_bounds(plan, inputs, report.golden.spikes, serial=True)[0]
    assert (serial == active * size // lanes + size).all()
    assert (bound == max(active * size // lanes, size) + SWEEP_OVERHEAD).all()
    # After the first timestep (which also fills the pipeline), every timestep beats the serial
    # bound by far and comes within a few cycles of the overlapped one.
    steady = report.rtl.cycles[:, 1:]
    assert (steady < 0.6 * serial[:, 1:]).all(), steady
    assert (steady <= bound[:, 1:] + 4).all(), steady
