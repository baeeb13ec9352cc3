"""``snnhw explore SPACE.yaml -o OUT``: sweep a design space on Dask, write its Pareto fronts."""

from __future__ import annotations

import argparse

from .args import nonnegative_int, out_dir, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``snnhw explore``."""
    from ..explore.sweep import DEFAULT_RETRIES
    p = sub.add_parser(
        "explore", help="design-space exploration: train and measure many recipes on Dask",
        description="Train and export every point of a space file (a base recipe, the axes to "
                    "vary, the boards to check), measure each (golden accuracy, weight and "
                    "state memory, cycles and µs per image, energy, fit per board) as Dask "
                    "tasks, and write OUT/points.csv, points.json, pareto.json, report.html and "
                    "recipes/. Re-running resumes: finished points are read back from OUT.")
    p.add_argument("space", help="space file (see docs/explore.md)")
    p.add_argument("-o", "--out", required=True, type=out_dir, metavar="OUT",
                   help="output directory")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster (tcp://host:8786); default: a "
                        "LocalCluster of one worker per core")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="workers of the LocalCluster (default: one per core)")
    p.add_argument("--retries", type=nonnegative_int, default=DEFAULT_RETRIES, metavar="N",
                   help=f"times a task that raised, or whose worker died, is tried again "
                        f"(default {DEFAULT_RETRIES})")
    p.add_argument("--retry-failed", action="store_true",
                   help="recompute points that failed in an earlier run")
    p.add_argument("--verify", type=nonnegative_int, default=0, metavar="K",
                   help="then co-simulate (Verilator against the golden model) and build "
                        "bitstreams for every board of the space, at the clock 'auto' finds, "
                        "for the K points of the fronts with the highest accuracy; their "
                        "measured logic, clock, Fmax, cycles and µs per image go next to the "
                        "estimates (default 0: none)")
    p.add_argument("--verify-samples", type=positive_int, metavar="N",
                   help="test samples --verify co-simulates (default: the whole test split)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the space file, then run it; 0 if every point was evaluated (and verified), 1 if
    some failed."""
    from ..errors import SnnhwError
    from ..explore.space import load_space
    space = load_space(args.space)  # every point checked before Dask starts
    if args.scheduler is not None and args.workers is not None:
        raise SnnhwError("--workers: sizes the LocalCluster; with --scheduler the cluster has "
                         "its own workers")
    import dask
    from distributed import Client

    from ..explore.sweep import local_cluster, run_sweep
    # A task whose worker died is rescheduled this many times (applies to the scheduler this
    # process starts: a LocalCluster's).
    opened = []

    def connect() -> Client:
        if args.scheduler is not None:
            try:
                client = Client(args.scheduler, timeout="20s")
            except OSError as error:
                raise SnnhwError(f"--scheduler: cannot reach {args.scheduler!r}: "
                                 f"{error}".splitlines()[0]) from None
        else:
            opened.append(local_cluster(args.workers))
            client = Client(opened[0])
        opened.insert(0, client)
        return client

    # A task whose worker died is rescheduled this many times (applies to the scheduler this
    # process starts: a LocalCluster's).
    with dask.config.set({"distributed.scheduler.allowed-failures": args.retries}):
        try:
            # On another cluster the workers may not see OUT: models travel as task results
            # only, and finished points are still read back from OUT.
            summary = run_sweep(space, args.out, connect, retries=args.retries,
                                retry_failed=args.retry_failed, progress=not args.no_progress,
                                cache=args.scheduler is None, verify=args.verify,
                                verify_samples=args.verify_samples)
        finally:
            for thing in opened:  # the client, then the cluster
                thing.close()
    print(f"{args.out}: {summary.points} point(s): {summary.computed} computed "
          f"({summary.models_trained} model(s) trained), {summary.read_back} read back, "
          f"{summary.failed} failed; report {args.out}/report.html")
    if args.verify:
        print(f"{args.out}: --verify {args.verify}: {summary.verified} verified, "
              f"{summary.verify_read_back} read back, {summary.verify_failed} failed")
    return 1 if summary.failed or summary.verify_failed else 0
