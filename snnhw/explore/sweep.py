"""Run a space's points on a Dask client; stream results into ``OUT`` as they finish.

Dask does the distributed part: every training prefix, export and point is a task with a key
(fingerprints, so equal work has one key and runs once), points are futures gathered with
``as_completed`` as they finish, a task that raises is retried ``retries`` times (``retries=``)
and then recorded as the point's error, and the tasks of a worker that dies are rescheduled by
the scheduler (``distributed.scheduler.allowed-failures``). Resuming is ours, from ``OUT``:
every finished point is written to ``points.json`` at once, and a later run reads back the
points whose fingerprint (model, lanes, boards, the parts of snnhw that train and measure it)
it finds there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hashlib

from .space import Point, Space
from .tasks import MEASURE_SOURCES, MODEL_FILES, fingerprint, training_keys

__all__ = ["Summary", "point_key", "run_sweep", "local_cluster", "DEFAULT_RETRIES"]

#: Times a point's task is tried again after it raised (Dask ``retries=``).
DEFAULT_RETRIES = 1


@dataclass
class Summary:
    """What a sweep did."""

    points: int = 0  #: points in the space
    computed: int = 0  #: points evaluated by this run
    read_back: int = 0  #: points found finished in OUT and not recomputed
    failed: int = 0  #: points that ended with an error (this run or read back)
    models_trained: int = 0  #: distinct models trained by this run
    verified: int = 0  #: points co-simulated and built by this run (--verify)
    verify_read_back: int = 0  #: chosen points whose verification was found in OUT
    verify_failed: int = 0  #: chosen points whose co-simulation or a build failed
    records: list[dict] = field(default_factory=list)  #: every point's record, in space order


def point_key(point: Point, space: Space) -> str:
    """The fingerprint a finished point is found by: its model, lanes, the boards' files and
    the parts of snnhw that measure it (:data:`~.tasks.MEASURE_SOURCES`)."""
    boards = [(board.name, hashlib.sha256(board.path.read_bytes()).hexdigest()
               if board.path is not None else repr(board)) for board in space.boards]
    return fingerprint({"model": training_keys(point.recipe)[-1], "lanes": point.lanes,
                "boards": boards}, MEASURE_SOURCES)


def local_cluster(workers: int | None = None):
    """A ``LocalCluster`` of one single-threaded worker process per core (or ``workers``)."""
    import os

    from distributed import LocalCluster
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    # Any free port for the dashboard: several sweeps (and users) may share the machine.
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=":0")


def _previous(out: Path) -> dict[str, dict]:
    path = out / "points.json"
    if not path.exists():
        return {}
    try:
        records = json.loads(path.read_text())["points"]
    except (ValueError, KeyError, TypeError):
        return {}  # a points.json we did not write, or cut short: compute everything again
    return {record["key"]: record for record in records if "key" in record}


def _record(point: Point, key: str, status: str, metrics: dict | None = None,
            error: str | None = None) -> dict:
    return {"id": point.id, "key": key, "status": status, "params": point.params,
            "lanes": point.lanes, "recipe": f"recipes/{point.id}.yaml",
            "metrics": metrics, "error": error}


def _failure(future) -> str:
    """The one-line error of a future that did not finish."""
    try:
        error = future.exception()
    except Exception as lost:  # noqa: BLE001 (CancelledError and the like: say which)
        error = lost
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _submit_model(client, recipe: dict, cache: Path | None, retries: int, submitted: dict):
    """The future of ``recipe``'s exported model: from the cache, or its chain of training
    tasks (shared with every recipe with the same prefix)."""
    from .tasks import export_model, load_trained, train_float, train_stage
    keys = training_keys(recipe)
    model_key = keys[-1]
    if model_key in submitted:
        return submitted[model_key]
    cached = cache / model_key if cache is not None else None
    if cached is not None and (cached / MODEL_FILES[-1]).exists():
        future = client.submit(load_trained, str(cached), model_key, key=f"load-{model_key}",
                               retries=retries)
    else:
        parent = submitted.get(keys[0])
        if parent is None:
            parent = client.submit(train_float, recipe, key=f"float-{keys[0]}", retries=retries)
            submitted[keys[0]] = parent
        for stage, key in enumerate(keys[1:-1]):
            child = submitted.get(key)
            if child is None:
                child = client.submit(train_stage, parent, recipe, stage,
                                      key=f"stage{stage}-{key}", retries=retries)
                submitted[key] = child
            parent = child
        future = client.submit(export_model, parent, recipe, model_key,
                               None if cache is None else str(cache),
                               key=f"model-{model_key}", retries=retries)
    submitted[model_key] = future
    return future


def run_sweep(space: Space, out: str | Path, client, *, retries: int = DEFAULT_RETRIES,
              retry_failed: bool = False, progress: bool = True, cache: bool = True,
              verify: int = 0, verify_samples: int | None = None,
              hook: Callable[[str], None] | None = None,
              echo: Callable[[str], None] = print) -> Summary:
    """Evaluate every point of ``space`` not already finished in ``out`` on ``client``.

    Parameters
    ----------
    space : Space
        The loaded space (:func:`~.space.load_space`).
    out : path
        Output directory; ``points.json`` there is read back (resume) and rewritten as points
        finish, then ``points.csv``, ``pareto.json``, ``report.html`` and ``recipes/``.
    client : distributed.Client, or a function returning one
        Where the tasks run; a function is called only if some point is left to run (a resumed
        sweep with nothing to do starts no cluster).
    retries : int
        Times a task that raised is tried again before its point is recorded as failed.
    retry_failed : bool
        Also recompute points that failed in an earlier run (default: read them back too).
    cache : bool
        Keep exported models in ``out/models/<key>`` and reuse them in later runs (the
        workers must see ``out``: true on one machine or a shared file system).
    verify : int
        Co-simulate and build bitstreams for this many of the best points
        (:func:`~.verify.best_points`), once the points are evaluated.
    verify_samples : int, optional
        Test samples the verification co-simulates (``None``: the whole test split).
    hook : callable, optional
        ``hook(point_id)`` runs on the worker before each point (tests: fail or kill one).
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    from .results import write_recipes, write_results

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_recipes(space, out)
    previous = _previous(out)
    summary = Summary(points=len(space.points))
    records: dict[str, dict] = {}
    todo: list[tuple[Point, str]] = []
    for point in space.points:
        key = point_key(point, space)
        old = previous.get(key)
        if old is not None and (old["status"] == "ok" or not retry_failed):
            records[point.id] = old | {"id": point.id, "params": point.params,
                                       "recipe": f"recipes/{point.id}.yaml"}
            summary.read_back += 1
        else:
            todo.append((point, key))
    def connect():
        nonlocal client
        if callable(client) and not hasattr(client, "submit"):
            client = client()
        return client

    if todo:
        connect()
    workers = (f" on {len(client.scheduler_info().get('workers', {}))} worker(s)"
               if todo else "")
    echo(f"snnhw explore: {len(space.points)} point(s) in {space.source}, "
         f"{summary.read_back} finished in {out} already, {len(todo)} to run{workers}")

    def ordered() -> list[dict]:
        return [records[p.id] for p in space.points if p.id in records]

    cache_dir = out / "models" if cache else None
    submitted: dict = {}
    futures = {}
    from .tasks import evaluate_point
    for point, key in todo:
        model = _submit_model(client, point.recipe, cache_dir, retries, submitted)
        future = client.submit(evaluate_point, model, point.lanes, space.boards, point.id, hook,
                               key=f"point-{point.id}-{key}", retries=retries)
        futures[future] = (point, key)
    submitted.clear()  # the scheduler keeps what pending points still need
    trained = set()
    bar = tqdm(total=len(futures), desc="points", unit="point", disable=not progress,
               dynamic_ncols=True)
    # as_completed wants a client even with nothing to wait for; a resumed sweep may have none.
    for future in as_completed(futures) if futures else ():
        point, key = futures.pop(future)
        if future.status == "finished":
            metrics = future.result()
            record = _record(point, key, "ok", metrics)
            if metrics["trained_here"]:
                trained.add(metrics["model"])
            line = (f"{point.id} ok: accuracy {100 * metrics['accuracy']:.1f} %, "
                    f"{metrics['weight_memory_bits']} weight bits, "
                    f"{metrics['cycles_per_image']:.0f} cycles/image")
        else:  # "error", or "cancelled" (the scheduler lost the task or the client)
            message = _failure(future)
            record = _record(point, key, "failed", error=message)
            line = f"{point.id} failed: {message}"
        future.release()
        records[point.id] = record
        summary.computed += 1
        write_results(space, out, ordered(), final=False)
        (tqdm.write if progress else echo)(line)
        bar.update()
    bar.close()
    summary.records = ordered()
    summary.failed = sum(1 for r in summary.records if r["status"] != "ok")
    summary.models_trained = len(trained)
    if verify:
        _run_verify(space, out, connect, summary, verify, verify_samples, retries=retries,
                    retry_failed=retry_failed, cache_dir=cache_dir, progress=progress,
                    echo=echo)
    write_results(space, out, summary.records, final=True)
    return summary


def _run_verify(space: Space, out: Path, connect: Callable, summary: Summary, k: int,
                samples: int | None, *, retries: int, retry_failed: bool,
                cache_dir: Path | None, progress: bool, echo: Callable[[str], None]) -> None:
    """Co-simulate and build the ``k`` best points (one task per co-simulation and per board),
    recording what they measure in each point's ``verify``; read back what OUT has."""
    from collections import Counter

    from distributed import as_completed
    from tqdm.auto import tqdm

    from .results import fronts, write_results
    from .verify import best_points, build_point, cosim_point, measured_us, verify_key

    records = {r["id"]: r for r in summary.records}
    chosen = best_points(summary.records, fronts(space, summary.records), k)
    todo = []
    for point_id in chosen:
        key = verify_key(records[point_id]["key"], samples)
        old = records[point_id].get("verify") or {}
        if old.get("key") == key and (old["status"] == "ok" or not retry_failed):
            summary.verify_read_back += 1
        else:
            todo.append((point_id, key))
    echo(f"snnhw explore: verifying {len(chosen)} point(s) ({', '.join(chosen) or 'none'}): "
         f"{summary.verify_read_back} verified in {out} already, {len(todo)} to run")
    client = connect() if todo else None
    points = {p.id: p for p in space.points}
    submitted: dict = {}
    jobs = {}
    for point_id, key in todo:
        lanes = records[point_id]["lanes"]
        records[point_id]["verify"] = {"key": key, "status": "running", "error": None,
                                       "cosim": None, "boards": {}}
        work = None if cache_dir is None else out / "verify" / point_id
        model = _submit_model(client, points[point_id].recipe, cache_dir, retries, submitted)
        jobs[client.submit(cosim_point, model, lanes, samples,
                           None if work is None else str(work / "cosim"),
                           key=f"cosim-{point_id}-{key}", retries=retries)] = (point_id, None)
        for board in space.boards:
            jobs[client.submit(build_point, model, lanes, board,
                               None if work is None else str(work / board.name),
                               key=f"build-{board.name}-{point_id}-{key}",
                               retries=retries)] = (point_id, board.name)
    submitted.clear()
    left = Counter(point_id for point_id, _ in jobs.values())
    bar = tqdm(total=len(jobs), desc="verify", unit="task", disable=not progress,
               dynamic_ncols=True)
    for future in as_completed(list(jobs)) if jobs else ():  # none: no client (see above)
        point_id, board = jobs.pop(future)
        entry = future.result() if future.status == "finished" else {"error": _failure(future)}
        future.release()
        verify = records[point_id]["verify"]
        if board is None:
            verify["cosim"] = entry
        else:
            verify["boards"][board] = entry
        what = "co-simulation" if board is None else f"build for {board}"
        line = f"{point_id} {what}: " + (entry["error"] if "error" in entry else "ok")
        left[point_id] -= 1
        if not left[point_id]:
            measured_us(verify)
            errors = [e["error"] for e in (verify["cosim"], *verify["boards"].values())
                      if "error" in e]
            verify["status"], verify["error"] = ("failed", errors[0]) if errors else ("ok", None)
            summary.verified += 1
        write_results(space, out, summary.records, final=False)
        (tqdm.write if progress else echo)(line)
        bar.update()
    bar.close()
    summary.verify_failed = sum(1 for point_id in chosen
                                if records[point_id]["verify"]["status"] != "ok")
