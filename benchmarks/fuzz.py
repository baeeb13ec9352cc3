"""Random networks at scale: co-simulate many random networks and inputs against the golden model.

Draws ``--networks`` random networks over every feature of the format (1..3 layers of 1..64
neurons, input sizes up to 300, codebooks of 1..16 entries and now and then 100 or 256, weight
bits, densities from 0 to 1 with both ends included, v_bits 4..32, leak shifts 0..v_bits-1, both
resets, thresholds scaled so that both saturation and silence occur, state codebooks) and builds
each under Verilator once per lane count in ``--lanes`` (:class:`BatchSimulator`). Each build then
runs its share of the ``--cases`` input samples in two batches: one without stalls, one with idle
cycles on the input and back-pressure on the output. Input rates range from silent to every input
spiking. Every spike and membrane potential of every layer at every timestep, and the output
stream, is compared with the golden model.

A case is one input sample of one network at one lane count. Prints one line per (network, lanes)
build, a summary ``fuzz: N cases (K networks x L lanes), M mismatches, T s`` (M counts the cases
that differ) and the case rate with an extrapolation to 10,000 cases. On a mismatch it writes a
reproducer under ``--out`` (the network directory, the failing samples as ``inputs.npy``, the
stall settings) and prints the ``snnhw cosim`` command that re-runs it; exits 1.

    python benchmarks/fuzz.py --cases N [--seed S] [--out DIR] [--networks K] [--lanes 1 2 4]
                              [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from snnhw.errors import SnnhwError
from snnhw.golden import simulate
from snnhw.network import Network, Reset, save
from snnhw.plan import CorePlan
from snnhw.random_networks import random_network
from snnhw.results import Result
from snnhw.sim.harness_runner import BatchSimulator
from snnhw.sim.runner import compare

#: Input spike rates a sample is drawn with: silent, sparse, dense, every input every step.
RATES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0)


@dataclass(frozen=True)
class Drawn:
    """A random network and the parameters it was drawn with (for the progress line)."""

    net: Network
    density: float
    threshold_scale: str

    def describe(self) -> str:
        net, first = self.net, self.net.layers[0]
        n = first.neuron
        levels = len(n.state_levels) if n.state_levels else "-"
        shape = "-".join(str(s) for s in [net.input_size] + [l.size for l in net.layers])
        return (f"{net.name} {shape} T={net.timesteps} cb={len(first.codebook)} "
                f"wb={first.weight_bits} density={self.density:.2f} v_bits={n.v_bits} "
                f"leak={n.leak_shift} {n.reset.value} levels={levels} "
                f"theta={self.threshold_scale}")


def draw_network(rng: np.random.Generator, name: str) -> Drawn:
    """A random network across the format's features (one set of parameters for all layers,
    so that the line describing it is exact)."""
    depth = int(rng.integers(1, 4))
    # Tiny layers and inputs are drawn often enough to occur, not so often that most networks
    # are silent behind a one-neuron layer.
    sizes = [int(rng.choice([1, 2, int(rng.integers(3, 65)), int(rng.integers(3, 65)),
                             int(rng.integers(3, 65))])) for _ in range(depth)]
    input_size = int(rng.choice([1, 2, int(rng.integers(3, 65)), int(rng.integers(3, 65)),
                                 int(rng.integers(3, 65)), int(rng.integers(65, 301))]))
    codebook_size = int(rng.choice([int(rng.integers(1, 17))] * 9 + [int(rng.choice([100, 256]))]))
    weight_bits = int(rng.integers(max(1, (codebook_size - 1).bit_length()), 13))
    density = float(rng.choice([0.0, 1.0, 1.0, 0.05, 0.5, round(float(rng.random()), 2),
                                round(float(rng.random()), 2), round(float(rng.random()), 2)]))
    v_bits = int(rng.choice([4, 5, 6, 8, int(rng.integers(4, 33)), int(rng.integers(4, 33)), 24,
                             32]))
    leak_shift = int(rng.integers(0, v_bits))
    reset = Reset(rng.choice(["subtract", "zero"]))  # the resets the core implements
    timesteps = int(rng.integers(1, 17))
    state_levels = rng.choice([None, None, None, 2, 5, 16, 256])
    net = random_network(rng, input_size, sizes, codebook_size=codebook_size,
                         weight_bits=weight_bits, density=density, v_bits=v_bits,
                         leak_shift=leak_shift, reset=reset, timesteps=timesteps,
                         state_levels=None if state_levels is None else int(state_levels),
                         name=name)
    # Calibrated thresholds fire moderately; scaling them makes layers silent or saturate.
    scale = rng.choice(["x1/8", "x1/4", "x1/2", "x1", "x1", "x1", "x2", "x4", "x16", "1", "max"])
    for layer in net.layers:
        n = layer.neuron
        if scale == "1":
            theta = 1
        elif scale == "max":
            theta = n.v_max
        else:
            numerator, _, denominator = scale[1:].partition("/")
            theta = n.threshold * int(numerator) / int(denominator or 1)
        layer.neuron = replace(n, threshold=int(np.clip(round(theta), 1, n.v_max)))
    return Drawn(net=net, density=density, threshold_scale=str(scale))


def draw_inputs(rng: np.random.Generator, net: Network, samples: int) -> np.ndarray:
    """Spike inputs, uint8 [samples, timesteps, input_size], each sample at its own rate."""
    rates = rng.choice(RATES, size=samples)
    shape = (samples, net.timesteps, net.input_size)
    return (rng.random(shape) < rates[:, None, None]).astype(np.uint8)


def _share(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal non-negative integers."""
    return [total // parts + (n < total % parts) for n in range(parts)]


def _write_reproducer(directory: Path, drawn: Drawn, lanes: int, inputs: np.ndarray,
                      failing: list[int], stalls: dict, first_lines: list[str]) -> str:
    """Write the network, the failing samples and the stall settings; return the command."""
    directory.mkdir(parents=True, exist_ok=True)
    save(drawn.net, directory / "model")
    np.save(directory / "inputs.npy", inputs[failing])
    (directory / "case.json").write_text(json.dumps(
        {"lanes": lanes, "samples_in_run": failing, "stalls": stalls,
         "network": drawn.describe(), "first_mismatches": first_lines}, indent=2) + "\n")
    return (f"snnhw cosim {directory / 'model'} --inputs {directory / 'inputs.npy'} "
            f"--out {directory / 'rtl.npz'} --lanes {lanes}")


def run_case_set(simulator, drawn: Drawn, lanes: int, inputs: np.ndarray, stalls: list[dict],
                 golden: Callable[[Network, np.ndarray], Result], out: Path,
                 log: Callable[[str], None]) -> tuple[int, float]:
    """Run ``inputs`` split over the ``stalls`` settings; return the number of failing cases
    and the golden model's spike rate (over every neuron and timestep)."""
    failing_cases, spikes, slots = 0, 0, 0
    parts = np.array_split(np.arange(len(inputs)), len(stalls))
    for number, (part, setting) in enumerate(zip(parts, stalls)):
        if not len(part):
            continue
        batch = inputs[part]
        expected = golden(drawn.net, batch)
        spikes += sum(int(s.sum()) for s in expected.spikes.values())
        slots += sum(s.size for s in expected.spikes.values())
        try:
            rtl, output_spikes, errors = simulator.run(batch, **setting)
        except SnnhwError as error:  # the simulation stopped (a hung core): every case fails
            errors, mismatches = [str(error)], []
        else:
            mismatches = compare(expected, rtl, output_spikes)
        bad = sorted({m.sample for m in mismatches})
        if errors and not bad:
            bad = list(range(len(batch)))  # a protocol error is not pinned to a sample
        if not bad:
            continue
        failing_cases += len(bad)
        lines = errors[:5] + [str(m) for m in mismatches[:10]]
        for line in lines:
            log(f"    {line}")
        directory = out / f"mismatch-{drawn.net.name}-p{lanes}{'-stalled' if number else ''}"
        command = _write_reproducer(directory, drawn, lanes, batch, bad, setting, lines)
        log(f"    {len(bad)} failing sample(s) of {len(batch)} (gap {setting['gap']}, "
            f"back-pressure {setting['backpressure']}, seed {setting['seed']}); reproduce "
            f"(without stalls) with:\n    {command}")
    return failing_cases, spikes / max(slots, 1)


def main(argv: Sequence[str] | None = None, *,
         golden: Callable[[Network, np.ndarray], Result] = simulate,
         simulator: Callable[..., BatchSimulator] = BatchSimulator,
         log: Callable[[str], None] | None = None) -> int:
    """Run the fuzzer; return the exit status (0: every case matched, 1: a mismatch).

    ``golden`` and ``simulator`` replace the golden model and the Verilator build (tests use
    them to check that a wrong model is reported); ``log`` receives every printed line.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, required=True,
                        help="input samples in all, over every network and lane count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--networks", type=int, default=4, metavar="K",
                        help="random networks (each built once per lane count)")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"),
                        help="where reproducers of mismatches go")
    parser.add_argument("--work", type=Path,
                        help="keep the Verilator builds here (reused when a network recurs)")
    args = parser.parse_args(argv)
    log = log or (lambda line: print(line, flush=True))  # progress shows in a redirected log
    if args.cases < 1 or args.networks < 1 or any(p < 1 for p in args.lanes):
        parser.error("--cases, --networks and --lanes must be positive")

    started = time.perf_counter()
    pairs = [(n, p) for n in range(args.networks) for p in args.lanes]
    shares = _share(args.cases, len(pairs))
    failing, cases, build_seconds, run_seconds = 0, 0, 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="snnhw-fuzz-") as scratch:
        work = args.work or Path(scratch)
        drawn_nets: dict[int, Drawn] = {}
        for (number, lanes), samples in zip(pairs, shares):
            if number not in drawn_nets:
                rng = np.random.default_rng([args.seed, number])
                drawn_nets[number] = draw_network(rng, f"fuzz{args.seed}-{number}")
            drawn = drawn_nets[number]
            if not samples:
                continue
            rng = np.random.default_rng([args.seed, number, lanes])
            inputs = draw_inputs(rng, drawn.net, samples)
            stalls = [dict(gap=0.0, backpressure=0.0, seed=0),
                      dict(gap=float(rng.choice([0.0, 0.2, 0.5])),
                           backpressure=float(rng.choice([0.3, 0.5, 0.8])),
                           seed=int(rng.integers(0, 1 << 16)))]
            begin = time.perf_counter()
            sim = simulator(CorePlan.build(drawn.net, lanes), work / f"{drawn.net.name}-p{lanes}",
                            timesteps=drawn.net.timesteps)
            built = time.perf_counter()
            bad, rate = run_case_set(sim, drawn, lanes, inputs, stalls, golden, args.out, log)
            done = time.perf_counter()
            build_seconds += built - begin
            run_seconds += done - built
            failing += bad
            cases += samples
            log(f"[{drawn.describe()}] P={lanes} samples={samples} spike rate {rate:.0%} "
                f"{done - begin:.1f} s (build {built - begin:.1f} s) "
                f"{'OK' if not bad else f'MISMATCH in {bad} case(s)'}")
    total = time.perf_counter() - started
    builds = sum(1 for s in shares if s)
    log(f"fuzz: {cases} cases ({args.networks} networks x {len(args.lanes)} lanes), "
        f"{failing} mismatches, {total:.1f} s")
    # Honest extrapolation: builds cost the same however many samples run on them.
    per_case = run_seconds / max(cases, 1)
    per_build = build_seconds / max(builds, 1)
    same_builds = build_seconds + per_case * 10_000
    same_share = total * 10_000 / max(cases, 1)
    log(f"rate: {cases / total:.2f} cases/s overall; {builds} builds at {per_build:.1f} s each, "
        f"then {1 / per_case if per_case else math.inf:.1f} cases/s (run + golden + compare)")
    log(f"10,000 cases: ~{same_builds / 60:.1f} min on these {builds} builds, "
        f"~{same_share / 60:.1f} min with the same samples per build "
        f"(~{math.ceil(10_000 / max(cases / builds, 1))} builds)")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
