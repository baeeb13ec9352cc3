"""Named, ordered flow stages that re-run only when their inputs change."""

from __future__ import annotations

import functools
import hashlib
import json
import time
import traceback
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import SnnhwError

__all__ = ["StageFailed", "Stages", "fingerprint", "source_digest", "tree_digest"]

#: The packages whose files make up snnhw's own source: the compiler and the hardware generator,
#: the co-simulation testbenches, the hand-written RTL and the board files.
SOURCE_PACKAGES = ("snnhw", "snnhw.sim", "snnhw.rtl_templates", "snnhw.board_files")
SOURCE_SUFFIXES = (".py", ".v", ".txt", ".vlt", ".yaml")


class StageFailed(SnnhwError):
    """A flow stage failed; the message names the stage and its log."""


def tree_digest(roots: Iterable[Path], suffixes: Iterable[str] = SOURCE_SUFFIXES) -> str:
    """Hash of the names and contents of the files with ``suffixes`` below each root (a root
    that is a file: that file).

    A file reachable from two roots (an installed ``snnhw/sim`` inside ``snnhw/``) counts once.
    """
    suffixes = tuple(suffixes)
    digest, seen = hashlib.sha256(), set()
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.suffix in suffixes and p.is_file())
        for file in files:
            if "__pycache__" in file.parts or file.resolve() in seen:
                continue
            seen.add(file.resolve())
            name = root.name if file == root else f"{root.name}/{file.relative_to(root).as_posix()}"
            digest.update(f"{name}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


@functools.cache
def source_digest() -> str:
    """Hash of snnhw's own source files, computed once per process.

    Part of every fingerprint, so that an edit to the hardware generator (or any other part of
    snnhw) re-runs the stages it may change instead of reporting stale results.
    """
    roots = []
    for package in SOURCE_PACKAGES:
        root = resources.files(package)
        if not isinstance(root, Path):  # a zip import: no editable source to watch
            continue
        roots.append(root)
    return tree_digest(roots)


def fingerprint(params: Any, paths: Iterable[Path] = ()) -> str:
    """Hash of parameters and of the contents of files (directories: every file below them).

    The snnhw version and the digest of snnhw's own source (:func:`source_digest`) are part of
    it: a new or edited snnhw recomputes everything.
    """
    from .. import __version__
    digest = hashlib.sha256(json.dumps([__version__, source_digest(), params], sort_keys=True,
                                       default=str).encode())
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
            digest.update(file.read_bytes() if file.exists() else b"<missing>")
    return digest.hexdigest()


class Stages:
    """Runs stages in order under ``out_dir``, remembering each one's fingerprint and result.

    A stage whose fingerprint (parameters + input file contents + snnhw's source) and outputs are
    unchanged since its last successful run is skipped, and its recorded result is returned
    instead. Each stage gets a log file ``out_dir/logs/<stage>.log``; a failure raises
    :class:`StageFailed` naming the stage and the log.

    Stages are named by ``name`` in files (``out_dir/.flow/<name>.json``, the log) and by
    ``label`` (default: the name) in what is printed.
    """

    def __init__(self, out_dir: str | Path, echo: Callable[[str], None] = print):
        self.out_dir = Path(out_dir)
        self.state_dir = self.out_dir / ".flow"
        self.log_dir = self.out_dir / "logs"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.timings: dict[str, float] = {}  #: label -> seconds, of stages run or skipped
        self.skipped: list[str] = []  #: labels of stages skipped as up to date
        self.number = 0

    def log(self, name: str) -> Path:
        """Return the log file of stage ``name``."""
        return self.log_dir / f"{name}.log"

    def state(self, name: str) -> Path:
        """Return the file recording stage ``name``'s fingerprint and result."""
        return self.state_dir / f"{name}.json"

    def run(self, name: str, action: Callable[[Path], Any], *, params: Any = None,
            inputs: Iterable[Path] = (), outputs: Iterable[Path] = (),
            label: str | None = None) -> Any:
        """Run ``action(log_path)`` unless up to date; return its (JSON-able) result."""
        self.number += 1
        label = label or name
        inputs, outputs = list(inputs), list(outputs)
        key = fingerprint(params, inputs)
        state_path = self.state(name)
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if state.get("key") == key and all(Path(p).exists() for p in outputs):
                self.echo(f"[{self.number}] {label}: up to date, skipped")
                self.skipped.append(label)
                self.timings[label] = 0.0
                return state.get("result")
        state_path.unlink(missing_ok=True)
        self.echo(f"[{self.number}] {label} ...")
        start = time.monotonic()
        log = self.log(name)
        try:
            result = action(log)
        except SnnhwError as error:
            raise StageFailed(f"stage '{label}' failed: {error} (log: {log})") from None
        except Exception as error:  # a bug, not bad input: keep the traceback in the log
            with log.open("a") as f:
                f.write(traceback.format_exc())
            raise StageFailed(f"stage '{label}' failed: {type(error).__name__}: {error} "
                              f"(traceback in {log})") from None
        took = time.monotonic() - start
        self.timings[label] = took
        state_path.write_text(json.dumps({"key": key, "result": result, "seconds": took},
                                         default=str))
        self.echo(f"[{self.number}] {label}: done in {took:.1f} s")
        return result

    def recall(self, name: str, *, params: Any = None, inputs: Iterable[Path] = (),
               outputs: Iterable[Path] = (), label: str | None = None, hint: str = "") -> Any:
        """Return the result stage ``name`` recorded in an earlier run, without running it.

        Raises :class:`~snnhw.errors.SnnhwError` when it has no recorded result or one of its
        ``outputs`` is missing; ``hint`` (how to run it) ends that message. A result recorded
        under another fingerprint is used all the same (the caller chose not to re-run the
        stage), and the printed line says it is out of date.
        """
        self.number += 1
        label = label or name
        state_path = self.state(name)
        missing = [Path(p) for p in outputs if not Path(p).exists()]
        if not state_path.exists() or missing:
            why = f"{missing[0]} is missing" if missing else f"no {state_path}"
            raise SnnhwError(f"step '{name}' has not run in {self.out_dir} ({why}); "
                             f"run it first{hint}")
        state = json.loads(state_path.read_text())
        stale = state.get("key") != fingerprint(params, inputs)
        self.echo(f"[{self.number}] {label}: not run, using the result of an earlier run"
                  + (" (out of date: its parameters, inputs or snnhw changed since)"
                     if stale else ""))
        return state.get("result")
