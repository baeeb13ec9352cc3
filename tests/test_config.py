"""The typed-config loader: every mistake in a config file is one line naming the file and field."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import pytest

from snnhw.config import (LOADED, NON_FINITE, Converter, Loader, load_config, shown,
                          tagged_union)
from snnhw.errors import SnnhwError


class ConfigError(SnnhwError, ValueError):
    """The error class a config passes in."""


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclass
class Inner:
    size: int  #: required
    scale: float = 1.0
    colour: Colour = Colour.RED


@dataclass
class Walk:
    steps: int = 1


@dataclass
class Jump:
    height: float = 1.0


Move = Union[Walk, Jump]


@dataclass
class Outer:
    name: str = "x"
    flag: bool = False
    inner: Inner = field(default_factory=lambda: Inner(1))
    sizes: list[int] = field(default_factory=list)
    pair: tuple[int, str] = (0, "")
    modes: tuple[str, ...] = ()
    attrs: dict[str, int] = field(default_factory=dict)
    bits: Union[int, Literal["ternary"]] = 8
    limit: Optional[float] = None
    moves: list[Move] = field(default_factory=list)
    #: may be NaN: opts out of the finite check
    anything: float = field(default=0.0, metadata={NON_FINITE: True})
    #: set by the program after loading
    origin: str = field(default="", metadata={LOADED: False})


MOVES = {"walk": Walk, "jump": Jump}


def load(data):
    return load_config(Outer, data, "c.yaml", error=ConfigError,
                       converters={Move: tagged_union(MOVES, "move")})


def message(data) -> str:
    with pytest.raises(ConfigError) as error:
        load(data)
    text = str(error.value)
    assert "\n" not in text
    return text


def test_everything_converts():
    config = load({"name": "n", "flag": True, "inner": {"size": 3, "scale": 2, "colour": "green"},
                   "sizes": [1, 2], "pair": [4, "a"], "modes": ["x", "y"], "attrs": {"k": 5},
                   "bits": "ternary", "limit": 0.5, "anything": math.nan,
                   "moves": [{"walk": {"steps": 2}}, {"jump": None}]})
    assert config.inner == Inner(3, 2.0, Colour.GREEN)
    assert isinstance(config.inner.scale, float)
    assert config.pair == (4, "a") and config.modes == ("x", "y")
    assert config.attrs == {"k": 5} and config.bits == "ternary" and config.limit == 0.5
    assert config.moves == [Walk(2), Jump()]
    assert math.isnan(config.anything)
    assert load({}) == Outer()


@pytest.mark.parametrize("data, text", [
    ({"nmae": "n"}, "c.yaml: nmae: unknown field (expected one of anything, attrs, bits, flag, "
                    "inner, limit, modes, moves, name, pair, sizes)"),
    ({"origin": "elsewhere"}, "c.yaml: origin: unknown field (expected one of anything, "),
    ({"inner": {"size": 1, "sise": 2}},
     "c.yaml: inner.sise: unknown field (expected one of colour, scale, size)"),
    ({"inner": {}}, "c.yaml: inner.size: missing field (expected an integer)"),
    ({"inner": {"size": "big"}}, "c.yaml: inner.size: expected an integer, got 'big'"),
    ({"inner": {"size": True}}, "c.yaml: inner.size: expected an integer, got True"),
    ({"inner": {"size": 1.0}}, "c.yaml: inner.size: expected an integer, got 1.0"),
    ({"inner": {"size": 1, "scale": False}},
     "c.yaml: inner.scale: expected a finite number, got False"),
    ({"inner": 3}, "c.yaml: inner: expected a mapping, got 3"),
    ({"inner": {"size": 1, "colour": "blue"}},
     "c.yaml: inner.colour: expected 'red' or 'green', got 'blue'"),
    ({"flag": 1}, "c.yaml: flag: expected true or false, got 1"),
    ({"name": 5}, "c.yaml: name: expected a string, got 5"),
    ({"sizes": [1, "two"]}, "c.yaml: sizes[1]: expected an integer, got 'two'"),
    ({"sizes": 3}, "c.yaml: sizes: expected a list of (an integer), got 3"),
    ({"pair": [1]}, "c.yaml: pair: expected a list of 2 (an integer, a string), got [1]"),
    ({"modes": ["a", 2]}, "c.yaml: modes[1]: expected a string, got 2"),
    ({"attrs": {"k": "v"}}, "c.yaml: attrs.k: expected an integer, got 'v'"),
    ({"attrs": {1: 1}}, "c.yaml: attrs (key): expected a string, got 1"),
    ({"bits": "binary"}, "c.yaml: bits: expected an integer or 'ternary', got 'binary'"),
    ({"limit": "none"}, "c.yaml: limit: expected a finite number or null, got 'none'"),
    ([1, 2], "c.yaml: expected a mapping, got [1, 2]"),
])
def test_mistakes_are_one_line_naming_the_field(data, text):
    assert message(data).startswith(text)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10 ** 400])
def test_floats_must_be_finite(value):
    assert message({"inner": {"size": 1, "scale": value}}).startswith(
        "c.yaml: inner.scale: expected a finite number, got ")
    assert message({"limit": value}).startswith(
        "c.yaml: limit: expected a finite number or null, got ")


def test_yaml_nan_and_inf_are_rejected():
    from snnhw.yamlfile import parse_yaml
    for text in ("limit: .nan", "limit: -.inf", "inner: {size: 1, scale: .inf}"):
        with pytest.raises(ConfigError, match=r"expected a finite number"):
            load(parse_yaml(text, "c.yaml", ConfigError))


def test_long_values_are_cut():
    text = message({"name": ["x" * 50] * 100})
    assert text.startswith("c.yaml: name: expected a string, got ['xxx")
    assert text.endswith("...") and len(text) < 150
    assert shown("a" * 10) == "'aaaaaaaaaa'"
    assert len(shown("a" * 1000)) == 80


def test_odd_keys_stay_on_one_line():
    assert message({"a\nb": 1}).startswith("c.yaml: 'a\\nb': unknown field")
    assert message({"x" * 500: 1}).startswith("c.yaml: 'xxxxx")


@pytest.mark.parametrize("data, text", [
    ({"moves": [{"run": {}}]}, "c.yaml: moves[0]: unknown move 'run' (expected one of walk, jump)"),
    ({"moves": [{"walk": {}, "jump": {}}]},
     "c.yaml: moves[0]: expected a mapping with one move name (walk, jump) and its settings, "
     "got {'walk': {}, 'jump': {}}"),
    ({"moves": ["walk"]}, "c.yaml: moves[0]: expected a mapping with one move name"),
    ({"moves": [{"walk": {}}, {"jump": {"height": "up"}}]},
     "c.yaml: moves[1].jump.height: expected a finite number, got 'up'"),
    ({"moves": [{"walk": {"stpes": 1}}]},
     "c.yaml: moves[0].walk.stpes: unknown field (expected one of steps)"),
])
def test_tagged_union(data, text):
    assert message(data).startswith(text)


def test_converters_replace_a_type():
    def natural(loader: Loader, value, where):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            loader.mismatch(where, "an integer >= 0", value)
        return value

    with pytest.raises(ConfigError, match=r"^c.yaml: inner.size: expected an integer >= 0, "
                                          r"got -1$"):
        load_config(Outer, {"inner": {"size": -1}}, "c.yaml", error=ConfigError,
                    converters={int: Converter("an integer >= 0", natural)})


def test_unsupported_type_is_a_bug_not_a_user_error():
    @dataclass
    class Odd:
        value: complex = 0j

    with pytest.raises(TypeError, match="unsupported type"):
        load_config(Odd, {"value": 1}, "c.yaml")


def test_optional_nested_dataclass_reports_the_inner_field():
    @dataclass
    class Holder:
        inner: Optional[Inner] = None

    assert load_config(Holder, {"inner": None}, "c.yaml") == Holder()
    with pytest.raises(SnnhwError, match=r"^c.yaml: inner.size: expected an integer, got 'x'$"):
        load_config(Holder, {"inner": {"size": "x"}}, "c.yaml")
