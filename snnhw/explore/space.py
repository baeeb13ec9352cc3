"""Design spaces: a base recipe, the axes to vary, the boards to check, grid or random draws.

A space file (``docs/explore.md``)::

    recipe: ../recipes/digits_float.yaml   # a recipe file (relative to this file), or inline
    boards: [icebreaker, ulx3s-85f]        # every point is fit-checked and timed on each
    axes:                                  # one grid; or a list of grids, whose union is taken
      compress[0].qat.bits: [2, 4, 8]      # any recipe field, by its dotted path
      model.hidden: [[32], [64]]
      lanes: {from: 1, to: 4, step: 1}     # lanes: the core's synapses per cycle per layer
    random: {draws: 20, seed: 0}           # optional: 20 points drawn from the grid, seeded

Every point of the space is built and its recipe checked when the file is loaded, so an unknown
axis, an empty range, a value the recipe rejects or an unknown board is one line naming the file
and the field (:class:`SpaceError`) before any point trains.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import shown
from ..errors import SnnhwError
from ..yamlfile import read_yaml

__all__ = ["SpaceError", "Point", "Space", "load_space", "set_path", "LANES_AXIS", "MAX_POINTS"]

#: The axis that is not a recipe field: the core's lane count.
LANES_AXIS = "lanes"
#: Most points a space may have (grids are built and checked whole before anything runs).
MAX_POINTS = 100_000

_PATH = re.compile(r"[A-Za-z_]\w*(\[\d+\])*(\.[A-Za-z_]\w*(\[\d+\])*)*\Z")
_TOKEN = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")
_KEYS = ("recipe", "axes", "boards", "random")


class SpaceError(SnnhwError, ValueError):
    """A space file that cannot be explored; the message names the file and the field."""


@dataclass(frozen=True)
class Point:
    """One point of a space: a checked recipe and a lane count.

    Parameters
    ----------
    index : int
        Position in the space (grid order, or the order of the random draws).
    params : dict
        Axis -> value at this point, in the order the space file gives the axes.
    recipe : dict
        The whole recipe with the point's values, every field filled in (``recipe_to_dict``):
        what ``OUT/recipes/<id>.yaml`` holds.
    lanes : int
        The core's lane count.
    """

    index: int
    params: dict[str, Any]
    recipe: dict
    lanes: int

    @property
    def id(self) -> str:
        return f"p{self.index:04d}"


@dataclass(frozen=True)
class Space:
    """A loaded, checked space file."""

    source: str  #: the space file
    axes: tuple[str, ...]  #: every axis of every grid, in first-given order
    boards: tuple  #: :class:`~snnhw.boards.config.Board` objects, in the file's order
    points: tuple[Point, ...]  #: the points to evaluate
    grid_size: int  #: points in the grid(s) (before random draws and duplicates)


def _fail(source: str, where: str, message: str):
    raise SpaceError(f"{source}: {where}: {message}" if where else f"{source}: {message}")


def _tokens(path: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _TOKEN.findall(path)]


def _shown_path(tokens: list[str | int]) -> str:
    text = ""
    for token in tokens:
        text += f"[{token}]" if isinstance(token, int) else (f".{token}" if text else token)
    return text


def set_path(data: dict, path: str, value: Any) -> str:
    """Set the field at dotted ``path`` in plain recipe data; return the path actually set.

    ``compress[0].bits`` is short for the field of whatever stage ``compress[0]`` is
    (``compress[0].qat.bits``); the returned path says which. Raises :class:`ValueError` (a
    message without the file) when the path does not lead into the data.
    """
    from ..train.recipe import STAGES

    tokens = _tokens(path)
    node: Any = data
    done: list[str | int] = []
    for n, token in enumerate(tokens):
        last = n == len(tokens) - 1
        following = None if last else tokens[n + 1]
        if isinstance(token, int):
            if not isinstance(node, list):
                raise ValueError(f"{_shown_path(done)} is not a list in the recipe")
            if token >= len(node):
                raise ValueError(f"{_shown_path(done)} has {len(node)} item(s) in the recipe, "
                                 f"so no [{token}]")
        else:
            if not isinstance(node, dict):
                raise ValueError(f"{_shown_path(done)} is not a mapping in the recipe")
            if len(node) == 1 and next(iter(node)) in STAGES and token not in STAGES:
                stage = next(iter(node))  # the stage shorthand: compress[0].bits
                if node[stage] is None:
                    node[stage] = {}
                node, done = node[stage], done + [stage]
        if last:
            node[token] = copy.deepcopy(value)
        else:
            if isinstance(node, dict) and node.get(token) is None:
                node[token] = [] if isinstance(following, int) else {}
            node = node[token]
        done.append(token)
    return _shown_path(done)


def _values(source: str, where: str, spec: Any) -> list:
    """The values of one axis: a list, or ``{from, to, step}`` (both ends included)."""
    if isinstance(spec, list):
        if not spec:
            _fail(source, where, "empty range (no values)")
        return spec
    if not isinstance(spec, dict):
        _fail(source, where, f"expected a list of values or {{from: A, to: B, step: S}}, got "
                             f"{shown(spec)}")
    unknown = set(spec) - {"from", "to", "step"}
    if unknown or not {"from", "to"} <= set(spec):
        _fail(source, where, f"expected a list of values or {{from: A, to: B, step: S}}, got "
                             f"{shown(spec)}")
    lo, hi, step = spec["from"], spec["to"], spec.get("step", 1)
    for name, number in (("from", lo), ("to", hi), ("step", step)):
        if isinstance(number, bool) or not isinstance(number, (int, float)) \
                or not math.isfinite(number):
            _fail(source, f"{where}.{name}", f"expected a number, got {shown(number)}")
    if step <= 0:
        _fail(source, f"{where}.step", f"expected a number > 0, got {shown(step)}")
    count = math.floor((hi - lo) / step + 1e-9) + 1
    if count < 1:
        _fail(source, where, f"empty range (from {lo} to {hi} has no values)")
    if count > MAX_POINTS:
        _fail(source, where, f"expected at most {MAX_POINTS} values, got {count}")
    if all(isinstance(x, int) for x in (lo, hi, step)):
        return [lo + k * step for k in range(count)]
    return [round(lo + k * step, 12) for k in range(count)]


def _grids(source: str, axes: Any) -> list[tuple[str, dict[str, list]]]:
    """``(where, {axis: values})`` per grid."""
    if isinstance(axes, dict):
        listed = [("axes", axes)]
    elif isinstance(axes, list) and axes:
        listed = [(f"axes[{n}]", grid) for n, grid in enumerate(axes)]
    else:
        _fail(source, "axes", f"expected a mapping of axes to values, or a non-empty list of "
                              f"such mappings, got {shown(axes)}")
    grids = []
    for where, grid in listed:
        if not isinstance(grid, dict) or not grid:
            _fail(source, where, f"expected a mapping of axes to values, got {shown(grid)}")
        checked = {}
        for axis, spec in grid.items():
            at = f"{where}.{axis}" if isinstance(axis, str) else f"{where}.{shown(axis)}"
            if not isinstance(axis, str) or not _PATH.match(axis):
                _fail(source, at, "unknown axis: expected 'lanes' or a recipe field's dotted path "
                                  "(model.hidden, compress[0].qat.bits)")
            if axis == "boards":
                _fail(source, at, "unknown axis: boards are not an axis; list them under "
                                  "'boards:' and every point is checked on each")
            values = _values(source, at, spec)
            if axis == LANES_AXIS:
                from ..plan import PlanError, check_lanes
                for k, lanes in enumerate(values):
                    try:
                        check_lanes(lanes)
                    except PlanError as error:
                        _fail(source, f"{at}[{k}]", str(error).removeprefix("lanes: "))
            checked[axis] = values
        grids.append((where, checked))
    return grids


def _base_recipe(source: str, spec: Any) -> tuple[dict, str]:
    """The base recipe's plain data and the name its errors start with."""
    from ..train.recipe import RecipeError, parse_recipe
    if isinstance(spec, str):
        path = Path(spec) if os.path.isabs(spec) else Path(source).parent / spec
        data = read_yaml(path, RecipeError) or {}
        where = str(path)
    elif isinstance(spec, dict):
        data, where = spec, f"{source}: recipe"
    else:
        _fail(source, "recipe", f"expected the path of a recipe file or an inline recipe "
                                f"mapping, got {shown(spec)}")
    parse_recipe(data, where)  # the base must be good on its own
    return data, where


def _boards(source: str, spec: Any) -> tuple:
    from ..boards.config import find_board
    if spec is None:
        return ()
    if not isinstance(spec, list) or not all(isinstance(name, str) for name in spec):
        _fail(source, "boards", f"expected a list of board names, got {shown(spec)}")
    boards = []
    for n, name in enumerate(spec):
        try:
            boards.append(find_board(name))
        except SnnhwError as error:
            _fail(source, f"boards[{n}]", str(error).removeprefix("board: "))
    names = [b.name for b in boards]
    for n, name in enumerate(names):
        if name in names[:n]:
            _fail(source, f"boards[{n}]", f"board {name!r} is listed twice")
    return tuple(boards)


def _draws(source: str, spec: Any, size: int) -> tuple[int | None, int]:
    if spec is None:
        return None, 0
    if not isinstance(spec, dict) or set(spec) - {"draws", "seed"} or "draws" not in spec:
        _fail(source, "random", f"expected {{draws: N, seed: S}}, got {shown(spec)}")
    draws, seed = spec["draws"], spec.get("seed", 0)
    if isinstance(draws, bool) or not isinstance(draws, int) or not 1 <= draws <= size:
        _fail(source, "random.draws", f"expected an integer in 1..{size} (the grid's points), "
                                      f"got {shown(draws)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        _fail(source, "random.seed", f"expected an integer >= 0, got {shown(seed)}")
    return draws, seed


def _rejected(source: str, message: str, base_where: str, applied: list[tuple[str, str, Any]],
              params: dict) -> SpaceError:
    """Turn the recipe's error at one point into one naming the axis at fault."""
    rest = message.removeprefix(f"{base_where}: ")
    field, _, why = rest.partition(": ")
    for where, resolved, value in applied:
        if (field == resolved or field.startswith((resolved + ".", resolved + "["))
                or resolved.startswith((field + ".", field + "["))):
            if why.startswith("unknown field"):
                return SpaceError(f"{source}: {where}: unknown axis (the recipe says "
                                  f"{field}: {why})")
            return SpaceError(f"{source}: {where}: the recipe rejects {shown(value)}: {rest}")
    return SpaceError(f"{source}: axes: the recipe rejects the point {shown(params)}: {rest}")


def load_space(path: str | os.PathLike) -> Space:
    """Read and check a space file and every point of it; raise :class:`SpaceError` if bad."""
    from ..flow.flow import DEFAULT_LANES
    from ..train.recipe import RecipeError, parse_recipe, recipe_to_dict

    source = str(path)
    document = read_yaml(path, SpaceError)
    if not isinstance(document, dict):
        _fail(source, "", f"expected a mapping with {', '.join(_KEYS)}, got {shown(document)}")
    for key in document:
        if key not in _KEYS:
            _fail(source, str(key), f"unknown field (expected one of {', '.join(_KEYS)})")
    for key in ("recipe", "axes"):
        if key not in document:
            _fail(source, key, "missing field")
    base, base_where = _base_recipe(source, document["recipe"])
    grids = _grids(source, document["axes"])
    boards = _boards(source, document.get("boards"))
    combos = []
    for where, grid in grids:
        names = list(grid)
        for values in itertools.product(*grid.values()):
            combos.append((where, dict(zip(names, values))))
            if len(combos) > MAX_POINTS:
                _fail(source, "axes", f"expected at most {MAX_POINTS} points, the grid has more")
    grid_size = len(combos)
    draws, seed = _draws(source, document.get("random"), grid_size)
    if draws is not None:
        import numpy as np
        chosen = np.random.default_rng(seed).choice(len(combos), size=draws, replace=False)
        combos = [combos[int(k)] for k in chosen]
    points, seen = [], set()
    for where, params in combos:
        data = copy.deepcopy(base)
        lanes = DEFAULT_LANES
        applied = []
        for axis, value in params.items():
            if axis == LANES_AXIS:
                lanes = value
                continue
            try:
                resolved = set_path(data, axis, value)
            except ValueError as error:
                _fail(source, f"{where}.{axis}", f"unknown axis ({error})")
            applied.append((f"{where}.{axis}", resolved, value))
        try:
            recipe = parse_recipe(data, base_where)
        except RecipeError as error:
            raise _rejected(source, str(error), base_where, applied, params) from None
        plain = recipe_to_dict(recipe)
        identity = repr((plain, lanes))
        if identity in seen:  # the same point from two grids (or two spellings): once
            continue
        seen.add(identity)
        points.append(Point(len(points), params, plain, lanes))
    axes = tuple(dict.fromkeys(axis for _, grid in grids for axis in grid))
    return Space(source, axes, boards, tuple(points), grid_size)
