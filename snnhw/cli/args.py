"""What the commands share: the parser class and the ``type=`` functions of their flags.

A ``type=`` function sees one flag's text and raises :class:`argparse.ArgumentTypeError`; the
parser puts the flag's name in front, so the library never has to know what its parameters are
called on the command line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from ..errors import SnnhwError
from ..plan import MAX_LANES

__all__ = ["FLAGS", "Parser", "lanes", "positive_int", "nonnegative_int", "clock", "out_dir",
           "out_file", "core_plan"]

#: The flag that sets each library parameter (:class:`~snnhw.errors.ParameterError` names the
#: parameter; the CLI shows the flag).
FLAGS = {"lanes": "--lanes", "baud": "--baud", "board": "--board", "samples": "--samples",
         "first_step": "--from", "last_step": "--to", "synapses": "--synapses",
         "clock": "--clock", "nir": "--nir", "inputs": "--inputs", "labels": "--labels",
         "reset": "--reset", "reset_timing": "--reset-timing", "seeds": "--seeds"}


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``snnhw: error: <message>``, exit 2.

    Like every other user error of the CLI: no usage block, and the message starts with the flag
    at fault (``--lanes: expected ...``).
    """

    def error(self, message: str) -> NoReturn:
        # argparse words a bad value as "argument --lanes: ..."; ours start with the flag itself.
        self.exit(2, f"snnhw: error: {message.removeprefix('argument ')}\n")


def lanes(text: str) -> int:
    """Parse ``--lanes``: synapses per cycle per layer, 1..MAX_LANES."""
    expected = f"expected an integer in 1..{MAX_LANES}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
    if not 1 <= value <= MAX_LANES:
        raise argparse.ArgumentTypeError(f"{expected}, got {value}")
    return value


def clock(text: str) -> float | str:
    """Parse ``--clock``: MHz, ``board`` or ``auto`` (the board's range is checked by the build)."""
    if text in ("board", "auto"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frequency in MHz, 'board' or 'auto', got "
                                         f"{text!r}") from None
    return value


def positive_int(text: str) -> int:
    """Parse an integer of at least 1 (a sample count, a bit rate)."""
    return _int_from(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """Parse an integer of at least 0 (how many lines to show)."""
    return _int_from(text, 0, "an integer >= 0")


def _int_from(text: str, least: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def out_dir(text: str) -> str:
    """Parse an output directory: an existing directory, or one that can be created."""
    path = _out_path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a directory to write into, but {text!r} is "
                                         f"an existing file")
    _check_writable(path, text)
    return text


def out_file(text: str) -> str:
    """Parse an output file: not a directory, in an existing directory that can be written."""
    path = _out_path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file to write, but {text!r} is a directory")
    parent = path.parent
    if not parent.exists():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: directory {str(parent)!r} "
                                         f"does not exist")
    _check_writable(parent, text)
    return text


def _out_path(text: str) -> Path:
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a path to write to, got {text!r}")
    return Path(text)


def _check_writable(path: Path, text: str) -> None:
    """Raise unless ``path`` is a directory that can be written, or can be created as one."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {str(existing)!r} is a file, "
                                         f"not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {str(existing)!r} is not "
                                         f"writable (permission denied)")


def core_plan(model: str, network, lanes: int):
    """Plan ``network``'s core; a limit of the core it breaks is named in ``model``'s manifest.

    (The plan names the field, ``timesteps: expected at most ...``; the user wrote it in
    ``MODEL/network.yaml``.)
    """
    from ..network.format import MANIFEST
    from ..plan import CorePlan, PlanError
    try:
        return CorePlan.build(network, lanes)
    except PlanError as error:
        if error.parameter in FLAGS:
            raise
        raise SnnhwError(f"{Path(model) / MANIFEST}: {error}") from None
