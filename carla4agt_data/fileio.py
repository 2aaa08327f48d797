"""Safe YAML reading and atomic file writing, shared by every file format of the project."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import FileFormatError, MissingFileError, UserError


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
        raise MissingFileError(f"{path}: no such file. Check the path.") from None
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


_TMP_FILE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")


def temporary_name(name: str) -> str:
    """The name of a temporary for ``name``: hidden, with this process's id, and ending in
    hex digits, so no reader's glob (``*.h5``, ``*.png``, ``*_leftImg8bit.png``) takes it
    and a later run can tell whether its writer is gone."""
    return f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete temporaries (see :func:`temporary_name`) in ``folder`` whose writer process is
    gone -- left by a killed run; only those of ``name`` when given. Returns what went."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_FILE.match(entry.name)
        if (not match or (name is not None and match["name"] != name)
                or int(match["pid"]) == os.getpid() or pid_alive(int(match["pid"]))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass  # someone else swept it, or no permission: leave it
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, *, tmp_dir: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` when the block succeeds.

    A reader never sees a half-written file: until the rename only the temporary name
    (:func:`temporary_name`, beside ``path`` or in ``tmp_dir`` on the same file system)
    exists, and it is removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600); this name is unique and gets the umask.
    tmp_path = Path(tmp_dir or path.parent) / temporary_name(path.name)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        # Name the user's file, never the hidden temporary (a full disk's write error
        # names no file at all).
        if exc.filename is None or Path(exc.filename) == tmp_path:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
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
