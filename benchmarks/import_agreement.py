"""How closely the integer network of a float snnTorch network follows it, by weight bits and
codebook size.

Trains a tutorial-style snnTorch network on scikit-learn's digits (64 inputs, rate-coded over
25 timesteps: pixel / 16 is each step's spike probability; 64-64-10, nn.Linear with bias +
snn.Leaky(beta=0.9, threshold=1.0, subtract reset, reset_delay=True), Adam, cross-entropy on
spike counts), then quantizes it with ``snnhw.frontends.snntorch.from_module`` at each weight
width (uniform grid) and codebook size (k-means, 16-bit grid) and runs the integer network in the
golden model on the test split. Prints a table: spike agreement per layer (every spike of every
timestep against snnTorch's own forward), prediction agreement, snnTorch's and the integer
network's accuracy. The same network also goes through NIR (snnTorch's export_to_nir, then
``snnhw.frontends.nir.from_graph`` with ``reset=subtract, reset_timing=deferred``) at 16 bits.

    python benchmarks/import_agreement.py [--epochs E] [--seed S]
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # the machine is shared

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import snntorch as snn  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from snnhw.frontends.quantize import agreement  # noqa: E402
from snnhw.frontends.snntorch import from_module  # noqa: E402
from snnhw.golden import simulate  # noqa: E402

TIMESTEPS = 25


def data(seed: int):
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    p = digits.data[order] / 16.0
    spikes = (rng.random((len(p), TIMESTEPS, 64)) < p[:, None, :]).astype(np.uint8)
    labels = digits.target[order]
    split = int(0.8 * len(labels))
    return (spikes[:split], labels[:split]), (spikes[split:], labels[split:])


def network(hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, hidden), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Linear(hidden, 10), snn.Leaky(beta=0.9, init_hidden=True))


def run(model: nn.Sequential, spikes: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's spikes [samples, T, size] of snnTorch's forward."""
    from snntorch import utils
    utils.reset(model)
    modules = list(model.children())
    out = [[] for _ in modules[1::2]]
    for t in range(spikes.shape[1]):
        s = spikes[:, t]
        for number, (linear, leaky) in enumerate(zip(modules[::2], modules[1::2])):
            s = leaky(linear(s))
            out[number].append(s)
    return [torch.stack(o, dim=1) for o in out]


def train(model, inputs, labels, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    x, y = torch.from_numpy(inputs).float(), torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(64):
            counts = run(model, x[batch])[-1].sum(dim=1)
            loss = nn.functional.cross_entropy(counts, y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    (train_x, train_y), (test_x, test_y) = data(args.seed)
    model = network()
    train(model, train_x, train_y, args.epochs, args.seed)
    with torch.no_grad():
        reference = [s.numpy().astype(np.uint8) for s in run(model, torch.from_numpy(test_x)
                                                              .float())]
    float_acc = float(np.mean(reference[-1].sum(axis=1).argmax(axis=1) == test_y))
    print(f"snnTorch digits 64-64-10, beta 0.9, subtract, deferred reset, biases; "
          f"{len(test_y)} test samples x {TIMESTEPS} steps; snnTorch accuracy {float_acc:.4f}")
    print(f"{'quantization':>22} | {'spikes fc1':>10} | {'spikes fc2':>10} | "
          f"{'predictions':>11} | {'accuracy':>8} | v_bits")
    rows = [(f"{bits}-bit grid", dict(weight_bits=bits)) for bits in (4, 6, 8, 10, 12, 16)]
    rows += [(f"codebook {m} (16-bit)", dict(weight_bits=16, codebook=m)) for m in (4, 8, 16, 32)]
    for label, options in rows:
        net = from_module(model, timesteps=TIMESTEPS, beta_frac_bits=16, **options)
        result = simulate(net, test_x)
        ours = [result.spikes[layer.name] for layer in net.layers]
        measured = agreement(reference, ours)
        acc = float(np.mean(result.pred == test_y))
        fc1, fc2 = measured["layer_spike_agreement"]
        print(f"{label:>22} | {fc1:>10.5f} | {fc2:>10.5f} | "
              f"{measured['prediction_agreement']:>11.4f} | {acc:>8.4f} | "
              f"{[layer.neuron.v_bits for layer in net.layers]}")
    try:
        from snntorch.export_nir import export_to_nir

        from snnhw.frontends.nir import from_graph
        from snnhw.network.format import Reset, ResetTiming
    except ImportError as error:
        print(f"(NIR row skipped: {error})")
        return
    twin = network()
    twin.load_state_dict(model.state_dict())
    for leaky in list(twin.children())[1::2]:  # snnTorch's export needs per-neuron shapes
        leaky.beta = torch.full((leaky_size(twin, leaky),), float(leaky.beta))
        leaky.threshold = torch.full((leaky_size(twin, leaky),), float(leaky.threshold))
    with np.errstate(divide="ignore"):
        graph = export_to_nir(twin, torch.zeros(64))
    net = from_graph(graph, timesteps=TIMESTEPS, weight_bits=16, reset=Reset.SUBTRACT,
                     reset_timing=ResetTiming.DEFERRED)
    result = simulate(net, test_x)
    measured = agreement(reference, [result.spikes[layer.name] for layer in net.layers])
    fc1, fc2 = measured["layer_spike_agreement"]
    print(f"{'NIR, 16-bit grid':>22} | {fc1:>10.5f} | {fc2:>10.5f} | "
          f"{measured['prediction_agreement']:>11.4f} | "
          f"{float(np.mean(result.pred == test_y)):>8.4f} | "
          f"{[layer.neuron.v_bits for layer in net.layers]}")


def leaky_size(model: nn.Sequential, leaky) -> int:
    modules = list(model.children())
    return modules[modules.index(leaky) - 1].out_features


if __name__ == "__main__":
    main()
