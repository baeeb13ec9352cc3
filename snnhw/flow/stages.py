"""Named, ordered flow stages that re-run only when their inputs change."""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import SnnhwError

__all__ = ["StageFailed", "Stages", "fingerprint"]


class StageFailed(SnnhwError):
    """A flow stage failed; the message names the stage and its log."""


def fingerprint(params: Any, paths: Iterable[Path] = ()) -> str:
    """Hash of parameters and of the contents of files (directories: every file below them).

    The snnhw version is part of it: a new snnhw recomputes everything.
    """
    from .. import __version__
    digest = hashlib.sha256(json.dumps([__version__, params], sort_keys=True,
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

    A stage whose fingerprint (parameters + input file contents) and outputs are unchanged since
    its last successful run is skipped, and its recorded result is returned instead. Each stage
    gets a log file ``out_dir/logs/<stage>.log``; a failure raises :class:`StageFailed` naming
    the stage and the log.
    """

    def __init__(self, out_dir: str | Path, echo: Callable[[str], None] = print):
        self.out_dir = Path(out_dir)
        self.state_dir = self.out_dir / ".flow"
        self.log_dir = self.out_dir / "logs"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self.number = 0

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def run(self, name: str, action: Callable[[Path], Any], *, params: Any = None,
            inputs: Iterable[Path] = (), outputs: Iterable[Path] = ()) -> Any:
        """Run ``action(log_path)`` unless up to date; return its (JSON-able) result."""
        self.number += 1
        inputs, outputs = list(inputs), list(outputs)
        key = fingerprint(params, inputs)
        state_path = self.state_dir / f"{name}.json"
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if state.get("key") == key and all(Path(p).exists() for p in outputs):
                self.echo(f"[{self.number}] {name}: up to date, skipped")
                self.skipped.append(name)
                self.timings[name] = 0.0
                return state.get("result")
        state_path.unlink(missing_ok=True)
        self.echo(f"[{self.number}] {name} ...")
        start = time.monotonic()
        log = self.log(name)
        try:
            result = action(log)
        except SnnhwError as error:
            raise StageFailed(f"stage '{name}' failed: {error} (log: {log})") from None
        except Exception as error:  # a bug, not bad input: keep the traceback in the log
            with log.open("a") as f:
                f.write(traceback.format_exc())
            raise StageFailed(f"stage '{name}' failed: {type(error).__name__}: {error} "
                              f"(traceback in {log})") from None
        took = time.monotonic() - start
        self.timings[name] = took
        state_path.write_text(json.dumps({"key": key, "result": result, "seconds": took},
                                         default=str))
        self.echo(f"[{self.number}] {name}: done in {took:.1f} s")
        return result
