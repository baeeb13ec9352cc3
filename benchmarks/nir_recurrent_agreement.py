"""How closely the integer network of a float snnTorch RLeaky network follows it through NIR, by
weight bits.

A random (untrained) ``nn.Linear(20, 32) -> snn.RLeaky(all_to_all, beta 0.9, threshold 1) ->
nn.Linear(32, 5) -> snn.Leaky(beta 0.9, threshold 1)``, reset to zero at once (NIR's own neuron, so
only the quantization differs), weights of torch's default initialisation times 3 so both layers
fire. snnTorch's ``export_to_nir`` writes it (the back edge flat, as nirtorch does);
``snnhw.frontends.nir.from_graph`` quantizes it at each weight width and the golden model runs it
on random 0/1 inputs (rate 0.3, 25 timesteps). Prints the spike agreement per layer (every spike
of every timestep against snnTorch's own forward) and the prediction agreement (argmax of output
spike counts).

    python benchmarks/nir_recurrent_agreement.py [--samples N] [--seed S]
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # the machine is shared

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import snntorch as snn  # noqa: E402
import torch  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402
from torch import nn  # noqa: E402

from snnhw.frontends.nir import from_graph  # noqa: E402
from snnhw.frontends.quantize import agreement  # noqa: E402
from snnhw.golden import simulate  # noqa: E402

TIMESTEPS, SIZES = 25, (20, 32, 5)


def network(seed: int, init_hidden: bool) -> nn.Sequential:
    torch.manual_seed(seed)
    hidden, out = SIZES[1], SIZES[2]
    model = nn.Sequential(
        nn.Linear(SIZES[0], hidden),
        snn.RLeaky(beta=torch.full((hidden,), 0.9), threshold=torch.ones(hidden), all_to_all=True,
                   linear_features=hidden, reset_mechanism="zero", reset_delay=False,
                   init_hidden=init_hidden),
        nn.Linear(hidden, out),
        snn.Leaky(beta=torch.full((out,), 0.9), threshold=torch.ones(out),
                  reset_mechanism="zero", reset_delay=False, init_hidden=init_hidden))
    with torch.no_grad():
        model[0].weight.mul_(3)
        model[2].weight.mul_(3)
    return model


def snntorch_spikes(model: nn.Sequential, inputs: np.ndarray) -> list[np.ndarray]:
    """Both layers' spikes [samples, timesteps, size] from snnTorch's own forward."""
    first, rleaky, second, leaky = model
    spk = torch.zeros(inputs.shape[0], SIZES[1])
    mem, mem2 = torch.zeros_like(spk), torch.zeros(inputs.shape[0], SIZES[2])
    out: list[list[np.ndarray]] = [[], []]
    with torch.no_grad():
        for t in range(inputs.shape[1]):
            spk, mem = rleaky(first(torch.from_numpy(inputs[:, t]).float()), spk, mem)
            spk2, mem2 = leaky(second(spk), mem2)
            out[0].append(spk.numpy().astype(np.uint8))
            out[1].append(spk2.numpy().astype(np.uint8))
    return [np.stack(spikes, axis=1) for spikes in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = network(args.seed, init_hidden=False)
    twin = network(args.seed, init_hidden=True)
    graph = export_to_nir(twin, torch.zeros(SIZES[0]))
    inputs = (np.random.default_rng(args.seed).random((args.samples, TIMESTEPS, SIZES[0])) < 0.3
              ).astype(np.uint8)
    want = snntorch_spikes(model, inputs)
    print(f"snnTorch RLeaky {'-'.join(map(str, SIZES))} through NIR, {args.samples} samples, "
          f"{TIMESTEPS} timesteps")
    print("| weight bits | spikes fc1 (recurrent) | spikes fc2 | predictions |")
    print("|---|---|---|---|")
    for bits in (4, 6, 8, 10, 12, 16):
        net = from_graph(graph, timesteps=TIMESTEPS, weight_bits=bits)
        result = simulate(net, inputs)
        measured = agreement(want, [result.spikes[layer.name] for layer in net.layers])
        fc1, fc2 = measured["layer_spike_agreement"]
        print(f"| {bits} | {fc1:.5f} | {fc2:.5f} | {measured['prediction_agreement']:.4f} |")


if __name__ == "__main__":
    main()
