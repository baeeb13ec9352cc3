"""A sweep's outputs: ``points.json``/``.csv``, ``pareto.json``, ``report.html`` with its figures
as ``figures/<front>.png``, and ``recipes/``."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import yaml

from ..network.format import atomic_write
from .pareto import pareto_front
from .space import Space

__all__ = ["write_recipes", "write_results", "fronts", "FRONTS"]

#: The fronts: (name, metric to minimise, axis label); per-board ones get the board's name.
FRONTS = (("weight_memory", "weight_memory_bits", "weight memory (bits)"),
          ("energy", "energy_pj_per_image", "energy per image (pJ, 45 nm model)"))
#: Per board: (name, metric in the point's board entry, axis label).
BOARD_FRONTS = (("us", "us_per_image", "µs per image at {clock:g} MHz (cycle bound)"),
                ("logic", "logic", "{unit} (estimate)"))


def write_recipes(space: Space, out: Path) -> None:
    """Write ``out/recipes/<point>.yaml``: a recipe ``snnhw flow`` accepts, per point."""
    folder = out / "recipes"
    folder.mkdir(parents=True, exist_ok=True)
    for point in space.points:
        header = (f"# {point.id} of {space.source}: "
                  f"{json.dumps(point.params, default=str)}; lanes {point.lanes} "
                  f"(snnhw flow {folder / (point.id + '.yaml')} --lanes {point.lanes} -o OUT)\n")
        atomic_write(folder / f"{point.id}.yaml",
                     (header + yaml.safe_dump(point.recipe, sort_keys=False)).encode())


def _metric(record: dict, front: dict):
    metrics = record.get("metrics") or {}
    if front["board"] is not None:
        metrics = metrics.get("boards", {}).get(front["board"], {})
    return metrics.get(front["metric"])


def fronts(space: Space, records: list[dict]) -> dict[str, dict]:
    """Every front: accuracy against each cost, over the points that finished."""
    specs = [{"name": name, "metric": metric, "label": label, "board": None}
             for name, metric, label in FRONTS]
    for board in space.boards:
        for name, metric, label in BOARD_FRONTS:
            specs.append({"name": f"{name}_{board.name}", "metric": metric, "board": board.name,
                          "label": label.format(clock=board.clock_hz / 1e6,
                                                unit=board.budget.logic_unit)
                          + f" on {board.name}"})
    result = {}
    for spec in specs:
        ok = [r for r in records if r["status"] == "ok" and _metric(r, spec) is not None]
        pairs = [(float(_metric(r, spec)), r["metrics"]["accuracy"]) for r in ok]
        on = pareto_front(pairs)
        result[spec["name"]] = {
            "cost": spec["metric"], "label": spec["label"], "board": spec["board"],
            "value": "accuracy",
            "points": [{"id": ok[k]["id"], "cost": pairs[k][0], "accuracy": pairs[k][1],
                        "params": ok[k]["params"], "lanes": ok[k]["lanes"],
                        "recipe": ok[k]["recipe"]} for k in on],
            "all": [{"id": r["id"], "cost": c, "accuracy": a} for r, (c, a) in zip(ok, pairs)],
        }
    return result


def _csv(space: Space, records: list[dict]) -> str:
    axes = [axis for axis in space.axes if axis != "lanes"]
    columns = ["id", "status", *axes, "lanes", "accuracy", "float_accuracy",
               "torch_accuracy", "weight_memory_bits", "state_memory_bits", "memory_bits",
               "synapses", "cycles_per_image", "energy_pj_per_image"]
    board_columns = [f"{b.name}.{m}" for b in space.boards
                     for m in ("us_per_image", "logic", "bram", "fits")]
    # --verify: what the RTL and the bitstreams measured ("measured_" beside the estimate).
    verify_columns = ["verify", "measured_cycles_per_image"] + [
        f"{b.name}.{m}" for b in space.boards
        for m in ("measured_us_per_image", "measured_logic", "clock_mhz", "fmax_mhz")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns + board_columns + verify_columns + ["recipe", "error"])
    for record in records:
        metrics = record.get("metrics") or {}
        row = []
        for column in columns:
            if column in ("id", "status", "lanes"):
                value = record[column]
            elif column in record["params"] or column in space.axes:
                value = record["params"].get(column, "")
            else:
                value = metrics.get(column, "")
            row.append(json.dumps(value) if isinstance(value, (list, dict, bool)) else value)
        for column in board_columns:
            board, _, name = column.partition(".")
            value = metrics.get("boards", {}).get(board, {}).get(name, "")
            row.append(json.dumps(value) if isinstance(value, bool) else value)
        verify = record.get("verify") or {}
        row += [verify.get("status", ""), (verify.get("cosim") or {}).get("cycles_per_image", "")]
        for column in verify_columns[2:]:
            board, _, name = column.partition(".")
            row.append(verify.get("boards", {}).get(board, {}).get(
                name.removeprefix("measured_"), ""))
        row += [record["recipe"], record.get("error") or verify.get("error") or ""]
        writer.writerow(row)
    return buffer.getvalue()


def write_results(space: Space, out: Path, records: list[dict], *, final: bool) -> None:
    """Write ``points.json`` and ``points.csv``; with ``final`` also ``pareto.json`` and
    ``report.html``."""
    atomic_write(out / "points.json", (json.dumps(
        {"space": space.source, "boards": [b.name for b in space.boards],
         "axes": list(space.axes), "points": records}, indent=1, default=str) + "\n").encode())
    atomic_write(out / "points.csv", _csv(space, records).encode())
    if not final:
        return
    found = fronts(space, records)
    atomic_write(out / "pareto.json", (json.dumps(
        {name: {k: v for k, v in front.items() if k != "all"} for name, front in found.items()},
        indent=1, default=str) + "\n").encode())
    _report(space, out, records, found)


def _short(record: dict) -> str:
    """A point's label on a plot: its id and values (a whole stage by its name)."""
    def value(v) -> str:
        if isinstance(v, dict) and len(v) == 1:
            return str(next(iter(v)))
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)

    values = ", ".join(f"{axis.rsplit('.', 1)[-1]}={value(v)}"
                       for axis, v in record["params"].items())
    return f"{record['id']} {values}"


def _plot(front: dict, labels: dict[str, str]) -> str:
    """One front as a base64 PNG: every point faded, the front drawn and labelled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    every = front["all"]
    ax.scatter([p["cost"] for p in every], [100 * p["accuracy"] for p in every], s=18,
               color="#4c72b0", alpha=0.25, label="dominated")
    on = front["points"]
    ax.step([p["cost"] for p in on], [100 * p["accuracy"] for p in on], where="post",
            color="#c44e52", lw=1.2)
    ax.scatter([p["cost"] for p in on], [100 * p["accuracy"] for p in on], s=30,
               color="#c44e52", label="Pareto front", zorder=3)
    # Points at the same place (the same network at lanes that do not change this cost) get
    # one label; labels alternate below and above the front so that neighbours stay legible.
    places: dict[tuple[float, float], list[str]] = {}
    for p in on:
        places.setdefault((p["cost"], p["accuracy"]), []).append(p["id"])
    for n, ((cost, accuracy), ids) in enumerate(places.items()):
        text = labels[ids[0]] + (f" (+{len(ids) - 1} alike)" if len(ids) > 1 else "")
        ax.annotate(text, (cost, 100 * accuracy), fontsize=6, rotation=0,
                    xytext=(4, -10 if n % 2 == 0 else 6), textcoords="offset points")
    costs = [p["cost"] for p in every]
    if costs and min(costs) > 0 and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(front["label"])
    ax.set_ylabel("test accuracy (%, golden model)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"Accuracy vs {front['label']}", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _verified_table(space: Space, records: list[dict]) -> list[str]:
    """The ``--verify`` section: per verified point and board, estimate against measurement."""
    from ..flow.report import _table
    rows = []
    for r in records:
        verify = r.get("verify")
        if not verify:
            continue
        cosim, m = verify.get("cosim") or {}, r["metrics"]
        for board in space.boards:
            built = verify.get("boards", {}).get(board.name) or {}
            estimate = m["boards"].get(board.name, {})
            rows.append({
                "id": r["id"], "board": board.name,
                "samples": cosim.get("samples", ""),
                "bit_exact": "yes" if cosim.get("bit_exact") else "no",
                "cycles": f"{m['cycles_per_image']:.0f} / " + (
                    f"{cosim['cycles_per_image']:.0f}" if "cycles_per_image" in cosim else "-"),
                "logic": f"{estimate.get('logic', '-')} / {built.get('logic', '-')}",
                "clock": f"{board.clock_hz / 1e6:g} / {built.get('clock_mhz', '-')}",
                "fmax": "-" if built.get("fmax_mhz") is None else f"{built['fmax_mhz']:.1f}",
                "us": f"{estimate.get('us_per_image', 0):.0f} / " + (
                    f"{built['us_per_image']:.0f}" if "us_per_image" in built else "-"),
                "error": built.get("error") or cosim.get("error") or ""})
    if not rows:
        return []
    return ["<h2>Verified points (--verify)</h2>",
            "<p>Each pair is estimate / measured: cycles per image from the cycle bound / "
            "counted in the co-simulated RTL (bit-exact with the golden model on the samples "
            "shown); logic from the fit estimate / after place and route; the board file's "
            "clock / the clock the build met timing at (auto); µs per image at each.</p>",
            _table(rows, [("id", "point", ""), ("board", "board", ""),
                          ("samples", "samples", ""), ("bit_exact", "bit-exact", ""),
                          ("cycles", "cycles / image", ""), ("logic", "logic", ""),
                          ("clock", "clock (MHz)", ""), ("fmax", "Fmax (MHz)", ""),
                          ("us", "µs / image", ""), ("error", "error", "")])]


def _report(space: Space, out: Path, records: list[dict], found: dict[str, dict]) -> None:
    from ..flow.report import _CSS, _table

    labels = {r["id"]: _short(r) for r in records}
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] != "ok"]
    sections = [f"<h1>snnhw explore: {html.escape(space.source)}</h1>",
                f"<p>{len(records)} point(s): {len(ok)} evaluated, {len(failed)} failed. "
                f"Accuracy is the golden model's on the test split; memory from the core's "
                f"plan; cycles from the cycle bound (DESIGN.md §3) with the golden model's "
                f"spikes; energy from the 45 nm per-operation model (snnhw/energy.py); logic "
                f"from the fit estimate. Faded points are dominated.</p>"]
    (out / "figures").mkdir(exist_ok=True)
    for name, front in found.items():
        if not front["all"]:
            continue
        image = _plot(front, labels)
        atomic_write(out / "figures" / f"{name}.png", base64.b64decode(image))
        sections += [f"<h2>{html.escape(front['label'])}</h2>",
                     f'<img alt="{name}" src="data:image/png;base64,{image}">',
                     "<p>On the front: " + ", ".join(
                         f"<code>{html.escape(labels[p['id']])}</code> ({p['recipe']})"
                         for p in front["points"]) + "</p>"]
    rows = []
    for r in ok:
        m = r["metrics"]
        rows.append({"id": r["id"], "params": json.dumps(r["params"], default=str),
                     "lanes": r["lanes"], "accuracy": 100 * m["accuracy"],
                     "weight": m["weight_memory_bits"], "state": m["state_memory_bits"],
                     "cycles": m["cycles_per_image"], "energy": m["energy_pj_per_image"] / 1000})
    sections += ["<h2>Points</h2>", _table(rows, [
        ("id", "point", ""), ("params", "values", ""), ("lanes", "lanes", "d"),
        ("accuracy", "accuracy (%)", ".2f"), ("weight", "weight memory (bits)", "d"),
        ("state", "state memory (bits)", "d"), ("cycles", "cycles / image", ".0f"),
        ("energy", "energy / image (nJ)", ".2f")])]
    sections += _verified_table(space, ok)
    if failed:
        sections += ["<h2>Failed points</h2>", _table(
            [{"id": r["id"], "error": r.get("error") or ""} for r in failed],
            [("id", "point", ""), ("error", "error", "")])]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>snnhw explore: "
            f"{html.escape(space.source)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(sections) + "</body></html>\n")
    atomic_write(out / "report.html", page.encode())
