"""Reading the YAML files a user hands us (layouts, weather presets), with bounds.

Stricter than a plain ``yaml.safe_load``: a size cap and regular files only (``/dev/zero``
or a 10 GB file is refused, not read), no aliases (``*name``: an alias bomb would expand
into every message that shows the value), and YAML 1.2 numbers (``1e3`` is a number, as a
user means it, not the text YAML 1.1 makes of it). Every failure is one
:class:`~carla4agt_data.errors.UserError` naming the file.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import yaml

from carla4agt_data.errors import FileFormatError, MissingFileError, UserError

MAX_FILE_BYTES = 16 * 1024 * 1024  # a dense builtin layout is about 100 kB


class _Loader(yaml.SafeLoader):
    """The safe loader without aliases, with YAML 1.2 floats."""

    yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers
                               .items()}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"uses the alias *{str(event.anchor)[:40]}, which carla4agt files "
                "do not use (write the values out)", event.start_mark)
        return super().compose_node(parent, index)


# 1e3, -2.5E-4, .5e1: numbers in YAML 1.2, text in YAML 1.1 (which needs a dot).
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml_text(text: str, source: str | Path) -> Any:
    """Parse YAML text with the bounded loader; ``source`` names it in errors."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or exc)[:200]
        raise FileFormatError(source, None, f"is not valid YAML{where}: {problem}",
                              "Fix the syntax there.") from None
    except ValueError as exc:  # an integer of thousands of digits (Python's int limit)
        raise FileFormatError(source, None, f"holds a value that cannot be read "
                              f"({str(exc)[:120]})", "Use numbers of ordinary size.") from None
    except RecursionError:
        raise FileFormatError(source, None, "is nested too deeply",
                              "Layouts and presets are a few levels deep.") from None


def read_yaml_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Read and parse a YAML file of at most ``max_bytes`` bytes (a regular file)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file. Check the path.") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise UserError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})."
                        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{path}: is a folder, expected a YAML file.")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path}: is not a regular file (a device or a pipe). Pass a YAML file.")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if len(data) > max_bytes:
        raise UserError(f"{path}: is larger than {max_bytes // (1024 * 1024)} MiB, too large "
                        "for a layout or preset file. Check that this is the right file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: is not UTF-8 text (byte {exc.start}). Pass a YAML file."
                        ) from None
    return parse_yaml_text(text, path)
