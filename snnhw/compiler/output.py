"""``snnhw compile``'s output directory: Verilog, instantiation template, memory images, report."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from string import Template

from .. import __version__
from ..plan import CorePlan, CoreReport, core_report
from .verilog import generate_verilog

__all__ = ["compile_network"]


def _hex_lines(values: list[int], bits: int) -> str:
    digits = max(1, -(-bits // 4))
    return "".join(f"{v:0{digits}x}\n" for v in values)


def _comment(text: str) -> str:
    """``text`` as it may appear in a Verilog ``//`` comment: printable ASCII, anything else
    (a newline would end the comment and make the rest live Verilog) escaped as ``\\xNN``."""
    return "".join(c if c.isascii() and c.isprintable() and c != "\\" else f"\\x{ord(c):02x}"
                   for c in text)


def _instance_template(plan: CorePlan) -> str:
    template = resources.files("snnhw.rtl_templates").joinpath("instance.v.txt").read_text()
    net = plan.network
    return Template(template).substitute(
        top=plan.top, version=__version__, network=_comment(net.name), lanes=plan.lanes,
        input_size=plan.input_size, output_size=net.output_size,
        input_payload_msb=plan.input_addr_bits, input_addr_msb=plan.input_addr_bits - 1,
        output_payload_msb=plan.output_addr_bits, output_addr_msb=plan.output_addr_bits - 1)


def _memory_images(plan: CorePlan) -> dict[str, str]:
    """``mem/<layer>.<memory>.hex``: the contents of every ROM, one word a line, in hex."""
    images = {}
    for lp in plan.layers:
        name, syn = lp.name, lp.synapses
        images[f"{name}.synapses.hex"] = _hex_lines(syn.packed_words(), syn.word_bits)
        if syn.has_pointers:
            images[f"{name}.pointers.hex"] = _hex_lines(syn.packed_pointers(), syn.pointer_bits)
        weight_bits = lp.layer.weight_bits
        mask = (1 << weight_bits) - 1
        images[f"{name}.codebook.hex"] = _hex_lines([c & mask for c in lp.layer.codebook],
                                                    weight_bits)
    return images


def compile_network(plan: CorePlan, out_dir: str | os.PathLike) -> CoreReport:
    """Write ``<top>.v``, ``<top>_inst.v``, ``mem/*.hex`` and ``report.json`` into ``out_dir``.

    Everything is generated in a scratch directory first and then replaces ``out_dir``'s
    contents (a ``mem/`` of an earlier compile does not survive), so a failure leaves
    ``out_dir`` untouched. Returns the report.
    """
    out_dir = Path(out_dir)
    report = core_report(plan)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (scratch / f"{plan.top}.v").write_text(generate_verilog(plan))
        (scratch / f"{plan.top}_inst.v").write_text(_instance_template(plan))
        mem = scratch / "mem"
        mem.mkdir()
        for name, text in _memory_images(plan).items():
            (mem / name).write_text(text)
        files = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file())
        document = report.to_json() | {"files": files + ["report.json"]}
        (scratch / "report.json").write_text(json.dumps(document, indent=2) + "\n")
        out_dir.mkdir(exist_ok=True)
        stale = out_dir / "mem"
        if stale.is_dir():
            shutil.rmtree(stale)
        for path in sorted(scratch.rglob("*")):
            target = out_dir / path.relative_to(scratch)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            else:
                os.replace(path, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report
