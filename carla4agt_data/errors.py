"""Errors a user can cause and fix. The CLI shows their message without a traceback.

They subclass the built-in exceptions a Python user expects from a library (torchvision's
habit): bad arguments and bad files are ``ValueError``, missing files also
``FileNotFoundError``, so ``except ValueError`` works outside our CLI too.
"""

from __future__ import annotations

from pathlib import Path


class UserError(ValueError):
    """Something the user can fix; the message says what is wrong and what to do."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""

    def __str__(self) -> str:  # OSError's str would prefix an errno
        return str(self.args[0]) if self.args else ""


class DamagedFileError(UserError, OSError):
    """Stored data that fails its checksum or cannot be decoded (also an ``OSError``, what
    h5py raises for it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FileFormatError(UserError):
    """A file that cannot be read as what it should be, naming the file and the field.

    Args:
        file: the file that is wrong.
        field: dotted path of the field (``camera.transform.location.x``), or ``None``
            when the whole file is wrong.
        problem: what is wrong, as a sentence fragment.
        hint: what to do about it.
    """

    def __init__(self, file: str | Path, field: str | None, problem: str, hint: str = "") -> None:
        self.file = str(file)
        self.field = field
        self.problem = problem
        self.hint = hint
        where = f"{self.file}: field '{field}'" if field else self.file
        message = f"{where}: {problem}."
        if hint:
            message += f" {hint}"
        super().__init__(message)
