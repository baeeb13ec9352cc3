"""What several test modules share (importable as ``conftest``: pytest puts tests/ on the path)."""

#: A recipe that trains in seconds: enough to run every flow step, not to be accurate.
TINY_RECIPE = """\
name: tiny
data: {dataset: digits, timesteps: 6}
model: {hidden: [16]}
train: {epochs: 1, progress: false}
compress:
  - prune: {sparsity: 0.5, rounds: 1, epochs: 1}
  - cluster: {values: 4, epochs: 1}
"""


def assert_cosim_exact(net, lanes: int, gap: float, backpressure: float, seed: int, work, *,
                       samples: int = 2, rates=(0.05, 0.3, 0.7), layouts=None) -> None:
    """Co-simulate ``net`` at ``lanes`` under Verilator in ``work`` (random input gaps and output
    back-pressure) and require every spike and membrane potential to equal the golden model's.
    ``layouts`` forces synapse layouts (:meth:`snnhw.plan.CorePlan.build`)."""
    import numpy as np

    from snnhw.plan import CorePlan
    from snnhw.random_networks import random_inputs
    from snnhw.sim.runner import cosim

    inputs = random_inputs(np.random.default_rng(seed), net, samples=samples,
                           rate=rates[seed % len(rates)])
    report = cosim(CorePlan.build(net, lanes, layouts=layouts), inputs, work, gap=gap,
                   backpressure=backpressure, seed=seed)
    assert report.errors == []
    assert report.mismatches == [], "\n".join(map(str, report.mismatches[:10]))
    # The comparison saw real values: same shapes as the golden model, cycles recorded.
    for name, spikes in report.golden.spikes.items():
        assert report.rtl.spikes[name].shape == spikes.shape
    assert (report.rtl.cycles > 0).all()


def assert_torch_matches_golden(net, inputs, golden=None) -> None:
    """Run ``net`` in torch's integer mode and require every spike and membrane potential of
    every layer to equal the golden model's (torch names the layers fc1, fc2, ... in order)."""
    import numpy as np

    from snnhw.golden import simulate
    from snnhw.train.export import exact_run
    from snnhw.train.model import from_network

    golden = simulate(net, inputs) if golden is None else golden
    spikes, traces = exact_run(from_network(net), inputs)
    for number, layer in enumerate(net.layers):
        name = f"fc{number + 1}"
        np.testing.assert_array_equal(spikes[name], golden.spikes[layer.name], err_msg=name)
        np.testing.assert_array_equal(traces[name], golden.v_trace[layer.name], err_msg=name)


def cosim_examples(count: int):
    """Hypothesis settings for co-simulation tests, where each example is a Verilator build: a
    fixed (derandomized) set of ``count`` draws, the simplest first, no deadline."""
    from hypothesis import HealthCheck, Phase, settings

    return settings(max_examples=count, deadline=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
