"""Safe YAML reading and atomic file writing, shared by every file format of the project."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import FileFormatError, UserError


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with the safe loader.

    Raises:
        UserError: the file is missing or unreadable.
        FileFormatError: the file is not valid YAML (the message gives line and column).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file. Check the path.") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a YAML file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as UTF-8 text ({exc}).") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, source: str | Path) -> Any:
    """Parse YAML text with the safe loader; ``source`` names it in errors."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FileFormatError(
            source, None, f"is not valid YAML{where}: {problem}", "Fix the syntax there."
        ) from None


def dump_yaml(data: Any, *, flow_leaves: bool = True) -> str:
    """YAML text for plain data (dicts keep their order; floats round-trip exactly).

    ``flow_leaves`` writes innermost lists and mappings on one line (``{x: 1.0, y: 2.0}``),
    which keeps long actor lists readable.
    """
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None if flow_leaves else False,
                          allow_unicode=True, width=100)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    A reader never sees a half-written file: until the rename only the temporary name
    (``.<name>.tmp-XXXX``) exists, and it is removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600); this name is unique and gets the umask.
    tmp_path = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
