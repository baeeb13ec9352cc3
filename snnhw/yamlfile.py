"""Reading YAML files (networks, recipes, boards) with one-line errors that name the file.

Stricter than ``yaml.safe_load`` in two ways, both because a config file must mean one thing: a
key given twice in one mapping is refused (``safe_load`` keeps the last one, silently), and so is
a document nested deeper than :data:`MAX_DEPTH` (no config of ours comes close; PyYAML's composer
recurses and would end in a ``RecursionError``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .config import shown
from .errors import SnnhwError

__all__ = ["MAX_DEPTH", "parse_yaml", "read_yaml"]

#: Deepest nesting of collections a YAML file may have.
MAX_DEPTH = 100


class _Refused(yaml.YAMLError):
    """YAML that parses but that we do not accept; ``message`` says why, ``mark`` where."""

    def __init__(self, message: str, mark: yaml.Mark):
        super().__init__(message)
        self.message, self.mark = message, mark


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and deep nesting."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<': merged keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first.get(key)
                except TypeError:  # an unhashable key: the base class says so
                    break
                if line is not None:
                    raise _Refused(f"duplicate key {shown(key)} (first given at line {line})",
                                   key_node.start_mark)
                first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str, error: type[SnnhwError] = SnnhwError) -> Any:
    """Parse ``text``; raise ``error`` naming ``source`` (and the line) if it is not YAML."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except _Refused as problem:
        raise error(f"{source}: line {problem.mark.line + 1}: {problem.message}") from None
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise error(f"{source}: not valid YAML{at}") from None
    except RecursionError:  # a guard above MAX_DEPTH's: some other path recursed too far
        raise error(f"{source}: not valid YAML (nested too deeply)") from None


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
