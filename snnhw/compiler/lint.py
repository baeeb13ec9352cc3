"""``verilator --lint-only -Wall`` on generated Verilog, with the commented waivers."""

from __future__ import annotations

import os
import subprocess
from importlib import resources

from ..errors import SnnhwError
from ..toolchain import verilator

__all__ = ["lint"]


def lint(verilog_path: str | os.PathLike) -> str:
    """Lint a Verilog file; raise a one-line error naming it if Verilator warns."""
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
