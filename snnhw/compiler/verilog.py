"""The core's Verilog."""

from __future__ import annotations

from amaranth.back import verilog

from ..hw.core import Core
from ..plan import CorePlan

__all__ = ["generate_verilog"]


def generate_verilog(plan: CorePlan) -> str:
    """Return the planned core's Verilog (reproducible: no source paths embedded)."""
    return verilog.convert(Core(plan), name=plan.top, emit_src=False)
