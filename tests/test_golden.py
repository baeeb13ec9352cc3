"""The golden model against DESIGN.md §2: hand-computed cases, result file, a property test.

The hand-computed cases write every expected number out; the property test compares ``simulate``
with a deliberately naive per-sample, per-neuron, per-synapse loop written from the text of §2
(floor division instead of shifts, Python ints instead of numpy), so neither checks the model
against itself.
"""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnhw.cli import main
from snnhw.golden import lif_step, simulate
from snnhw.network import Layer, Network, Neuron, Reset, save
from snnhw.network.random import random_network
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


def naive_simulate(net: Network, inputs: np.ndarray) -> dict[str, list]:
    """DESIGN.md §2 one sample, one neuron, one synapse at a time, in plain Python ints."""
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
                    if neuron.leak_shift != 0:
                        v = v - v // (2 ** neuron.leak_shift)  # Python // floors
                    v = min(max(v + current, lo), hi)
                    s = 1 if v >= neuron.threshold else 0
                    if s and neuron.reset == Reset.SUBTRACT:
                        v = v - neuron.threshold
                    elif s:
                        v = 0
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
        reset=draw(st.sampled_from(Reset)),
        threshold=draw(st.none() | st.integers(1, 2 ** (v_bits - 1) - 1)),
    )
    net.validate()
    samples, timesteps = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    rate = draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    inputs = (rng.random((samples, timesteps, net.input_size)) < rate).astype(np.uint8)
    return net, inputs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks_and_inputs())
def test_simulate_matches_naive_reference(case):
    net, inputs = case
    got = simulate(net, inputs)
    want = naive_simulate(net, inputs)
    for layer in net.layers:
        assert got.spikes[layer.name].tolist() == want["spikes"][layer.name], layer.name
        assert got.v_trace[layer.name].tolist() == want["trace"][layer.name], layer.name
        assert got.v_final[layer.name].tolist() == want["final"][layer.name], layer.name
    counts = [[sum(s[t][j] for t in range(inputs.shape[1])) for j in range(net.output_size)]
              for s in want["spikes"][net.layers[-1].name]]
    assert got.counts.tolist() == counts
    assert got.pred.tolist() == [row.index(max(row)) for row in counts]
