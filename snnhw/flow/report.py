"""The flow's report: one self-contained HTML page, the same figures as PNG, the numbers as JSON."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..network.format import Network
from ..plan import BOUND_FORMULA, CorePlan, core_report, cycle_bounds
from ..results import Result

__all__ = ["ReportData", "write_report"]


@dataclass
class ReportData:
    """Everything the report shows; optional parts are left out of the page when missing."""

    plan: CorePlan  #: the core (and its network)
    accuracy: dict[str, float]  #: label -> accuracy in [0, 1], in flow order
    labels: np.ndarray  #: test labels
    golden: Result  #: golden model on the test split
    rtl: Result | None = None  #: co-simulation on the first samples of the test split
    rtl_inputs: np.ndarray | None = None
    energy: dict | None = None
    board: dict | None = None  #: utilisation and timing of a board build
    training: dict = field(default_factory=dict)  #: metrics.json of the training stage
    #: import.json of a flow from a NIR graph: the float graph against the integer network
    imported: dict | None = None

    @property
    def network(self) -> Network:
        return self.plan.network


def _confusion(labels: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (labels, pred), 1)
    return matrix


def _figures(data: ReportData, numbers: dict) -> dict[str, "object"]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figures = {}
    net = data.network

    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(data.accuracy)
    values = [100 * data.accuracy[n] for n in names]
    bars = ax.barh(names[::-1], values[::-1], color="#4c72b0")
    ax.bar_label(bars, fmt="%.1f %%", padding=3)
    ax.set_xlim(0, 110)
    ax.set_xlabel("test accuracy (%)")
    ax.set_title("Accuracy through the flow")
    figures["accuracy"] = fig

    matrix = np.array(numbers["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted (golden model)")
    ax.set_ylabel("true class")
    ax.set_xticks(range(len(matrix)))
    ax.set_yticks(range(len(matrix)))
    ax.set_title("Confusion matrix")
    figures["confusion"] = fig

    fig, ax = plt.subplots(figsize=(6, 3))
    layers = numbers["layers"]
    x = np.arange(len(layers))
    for offset, key, label in ((-0.27, "fp32_bits", "fp32 dense"),
                               (0, "dense8_bits", "8-bit dense"),
                               (0.27, "weight_memory_bits", "snnhw")):
        ax.bar(x + offset, [l[key] / 8192 for l in layers], width=0.27, label=label)
    ax.set_xticks(x, [l["name"] for l in layers])
    ax.set_ylabel("weight memory (KiB)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Weight memory per layer")
    figures["memory"] = fig

    sample = 0
    fig, axes = plt.subplots(len(net.layers), 1, figsize=(7, 1.2 + 1.3 * len(net.layers)),
                             sharex=True, squeeze=False)
    for ax, layer in zip(axes[:, 0], net.layers):
        t, j = np.nonzero(data.golden.spikes[layer.name][sample])
        ax.scatter(t, j, s=10, marker="|", color="black", label="golden")
        if data.rtl is not None:
            t, j = np.nonzero(data.rtl.spikes[layer.name][sample])
            ax.scatter(t, j, s=30, facecolors="none", edgecolors="#dd5555", linewidths=0.6,
                       label="RTL")
        ax.set_ylabel(f"{layer.name}\nneuron")
        ax.set_ylim(-1, layer.size)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("timestep")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_title(f"Spikes of test sample {sample}")
    figures["raster"] = fig

    layer = net.layers[0]
    trace = data.golden.v_trace[layer.name][sample]
    neurons = np.argsort(-data.golden.spikes[layer.name][sample].sum(axis=0))[:3]
    fig, ax = plt.subplots(figsize=(7, 3))
    colors = []
    for n in neurons:
        line, = ax.step(range(len(trace)), trace[:, n], where="post",
                        label=f"{layer.name}[{n}] golden")
        colors.append(line.get_color())
        if data.rtl is not None:
            ax.plot(range(len(trace)), data.rtl.v_trace[layer.name][sample][:, n], "o",
                    color=line.get_color(), fillstyle="none", label=f"{layer.name}[{n}] RTL")
    if isinstance(layer.neuron.threshold, tuple):  # per neuron: each in its neuron's colour
        for n, color in zip(neurons, colors):
            ax.axhline(layer.neuron.threshold[n], color=color, ls="--", lw=0.8)
    else:
        ax.axhline(layer.neuron.threshold, color="grey", ls="--", lw=0.8, label="threshold")
    ax.set_xlabel("timestep")
    ax.set_ylabel("membrane potential\n(after update)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Membrane potentials, golden vs RTL")
    figures["membrane"] = fig

    if "cycles" in numbers:
        c = numbers["cycles"]
        fig, ax = plt.subplots(figsize=(7, 3))
        steps = np.arange(len(c["measured_per_timestep"]))
        ax.plot(steps, c["measured_per_timestep"], "o-", label="measured (RTL)")
        ax.plot(steps, c["bound_per_timestep"], "s--", label=f"bound: {BOUND_FORMULA}")
        ax.set_xlabel("timestep")
        ax.set_ylabel("cycles")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        ax.set_title(f"Cycles per timestep at P = {data.plan.lanes} "
                     f"(mean of {c['samples']} samples)")
        figures["cycles"] = fig

    if data.energy is not None:
        fig, ax = plt.subplots(figsize=(6, 3))
        kinds = list(data.energy["by_kind_pj"])
        ax.barh(kinds[::-1], [data.energy["by_kind_pj"][k] / 1000 for k in kinds[::-1]],
                color="#55a868")
        ax.set_xlabel("nJ per inference")
        ax.set_title(f"Estimated energy: {data.energy['total_pj'] / 1000:.1f} nJ per inference")
        figures["energy"] = fig
    for fig in figures.values():
        fig.tight_layout()
    return figures


def _numbers(data: ReportData) -> dict:
    net, core = data.network, core_report(data.plan)
    numbers: dict = {
        "network": net.name,
        "accuracy": data.accuracy,
        "confusion_matrix": _confusion(data.labels, data.golden.pred,
                                       net.output_size).tolist(),
        "layers": [],
        "memory_bits": core.memory_bits,
        "lanes": core.lanes,
        # The core numbers only the inputs with a synapse (DESIGN §3); the others' spikes are
        # dropped before it.
        "network_inputs": net.input_size,
        "core_inputs": core.core_inputs,
    }
    for layer, info in zip(net.layers, core.layers):
        bits = info.memory_bits
        weights = layer.dense_weights()
        numbers["layers"].append({
            "name": layer.name, "kind": layer.kind, "size": layer.size, "fan_in": layer.fan_in,
            "sparsity": layer.sparsity,
            "unique_weights": int(len(np.unique(weights[weights != 0]))),
            "weight_bits": layer.weight_bits, "v_bits": layer.neuron.v_bits,
            "weight_memory_bits": bits["synapse"] + bits["pointer"] + bits["codebook"],
            "state_memory_bits": bits["membrane"] + bits["accumulator"],
            "fp32_bits": 32 * layer.size * layer.fan_in,
            "dense8_bits": 8 * layer.size * layer.fan_in,
            "spike_rate": float(data.golden.spikes[layer.name].mean()),
        })
    if data.rtl is not None and data.rtl_inputs is not None:
        bounds = cycle_bounds(data.plan, data.rtl_inputs, data.golden.spikes).max(axis=0)
        words = cycle_bounds(data.plan, data.rtl_inputs, data.golden.spikes,
                             layout=True).max(axis=0)
        measured = data.rtl.cycles
        numbers["cycles"] = {
            "samples": int(len(measured)),
            "measured_mean": float(measured.mean()),
            "bound_mean": float(bounds.mean()),
            "ratio": float(measured.mean() / bounds.mean()),
            # the bound with the synapse words the layouts really take (lane imbalance, escapes)
            "layout_bound_mean": float(words.mean()),
            "measured_per_timestep": measured.mean(axis=0).tolist(),
            "bound_per_timestep": bounds.mean(axis=0).tolist(),
        }
    if data.energy is not None:
        numbers["energy"] = data.energy
    if data.board is not None:
        numbers["board"] = dict(data.board)
        if "cycles" in numbers and data.board.get("clock_mhz"):
            # Co-simulated cycles from a sample's start to its last output, at the bitstream clock.
            per_image = float(data.rtl.cycles.sum(axis=1).mean())
            numbers["board"]["cycles_per_image"] = per_image
            numbers["board"]["us_per_image"] = per_image / data.board["clock_mhz"]
            numbers["board"]["core_samples_per_s"] = data.board["clock_mhz"] * 1e6 / per_image
        if data.rtl_inputs is not None and data.board.get("baud"):
            numbers["board"]["link"] = _link_rate(data.network, data.rtl_inputs,
                                                  data.board["baud"])
    if data.training:
        numbers["training"] = data.training
    if data.imported is not None:
        numbers["import"] = data.imported
    return numbers


def _link_rate(net, inputs: np.ndarray, baud: int) -> dict:
    """What the UART carries a sample (the host's command and the board's answer) and the samples
    per second that makes at ``baud`` (10 bits a byte): feature bytes (``'X'``) for a network with
    an on-chip encoder, else its spike events (``'S'``, the mean over ``inputs``)."""
    from ..boards.protocol import link_bytes
    command = "S" if net.encoder is None else "X"
    size = link_bytes(net, command, inputs)
    return {"command": command, "bytes_per_sample": size, "baud": baud,
            "samples_per_s": baud / (10 * size)}


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{format(row[key], fmt) if fmt else html.escape(str(row[key]))}</td>"
                         for key, _, fmt in columns) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child { text-align: left; }
.ok { color: #1a7f37; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
img { max-width: 100%; } .grid { display: flex; flex-wrap: wrap; gap: 1em; }
"""


def write_report(out_dir: str | Path, data: ReportData, verdict: str = "") -> Path:
    """Write ``report.html``, ``report.json`` and ``figures/*.png`` into ``out_dir``."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    numbers = _numbers(data)
    images = {}
    for name, fig in _figures(data, numbers).items():
        path = out_dir / "figures" / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        images[name] = base64.b64encode(path.read_bytes()).decode()
    (out_dir / "report.json").write_text(json.dumps(numbers, indent=2) + "\n")

    def img(name: str) -> str:
        return (f'<img alt="{name}" src="data:image/png;base64,{images[name]}">'
                if name in images else "")

    acc_rows = [{"stage": k, "accuracy": 100 * v} for k, v in data.accuracy.items()]
    sections = [
        f"<h1>snnhw report: {html.escape(data.network.name)}</h1>",
        f"<p>{verdict}</p>" if verdict else "",
        "<h2>Accuracy</h2>",
        _table(acc_rows, [("stage", "stage", ""), ("accuracy", "accuracy (%)", ".2f")]),
        f'<div class="grid">{img("accuracy")}{img("confusion")}</div>',
        "<h2>Layers</h2>",
        _table(numbers["layers"], [
            ("name", "layer", ""), ("kind", "kind", ""), ("size", "size", "d"),
            ("fan_in", "fan-in", "d"),
            ("sparsity", "sparsity", ".1%"), ("unique_weights", "unique weights", "d"),
            ("weight_bits", "weight bits", "d"), ("v_bits", "v bits", "d"),
            ("weight_memory_bits", "weight memory (bits)", "d"),
            ("state_memory_bits", "state memory (bits)", "d"),
            ("spike_rate", "spike rate", ".3f")]),
    ]
    if numbers["core_inputs"] != numbers["network_inputs"]:
        sections.append(
            f"<p>The core takes {numbers['core_inputs']} of the network's "
            f"{numbers['network_inputs']} inputs: the others have no synapse in "
            f"{html.escape(data.network.layers[0].name)}, so the host drops their spikes "
            f"(<code>kept_inputs</code> in the compiled core's report.json).</p>")
    sections.append(img("memory"))
    if data.imported is not None:
        imported = data.imported
        rows = [{"layer": name, "agreement": 100 * value}
                for name, value in imported["layer_spike_agreement"].items()]
        rows.append({"layer": "predictions", "agreement": 100 * imported["prediction_agreement"]})
        sections += [
            "<h2>Import: float NIR graph against the integer network</h2>",
            f"<p>The graph run in float and the integer network in the golden model on "
            f"{imported['samples']} samples: the share of equal spikes per layer and of equal "
            f"predictions (float accuracy {100 * imported['float_accuracy']:.2f} %, integer "
            f"{100 * imported['integer_accuracy']:.2f} %).</p>",
            _table(rows, [("layer", "layer", ""), ("agreement", "agreement (%)", ".2f")])]
    sections += [
        "<h2>Spikes and membranes</h2>",
        img("raster"), img("membrane"),
    ]
    if "cycles" in numbers:
        c = numbers["cycles"]
        sections += ["<h2>Cycles per timestep</h2>",
                     f"<p>Measured {c['measured_mean']:.1f} cycles per timestep against a bound of "
                     f"{c['bound_mean']:.1f} (ratio {c['ratio']:.2f}) at P = {numbers['lanes']} "
                     f"lane(s), over {c['samples']} co-simulated samples; with the synapse "
                     f"words the layouts really take (the busiest lane's synapses of a column, "
                     f"delta escapes), the bound is {c['layout_bound_mean']:.1f} (ratio "
                     f"{c['measured_mean'] / c['layout_bound_mean']:.2f}).</p>",
                     img("cycles")]
    if data.energy is not None:
        sections += ["<h2>Energy per inference (estimate)</h2>",
                     f"<p>{data.energy['total_pj'] / 1000:.2f} nJ per inference from a "
                     "per-operation model (45 nm figures of Horowitz, ISSCC 2014: SRAM reads by "
                     "width and array size, adds by width; see <code>snnhw/energy.py</code>), "
                     "fed with the golden model's spike counts.</p>", img("energy")]
    if data.board is not None:
        board = numbers["board"]
        rows = [{"resource": k, "used": v.get("used"), "available": v.get("available")}
                for k, v in board.get("resources", {}).items()]
        timing = {"board": board.get("board", ""), "clock": board.get("clock_mhz", "n/a"),
                  "fmax": board.get("fmax_mhz", "n/a")}
        columns = [("board", "board", ""), ("clock", "clock (MHz)", ""),
                   ("fmax", "Fmax (MHz)", "")]
        if "us_per_image" in board:
            timing |= {"cycles": board["cycles_per_image"], "us": board["us_per_image"]}
            columns += [("cycles", "cycles per image", ".1f"),
                        ("us", "µs per image at the clock", ".1f")]
        if "core_samples_per_s" in board:
            timing["core"] = board["core_samples_per_s"]
            columns.append(("core", "core samples/s", ".0f"))
        if "link" in board:
            link = board["link"]
            timing["link"] = link["samples_per_s"]
            columns.append(("link", f"link samples/s ('{link['command']}', "
                                    f"{link['bytes_per_sample']:.0f} B at {link['baud']} baud)",
                            ".0f"))
        sections += ["<h2>Board</h2>", _table([timing], columns)]
        if rows:
            sections.append(_table(rows, [("resource", "resource", ""), ("used", "used", ""),
                                          ("available", "available", "")]))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>snnhw report: "
            f"{html.escape(data.network.name)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(sections) + "</body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page)
    return path
