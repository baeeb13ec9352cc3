"""The golden model against DESIGN.md §2: hand-computed cases, result file, a property test.

The hand-computed cases write every expected number out; the property test compares ``simulate``
with a deliberately naive per-sample, per-neuron, per-synapse loop written from the text of §2
(floor division instead of shifts, Python ints instead of numpy), so neither checks the model
against itself. The property test covers every way ``simulate`` computes currents (exact float32
or float64 products, packed or not, the int64 fallback); further tests drive currents beyond
float32's exact range, and show that a wrong neuron model does fail the comparison.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnhw.cli import main
from snnhw.errors import SnnhwError
from snnhw.golden import NEURON_MODELS, lif_step, simulate
from snnhw.golden import model as golden_model
from snnhw.golden.model import FLOAT_TYPES, UNPACK_COST, plan_currents
from snnhw.network import Layer, Network, Neuron, Reset, save
from snnhw.network.format import Fire, ResetTiming, Rounding
from snnhw.random_networks import random_inputs, random_network
from snnhw.results import Result

SUB, ZERO = Reset.SUBTRACT, Reset.ZERO


def dense(name: str, index, codebook, *, threshold: int, leak_shift: int = 0,
          reset: Reset = SUB, v_bits: int = 8, weight_bits: int = 8) -> Layer:
    return Layer(name=name, index=np.array(index, np.int32), codebook=tuple(codebook),
                 weight_bits=weight_bits,
                 neuron=Neuron(threshold=threshold, leak_shift=leak_shift, reset=reset,
                               v_bits=v_bits))


def network(input_size: int, *layers: Layer) -> Network:
    net = Network(name="hand", input_size=input_size, layers=list(layers))
    net.validate()  # every hand-made case must be a network the format accepts
    return net


def run(net: Network, inputs) -> Result:
    """Simulate one or more samples given as nested lists [samples][timesteps][inputs]."""
    return simulate(net, np.array(inputs, np.uint8))


def trace(result: Result, layer: str, sample: int = 0) -> list[list[int]]:
    """V after every timestep, [timesteps][neurons]."""
    return result.v_trace[layer][sample].tolist()


def spikes(result: Result, layer: str, sample: int = 0) -> list[list[int]]:
    return result.spikes[layer][sample].tolist()


# -- leak -----------------------------------------------------------------------------------------


def test_leak_floors_negative_potentials():
    # One input, weight -5, then silence. leak_shift 1: V -= floor(V / 2).
    #   t0: 0 - 0 + (-5)           = -5
    #   t1: -5 - floor(-5/2) = -5 - (-3) = -2     (truncation toward zero would give -3)
    #   t2: -2 - (-1) = -1
    #   t3: -1 - floor(-1/2) = -1 - (-1) = 0      (truncation would stick at -1 forever)
    #   t4: 0
    net = network(1, dense("l", [[0]], [-5], threshold=100, leak_shift=1))
    result = run(net, [[[1], [0], [0], [0], [0]]])
    assert trace(result, "l") == [[-5], [-2], [-1], [0], [0]]
    assert result.v_final["l"].tolist() == [[0]]


def test_leak_on_positive_potentials_sticks_at_one():
    # Weight 5, leak_shift 1: 5, 5-2=3, 3-1=2, 2-1=1, 1-0=1.
    net = network(1, dense("l", [[0]], [5], threshold=100, leak_shift=1))
    assert trace(run(net, [[[1], [0], [0], [0], [0]]]), "l") == [[5], [3], [2], [1], [1]]


def test_leak_is_applied_before_the_current_is_added():
    # leak_shift 2, weight -5 on every step:
    #   t0: 0 - 0 - 5 = -5
    #   t1: -5 - floor(-5/4) - 5 = -5 - (-2) - 5 = -8
    #   t2: -8 - (-2) - 5 = -11
    #   t3: -11 - floor(-11/4) - 5 = -11 - (-3) - 5 = -13
    net = network(1, dense("l", [[0]], [-5], threshold=100, leak_shift=2))
    assert trace(run(net, [[[1], [1], [1], [1]]]), "l") == [[-5], [-8], [-11], [-13]]


def test_leak_shift_zero_is_an_if_neuron():
    # No leak at all: V only changes by its input (V - (V >> 0) would wrongly zero it).
    # Weight 3: 3, 3, 3, 6, 6; the same inputs with leak_shift 1: 3, 2, 1, 1-0+3=4, 2.
    inputs = [[[1], [0], [0], [1], [0]]]
    if_net = network(1, dense("l", [[0]], [3], threshold=100, leak_shift=0))
    lif_net = network(1, dense("l", [[0]], [3], threshold=100, leak_shift=1))
    assert trace(run(if_net, inputs), "l") == [[3], [3], [3], [6], [6]]
    assert trace(run(lif_net, inputs), "l") == [[3], [2], [1], [4], [2]]


def test_largest_leak_shift():
    # v_bits 4, leak_shift 3: only -8..-1 leak (by 1 toward zero, via the floor); 0..7 never do.
    layer = dense("l", [[0]], [1], threshold=7, leak_shift=3, v_bits=4, weight_bits=2)
    v = np.array([-8, -5, -1, 0, 1, 6, 7])
    v_next, fired = lif_step(v, np.zeros(7, np.int64), layer)
    assert v_next.tolist() == [-7, -4, 0, 0, 1, 6, 0]
    assert fired.tolist() == [False, False, False, False, False, False, True]


def test_lif_step_directly():
    # leak_shift 1, threshold 4, subtract; currents added after the leak, then one clamp to
    # v_bits 5 (-16..15), then threshold and reset.
    layer = dense("l", [[0]], [1], threshold=4, leak_shift=1, v_bits=5)
    v = np.array([-5, 5, -16, 15, 3, 0])
    current = np.array([0, 0, -9, 9, 1, 20])
    # -5+3+0=-2; 5-2=3; -16+8-9=-17->-16; 15-7+9=17->15, fires, 11; 3-1+1=3; 0+20=20->15, 11
    v_next, fired = lif_step(v, current, layer)
    assert v_next.tolist() == [-2, 3, -16, 11, 3, 11]
    assert fired.tolist() == [False, False, False, True, False, True]


# -- saturation -----------------------------------------------------------------------------------


def test_saturates_at_the_top():
    # v_bits 4 (V in -8..7), IF neuron, two inputs of weight 7: I = 14.
    #   t0: sat(0 + 14) = 7 >= 3: spike, V = 7 - 3 = 4   (without the clamp: 14 - 3 = 11)
    #   t1: sat(4 + 14) = 7: spike, V = 4
    #   t2: no input: V = 4, spike (4 >= 3), V = 1
    net = network(2, dense("l", [[0, 0]], [7], threshold=3, v_bits=4, weight_bits=4))
    result = run(net, [[[1, 1], [1, 1], [0, 0]]])
    assert trace(result, "l") == [[4], [4], [1]]
    assert spikes(result, "l") == [[1], [1], [1]]


def test_saturates_at_the_bottom():
    # v_bits 4, leak_shift 2, two inputs of weight -8: I = -16.
    #   t0: sat(0 - 16) = -8
    #   t1: sat(-8 - floor(-8/4) - 16) = sat(-22) = -8
    #   t2: no input: -8 - (-2) = -6
    #   t3: -6 - floor(-6/4) = -6 - (-2) = -4
    net = network(2, dense("l", [[0, 0]], [-8], threshold=7, leak_shift=2, v_bits=4,
                           weight_bits=4))
    result = run(net, [[[1, 1], [1, 1], [0, 0], [0, 0]]])
    assert trace(result, "l") == [[-8], [-8], [-6], [-4]]
    assert spikes(result, "l") == [[0], [0], [0], [0]]


def test_saturation_happens_once_after_the_full_sum():
    # v_bits 4 (-8..7). Neuron 0: weights 6, 6, -6 -> I = 6 -> V = 6 (threshold 7: no spike).
    # Clamping after every synapse in index order would give 6, 12->7, 1: V = 1.
    # Neuron 1: weights -7, -7, 6 -> I = -8 -> V = -8; per synapse: -7, -14->-8, -2.
    # Neuron 2: weights 6, 6 -> I = 12 -> V = 7: spike, V = 7 - 7 = 0.
    net = network(3, dense("l", [[0, 0, 1], [2, 2, 0], [0, 0, -1]], [6, -6, -7], threshold=7,
                           v_bits=4, weight_bits=4))
    result = run(net, [[[1, 1, 1]]])
    assert trace(result, "l") == [[6, -8, 0]]
    assert spikes(result, "l") == [[0, 0, 1]]


# -- reset ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reset,want_v,want_s", [
    # Weight 2 on every step, threshold 3, IF neuron.
    #   subtract: 2; 4->s->1; 3->s->0; 2; 4->s->1; 3->s->0
    (SUB, [2, 1, 0, 2, 1, 0], [0, 1, 1, 0, 1, 1]),
    #   zero:     2; 4->s->0; 2; 4->s->0; 2; 4->s->0
    (ZERO, [2, 0, 2, 0, 2, 0], [0, 1, 0, 1, 0, 1]),
])
def test_reset_subtract_versus_zero(reset, want_v, want_s):
    net = network(1, dense("l", [[0]], [2], threshold=3, reset=reset))
    result = run(net, [[[1]] * 6])
    assert [v for [v] in trace(result, "l")] == want_v
    assert [s for [s] in spikes(result, "l")] == want_s
    assert result.counts.tolist() == [[sum(want_s)]]


def test_subtract_keeps_the_excess_above_threshold():
    # Weight 9, threshold 4: 9 -> spike -> 5 (still >= 4, but only one spike per step);
    # next step 5 + 9 = 14 -> spike -> 10; zero reset would give 0 both times.
    sub = network(1, dense("l", [[0]], [9], threshold=4, reset=SUB))
    zero = network(1, dense("l", [[0]], [9], threshold=4, reset=ZERO))
    assert trace(run(sub, [[[1], [1]]]), "l") == [[5], [10]]
    assert trace(run(zero, [[[1], [1]]]), "l") == [[0], [0]]


# -- pruning --------------------------------------------------------------------------------------


def test_pruned_row_never_receives_current():
    # Neuron 0 has two synapses of weight 5; neuron 1 none (all -1); neuron 2 only from input 1.
    net = network(2, dense("l", [[0, 0], [-1, -1], [-1, 0]], [5], threshold=1, reset=ZERO))
    result = run(net, [[[1, 1], [1, 0], [0, 1]]])
    assert spikes(result, "l") == [[1, 0, 1], [1, 0, 0], [1, 0, 1]]
    assert trace(result, "l") == [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    # With subtract reset and a high threshold the integrated values show it too.
    net = network(2, dense("l", [[0, 0], [-1, -1], [-1, 0]], [5], threshold=100))
    assert trace(run(net, [[[1, 1], [1, 0], [0, 1]]]), "l") == \
        [[10, 0, 5], [15, 0, 5], [20, 0, 10]]


def test_layer_with_no_synapses_at_all():
    net = network(2,
                  dense("fc1", [[-1, -1], [-1, -1]], [3, -3], threshold=1),
                  dense("fc2", [[0, 0]], [1], threshold=1))
    result = run(net, [[[1, 1]] * 4, [[0, 1]] * 4])
    for sample in (0, 1):
        assert spikes(result, "fc1", sample) == [[0, 0]] * 4
        assert spikes(result, "fc2", sample) == [[0]] * 4
    assert result.v_final["fc1"].tolist() == [[0, 0], [0, 0]]
    assert result.counts.tolist() == [[0], [0]]
    assert result.pred.tolist() == [0, 0]


# -- layer order ----------------------------------------------------------------------------------


def test_each_layer_sees_the_previous_layers_spikes_of_the_same_timestep():
    # A chain of three relays (weight 1, threshold 1, zero reset): an input spike at t=1 must
    # come out of every layer at t=1, not one step later per layer.
    relay = dict(threshold=1, reset=ZERO)
    net = network(1, dense("a", [[0]], [1], **relay), dense("b", [[0]], [1], **relay),
                  dense("c", [[0]], [1], **relay))
    result = run(net, [[[0], [1], [0], [0]]])
    for name in "abc":
        assert spikes(result, name) == [[0], [1], [0], [0]], name


def test_second_layer_integrates_first_layer_spikes_in_the_same_step():
    # fc1 (IF, threshold 4, zero reset): neuron 0 = 4*in0; neuron 1 = 2*in0 + 2*in1.
    # fc2 (IF, threshold 100, never fires): V += 3*s0 - 2*s1 of fc1's spikes *this* step.
    net = network(2,
                  dense("fc1", [[1, -1], [0, 0]], [2, 4], threshold=4, reset=ZERO),
                  dense("fc2", [[0, 1]], [3, -2], threshold=100))
    # t0: in 1,0 -> fc1 V [4->0, 2]     spikes [1, 0] -> fc2 0 + 3     = 3
    # t1: in 1,1 -> fc1 V [4->0, 6->0]  spikes [1, 1] -> fc2 3 + 3 - 2 = 4
    # t2: in 0,1 -> fc1 V [0, 2]        spikes [0, 0] -> fc2 4
    # t3: in 0,0 -> fc1 V [0, 2]        spikes [0, 0] -> fc2 4
    # (Had fc2 read fc1's spikes of the previous step, it would be 0, 3, 4, 4.)
    result = run(net, [[[1, 0], [1, 1], [0, 1], [0, 0]]])
    assert spikes(result, "fc1") == [[1, 0], [1, 1], [0, 0], [0, 0]]
    assert trace(result, "fc2") == [[3], [4], [4], [4]]


# -- readout --------------------------------------------------------------------------------------


def _identity_net(outputs: int = 3) -> Network:
    # Output j spikes exactly when input j does, so the counts are the inputs' spike counts.
    index = np.full((outputs, outputs), -1)
    np.fill_diagonal(index, 0)
    return network(outputs, dense("out", index, [1], threshold=1, reset=ZERO))


def _inputs_with_counts(counts: list[list[int]], timesteps: int) -> np.ndarray:
    x = np.zeros((len(counts), timesteps, len(counts[0])), np.uint8)
    for sample, row in enumerate(counts):
        for channel, count in enumerate(row):
            x[sample, :count, channel] = 1
    return x


def test_argmax_ties_go_to_the_lowest_index():
    result = simulate(_identity_net(), _inputs_with_counts(
        [[2, 5, 5], [0, 0, 0], [3, 1, 3], [1, 2, 4], [5, 5, 5]], timesteps=5))
    assert result.counts.tolist() == [[2, 5, 5], [0, 0, 0], [3, 1, 3], [1, 2, 4], [5, 5, 5]]
    assert result.pred.tolist() == [1, 0, 0, 2, 0]


# -- the result file written by `snnhw simulate` -------------------------------------------------


def test_simulate_cli_result_file_layout(tmp_path, capsys):
    # fc1 (2 neurons) relays inputs 0 and 1; fc2 (3 neurons, IF, threshold 2, subtract):
    # out0 <- fc1[0], out1 <- fc1[1], out2 <- fc1[0] + fc1[1].
    net = network(2,
                  dense("fc1", [[0, -1], [-1, 0]], [1], threshold=1, reset=ZERO),
                  dense("fc2", [[0, -1], [-1, 0], [0, 0]], [1], threshold=2, reset=SUB,
                        leak_shift=0))
    save(net, tmp_path / "model")
    x = np.array([
        [[1, 0], [1, 1], [0, 1]],   # sample 0
        [[0, 0], [0, 1], [0, 1]],   # sample 1
    ], np.uint8)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "r.npz"
    status = main(["simulate", str(tmp_path / "model"), "--inputs", str(tmp_path / "x.npy"),
                   "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0 and captured.err == ""
    assert captured.out == f"{out}: 2 samples, predictions 2 1\n"

    with np.load(out, allow_pickle=False) as npz:
        r = {key: npz[key] for key in npz.files}
    assert sorted(r) == ["counts", "pred", "spikes/fc1", "spikes/fc2", "v_final/fc1",
                         "v_final/fc2", "v_trace/fc1", "v_trace/fc2"]
    assert r["v_trace/fc2"].shape == (2, 3, 3)
    assert r["v_trace/fc2"][:, -1].tolist() == r["v_final/fc2"].tolist()
    assert r["spikes/fc1"].dtype == np.uint8 and r["spikes/fc1"].shape == (2, 3, 2)
    assert r["spikes/fc2"].dtype == np.uint8 and r["spikes/fc2"].shape == (2, 3, 3)
    for key in ("v_final/fc1", "v_final/fc2", "counts", "pred"):
        assert r[key].dtype.kind == "i", key
    assert r["v_final/fc1"].shape == (2, 2) and r["v_final/fc2"].shape == (2, 3)
    assert r["counts"].shape == (2, 3) and r["pred"].shape == (2,)

    assert r["spikes/fc1"].tolist() == x.tolist()  # relays
    # fc2, sample 0: out0 V 1 -> 1, 2 -> spike -> 0, 0 -> 0; spikes 0,1,0
    #                out1 V 0, 1, 2 -> spike -> 0;                spikes 0,0,1
    #                out2 V 1, 1+2=3 -> spike -> 1, 1+1=2 -> spike -> 0; spikes 0,1,1
    #       sample 1: out0 0,0,0; out1 0, 1, 2 -> spike -> 0: spikes 0,0,1; out2 0, 1, 2->s->0
    assert r["spikes/fc2"].tolist() == [
        [[0, 0, 0], [1, 0, 1], [0, 1, 1]],
        [[0, 0, 0], [0, 0, 0], [0, 1, 1]],
    ]
    assert r["v_final/fc2"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert r["v_final/fc1"].tolist() == [[0, 0], [0, 0]]
    assert r["counts"].tolist() == [[1, 1, 2], [0, 1, 1]]
    assert r["pred"].tolist() == [2, 1]

    loaded = Result.load(out)
    assert list(loaded.spikes) == ["fc1", "fc2"]
    assert loaded.counts.tolist() == [[1, 1, 2], [0, 1, 1]]


# -- property: simulate == a naive reading of DESIGN.md §2 ---------------------------------------


def _at(value, j):
    """Neuron j's value of a per-layer or per-neuron field."""
    return value[j] if isinstance(value, tuple) else value


def naive_simulate(net: Network, inputs: np.ndarray) -> dict[str, list]:
    """DESIGN.md §2 (and the golden model docstring's version-2 steps) one sample, one neuron,
    one synapse at a time, in plain Python ints."""
    samples, timesteps, _ = inputs.shape
    out = {"spikes": {l.name: [] for l in net.layers}, "trace": {l.name: [] for l in net.layers},
           "final": {l.name: [] for l in net.layers}}
    for n in range(samples):
        V = [[0] * layer.size for layer in net.layers]
        spikes_n = {l.name: [] for l in net.layers}
        trace_n = {l.name: [] for l in net.layers}
        for t in range(timesteps):
            pre = [int(x) for x in inputs[n, t]]
            for number, layer in enumerate(net.layers):
                neuron = layer.neuron
                lo, hi = -(2 ** (neuron.v_bits - 1)), 2 ** (neuron.v_bits - 1) - 1
                post = []
                for j in range(layer.size):
                    current = 0
                    for i in range(len(pre)):
                        k = int(layer.index[j][i])
                        if pre[i] == 1 and k >= 0:
                            current += int(layer.codebook[k])
                    v = V[number][j]
                    thr = _at(neuron.threshold, j)
                    bias, beta = _at(neuron.bias, j), _at(neuron.beta, j)

                    def fires(x):
                        return x > thr if neuron.fire == Fire.GT else x >= thr

                    timing = neuron.reset_timing
                    r = fires(v) if timing != ResetTiming.IMMEDIATE else False
                    if r and neuron.reset == Reset.ZERO:  # only deferred gets here
                        v = 0
                    if beta is not None:
                        half = 2 ** (neuron.beta_frac_bits - 1) \
                            if neuron.beta_rounding == Rounding.NEAREST else 0
                        v = (beta * v + half) // 2 ** neuron.beta_frac_bits
                    elif neuron.leak_shift != 0:
                        v = v - v // (2 ** neuron.leak_shift)  # Python // floors
                    deferred = thr if (r and timing == ResetTiming.DEFERRED
                                       and neuron.reset == Reset.SUBTRACT) else 0
                    v = min(max(v + current + bias - deferred, lo), hi)
                    if timing == ResetTiming.IMMEDIATE_SNNTORCH:
                        s = 1 if fires(v - thr * r) else 0
                    else:
                        s = 1 if fires(v) else 0
                    if timing != ResetTiming.DEFERRED and s:
                        if neuron.reset == Reset.SUBTRACT:
                            v = v - thr
                        elif neuron.reset == Reset.ZERO:
                            v = 0
                    if neuron.state_levels is not None:  # nearest level, ties to the lower
                        v = min(neuron.state_levels, key=lambda level: (abs(level - v), level))
                    V[number][j] = v
                    post.append(s)
                spikes_n[layer.name].append(post)
                trace_n[layer.name].append(list(V[number]))
                pre = post
        for layer, v in zip(net.layers, V):
            out["spikes"][layer.name].append(spikes_n[layer.name])
            out["trace"][layer.name].append(trace_n[layer.name])
            out["final"][layer.name].append(v)
    return out


@st.composite
def version_2_neuron(draw, neuron: Neuron, size: int) -> Neuron:
    """``neuron`` with random version-2 fields (each valid combination can come up)."""
    lo, hi = neuron.v_min, neuron.v_max

    def per_neuron(low, high):
        if draw(st.booleans()):
            return draw(st.integers(low, high))
        return tuple(draw(st.lists(st.integers(low, high), min_size=size, max_size=size)))

    reset = draw(st.sampled_from(Reset))
    timings = {Reset.SUBTRACT: list(ResetTiming), Reset.ZERO: [ResetTiming.IMMEDIATE,
               ResetTiming.DEFERRED], Reset.NONE: [ResetTiming.IMMEDIATE]}[reset]
    fields = dict(threshold=per_neuron(1, hi), reset=reset, fire=draw(st.sampled_from(Fire)),
                  reset_timing=draw(st.sampled_from(timings)), bias=per_neuron(lo, hi))
    if draw(st.booleans()):
        frac = draw(st.integers(1, 24))
        width = draw(st.integers(1, frac + 1))
        fields.update(leak_shift=0, beta=per_neuron(0, min(2**width - 1, 2**frac)),
                      beta_bits=width, beta_frac_bits=frac,
                      beta_rounding=draw(st.sampled_from(Rounding)))
    return dataclasses.replace(neuron, **fields)


@st.composite
def networks_and_inputs(draw):
    v_bits = draw(st.integers(2, 24))
    net = random_network(
        np.random.default_rng(draw(st.integers(0, 2**32 - 1))),
        draw(st.integers(1, 6)),
        draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)),
        codebook_size=draw(st.integers(1, 6)),
        weight_bits=draw(st.integers(1, 10)),
        density=draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]) | st.floats(0, 1)),
        v_bits=v_bits,
        leak_shift=draw(st.integers(0, v_bits - 1)),
        reset=draw(st.sampled_from([SUB, ZERO])),
        threshold=draw(st.none() | st.integers(1, 2 ** (v_bits - 1) - 1)),
        state_levels=draw(st.none() | st.integers(2, 8)),
    )
    if draw(st.booleans()):  # version-2 neurons
        for layer in net.layers:
            layer.neuron = draw(version_2_neuron(layer.neuron, layer.size))
    net.validate()
    samples, timesteps = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    rate = draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    inputs = (rng.random((samples, timesteps, net.input_size)) < rate).astype(np.uint8)
    return net, inputs


def mismatches(got: Result, want: dict[str, list]) -> list[str]:
    """What ``got`` computed differently from the naive reference (empty when bit-exact)."""
    return [f"{what}/{name}" for name, spikes in got.spikes.items()
            for what, ours in (("spikes", spikes), ("trace", got.v_trace[name]),
                               ("final", got.v_final[name]))
            if ours.tolist() != want[what][name]]


# Every way simulate may compute currents: the cheapest exact float, float64 only, int64 only.
PRODUCTS = [FLOAT_TYPES, (np.float64,), ()]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks_and_inputs(), st.sampled_from(PRODUCTS), st.booleans())
def test_simulate_matches_naive_reference(case, float_types, pack_always):
    # Small layers are not worth packing; pack_always makes unpacking free, so they are packed.
    net, inputs = case
    with mock.patch.object(golden_model, "UNPACK_COST", 0 if pack_always else UNPACK_COST):
        got = simulate(net, inputs, float_types=float_types)
    want = naive_simulate(net, inputs)
    assert mismatches(got, want) == []
    assert all(s.dtype == np.uint8 for s in got.spikes.values())
    assert all(v.dtype == np.int64 for v in [*got.v_trace.values(), *got.v_final.values()])
    counts = [[sum(s[t][j] for t in range(inputs.shape[1])) for j in range(net.output_size)]
              for s in want["spikes"][net.layers[-1].name]]
    assert got.counts.tolist() == counts
    assert got.pred.tolist() == [row.index(max(row)) for row in counts]


# -- the fast path: exact float products, packed fields, the int64 fallback ----------------------


def test_benchmark_sized_layers_pack_two_neurons_per_float32_column():
    # 784-128 at 20 % density, 4-bit weights: every |current| <= B < 2**10, so a field of 11 bits
    # holds one neuron's current plus the offset, and float32 (24 bits) holds two fields.
    net = random_network(np.random.default_rng(1), 784, [128, 10], density=0.2)
    plan = plan_currents(net.layers[0])
    assert plan.bound == int(np.abs(net.layers[0].dense_weights()).sum(axis=1).max()) < 1 << 10
    assert (plan.product, plan.fields, plan.field_bits) == (np.float32, 2, 11)
    assert plan.weights.shape == (784, 64) and plan.state == np.int32
    assert plan_currents(net.layers[0], ()).product == np.int64


def wide_layer(fan_in: int, *, v_bits: int = 32, size: int = 3) -> Layer:
    """Every synapse present, 90 % of them 32767, the others -32768."""
    index = (np.random.default_rng(0).random((size, fan_in)) < 0.9).astype(int)
    return dense("wide", index, [-32768, 32767], threshold=2 ** (v_bits - 2), v_bits=v_bits,
                 weight_bits=16)


def test_a_layer_beyond_float32_falls_back_to_float64_then_int64():
    layer = wide_layer(1100)  # sum |w| >= 1100 * 32767 > 2**25
    assert np.abs(layer.dense_weights()).sum(axis=1).min() > 1 << 25
    assert plan_currents(layer).product == np.float64 and plan_currents(layer).fields == 1
    assert plan_currents(layer, (np.float32,)).product == np.int64  # refused, not rounded
    assert plan_currents(layer).state == np.int64  # v_bits 32: V + I needs more than int32
    # The refusal matters: summed one by one in float32, 1100 weights of 32767 do round.
    assert np.cumsum(np.full(1100, 32767, np.float32))[-1] != 1100 * 32767


@pytest.mark.parametrize("float_types", [*PRODUCTS, (np.float32,)])
@pytest.mark.parametrize("reset", [SUB, ZERO])
def test_wide_layers_match_naive_reference(float_types, reset):
    # Currents near +-2**24 and above, V in 32 bits, and a second layer that saturates. The
    # first layer's bound fails float32, so float32 alone falls back to the int64 product.
    first = wide_layer(1100)
    first = dataclasses.replace(first, neuron=dataclasses.replace(
        first.neuron, reset=reset, leak_shift=5, threshold=2 ** 24))
    second = dense("out", np.random.default_rng(3).integers(-1, 2, (4, 3)), [-32768, 32767],
                   threshold=40000, v_bits=17, leak_shift=0, reset=reset, weight_bits=16)
    net = network(1100, first, second)
    inputs = (np.random.default_rng(4).random((3, 5, 1100)) < 0.6).astype(np.uint8)
    got = simulate(net, inputs, float_types=float_types)
    assert mismatches(got, naive_simulate(net, inputs)) == []
    assert (np.abs(inputs.astype(np.int64) @ first.dense_weights().T) > 1 << 24).any()
    assert got.spikes["wide"].any() and got.spikes["out"].any()


@pytest.mark.parametrize("reset", [SUB, ZERO])
@pytest.mark.parametrize("leak_shift", [0, 3])
def test_blocks_and_packing_match_the_integer_product(monkeypatch, reset, leak_shift):
    # Samples split over several blocks and product chunks (neither a multiple of the other),
    # packed fields with padding (size 37 is no multiple of the field count), state levels.
    monkeypatch.setattr(golden_model, "BLOCK_SAMPLES", 7)
    monkeypatch.setattr(golden_model, "PRODUCT_SAMPLES", 3)
    rng = np.random.default_rng(leak_shift)
    net = random_network(rng, 700, [37, 20, 5], density=0.5, reset=reset, leak_shift=leak_shift,
                         weight_bits=5, v_bits=14, state_levels=12)
    net.validate()
    assert [plan_currents(layer).fields for layer in net.layers][0] > 1
    inputs = random_inputs(rng, net, 17, 6)
    fast, exact = simulate(net, inputs), simulate(net, inputs, float_types=())
    for name in fast.spikes:
        assert np.array_equal(fast.spikes[name], exact.spikes[name]), name
        assert np.array_equal(fast.v_trace[name], exact.v_trace[name]), name


def test_lif_step_leaves_its_arguments_alone():
    layer = dense("l", [[0]], [1], threshold=4, leak_shift=1, v_bits=5)
    v, current = np.array([3, 9]), np.array([2, 0])
    # 3 - 1 + 2 = 4: spike, 0;  9 - 4 + 0 = 5: spike, 1.
    assert [a.tolist() for a in lif_step(v, current, layer)] == [[0, 1], [True, True]]
    assert v.tolist() == [3, 9] and current.tolist() == [2, 0]


# -- neuron models --------------------------------------------------------------------------------


def test_a_neuron_model_the_golden_model_lacks_is_refused_in_one_line():
    net = random_network(np.random.default_rng(0), 4, [3, 2])
    net.layers[1].neuron = dataclasses.replace(net.layers[1].neuron, model="izhikevich")
    with pytest.raises(SnnhwError) as error:
        simulate(net, np.zeros((1, 2, 4), np.uint8))
    assert str(error.value) == \
        "layer fc2: the golden model has no neuron model 'izhikevich' (it knows lif)"


def test_a_wrong_neuron_model_fails_the_comparison(monkeypatch):
    # The comparison with the naive reference is no tautology: a LIF that fires one below the
    # threshold, looked up through the same table, is caught.
    def off_by_one(v, current, layer, **kwargs):
        neuron = dataclasses.replace(layer.neuron, threshold=layer.neuron.threshold - 1)
        return lif_step(v, current, dataclasses.replace(layer, neuron=neuron), **kwargs)

    rng = np.random.default_rng(5)
    net = random_network(rng, 20, [8, 4], density=0.6, threshold=6)
    inputs = random_inputs(rng, net, 4, 8, rate=0.4)
    want = naive_simulate(net, inputs)
    assert mismatches(simulate(net, inputs), want) == []
    monkeypatch.setitem(NEURON_MODELS, "lif", off_by_one)
    assert "spikes/fc1" in mismatches(simulate(net, inputs), want)


# -- version-2 neurons, hand-computed (the docstring's steps 1-7) -------------------------------


def one_neuron(currents, **fields) -> tuple[list[int], list[int]]:
    """Drive one neuron (v_bits 16, threshold 10 unless given) with ``currents``, one per step;
    return its spikes and V after every step."""
    neuron = Neuron(**{"threshold": 10, "leak_shift": 0, "reset": SUB, "v_bits": 16, **fields})
    layer = dataclasses.replace(dense("n", [[0]], [1], threshold=1), neuron=neuron)
    v, spikes, trace = np.zeros(1, np.int64), [], []
    for current in currents:
        v, s = lif_step(v, np.array([current], np.int64), layer)
        spikes.append(int(s[0]))
        trace.append(int(v[0]))
    return spikes, trace


@pytest.mark.parametrize("fields,spikes,trace", [
    # Version 1: fires at V >= 10, subtracts at once.
    ({}, [0, 1, 0, 0], [6, 0, 9, 5]),
    # '>': V = 10 does not fire.
    ({"fire": Fire.GT}, [0, 0, 1, 0], [6, 10, 9, 5]),
    # Deferred subtract: the stored V is the pre-reset one; the next step subtracts 10.
    ({"fire": Fire.GT, "reset_timing": ResetTiming.DEFERRED}, [0, 0, 1, 0], [6, 10, 19, 5]),
    # Deferred zero: the step after a spike starts from 0 before adding the current.
    ({"reset": ZERO, "reset_timing": ResetTiming.DEFERRED}, [0, 1, 0, 0], [6, 10, 9, 5]),
    # Reset none: V only integrates.
    ({"reset": Reset.NONE}, [0, 1, 1, 1], [6, 10, 19, 15]),
    # Bias 1 every step.
    ({"bias": 1}, [0, 1, 1, 0], [7, 2, 2, -1]),
])
def test_version_2_rules_by_hand(fields, spikes, trace):
    assert one_neuron([6, 4, 9, -4], **fields) == (spikes, trace)


def test_deferred_subtract_is_not_scaled_by_the_leak():
    # beta = 1/2 (frac 1): V = 24 > 10 fires; next step: (1 * 24) >> 1 + 0 - 10 = 2.
    assert one_neuron([24, 0], fire=Fire.GT, reset_timing=ResetTiming.DEFERRED, beta=1,
                      beta_bits=2, beta_frac_bits=1) == ([1, 0], [24, 2])


def test_immediate_snntorch_compares_v_minus_the_pending_reset():
    # Step 0: 35 > 10 fires, V = 25 (still above 10: a reset is pending). Step 1: U = 25 - 4 =
    # 21; U - 10 = 11 > 10 fires, V = 11. Step 2: U = 11 - 2 = 9, 9 - 10 <= 10: no spike, V = 9
    # (plain immediate would compare 9 itself). Step 3 with 2: 11 - 0 > 10 fires.
    timing = ResetTiming.IMMEDIATE_SNNTORCH
    assert one_neuron([35, -4, -2, 2], fire=Fire.GT, reset_timing=timing) == \
        ([1, 1, 0, 1], [25, 11, 9, 1])
    # With U = 21 after a pending reset it does not fire where plain immediate would.
    assert one_neuron([35, -5], fire=Fire.GT, reset_timing=timing) == ([1, 0], [25, 20])
    assert one_neuron([35, -5], fire=Fire.GT) == ([1, 1], [25, 10])


@pytest.mark.parametrize("rounding,trace", [(Rounding.FLOOR, [-7, -4]),
                                            (Rounding.NEAREST, [-7, -3])])
def test_beta_rounding(rounding, trace):
    # beta = 3/4 (frac 2): 3 * -7 = -21; floor: -21 >> 2 = -6, + 2 = -4; nearest:
    # (-21 + 2) >> 2 = -5, + 2 = -3.
    got = one_neuron([-7, 2], beta=3, beta_bits=3, beta_frac_bits=2, beta_rounding=rounding)
    assert got == ([0, 0], trace)


def test_per_neuron_threshold_and_bias():
    neuron = Neuron(threshold=(2, 5), leak_shift=0, reset=SUB, v_bits=8, bias=(0, 1))
    layer = dataclasses.replace(dense("n", [[0], [0]], [3], threshold=1), neuron=neuron)
    v, s = lif_step(np.zeros(2, np.int64), np.array([3, 3], np.int64), layer)
    assert s.tolist() == [True, False] and v.tolist() == [1, 4]
