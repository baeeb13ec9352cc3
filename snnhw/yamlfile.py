"""Reading YAML files (networks, recipes, boards) with one-line errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import SnnhwError

__all__ = ["parse_yaml", "read_yaml"]


def parse_yaml(text: str, source: str, error: type[SnnhwError] = SnnhwError) -> Any:
    """Parse ``text``; raise ``error`` naming ``source`` (and the line) if it is not YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise error(f"{source}: not valid YAML{at}") from None


def read_yaml(path: str | os.PathLike, error: type[SnnhwError] = SnnhwError) -> Any:
    """Read and parse a YAML file; raise ``error`` naming the file if that fails."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror or problem}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not valid YAML (not UTF-8 text)") from None
    return parse_yaml(text, str(path), error)
