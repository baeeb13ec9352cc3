"""Compile a network into a core: Verilog, memory images, a report and an instantiation template."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from string import Template

from amaranth.back import verilog

from . import __version__
from .errors import SnnhwError
from .hw.core import Core
from .hw.layout import LayerLayout, membrane_bits
from .network.format import Network

__all__ = ["MAX_LANES", "top_name", "check_lanes", "generate_verilog", "core_report",
           "compile_network", "lint"]

MAX_LANES = 64


def top_name(net: Network) -> str:
    """Verilog module name of the network's core."""
    return "snnhw_" + (re.sub(r"[^A-Za-z0-9_]", "_", net.name).lower() or "core")


def check_lanes(lanes: object) -> int:
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= MAX_LANES:
        raise SnnhwError(f"--lanes: expected an integer in 1..{MAX_LANES}, got {lanes!r}")
    return lanes


def generate_verilog(net: Network, lanes: int = 1, *, large_ram=(), spram: bool = False) -> str:
    """Return the core's Verilog (reproducible: no source paths embedded).

    ``large_ram`` and ``spram`` are :class:`~snnhw.hw.core.Core`'s: layers whose synapses are
    loaded at run time, and whether those RAMs are iCE40 SPRAM primitives.
    """
    check_lanes(lanes)
    return verilog.convert(Core(net, lanes, large_ram=large_ram, spram=spram),
                           name=top_name(net), emit_src=False)


def core_report(net: Network, lanes: int = 1) -> dict:
    """Memory bits and shape of every layer of the core, as a JSON-ready dict."""
    check_lanes(lanes)
    layers = []
    for layer in net.layers:
        lay = LayerLayout.build(layer, lanes)
        bits = lay.memory_bits(membrane_bits(layer.neuron),
                                len(layer.codebook) * layer.weight_bits)
        layers.append({
            "name": layer.name,
            "size": layer.size,
            "fan_in": layer.fan_in,
            "synapses": layer.synapse_count,
            "sparsity": 1.0 - layer.synapse_count / (layer.size * layer.fan_in),
            "codebook_entries": len(layer.codebook),
            "weight_bits": layer.weight_bits,
            "v_bits": layer.neuron.v_bits,
            "layout": "addressed" if lay.addressed else "implicit",
            "synapse_words": lay.total_words,
            "synapse_word_bits": lay.word_bits,
            "accumulator_bits": lay.acc_bits,
            "memory_bits": bits,
        })
    total = {key: sum(layer["memory_bits"][key] for layer in layers)
             for key in layers[0]["memory_bits"]}
    return {
        "snnhw": __version__,
        "network": net.name,
        "top": top_name(net),
        "lanes": lanes,
        "input_size": net.input_size,
        "output_size": net.output_size,
        "layers": layers,
        "memory_bits": total | {"total": sum(total.values())},
    }


def _hex_lines(values: list[int], bits: int) -> str:
    digits = max(1, -(-bits // 4))
    return "".join(f"{v:0{digits}x}\n" for v in values)


def _instance_template(net: Network, lanes: int) -> str:
    template = resources.files("snnhw.rtl_templates").joinpath("instance.v.txt").read_text()
    in_bits = max(1, (net.input_size - 1).bit_length())
    out_bits = max(1, (net.output_size - 1).bit_length())
    return Template(template).substitute(
        top=top_name(net), version=__version__, network=net.name, lanes=lanes,
        input_size=net.input_size, output_size=net.output_size,
        input_payload_msb=in_bits, input_addr_msb=in_bits - 1,
        output_payload_msb=out_bits, output_addr_msb=out_bits - 1)


def compile_network(net: Network, out_dir: str | os.PathLike, lanes: int = 1) -> dict:
    """Write ``<top>.v``, ``<top>_inst.v``, ``mem/*.hex`` and ``report.json`` into ``out_dir``.

    Everything is generated in a scratch directory first, so a failure leaves ``out_dir``
    untouched. Returns the report.
    """
    check_lanes(lanes)
    out_dir = Path(out_dir)
    top = top_name(net)
    report = core_report(net, lanes)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (scratch / f"{top}.v").write_text(generate_verilog(net, lanes))
        (scratch / f"{top}_inst.v").write_text(_instance_template(net, lanes))
        mem = scratch / "mem"
        mem.mkdir()
        for layer in net.layers:
            lay = LayerLayout.build(layer, lanes)
            (mem / f"{layer.name}.synapses.hex").write_text(
                _hex_lines(lay.packed_words(), lay.word_bits))
            if lay.addressed:
                (mem / f"{layer.name}.pointers.hex").write_text(
                    _hex_lines(lay.packed_pointers(), lay.start_bits + lay.count_bits))
            mask = (1 << layer.weight_bits) - 1
            (mem / f"{layer.name}.codebook.hex").write_text(
                _hex_lines([c & mask for c in layer.codebook], layer.weight_bits))
        report["files"] = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*")
                                 if p.is_file()) + ["report.json"]
        (scratch / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        out_dir.mkdir(exist_ok=True)
        for path in sorted(scratch.rglob("*")):
            target = out_dir / path.relative_to(scratch)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            else:
                os.replace(path, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def lint(verilog_path: str | os.PathLike) -> str:
    """Run ``verilator --lint-only -Wall`` (with the commented waivers); raise if it warns."""
    from .toolchain import verilator
    waivers = resources.files("snnhw.rtl_templates").joinpath("lint_waivers.vlt")
    with resources.as_file(waivers) as waiver_path:
        result = subprocess.run(
            [verilator(), "--lint-only", "-Wall", str(waiver_path), str(verilog_path)],
            capture_output=True, text=True)
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if line.startswith("%")),
                     result.stderr.strip()[:200])
        raise SnnhwError(f"{verilog_path}: verilator lint failed: {first}")
    return result.stderr
