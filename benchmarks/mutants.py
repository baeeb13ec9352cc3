"""Mutation check: do the fast tests catch small deliberate bugs in the generator and the model?

Each mutant is one text substitution in one source file. It is applied to a temporary copy of
the source tree (laid out as the installed package: ``sim/`` as ``snnhw/sim`` and so on), never
to the real files, and the fast tests that should kill it run there::

    python -m pytest -m "not slow" -x -q <test files>

A mutant is killed when those tests fail. First the unmutated copy runs every selected test
file (a baseline that fails would make every mutant look killed). Prints one line per mutant
and a summary; exits 1 if any mutant survived (or the baseline failed).

    python benchmarks/mutants.py [--only NAME ...] [--no-baseline] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Source directories beside the package and the names they install under (pyproject.toml).
PACKAGE_DIRS = {"snnhw": "snnhw", "sim": "snnhw/sim", "rtl_templates": "snnhw/rtl_templates",
                "boards": "snnhw/board_files"}
COPIED = ["tests", "pyproject.toml", "README.md"]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  #: file in the installed layout, relative to the copy's root
    old: str  #: text that must occur exactly once
    new: str
    tests: tuple[str, ...]  #: test files, cheapest first (pytest -x stops at the first failure)


MUTANTS = [
    Mutant("queue room check removed", "snnhw/hw/engine.py",
           "queue.level + in_flight + 3 <= plan.queue_depth",
           "queue.level + in_flight + 0 <= plan.queue_depth",
           ("tests/test_backpressure.py",)),
    Mutant("accumulator sum not forwarded", "snnhw/hw/engine.py",
           "s3_forward[p].eq(s2_valid[p] & s3_valid[p] & (s2_addr[p] == s3_addr[p]))",
           "s3_forward[p].eq(0)",
           ("tests/test_backpressure.py", "tests/test_cosim.py")),
    Mutant("golden LIF fires on > instead of >=", "snnhw/golden/model.py",
           "np.greater_equal(v_out, neuron.threshold, out=spikes)",
           "np.greater(v_out, neuron.threshold, out=spikes)",
           ("tests/test_golden.py",)),
    Mutant("hardware LIF fires on > instead of >=", "snnhw/hw/lif.py",
           "fires_if = total >= n.threshold", "fires_if = total > n.threshold",
           ("tests/test_hw_lif.py",)),
    Mutant("golden subtract reset resets to zero", "snnhw/golden/model.py",
           "        fired *= neuron.threshold\n        v_out -= fired\n",
           "        np.subtract(1, fired, out=fired)\n        v_out *= fired\n",
           ("tests/test_golden.py",)),
    Mutant("golden nearest beta rounding floors", "snnhw/golden/model.py",
           "x += 1 << (frac - 1)", "x += 0 << (frac - 1)", ("tests/test_golden.py",)),
    Mutant("golden deferred reset not subtracted", "snnhw/golden/model.py",
           "        x -= r * thr\n", "        x -= 0 * thr\n", ("tests/test_golden.py",)),
    Mutant("golden snnTorch-immediate compares V itself", "snnhw/golden/model.py",
           "spikes = fire(x - r * thr, thr)", "spikes = fire(x, thr)", ("tests/test_golden.py",)),
    Mutant("golden saturation bound off by one", "snnhw/golden/model.py",
           "np.clip(v_out, neuron.v_min, neuron.v_max, out=v_out)",
           "np.clip(v_out, neuron.v_min, neuron.v_max - 1, out=v_out)",
           ("tests/test_golden.py",)),
    Mutant("hardware saturation bound off by one", "snnhw/hw/lif.py",
           "Const(n.v_max - n.threshold, v_shape)", "Const(n.v_max - 1 - n.threshold, v_shape)",
           ("tests/test_hw_lif.py",)),
    Mutant("pointer start off by one", "snnhw/plan/layout.py",
           "return [int(s) | (int(c) << self.start_bits)",
           "return [(int(s) + 1) | (int(c) << self.start_bits)",
           ("tests/test_readback.py",)),
    Mutant("slot order reversed in packed words", "snnhw/plan/layout.py",
           "for p, slot in enumerate(row))", "for p, slot in enumerate(row[::-1]))",
           ("tests/test_readback.py",)),
    Mutant("codebook sign lost in the hex writer", "snnhw/compiler/output.py",
           "[c & mask for c in lp.layer.codebook]", "[c for c in lp.layer.codebook]",
           ("tests/test_readback.py",)),
    Mutant("golden state-level ties go up", "snnhw/golden/model.py",
           'np.searchsorted(doubled_midpoints, 2 * v, side="left")',
           'np.searchsorted(doubled_midpoints, 2 * v, side="right")',
           ("tests/test_state_levels.py", "tests/test_golden.py")),
    Mutant("hardware state-level ties go up", "snnhw/hw/lif.py",
           "upper = v > (levels[mid - 1] + levels[mid]) // 2",
           "upper = v >= (levels[mid - 1] + levels[mid]) // 2",
           ("tests/test_hw_lif.py",)),
]


def make_tree(dest: Path) -> None:
    """Copy the sources into ``dest`` in the installed package layout, with the tests."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for source, target in PACKAGE_DIRS.items():
        shutil.copytree(ROOT / source, dest / target, ignore=ignore, dirs_exist_ok=True)
    for name in COPIED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, dest / name)


def mutated(tree: Path, mutant: Mutant) -> str:
    """The text of the mutant's file in ``tree`` with its substitution made."""
    text = (tree / mutant.path).read_text()
    found = text.count(mutant.old)
    if found != 1:
        raise SystemExit(f"mutant {mutant.name!r}: {mutant.path} holds its text {found} times, "
                         f"not once; update the mutant to today's source")
    return text.replace(mutant.old, mutant.new)


def environment(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The copy first on the path, ahead of the editable install's finder for the real tree.
    env["PYTHONPATH"] = os.pathsep.join([str(tree)] + [p for p in
                                                       [env.get("PYTHONPATH")] if p])
    env.pop("SNNHW_WAVES", None)
    return env


def check_imports(tree: Path) -> None:
    """Refuse to run if ``snnhw`` would not be imported from the copy."""
    code = "import snnhw, snnhw.sim; print(snnhw.__file__); print(snnhw.sim.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=environment(tree),
                         capture_output=True, text=True, check=True).stdout.split()
    for path in out:
        if not Path(path).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"the copy would import {path}, outside {tree}")


def run_tests(tree: Path, tests: tuple[str, ...], log: Path) -> tuple[int, str, float]:
    """Run the tests in the copy; return (pytest's exit status, first failure, seconds)."""
    command = [sys.executable, "-m", "pytest", "-m", "not slow", "-x", "-q", "-p",
               "no:cacheprovider", *tests]
    start = time.monotonic()
    done = subprocess.run(command, cwd=tree, env=environment(tree), capture_output=True,
                          text=True)
    seconds = time.monotonic() - start
    output = done.stdout + done.stderr
    log.write_text(output)
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return done.returncode, failed.group(1) if failed else "", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run the mutants whose name contains one of these words")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the run of the unmutated tree")
    parser.add_argument("--keep", action="store_true", help="keep the copies and logs")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS
               if not args.only or any(word in m.name for word in args.only)]
    if not mutants:
        parser.error(f"no mutant matches {args.only}")

    scratch = Path(tempfile.mkdtemp(prefix="snnhw-mutants."))
    print(f"{len(mutants)} mutants; copies and logs in {scratch}", flush=True)
    status = 0
    try:
        base = scratch / "baseline"
        make_tree(base)
        check_imports(base)
        for mutant in mutants:  # every substitution must still match today's source
            mutated(base, mutant)
        if not args.no_baseline:
            files = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
            rc, failed, seconds = run_tests(base, files, scratch / "baseline.log")
            if rc != 0:
                print(f"baseline FAILED (pytest exit {rc}, {failed or 'see the log'}) in "
                      f"{seconds:.0f} s: {scratch / 'baseline.log'}", flush=True)
                status = 1
                return status
            print(f"baseline passes: {' '.join(files)} ({seconds:.0f} s)", flush=True)
        survived = []
        for number, mutant in enumerate(mutants, start=1):
            tree = scratch / f"mutant{number}"
            make_tree(tree)
            (tree / mutant.path).write_text(mutated(tree, mutant))
            log = scratch / f"mutant{number}.log"
            rc, failed, seconds = run_tests(tree, mutant.tests, log)
            if rc == 1:
                verdict = f"killed by {failed or '?'}"
            elif rc == 0:
                verdict = "SURVIVED"
                survived.append(mutant)
            else:  # collection or internal error: the mutant broke the tests, not a test
                verdict = f"killed (pytest exit {rc}: {failed or 'error'})"
            print(f"{mutant.name}: {verdict} ({seconds:.0f} s)", flush=True)
            if not args.keep:
                shutil.rmtree(tree)
        killed = len(mutants) - len(survived)
        print(f"{killed}/{len(mutants)} mutants killed"
              + (f"; survived: {', '.join(m.name for m in survived)}" if survived else ""))
        status = 1 if survived else 0
    finally:
        if not args.keep and status == 0:
            shutil.rmtree(scratch, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
