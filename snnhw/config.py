"""One typed-config loader: plain YAML data into (nested) dataclasses, or one line saying why not.

Every file a user writes (training recipes, board files) is described by dataclasses with a type
hint and a doc comment per field. :func:`load_config` walks the hints, so the dataclass is the only
place a config's shape is written down. It rejects unknown keys (a typo must not be silently
ignored: hls4ml's untyped dicts are its users' top complaint), reports missing fields, converts
enums and nested configs, and refuses NaN and infinities where a number is meant. Every problem is
one line that names the file and the field::

    recipe.yaml: compress[1].qat.bits: expected an integer or 'ternary' ..., got 'binary'

Types it knows: dataclasses, ``Enum``, ``Literal``, ``Union`` / ``Optional``, ``list[X]``,
``tuple[X, ...]``, ``tuple[X, Y]``, ``dict[K, V]``, ``int`` (not ``bool``), ``float`` (an ``int``
is accepted, a ``bool`` is not), ``str`` and ``bool``. Anything else, or a type that a config
converts its own way (a tagged union, an integer that must not be negative), goes through a
:class:`Converter` passed in ``converters``.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, Literal, NoReturn, TypeVar, Union

from .errors import SnnhwError

__all__ = ["LOADED", "NON_FINITE", "Converter", "Loader", "load_config", "tagged_union", "fail",
           "shown", "join"]

T = TypeVar("T")

#: ``dataclasses.field(metadata={LOADED: False})``: a field the loader neither reads nor accepts,
#: because the program sets it after loading (a board's ``path``)
LOADED = "snnhw.config.loaded"
#: ``dataclasses.field(metadata={NON_FINITE: True})``: a float field that may be NaN or infinite
NON_FINITE = "snnhw.config.non_finite"

#: longest ``repr`` of a value quoted in a message; a longer one is cut and ends in ``...``
SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """Return ``repr(value)`` cut to :data:`SHOWN_CHARS`, so that a message stays one short line."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def join(where: str, name: Any) -> str:
    """Return the path of field ``name`` inside ``where`` (``train`` + ``lr`` -> ``train.lr``)."""
    text = str(name)
    if not (isinstance(name, str) and text.isprintable() and len(text) <= SHOWN_CHARS):
        text = shown(name)  # a YAML key can be anything; the path must stay one line
    return f"{where}.{text}" if where else text


def fail(error: type[SnnhwError], source: str, where: str, message: str) -> NoReturn:
    """Raise ``error("{source}: {where}: {message}")`` (without ``where`` if it is empty)."""
    raise error(f"{source}: {where}: {message}" if where else f"{source}: {message}")


@dataclass(frozen=True)
class Converter:
    """How the loader converts one type hint that it does not handle itself, or not as wanted.

    Parameters
    ----------
    expects
        What the type accepts, for messages: ``"an integer >= 0"`` (a union that contains the
        type lists it among its alternatives).
    convert
        ``convert(loader, value, where)`` returns the converted value, or raises through
        ``loader.mismatch(where, expects, value)`` or ``loader.fail(where, message)``; it may
        call ``loader.build`` and ``loader.convert`` for what it contains.
    """

    expects: str
    convert: Callable[[Loader, Any, str], Any]


def tagged_union(registry: Mapping[str, type], what: str) -> Converter:
    """Return a converter for a mapping with one key naming the config class of its value.

    ``registry`` maps each name to a dataclass; ``{qat: {bits: 4}}`` becomes
    ``registry["qat"](bits=4)`` and errors inside it name ``where.qat.bits``. A null value
    (``- cluster:`` in YAML) means all defaults. ``what`` names the tag in messages (``stage``).
    """
    names = ", ".join(registry)
    expects = f"a mapping with one {what} name ({names}) and its settings"

    def convert(loader: Loader, value: Any, where: str) -> Any:
        if not isinstance(value, dict) or len(value) != 1:
            loader.mismatch(where, expects, value)
        ((name, settings),) = value.items()
        if name not in registry:
            loader.fail(where, f"unknown {what} {shown(name)} (expected one of {names})")
        return loader.build(registry[name], {} if settings is None else settings,
                            join(where, name))

    return Converter(expects, convert)


def load_config(cls: type[T], data: Any, source: str, *, error: type[SnnhwError] = SnnhwError,
                converters: Mapping[Any, Converter] | None = None) -> T:
    """Build the dataclass ``cls`` from plain data (as YAML gives it); raise ``error`` if it is bad.

    Parameters
    ----------
    cls
        The config's dataclass; fields without a default are required.
    data
        A mapping of field names to values; nested dataclasses are nested mappings.
    source
        What every message starts with: the file name.
    error
        The :class:`~snnhw.errors.SnnhwError` subclass raised, with one line
        ``"{source}: {field.path}: expected ..., got ..."``.
    converters
        Type hint -> :class:`Converter` for the types converted another way than the built-in
        one (``{int: ...}``) or not known to the loader (a tagged union, see
        :func:`tagged_union`).
    """
    return Loader(source, error, converters).build(cls, data)


class Loader:
    """The conversion state handed to each :class:`Converter`: the file, the error, the table.

    Parameters
    ----------
    source
        The file name that messages start with.
    error
        The exception class raised.
    converters
        Type hint -> :class:`Converter`, consulted before the built-in conversions.
    """

    def __init__(self, source: str, error: type[SnnhwError] = SnnhwError,
                 converters: Mapping[Any, Converter] | None = None):
        self.source, self.error = source, error
        self.converters = dict(converters or {})

    def fail(self, where: str, message: str) -> NoReturn:
        """Raise the error for the field at ``where``."""
        fail(self.error, self.source, where, message)

    def mismatch(self, where: str, expects: str, value: Any) -> NoReturn:
        """Raise ``where: expected {expects}, got {value}``."""
        self.fail(where, f"expected {expects}, got {shown(value)}")

    def build(self, cls: type[T], data: Any, where: str = "") -> T:
        """Build dataclass ``cls`` from the mapping ``data`` found at ``where``."""
        if not isinstance(data, dict):
            self.mismatch(where, "a mapping", data)
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in fields(cls) if f.init and f.metadata.get(LOADED, True)}
        for key in data:
            if key not in known:
                self.fail(join(where, key),
                          f"unknown field (expected one of {', '.join(sorted(known))})")
        values = {}
        for name, f in known.items():
            finite = not f.metadata.get(NON_FINITE, False)
            if name in data:
                values[name] = self.convert(hints[name], data[name], join(where, name), finite)
            elif f.default is MISSING and f.default_factory is MISSING:
                self.fail(join(where, name),
                          f"missing field (expected {self.describe(hints[name], finite)})")
        return cls(**values)

    def describe(self, tp: Any, finite: bool = True) -> str:
        """Say in words what the type hint ``tp`` accepts (``an integer or 'ternary'``)."""
        if tp in self.converters:
            return self.converters[tp].expects
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (Union, types.UnionType):
            return " or ".join(self.describe(arg, finite) for arg in args)
        if origin is Literal:
            return " or ".join(repr(arg) for arg in args)
        if origin in (list, tuple) and (origin is list or args[-1] is Ellipsis):
            return f"a list of ({self.describe(args[0], finite)})"
        if origin is tuple:
            return f"a list of {len(args)} ({', '.join(self.describe(a, finite) for a in args)})"
        if origin is dict:
            return "a mapping"
        if is_dataclass(tp):
            return "a mapping"
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return " or ".join(repr(member.value) for member in tp)
        if tp is type(None):
            return "null"
        if tp is float:
            return "a number" if not finite else "a finite number"
        return {int: "an integer", bool: "true or false", str: "a string"}.get(
            tp, getattr(tp, "__name__", str(tp)))

    def convert(self, tp: Any, value: Any, where: str, finite: bool = True) -> Any:
        """Check ``value`` (found at ``where``) against the type hint ``tp`` and convert it."""
        if tp in self.converters:
            return self.converters[tp].convert(self, value, where)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (Union, types.UnionType):
            return self._union(tp, args, value, where, finite)
        if origin is Literal:
            for arg in args:
                if type(arg) is type(value) and arg == value:
                    return value
        elif origin is list or origin is tuple:
            if isinstance(value, list):
                return self._sequence(origin, args, value, where, finite)
        elif origin is dict:
            if isinstance(value, dict):
                key_type, value_type = args
                return {self.convert(key_type, key, f"{where} (key)", finite):
                        self.convert(value_type, item, join(where, key), finite)
                        for key, item in value.items()}
        elif is_dataclass(tp):
            return self.build(tp, value, where)
        elif isinstance(tp, type) and issubclass(tp, enum.Enum):
            for member in tp:  # by type too: YAML's true must not match an enum value 1
                if type(member.value) is type(value) and member.value == value:
                    return member
        elif tp is type(None):
            if value is None:
                return None
        elif tp is bool:
            if isinstance(value, bool):
                return value
        elif tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif tp is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:  # an integer beyond float range
                    number = math.inf
                if not finite or math.isfinite(number):
                    return number
        elif tp is str:
            if isinstance(value, str):
                return value
        else:  # a type this loader was not taught: a bug in the config's code, not in the file
            raise TypeError(f"Config field {where or '(top)'} has unsupported type {tp!r}")
        self.mismatch(where, self.describe(tp, finite), value)

    def _sequence(self, origin: type, args: tuple, value: list, where: str, finite: bool) -> Any:
        if origin is list or args[-1] is Ellipsis:
            items = [self.convert(args[0], item, f"{where}[{n}]", finite)
                     for n, item in enumerate(value)]
        elif len(value) == len(args):
            items = [self.convert(arg, item, f"{where}[{n}]", finite)
                     for n, (arg, item) in enumerate(zip(args, value))]
        else:
            self.mismatch(where, self.describe(origin[args], finite), value)
        return items if origin is list else tuple(items)

    def _union(self, tp: Any, args: tuple, value: Any, where: str, finite: bool) -> Any:
        # Only the alternatives of the value's shape (mapping, list, scalar) can match. When one
        # is left, convert with it directly, so that an error deep inside names its own field
        # (uart.pins.rx, not "uart.pins: expected UartPins or null").
        candidates = [arg for arg in args if self._same_shape(arg, value)]
        if len(candidates) == 1:
            return self.convert(candidates[0], value, where, finite)
        for arg in candidates:
            try:
                return self.convert(arg, value, where, finite)
            except self.error:
                continue
        self.mismatch(where, self.describe(tp, finite), value)

    def _same_shape(self, tp: Any, value: Any) -> bool:
        if tp in self.converters:
            return True  # it takes what it takes
        origin = typing.get_origin(tp)
        container = is_dataclass(tp) or origin in (dict, list, tuple)
        if isinstance(value, dict):
            return is_dataclass(tp) or origin is dict
        if isinstance(value, list):
            return origin in (list, tuple)
        return not container
