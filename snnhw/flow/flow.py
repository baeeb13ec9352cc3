"""``snnhw flow``: train -> compress -> export -> golden -> compile -> co-simulate -> (board) -> report.

Each stage is skipped on a re-run when its inputs have not changed (see :mod:`.stages`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import SnnhwError
from ..results import Result
from .stages import Stages

__all__ = ["DEFAULT_RECIPE", "run_flow"]

DEFAULT_RECIPE = "default_recipe.yaml"
DEFAULT_SAMPLES = 20
DEFAULT_LANES = 2


def _recipe_text(recipe: str | Path | None) -> tuple[str, str]:
    if recipe is None:
        text = resources.files("snnhw.flow").joinpath(DEFAULT_RECIPE).read_text()
        return text, f"built-in {DEFAULT_RECIPE}"
    try:
        return Path(recipe).read_text(), str(recipe)
    except OSError as error:
        raise SnnhwError(f"{recipe}: cannot read the recipe ({error.strerror})") from None


def run_flow(recipe: str | Path | None, out: str | Path, *, samples: int = DEFAULT_SAMPLES,
             lanes: int = DEFAULT_LANES, board: str | None = None,
             echo: Callable[[str], None] = print) -> dict:
    """Run the whole flow into ``out``; return the report's numbers."""
    from ..compiler import check_lanes
    from ..train.recipe import RecipeError, parse_recipe
    from ..yamlfile import parse_yaml

    check_lanes(lanes)
    if not isinstance(samples, int) or samples < 1:
        raise SnnhwError(f"--samples: expected a positive integer, got {samples!r}")
    text, source = _recipe_text(recipe)
    parsed = parse_recipe(parse_yaml(text, source, RecipeError) or {}, source)
    out = Path(out)
    model_dir, core_dir = out / "model", out / "core"
    stages = Stages(out, echo=echo)
    echo(f"snnhw flow: recipe {source} -> {out}")

    def train(log: Path) -> dict:
        from ..train.pipeline import run_recipe
        return run_recipe(parsed, model_dir, recipe_text=text)

    metrics = stages.run("train", train, params={"recipe": text},
                         outputs=[model_dir / "network.yaml", model_dir / "metrics.json",
                                  model_dir / "test_inputs.npy", model_dir / "test_labels.npy"])

    from ..golden import simulate
    from ..network import load
    net = load(model_dir)
    test_inputs = np.load(model_dir / "test_inputs.npy")
    labels = np.load(model_dir / "test_labels.npy")

    def golden_stage(log: Path) -> dict:
        result = simulate(net, test_inputs)
        result.save(out / "golden.npz")
        return {"accuracy": float(np.mean(result.pred == labels))}

    golden_info = stages.run("golden model", golden_stage, inputs=[model_dir],
                             outputs=[out / "golden.npz"])
    golden = Result.load(out / "golden.npz")

    def compile_stage(log: Path) -> dict:
        from ..compiler import compile_network, lint
        report = compile_network(net, core_dir, lanes=lanes)
        log.write_text(lint(core_dir / f"{report['top']}.v"))
        return report

    core = stages.run("compile", compile_stage, params={"lanes": lanes}, inputs=[model_dir],
                      outputs=[core_dir / "report.json"])

    rtl_inputs = test_inputs[:samples]

    def cosim_stage(log: Path) -> dict:
        from ..sim.runner import Simulator, compare
        sim = Simulator(net, out / "cosim", lanes=lanes)
        rtl, out_spikes, errors = sim.run(rtl_inputs)
        subset = simulate(net, rtl_inputs)
        mismatches = compare(subset, rtl, out_spikes)
        with log.open("w") as f:
            f.write("\n".join(errors + [str(m) for m in mismatches]) + "\n")
        if errors or mismatches:
            first = (errors + [str(m) for m in mismatches])[0]
            raise SnnhwError(f"RTL differs from the golden model in {len(mismatches)} value(s), "
                             f"first: {first}")
        rtl.save(out / "rtl.npz")
        return {"samples": int(len(rtl_inputs)),
                "accuracy": float(np.mean(rtl.pred == labels[:samples])),
                "cycles_per_timestep": float(rtl.cycles.mean())}

    cosim_info = stages.run("co-simulation", cosim_stage, params={"lanes": lanes,
                                                                  "samples": samples},
                            inputs=[model_dir], outputs=[out / "rtl.npz"])
    rtl = Result.load(out / "rtl.npz")
    echo(f"    RTL bit-exact with the golden model on {cosim_info['samples']} test samples, "
         f"{cosim_info['cycles_per_timestep']:.0f} cycles per timestep")

    board_info = None
    if board is not None:
        board_info = stages.run("board", _board_stage(net, board, out / "board", lanes, echo),
                                params={"board": board, "lanes": lanes}, inputs=[model_dir],
                                outputs=[out / "board" / "utilization.json"])

    from ..energy import energy_per_inference
    from .report import ReportData, write_report
    accuracy = {"float": metrics["float_accuracy"]}
    for stage in metrics["stages"][1:]:
        accuracy[f"after {stage['stage']}"] = stage["accuracy"]
    accuracy["golden model"] = golden_info["accuracy"]
    accuracy[f"RTL ({cosim_info['samples']} samples)"] = cosim_info["accuracy"]
    data = ReportData(network=net, core=core, accuracy=accuracy, labels=labels, golden=golden,
                      rtl=rtl, rtl_inputs=rtl_inputs,
                      energy=energy_per_inference(net, test_inputs, golden, lanes),
                      board=board_info, training=metrics)
    verdict = (f"The RTL computed every spike and membrane potential of {cosim_info['samples']} "
               f"test samples exactly as the golden model did; the golden model agrees with the "
               f"torch integer model on {100 * metrics['agreement']:.1f} % of test predictions "
               f"({metrics['spike_mismatches']} of {metrics['spikes_compared']} spikes and "
               f"{metrics.get('v_mismatches', 0)} membrane potentials differ).")
    page = stages.run("report", lambda log: str(write_report(out, data, verdict)),
                      params={"metrics": metrics, "golden": golden_info, "core": core,
                              "cosim": cosim_info, "board": board_info}, inputs=[model_dir],
                      outputs=[out / "report.html", out / "report.json"])
    numbers = json.loads((out / "report.json").read_text())
    echo(f"report: {page}")
    echo("stage times: " + ", ".join(f"{name} {t:.1f} s" + (" (skipped)" if name in
                                                             stages.skipped else "")
                                      for name, t in stages.timings.items()))
    return numbers


def _board_stage(net, board: str, out: Path, lanes: int, echo: Callable[[str], None]):
    def action(log: Path) -> dict:
        from ..boards import find_board
        from ..boards.build import build
        result = build(net, find_board(board), out, lanes=lanes, echo=echo)
        return result.utilization
    return action
