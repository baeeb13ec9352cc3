"""A trained convolutional network (kind: conv2d): accuracy, weight memory and cycle bounds.

Reads a model directory that `snnhw train` wrote (default: build/mnist-conv, from
examples/recipes/mnist_conv.yaml) and prints, side by side:

- float, compressed (torch integer mode) and golden accuracy, from metrics.json and a rerun of
  the golden model on the test spikes;
- per layer, the weight bits of the kernel stored once (the format's, and a kernel-once engine's
  memory) against the synapse memory today's core stores: the unrolled matrix (one lane);
- the core's cycle bound per image (snnhw.plan.cycle_bounds: per layer max(accumulation,
  neurons) + sweep overhead, busiest layer per timestep, summed over timesteps) and its total
  memory at P = 1, 2, 4; a conv2d layer's accumulation is the taps its input events hit, P a
  cycle.

    python benchmarks/conv_model.py [MODEL]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from snnhw.golden import simulate
from snnhw.network import load
from snnhw.plan import CorePlan, SynapseLayout, cycle_bounds
from snnhw.train.export import layer_memory


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="build/mnist-conv")
    args = parser.parse_args()
    model = Path(args.model)
    net, metrics = load(model), json.loads((model / "metrics.json").read_text())
    inputs, labels = np.load(model / "test_inputs.npy"), np.load(model / "test_labels.npy")
    golden = simulate(net, inputs)
    counts = golden.spikes[net.layers[-1].name].sum(axis=1, dtype=np.int64)
    print(f"network {net.name}: {net.input_size}-" + "-".join(
        f"{layer.size}({layer.kind})" for layer in net.layers) + f", {len(labels)} test samples "
        f"x {net.timesteps} timesteps")
    print(f"accuracy: float {metrics['float_accuracy']:.4f}  compressed (torch) "
          f"{metrics['torch_accuracy']:.4f}  golden {np.mean(counts.argmax(axis=1) == labels):.4f}"
          f"  spike mismatches {metrics['spike_mismatches']} of {metrics['spikes_compared']}")
    print(f"{'layer':>6} {'kind':>7} {'taps/synapses':>13} {'sparsity':>8} {'weight bits':>11} "
          f"{'stored unrolled':>15} {'ratio':>6}")
    for layer in net.layers:
        memory = layer_memory(layer)
        unrolled = SynapseLayout.build(layer, 1).stored_bits + memory["codebook_bits"]
        print(f"{layer.name:>6} {layer.kind:>7} {layer.synapse_count:>13} "
              f"{layer.sparsity:>8.1%} {memory['bits']:>11} {unrolled:>15} "
              f"{memory['bits'] / unrolled:>6.3f}")
    print(f"{'P':>3} {'cycles/image':>12} {'speed-up vs P=1':>16} {'core memory bits':>16}")
    base = None
    for lanes in (1, 2, 4):
        plan = CorePlan.build(net, lanes)
        per_image = cycle_bounds(plan, inputs, golden.spikes).max(axis=0).sum(axis=1).mean()
        base = base or per_image
        print(f"{lanes:>3} {per_image:>12.1f} {base / per_image:>16.2f} "
              f"{plan.memory_bits['total']:>16}")


if __name__ == "__main__":
    main()
