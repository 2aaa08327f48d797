"""Typed reading of parsed YAML mappings with errors that name the file and the field."""

from __future__ import annotations

import builtins
import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from carla4agt_data.errors import FileFormatError

_MISSING: Any = object()

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
MAX_INT = 2**63 - 1  # every integer field fits 64 bits (seeds, indices, counts)
MAX_SHOWN = 60  # characters of a value or key shown in a message
MAX_TEXT = 1000  # characters of a text field (names, blueprints, descriptions)


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters (a message never repeats a huge value)."""
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"an integer of {len(str(abs(value)))} digits"
    return shorten(repr(value))


class FieldReader:
    """Reads the fields of one YAML mapping; :meth:`finish` refuses fields it did not read.

    Args:
        data: the parsed mapping.
        file: the file it came from (named in every error).
        prefix: dotted path of this mapping inside the file ("" at the top).
    """

    def __init__(self, data: Any, file: str | Path, prefix: str = "") -> None:
        self.file = file
        self.prefix = prefix
        if not isinstance(data, dict):
            raise self.error(None, f"expected a mapping of fields, got {_describe(data)}")
        self.data = data
        self._read: set[str] = set()

    def path(self, key: str | None) -> str | None:
        if key is None:
            return self.prefix or None
        key = shorten(key)
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str | None, problem: str, hint: str = "") -> FileFormatError:
        return FileFormatError(self.file, self.path(key), problem, hint)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self._read.add(key)
        if key not in self.data:
            if default is _MISSING:
                close = difflib.get_close_matches(
                    key, [shorten(str(k), 200) for k in list(self.data)[:200]], n=1)
                if close:
                    raise self.error(key, f"is missing, but there is a field "
                                     f"'{shorten(close[0])}'",
                                     f"Is it misspelt? Rename it to '{key}'.")
                raise self.error(key, "is missing", "Add it to the file.")
            return default
        return self.data[key]

    def get(
        self,
        key: str,
        kind: type,
        default: Any = _MISSING,
        *,
        lo: float | None = None,
        hi: float | None = None,
        choices: Sequence[Any] | None = None,
    ) -> Any:
        """A scalar field of type ``kind`` (bool, int, float or str), range- or choice-checked."""
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        value = self._convert(key, value, kind)
        if choices is not None and value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise self.error(key, f"has the unknown value {_describe(value)}",
                             f"Valid values are {allowed}.")
        if kind is int:  # every integer is bounded, even where the field sets no range
            lo = -MAX_INT if lo is None else lo
            hi = MAX_INT if hi is None else hi
        if lo is not None and value < lo or hi is not None and value > hi:
            bounds = f"between {lo} and {hi}" if lo is not None and hi is not None else (
                f"at least {lo}" if lo is not None else f"at most {hi}")
            raise self.error(key, f"is {_describe(value)}, out of range",
                             f"It must be {bounds}.")
        return value

    def _convert(self, key: str, value: Any, kind: type) -> Any:
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise self.error(key, f"is {value!r}", "Use a finite number.")
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is str and isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise self.error(key, f"is {len(value)} characters long",
                                 f"Use at most {MAX_TEXT}.")
            return value
        if kind is bool and isinstance(value, bool):
            return value
        raise self.error(key, f"should be {_TYPE_NAMES[kind]}, got {_describe(value)}")

    def check_version(self, expected: int, what: str, remedy: str) -> None:
        """Refuse a file whose ``version`` field is not ``expected``."""
        version = self.get("version", int)
        if version != expected:
            raise self.error("version", f"is {version}, but this carla4agt reads {what} "
                             f"version {expected}", f"Upgrade carla4agt, or {remedy}.")

    def sub(self, key: str, default: Any = _MISSING) -> FieldReader:
        """The nested mapping ``key`` as its own reader."""
        return FieldReader(self.raw(key, default), self.file, self.path(key) or "")

    def list(self, key: str, default: Any = _MISSING, *, most: int = 100_000) -> builtins.list[Any]:
        """A list field of at most ``most`` items."""
        value = self.raw(key, default)
        if not isinstance(value, list):
            raise self.error(key, f"should be a list, got {_describe(value)}")
        if len(value) > most:
            raise self.error(key, f"has {len(value)} items", f"Use at most {most}.")
        return value

    def readers(self, key: str, default: Any = _MISSING, *,
                most: int = 100_000) -> builtins.list[FieldReader]:
        """A list of mappings, each as its own reader (``actors[3].transform``...)."""
        return [
            FieldReader(item, self.file, f"{self.path(key)}[{i}]")
            for i, item in enumerate(self.list(key, default, most=most))
        ]

    def finish(self) -> None:
        """Refuse fields nobody asked for (most often a misspelt name)."""
        for key in self.data:
            if key not in self._read:
                close = difflib.get_close_matches(shorten(str(key), 200), sorted(self._read),
                                                  n=1)
                hint = f"Did you mean '{close[0]}'?" if close else (
                    "Known fields here: " + ", ".join(sorted(self._read)) + ".")
                raise self.error(str(key), "is not a known field", hint)
