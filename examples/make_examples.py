"""Regenerate the example networks shipped in examples/ (deterministic: fixed seeds).

    python examples/make_examples.py
"""

from pathlib import Path

import numpy as np

from snnhw.network import save
from snnhw.random_networks import random_inputs, random_network

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(2026)
    # The shape of the benchmark network: 64 inputs (8x8 digits), 128 hidden, 10 outputs,
    # half the synapses pruned, 4-entry codebooks.
    net = random_network(rng, 64, [128, 10], codebook_size=4, weight_bits=4, density=0.5,
                         v_bits=12, leak_shift=3, timesteps=16, name="random-64-128-10")
    out = HERE / "random-64-128-10"
    save(net, out)
    np.save(out / "inputs.npy", random_inputs(rng, net, samples=8, rate=0.2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
