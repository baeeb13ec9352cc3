"""Compile a planned core: Verilog, memory images, report, instantiation template, lint."""

from .lint import lint
from .output import compile_network
from .readback import LayerImage, read_back
from .verilog import generate_verilog

__all__ = ["compile_network", "generate_verilog", "lint", "LayerImage", "read_back"]
