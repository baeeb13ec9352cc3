"""``snnhw explore --verify K``: co-simulate the K best points and build their bitstreams.

The best points are those on any Pareto front with the highest golden-model accuracy (ties: less
weight memory, then the point's id). Each is co-simulated under Verilator against the golden
model (:func:`snnhw.flow.flow.cosim_bit_exact`, as ``snnhw flow`` does) and built for every board
of the space (:func:`snnhw.boards.build.build`, as ``snnhw build`` does, at its default clock:
``auto``, the highest the board makes that meets timing). Every co-simulation and build is a Dask
task of its own; what they measure lands in the point's record under ``verify``, next to the
estimates, and is read back by a later run like the points are.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .tasks import MEASURE_SOURCES, fingerprint

__all__ = ["best_points", "verify_key", "cosim_point", "build_point", "measured_us"]

#: What a verification depends on beyond the point's measurements: the core generator, the
#: testbenches, the board builds (besides the packages below ``snnhw/``).
VERIFY_PARTS = ("hw", "compiler", "boards", "flow/flow.py", "toolchain.py", "explore/verify.py")
VERIFY_PACKAGES = ("snnhw.sim", "snnhw.rtl_templates", "snnhw.board_files")


@functools.cache
def _verify_digest() -> str:
    from importlib import resources

    from ..flow.stages import tree_digest
    root = Path(__file__).resolve().parent.parent
    return tree_digest([root / part for part in VERIFY_PARTS]
                       + [Path(str(resources.files(package))) for package in VERIFY_PACKAGES])


def verify_key(point_key: str, samples: int | None) -> str:
    """Fingerprint of a point's verification: the point, the samples, the RTL and build code."""
    return fingerprint({"point": point_key, "samples": samples, "rtl": _verify_digest()},
                       MEASURE_SOURCES)


def best_points(records: list[dict], fronts: dict[str, dict], k: int) -> list[str]:
    """Ids of the ``k`` points on any front with the highest accuracy (ties: less weight
    memory, then the id)."""
    on = {p["id"] for front in fronts.values() for p in front["points"]}
    ranked = sorted((r for r in records if r["id"] in on),
                    key=lambda r: (-r["metrics"]["accuracy"], r["metrics"]["weight_memory_bits"],
                                   r["id"]))
    return [r["id"] for r in ranked[:k]]


@contextlib.contextmanager
def _folder(work: str | None):
    """``work`` (made if missing), or a temporary folder when the workers may not see OUT."""
    if work is not None:
        Path(work).mkdir(parents=True, exist_ok=True)
        yield Path(work)
    else:
        with tempfile.TemporaryDirectory(prefix="snnhw-verify-") as tmp:
            yield Path(tmp)


def cosim_point(trained: Any, lanes: int, samples: int | None, work: str | None) -> dict:
    """Co-simulate the first ``samples`` test samples (``None``: all) at ``lanes``; raise
    :class:`~snnhw.errors.CosimMismatch` unless bit-exact. Returns what the RTL measured."""
    from ..flow.flow import cosim_bit_exact
    from ..plan import CorePlan
    started = time.monotonic()
    inputs = trained.inputs[:samples]
    with _folder(work) as folder:
        report = cosim_bit_exact(CorePlan.build(trained.network, lanes), inputs, folder,
                                 folder / "cosim.log")
        report.rtl.save(folder / "rtl.npz")  # what the RTL computed, as `snnhw cosim` saves it
    cycles = report.rtl.cycles  # [samples, timesteps]
    return {"samples": int(len(inputs)), "test_samples": int(len(trained.inputs)),
            "bit_exact": True,
            "accuracy": float(np.mean(report.rtl.pred == trained.labels[:len(inputs)])),
            "cycles_per_image": float(cycles.sum(axis=1).mean()),
            "cycles_per_timestep": float(cycles.mean()),
            "seconds": round(time.monotonic() - started, 1)}


def build_point(trained: Any, lanes: int, board: Any, work: str | None) -> dict:
    """Build the core at ``lanes`` for ``board`` at its default clock (auto); return the
    measured resources, clock and Fmax (``None`` where the board's tools cannot run here)."""
    from ..boards.build import build
    from ..plan import CorePlan
    started = time.monotonic()
    with _folder(work) as folder:
        util = build(CorePlan.build(trained.network, lanes), board, folder,
                     echo=lambda line: None).utilization
    used = {name: entry["used"] for name, entry in util["resources"].items()}
    return {"logic": used["logic"], "logic_available": util["resources"]["logic"]["available"],
            "ff": used["ff"], "bram": used["bram"], "large_ram": used["large_ram"],
            "clock_mhz": util["clock_mhz"], "fmax_mhz": util.get("fmax_mhz"),
            "timing_met": util.get("timing_met"), "clock_search": util.get("clock_search"),
            "seconds": round(time.monotonic() - started, 1)}


def measured_us(verify: dict) -> None:
    """Add ``us_per_image`` to each built board: the RTL's cycles per image at the clock the
    build achieved."""
    cycles = (verify.get("cosim") or {}).get("cycles_per_image")
    for entry in verify.get("boards", {}).values():
        if cycles is not None and entry.get("clock_mhz"):
            entry["us_per_image"] = cycles / entry["clock_mhz"]
