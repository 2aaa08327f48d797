"""Names that become file and folder names: layout ids and appearance names.

One rule for both, used by the generator when it names folders and by every reader for
names read back from files, so no file can make a command write outside its folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import UserError

# Letters, digits, '.', '_' and '-'; 1 to 128 characters; no leading '.' (hidden names are
# reserved for temporaries) and no '..'. fullmatch: a trailing newline must not pass.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
NAME_RULE = ("1 to 128 letters, digits, '.', '_' and '-', not starting with '.' and "
             "without '..'")


class InvalidNameError(UserError):
    """A layout id or appearance name that cannot be used as a file name."""


def is_safe_name(name: Any) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and ".." not in name


def check_layout_id(layout_id: Any, source: str | Path | None = None) -> str:
    """Return ``layout_id`` if it is safe as a folder name, else raise InvalidNameError.

    ``source`` names the file it was read from, for the message.
    """
    if not is_safe_name(layout_id):
        where = f"{source}: " if source is not None else ""
        raise InvalidNameError(
            f"{where}the layout id {layout_id!r} cannot be used as a folder name. Use "
            f"{NAME_RULE}.")
    return layout_id


def check_names(values: Any, what: str, source: str | Path) -> tuple[str, ...]:
    """A non-empty list of distinct safe names read from ``source`` (e.g. appearances).

    A single string is refused rather than read as a list of letters.
    """
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InvalidNameError(f"{source}: {what} should be a list of names, got "
                               f"{_show(values)}. The file was not written by carla4agt, or "
                               "was edited; write it again with carla4agt.")
    names = tuple(_text(v) for v in values)
    if not names:
        raise InvalidNameError(f"{source}: {what} is empty. Write the file again with "
                               "carla4agt.")
    for name in names:
        if not is_safe_name(name):
            raise InvalidNameError(f"{source}: the {what} entry {name!r} cannot be used as a "
                                   f"file name ({NAME_RULE}). The file was not written by "
                                   "carla4agt, or was edited.")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidNameError(f"{source}: {what} lists {name!r} twice. Each name must be "
                                   "distinct; write the file again with carla4agt.")
        seen.add(name)
    return names


def _text(value: Any) -> Any:
    """Plain ``str`` for numpy or bytes strings (so messages never show ``np.str_(...)``)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return repr(value)
    if isinstance(value, str):
        return str(value)
    return value


def _show(value: Any) -> str:
    text = repr(_text(value))
    return text if len(text) <= 80 else text[:77] + "..."
