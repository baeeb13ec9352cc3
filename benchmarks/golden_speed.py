"""The golden model's speed beside snnTorch's forward of the same network, one thread.

Builds a random 784-128-10 network with 20 % of synapses kept and 1,000 samples x 16 timesteps of
random input spikes, then times, side by side in one run (best of ``--repeats``):

- before: the previous golden model (int64 matrix products, numpy without BLAS), kept below
  verbatim as the reference;
- golden: ``snnhw.golden.simulate`` today (exact float products where provably exact);
- snnTorch: the float forward of the same shape (``nn.Linear`` + ``snn.Leaky``, beta 0.875, no
  grad), with the network's weights and thresholds, inputs already a float tensor.

It asserts that ``simulate`` equals the previous model on every spike and every V of the run.

    python benchmarks/golden_speed.py [--samples N] [--repeats R]
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy and torch load their thread pools

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import snntorch as snn  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from snnhw.golden import simulate  # noqa: E402
from snnhw.network import Network, Reset  # noqa: E402
from snnhw.random_networks import random_inputs, random_network  # noqa: E402
from snnhw.results import Result, check_inputs  # noqa: E402


# -- before: the golden model as it was, int64 products (kept as the reference) ----------------


def before_lif_step(v, current, layer):
    neuron = layer.neuron
    if neuron.leak_shift:
        v = v - (v >> neuron.leak_shift)  # numpy >> on signed ints is arithmetic (floor)
    v = np.clip(v + current, neuron.v_min, neuron.v_max)
    spikes = v >= neuron.threshold
    if neuron.reset is Reset.SUBTRACT:
        v = np.where(spikes, v - neuron.threshold, v)
    else:
        v = np.where(spikes, 0, v)
    if neuron.state_levels is not None:
        level = np.asarray(neuron.state_levels, dtype=np.int64)
        v = level[np.searchsorted(level[:-1] + level[1:], 2 * v, side="left")]
    return v, spikes


def before_simulate(net: Network, inputs: np.ndarray) -> Result:
    inputs = check_inputs(net, inputs)
    samples, timesteps, _ = inputs.shape
    weights = [layer.dense_weights().T.copy() for layer in net.layers]  # [fan_in, size]
    v = [np.zeros((samples, layer.size), dtype=np.int64) for layer in net.layers]
    spikes = {layer.name: np.zeros((samples, timesteps, layer.size), np.uint8)
              for layer in net.layers}
    trace = {layer.name: np.zeros((samples, timesteps, layer.size), np.int64)
             for layer in net.layers}
    for t in range(timesteps):
        s = inputs[:, t, :].astype(np.int64)
        for number, layer in enumerate(net.layers):
            current = s @ weights[number]  # exact: int64 cannot overflow for valid networks
            v[number], fired = before_lif_step(v[number], current, layer)
            spikes[layer.name][:, t, :] = fired
            trace[layer.name][:, t, :] = v[number]
            s = fired.astype(np.int64)
    return Result(spikes=spikes, v_final={l.name: v[n] for n, l in enumerate(net.layers)},
                  v_trace=trace)


# -- snnTorch: the float forward of the same network --------------------------------------------


def snntorch_forward(net: Network, beta: float):
    """Return a no-grad forward over time-major float spikes [timesteps, samples, inputs]."""
    fcs, lifs = [], []
    for layer in net.layers:
        fc = torch.nn.Linear(layer.fan_in, layer.size, bias=False)
        fc.weight.data = torch.from_numpy(layer.dense_weights().astype(np.float32))
        fcs.append(fc)
        lifs.append(snn.Leaky(beta=beta, threshold=float(layer.neuron.threshold)))

    def forward(x: torch.Tensor):
        with torch.no_grad():
            mems = [lif.init_leaky() for lif in lifs]
            spk_rec, mem_rec = [], []
            for step in range(x.shape[0]):
                s = x[step]
                for number, (fc, lif) in enumerate(zip(fcs, lifs)):
                    s, mems[number] = lif(fc(s), mems[number])
                spk_rec.append(s)
                mem_rec.append(mems[-1])
            return torch.stack(spk_rec), torch.stack(mem_rec)

    return forward


def best_of(repeats: int, runs: dict) -> dict:
    """Time every run ``repeats`` times, interleaved so that load on the machine hits all alike."""
    times = {name: [] for name in runs}
    results = {}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rng = np.random.default_rng(2026)
    net = random_network(rng, 784, [128, 10], density=0.2, leak_shift=3)
    inputs = random_inputs(rng, net, args.samples, args.timesteps)
    x = torch.from_numpy(inputs).float().permute(1, 0, 2).contiguous()
    forward = snntorch_forward(net, beta=1 - 2.0 ** -3)  # leak_shift 3: V -= V >> 3

    with threadpool_limits(limits=1):
        seconds, results = best_of(args.repeats, {
            "before (int64 matmul)": lambda: before_simulate(net, inputs),
            "golden simulate": lambda: simulate(net, inputs),
            "snnTorch forward": lambda: forward(x),
        })

    old, new = results["before (int64 matmul)"], results["golden simulate"]
    for layer in net.layers:
        for what in ("spikes", "v_trace", "v_final"):
            a, b = getattr(old, what)[layer.name], getattr(new, what)[layer.name]
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{what}/{layer.name} differ"

    print(f"network {net.input_size}-" + "-".join(str(l.size) for l in net.layers) +
          f", {sum(l.synapse_count for l in net.layers)} synapses "
          f"({sum(l.synapse_count for l in net.layers) / sum(l.index.size for l in net.layers):.0%}"
          f" kept), {args.samples} samples x {args.timesteps} timesteps, input rate "
          f"{inputs.mean():.2f}, hidden rate {new.spikes[net.layers[0].name].mean():.2f}, "
          f"one thread, best of {args.repeats}")
    golden = seconds["golden simulate"]
    for name, s in seconds.items():
        print(f"{name:>24}: {s:8.3f} s  {s / golden:6.2f}x golden")
    print("golden simulate == before on every spike and V: yes")


if __name__ == "__main__":
    main()
