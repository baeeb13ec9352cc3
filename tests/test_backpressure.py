"""Back-pressure that fills every output queue, co-simulated bit-exact against the golden model.

Each layer engine pushes its spikes (and an end-of-timestep event) into a QUEUE_DEPTH-deep
output queue, and sweeps a neuron only while the queue has room. A network whose layers emit
fewer events per timestep than the queue holds never exercises that room check (removing it
passed the older tests), so here both layers have 64 neurons, thresholds low enough that most
of them fire every timestep, and the output is stalled 90 % of the cycles. The tests check from
the golden model that every queue is forced to its limit (see :func:`_forced_full`), then that
the RTL matches the golden model bit for bit anyway. A last test sends every input event into
the accumulator word the previous one is still writing, a hazard those wide layers never meet.
"""

import numpy as np
import pytest

from snnhw.golden import simulate
from snnhw.random_networks import random_inputs, random_network
from snnhw.plan import QUEUE_DEPTH, CorePlan, Layout
from snnhw.plan.cycles import SWEEP_OVERHEAD
from snnhw.sim.runner import Simulator, compare

pytestmark = pytest.mark.verilator

SIZE = 64
BACKPRESSURE = 0.9


@pytest.fixture(scope="module")
def net():
    return random_network(np.random.default_rng(21), 32, [SIZE, SIZE], density=1.0, threshold=4,
                          timesteps=4)


#: Per lane count, the layers' synapse layouts: the dense layers' own (implicit) at one lane, the
#: two others at two (a delta layout of a dense layer has every gap 0).
LAYOUTS = {1: {}, 2: {"fc1": Layout.ADDRESSED, "fc2": Layout.DELTA}}


@pytest.fixture(scope="module", params=[1, 2], ids=lambda lanes: f"lanes{lanes}")
def sim(request, net, tmp_path_factory):
    """One Verilator build per lane count for the whole module."""
    plan = CorePlan.build(net, request.param, layouts=LAYOUTS[request.param])
    return plan, Simulator(plan, tmp_path_factory.mktemp(f"bp{request.param}"))


def _forced_full(plan, spikes: dict[str, np.ndarray]) -> dict[str, int]:
    """Per layer, the most events one timestep's sweep pushes beyond what can drain meanwhile.

    A sweep visits one neuron a cycle and stalls only when its queue is at the room limit, so a
    sweep that never meets the limit ends within ``size + SWEEP_OVERHEAD`` cycles. Meanwhile:

    - an inner layer's queue is drained by the next engine, which takes an event only after
      fetching the previous event's column (``col_words`` words, one a cycle, P synapses a
      word); it takes at most ``cycles / col_words + 2`` events (the one in flight and one in
      its input register);
    - the last layer's queue is drained by the output stream, ready in a cycle with probability
      ``1 - BACKPRESSURE`` = 0.1: over ``size + SWEEP_OVERHEAD`` = 70 cycles it takes more than
      ``64 - QUEUE_DEPTH`` = 48 events with a probability below 1e-30.

    So if a timestep's sweep emits more than ``QUEUE_DEPTH`` + those, the queue reached its
    limit (the room check had to stall the sweep, or without it the queue would overflow).
    Returns, per layer, the largest excess over all samples and timesteps (> 0: forced full).
    """
    excess = {}
    layers = plan.layers
    for number, lp in enumerate(layers):
        sweep = lp.layer.size + SWEEP_OVERHEAD
        if number + 1 < len(layers):
            words = int(layers[number + 1].synapses.col_words.min())
            drained = sweep // max(1, words) + 2
        else:
            drained = 64 - QUEUE_DEPTH  # the 1e-30 bound above, for BACKPRESSURE = 0.9
        emitted = spikes[lp.name].sum(axis=2) + 1  # spikes and the end-of-timestep event
        excess[lp.name] = int(emitted.max()) - QUEUE_DEPTH - drained
    return excess


@pytest.mark.parametrize("gap", [0.0, 0.5])
def test_full_queues_lose_nothing(net, sim, gap):
    plan, simulator = sim
    inputs = random_inputs(np.random.default_rng(3), net, samples=2, rate=0.6)
    golden = simulate(net, inputs)
    # The network does what the test needs: bursts larger than the queue in every layer.
    assert plan.layers[0].queue_depth == QUEUE_DEPTH
    assert all(spikes.sum(axis=2).max() > QUEUE_DEPTH for spikes in golden.spikes.values())
    excess = _forced_full(plan, golden.spikes)
    assert all(e > 0 for e in excess.values()), excess
    rtl, out_spikes, errors = simulator.run(inputs, gap=gap, backpressure=BACKPRESSURE, seed=5)
    assert errors == []
    mismatches = compare(golden, rtl, out_spikes)
    assert mismatches == [], "\n".join(map(str, mismatches[:10]))



@pytest.mark.parametrize("lanes", [1, 2])
def test_back_to_back_events_into_one_accumulator_word(tmp_path, lanes):
    """A layer as wide as the lanes has one accumulator word per lane, so every input event adds
    into the word the previous event is still writing: the read must see that write (the
    accumulation forwards its last sum). The 64-neuron layers above never hit the
    same word twice in a row; here every event does, with stalls on both streams."""
    net = random_network(np.random.default_rng(9), 40, [lanes], density=1.0, timesteps=6)
    plan = CorePlan.build(net, lanes)
    assert plan.layers[0].synapses.bank_depth == 1
    inputs = random_inputs(np.random.default_rng(6), net, samples=2, rate=0.7)
    golden = simulate(net, inputs)
    rtl, out_spikes, errors = Simulator(plan, tmp_path).run(inputs, gap=0.2, backpressure=0.5)
    assert errors == []
    mismatches = compare(golden, rtl, out_spikes)
    assert mismatches == [], "\n".join(map(str, mismatches[:10]))
