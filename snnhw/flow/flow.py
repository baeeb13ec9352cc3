"""``snnhw flow``: train, compress, export -> golden -> compile -> co-simulate -> (board) -> report.

The flow is FINN's shape: a typed :class:`FlowConfig`, a :class:`FlowContext` carrying paths,
the network and the results of earlier steps, and :data:`STEPS`, an ordered list of named steps,
each a function ``step_x(context, config)`` returning a JSON-able result. :func:`run_flow` runs
them through :class:`~.stages.Stages`, which skips a step whose inputs have not changed since
its last run (see :mod:`.stages`); ``first_step``/``last_step`` run a slice of the list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CosimMismatch, ParameterError, SnnhwError
from ..results import Result
from .stages import Stages

if TYPE_CHECKING:  # for annotations only: the steps import these when they run
    from ..network.format import Network
    from ..plan import CorePlan
    from ..train.recipe import Recipe

__all__ = ["DEFAULT_RECIPE", "STEPS", "STEP_NAMES", "FlowConfig", "FlowContext", "run_flow",
           "step_train", "step_golden", "step_compile", "step_cosim", "step_board",
           "step_report", "cosim_bit_exact"]

DEFAULT_RECIPE = "default_recipe.yaml"
#: Test samples to co-simulate by default: all of them (the whole test split).
DEFAULT_SAMPLES = None
DEFAULT_LANES = 2


@dataclass(frozen=True)
class FlowConfig:
    """What the flow is asked to do; checked when made, so a bad value fails before any work.

    Parameters
    ----------
    recipe_text : str
        The training recipe, as YAML text.
    recipe_source : str
        Where the recipe came from (a path, or "built-in default_recipe.yaml"), for messages.
    out : Path
        Output directory of the whole flow.
    samples : int or None
        Test samples to co-simulate (the first ones of the test split); ``None``: all of them.
    lanes : int
        Synapses per cycle per layer of the core.
    board : str or None
        Board to build a bitstream for; ``None`` skips the ``board`` step.
    clock : float or str
        With ``board``: the core's clock, as ``snnhw build --clock`` (MHz, ``"board"`` or
        ``"auto"``: the highest that meets timing).
    seeds : int
        With ``board``: placement seeds to try, as ``snnhw build --seeds``.
    nir : str or None
        Start from this NIR graph instead of training: the first step (``train``) imports it
        (``snnhw import``) with ``reset`` and ``reset_timing``, and ``inputs`` and ``labels``
        are the test split and the calibration data of the float-vs-integer agreement.
    inputs, labels : str or None
        With ``nir``: 0/1 spikes [samples, timesteps, inputs] (.npy) and their integer labels.
    reset, reset_timing : str or None
        With ``nir``: what the graph cannot say (``snnhw import --reset``, ``--reset-timing``).
    first_step : str or None
        Name of the first step to run (a name in :data:`STEP_NAMES`); the steps before it must
        have run into ``out`` already. ``None``: the first step.
    last_step : str or None
        Name of the last step to run; later steps are not run. ``None``: the last step.
    """

    recipe_text: str
    recipe_source: str
    out: Path
    samples: int | None = DEFAULT_SAMPLES
    lanes: int = DEFAULT_LANES
    board: str | None = None
    clock: float | str = "auto"
    seeds: int = 1
    first_step: str | None = None
    last_step: str | None = None
    nir: str | None = None
    inputs: str | None = None
    labels: str | None = None
    reset: str | None = None
    reset_timing: str | None = None

    def __post_init__(self) -> None:
        from ..plan import check_lanes
        check_lanes(self.lanes)
        import_fields = ("inputs", "labels", "reset", "reset_timing")
        if self.nir is None:
            for param in import_fields:
                if getattr(self, param) is not None:
                    raise ParameterError(param, "only with a NIR graph to start from")
        else:
            for param in ("inputs", "labels"):
                if getattr(self, param) is None:
                    raise ParameterError(param, "a .npy file: a flow from a NIR graph needs "
                                                "test inputs and their labels")
            self._check_import()
        if self.samples is not None and (isinstance(self.samples, bool)
                                         or not isinstance(self.samples, int)
                                         or self.samples < 1):
            raise ParameterError("samples", f"expected a positive integer or None (the whole "
                                            f"test split), got {self.samples!r}")
        object.__setattr__(self, "out", Path(self.out))
        if self.board is not None:
            from ..boards import find_board
            from ..boards.pll import resolve_clock
            resolve_clock(find_board(self.board), self.clock)  # a bad clock fails now
        elif self.clock != "auto":
            raise ParameterError("clock", "only with a board to build for")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ParameterError("seeds", f"expected a positive integer, got {self.seeds!r}")
        if self.seeds != 1 and self.board is None:
            raise ParameterError("seeds", "only with a board to build for")
        for param in ("first_step", "last_step"):
            name = getattr(self, param)
            if name is not None and name not in STEP_NAMES:
                raise ParameterError(param, f"unknown step {name!r}; the steps are "
                                            f"{', '.join(STEP_NAMES)}")
            if name == "board" and self.board is None:
                raise ParameterError(param, "step 'board' runs only with a board")
        if self._indices()[0] > self._indices()[1]:
            raise ParameterError("first_step", f"{self.first_step!r} comes after the last step "
                                               f"{self.last_step!r}; the steps are "
                                               f"{', '.join(STEP_NAMES)}")
        _ = self.recipe  # parse now: a bad recipe fails before anything is written

    def _check_import(self) -> None:
        """The graph, and the shapes of the inputs and labels, before anything is written."""
        from ..frontends.nir import read_graph
        from ..network.format import npy_header
        read_graph(self.nir)
        shapes = {}
        for param in ("inputs", "labels"):
            path = getattr(self, param)
            try:
                with open(path, "rb") as file:
                    shapes[param] = npy_header(file, path)
            except OSError as error:
                raise SnnhwError(f"{path}: cannot read the {param} ({error.strerror})") from None
        (inputs, _), (labels, dtype) = shapes["inputs"], shapes["labels"]
        if len(inputs) != 3:
            raise SnnhwError(f"{self.inputs}: expected 0/1 spikes [samples, timesteps, inputs], "
                             f"got shape {list(inputs)}")
        if dtype.kind not in "iu" or labels != inputs[:1]:
            raise SnnhwError(f"{self.labels}: expected integer labels of shape [{inputs[0]}] "
                             f"(one per input sample), got {dtype} {list(labels)}")

    @classmethod
    def load(cls, recipe: str | Path | None, out: str | Path, **options: Any) -> FlowConfig:
        """Read the recipe file (``None``: the built-in one) and check everything."""
        if recipe is None:
            text = resources.files("snnhw.flow").joinpath(DEFAULT_RECIPE).read_text()
            return cls(text, f"built-in {DEFAULT_RECIPE}", Path(out), **options)
        try:
            text = Path(recipe).read_text()
        except OSError as error:
            raise SnnhwError(f"{recipe}: cannot read the recipe ({error.strerror})") from None
        return cls(text, str(recipe), Path(out), **options)

    @cached_property
    def recipe(self) -> Recipe:
        """The parsed recipe."""
        from ..train.recipe import RecipeError, parse_recipe
        from ..yamlfile import parse_yaml
        return parse_recipe(parse_yaml(self.recipe_text, self.recipe_source, RecipeError) or {},
                            self.recipe_source)

    @property
    def steps(self) -> tuple[str, ...]:
        """Names of the steps to run, in order (``board`` only with a board)."""
        first, last = self._indices()
        return tuple(name for name in STEP_NAMES[first:last + 1]
                     if name != "board" or self.board is not None)

    def _indices(self) -> tuple[int, int]:
        return (STEP_NAMES.index(self.first_step or STEP_NAMES[0]),
                STEP_NAMES.index(self.last_step or STEP_NAMES[-1]))


@dataclass
class FlowContext:
    """The state the steps share: paths under ``out``, the network, earlier steps' results.

    Members
    -------
    out, model_dir, golden_path, core_dir, cosim_dir, rtl_path, board_dir : Path
        Where the steps write (the layout of ``OUT``).
    stages : Stages
        Runs and records the steps; ``stages.log(name)`` is a step's log file.
    results : dict
        Step name -> the result that step returned (or recorded in an earlier run).
    """

    out: Path
    stages: Stages
    lanes: int
    echo: Callable[[str], None] = print
    results: dict[str, Any] = field(default_factory=dict)
    #: Files the first step reads (a NIR graph and its inputs and labels; none for training).
    sources: tuple[Path, ...] = ()

    @property
    def model_dir(self) -> Path:
        return self.out / "model"

    @property
    def golden_path(self) -> Path:
        return self.out / "golden.npz"

    @property
    def core_dir(self) -> Path:
        return self.out / "core"

    @property
    def cosim_dir(self) -> Path:
        return self.out / "cosim"

    @property
    def rtl_path(self) -> Path:
        return self.out / "rtl.npz"

    @property
    def board_dir(self) -> Path:
        return self.out / "board"

    def log(self, step: str) -> Path:
        """Return the log file of ``step``."""
        return self.stages.log(step)

    # Loaded on first use, after the train step has written the model.
    @cached_property
    def network(self) -> Network:
        """The exported integer network."""
        from ..network import load
        return load(self.model_dir)

    @cached_property
    def plan(self) -> CorePlan:
        """The core at the flow's lane count: planned once, used by every step after golden."""
        from ..plan import CorePlan
        return CorePlan.build(self.network, self.lanes)

    @cached_property
    def test_inputs(self) -> np.ndarray:
        return np.load(self.model_dir / "test_inputs.npy")

    @cached_property
    def test_labels(self) -> np.ndarray:
        return np.load(self.model_dir / "test_labels.npy")


# --- the steps -------------------------------------------------------------------------------

def step_train(context: FlowContext, config: FlowConfig) -> dict:
    """Train and compress per the recipe; export the network and the test split. From a NIR
    graph: import it instead (:func:`import_nir`)."""
    if config.nir is not None:
        return import_nir(context, config)
    from ..train.pipeline import run_recipe
    return run_recipe(config.recipe, context.model_dir, recipe_text=config.recipe_text)


def import_nir(context: FlowContext, config: FlowConfig) -> dict:
    """``snnhw import`` of the graph, calibrated on the inputs (the test split); write the
    network, ``import.json`` and the test split; return the agreement."""
    from ..frontends.nir import calibrate, from_graph, load_labels, read_graph
    from ..network import save
    from ..network.format import Reset, ResetTiming, atomic_write, npy_header
    from ..results import load_inputs
    graph = read_graph(config.nir)
    options = dict(reset=Reset(config.reset) if config.reset else None,
                   reset_timing=ResetTiming(config.reset_timing) if config.reset_timing
                   else None)
    with open(config.inputs, "rb") as file:  # the timesteps come from the inputs' shape
        shape, _ = npy_header(file, config.inputs)
    net = from_graph(graph, timesteps=shape[1], where=config.nir, **options)
    inputs = load_inputs(net, config.inputs)
    labels = load_labels(config.labels, len(inputs))
    report = calibrate(graph, net, inputs, labels, where=config.nir, source=config.inputs,
                       **options)
    save(net, context.model_dir)
    atomic_write(context.model_dir / "import.json", (json.dumps(report, indent=2) + "\n").encode())
    np.save(context.model_dir / "test_inputs.npy", inputs)
    np.save(context.model_dir / "test_labels.npy", labels)
    return report


def step_golden(context: FlowContext, config: FlowConfig) -> dict:
    """Run the golden model on the whole test split."""
    from ..golden import simulate
    result = simulate(context.network, context.test_inputs)
    result.save(context.golden_path)
    return {"accuracy": float(np.mean(result.pred == context.test_labels))}


def step_compile(context: FlowContext, config: FlowConfig) -> dict:
    """Generate the core's Verilog and memory images; lint the Verilog."""
    from ..compiler import compile_network, lint
    report = compile_network(context.plan, context.core_dir)
    context.log("compile").write_text(lint(context.core_dir / f"{report.top}.v"))
    return report.to_json()


def step_cosim(context: FlowContext, config: FlowConfig) -> dict:
    """Co-simulate the first ``samples`` test samples (default: all); fail unless bit-exact with
    the golden model."""
    inputs = context.test_inputs[:config.samples]
    report = cosim_bit_exact(context.plan, inputs, context.cosim_dir, context.log("cosim"))
    report.rtl.save(context.rtl_path)
    return {"samples": int(len(inputs)), "test_samples": int(len(context.test_inputs)),
            "accuracy": float(np.mean(report.rtl.pred == context.test_labels[:len(inputs)])),
            "cycles_per_timestep": float(report.rtl.cycles.mean())}


def cosim_bit_exact(plan: CorePlan, inputs: np.ndarray, work_dir: Path, log: Path | None = None):
    """Co-simulate ``inputs`` on the planned core (:func:`snnhw.sim.runner.cosim`); write the
    protocol errors and mismatches to ``log``; raise :class:`CosimMismatch` naming the first
    unless the RTL is bit-exact with the golden model. Returns the co-simulation report."""
    from ..sim.runner import cosim
    report = cosim(plan, inputs, work_dir)
    problems = report.errors + [str(m) for m in report.mismatches]
    if log is not None:
        log.write_text("\n".join(problems) + "\n")
    if not report.ok:
        raise CosimMismatch(f"RTL is not bit-exact: {report.summary}; first: {problems[0]}")
    return report


def step_board(context: FlowContext, config: FlowConfig) -> dict:
    """Build a bitstream for the board; return its utilisation and timing."""
    from ..boards import find_board
    from ..boards.build import build
    return build(context.plan, find_board(config.board), context.board_dir, clock=config.clock,
                 seeds=config.seeds, echo=context.echo).utilization


def step_report(context: FlowContext, config: FlowConfig) -> str:
    """Write report.html, report.json and the figures; return the page's path."""
    from ..energy import energy_per_inference
    from .report import ReportData, write_report
    metrics, golden_info = context.results["train"], context.results["golden"]
    cosim_info = context.results["cosim"]
    golden = Result.load(context.golden_path)
    imported = metrics if config.nir is not None else None
    if imported is not None:
        accuracy = {"float (NIR graph)": imported["float_accuracy"]}
    else:
        accuracy = {"float": metrics["float_accuracy"]}
        for stage in metrics["stages"][1:]:
            accuracy[f"after {stage['stage']}"] = stage["accuracy"]
    accuracy["golden model"] = golden_info["accuracy"]
    everything = cosim_info["samples"] == cosim_info["test_samples"]
    accuracy["RTL" if everything else f"RTL ({cosim_info['samples']} samples)"] = \
        cosim_info["accuracy"]
    data = ReportData(
        plan=context.plan, accuracy=accuracy,
        labels=context.test_labels, golden=golden, rtl=Result.load(context.rtl_path),
        rtl_inputs=context.test_inputs[:cosim_info["samples"]],
        energy=energy_per_inference(context.plan, context.test_inputs, golden),
        board=context.results.get("board"), training=metrics if imported is None else {},
        imported=imported)
    which = (f"all {cosim_info['samples']} test samples (the whole test split, so the RTL's "
             f"accuracy is the golden model's, measured on the same samples)" if everything
             else f"the first {cosim_info['samples']} of {cosim_info['test_samples']} test "
                  f"samples")
    verdict = (f"The RTL computed every spike and membrane potential of {which} exactly as the "
               f"golden model did; ")
    if imported is not None:
        verdict += (f"the integer network agrees with the float NIR graph {config.nir} on "
                    f"{100 * imported['prediction_agreement']:.1f} % of test predictions "
                    f"(a quantization, statistical: see the import section).")
    else:
        verdict += (f"the golden model agrees with the torch integer model on "
                    f"{100 * metrics['agreement']:.1f} % of test predictions "
                    f"({metrics['spike_mismatches']} of {metrics['spikes_compared']} spikes and "
                    f"{metrics.get('v_mismatches', 0)} membrane potentials differ).")
    return str(write_report(context.out, data, verdict))


#: The flow, in order: (name, step). Names are what ``first_step``/``last_step`` (``--from``,
#: ``--to``) take.
STEPS: list[tuple[str, Callable[[FlowContext, FlowConfig], Any]]] = [
    ("train", step_train),
    ("golden", step_golden),
    ("compile", step_compile),
    ("cosim", step_cosim),
    ("board", step_board),
    ("report", step_report),
]
STEP_NAMES: tuple[str, ...] = tuple(name for name, _ in STEPS)


def _model(context: FlowContext) -> list[Path]:
    return [context.model_dir]


@dataclass(frozen=True)
class _Record:
    """How :class:`Stages` fingerprints, checks and shows one step."""

    label: str  #: the step's name in what is printed
    outputs: Callable[[FlowContext], list[Path]]  #: files that must exist for a skip
    params: tuple[str, ...] = ()  #: FlowConfig fields the step depends on
    results: tuple[str, ...] = ()  #: earlier steps whose results the step depends on
    inputs: Callable[[FlowContext], list[Path]] = _model  #: files whose contents it reads
    summary: Callable[[Any], str] | None = None  #: a line printed once the result is known

    def fingerprint_params(self, context: FlowContext, config: FlowConfig) -> dict:
        return ({field: getattr(config, field) for field in self.params}
                | {f"{step} result": context.results.get(step) for step in self.results})


def _bit_exact(info: dict) -> str:
    return (f"    RTL bit-exact with the golden model on {info['samples']} test samples, "
            f"{info['cycles_per_timestep']:.0f} cycles per timestep")


_RECORDS: dict[str, _Record] = {
    "train": _Record("train", params=("recipe_text", "nir", "reset", "reset_timing"),
                     inputs=lambda context: list(context.sources),
                     outputs=lambda context: [context.model_dir / name for name in (
                         "network.yaml", "import.json" if context.sources else "metrics.json",
                         "test_inputs.npy", "test_labels.npy")]),
    "golden": _Record("golden model", outputs=lambda context: [context.golden_path]),
    "compile": _Record("compile", params=("lanes",),
                       outputs=lambda context: [context.core_dir / "report.json"]),
    "cosim": _Record("co-simulation", params=("lanes", "samples"), summary=_bit_exact,
                     outputs=lambda context: [context.rtl_path]),
    "board": _Record("board", params=("board", "lanes", "clock", "seeds"),
                     outputs=lambda context: [context.board_dir / "utilization.json"]),
    "report": _Record("report", results=("train", "golden", "compile", "cosim", "board"),
                      outputs=lambda context: [context.out / "report.html",
                                               context.out / "report.json"],
                      summary=lambda page: f"report: {page}"),
}


def run_flow(recipe: str | Path | None, out: str | Path, *,
             samples: int | None = DEFAULT_SAMPLES,
             lanes: int = DEFAULT_LANES, board: str | None = None, clock: float | str = "auto",
             seeds: int = 1, first_step: str | None = None, last_step: str | None = None,
             echo: Callable[[str], None] = print, **nir_import: str | None) -> dict:
    """Run the flow (or the steps ``first_step`` to ``last_step`` of it) into ``out``;
    ``nir_import`` (``nir``, ``inputs``, ``labels``, ``reset``, ``reset_timing``: see
    :class:`FlowConfig`) starts it from a NIR graph instead of a recipe.

    Returns the report's numbers (``report.json``) when the report step ran; otherwise each
    step's result by name.
    """
    config = FlowConfig.load(recipe, out, samples=samples, lanes=lanes, board=board, clock=clock,
                             seeds=seeds, first_step=first_step, last_step=last_step, **nir_import)
    sources = tuple(Path(p) for p in (config.nir, config.inputs, config.labels) if p)
    context = FlowContext(config.out, Stages(config.out, echo=echo), config.lanes, echo=echo,
                          sources=sources)
    echo(f"snnhw flow: " + (f"NIR graph {config.nir}" if config.nir else
                            f"recipe {config.recipe_source}") + f" -> {config.out}")
    first, last = config.steps[0], config.steps[-1]
    for name, step in STEPS:
        if name == "board" and config.board is None:
            continue
        before_first = STEP_NAMES.index(name) < STEP_NAMES.index(first)
        context.results[name] = _run_step(name, step, context, config, recall=before_first)
        if name == last:
            break
    timings = context.stages.timings
    echo("stage times: " + ", ".join(f"{label} {t:.1f} s" + (" (skipped)" if label in
                                                              context.stages.skipped else "")
                                      for label, t in timings.items()))
    if "report" in config.steps:
        return json.loads((config.out / "report.json").read_text())
    return dict(context.results)


def _run_step(name: str, step: Callable[[FlowContext, FlowConfig], Any], context: FlowContext,
              config: FlowConfig, *, recall: bool) -> Any:
    """Run one step through the stages (``recall``: only fetch its result of an earlier run)."""
    record = _RECORDS[name]
    what = dict(params=record.fingerprint_params(context, config), inputs=record.inputs(context),
                outputs=record.outputs(context), label=record.label)
    if recall:
        result = context.stages.recall(name, **what, hint=f": first_step={name!r} (--from {name})")
    else:
        result = context.stages.run(name, lambda log: step(context, config), **what)
    if record.summary is not None:
        context.echo(record.summary(result))
    return result
