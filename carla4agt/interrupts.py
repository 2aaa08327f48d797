"""What each command says when Ctrl-C or SIGTERM stops it (it must be true for that command).

A command declares its sentence with :func:`interrupted`; the group prints it and exits with
130 (Ctrl-C) or 143 (SIGTERM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "carla4agt_interrupted"
READ_ONLY = "Stopped. This command only reads; nothing was changed."


def interrupted(message: str) -> Callable[[F], F]:
    """Declare what is kept when this command is stopped (put it under ``@click.command``)."""

    def mark(func: F) -> F:
        setattr(func, ATTRIBUTE, message)
        return func

    return mark


def message_for(command: Any) -> str:
    """The sentence ``command`` (a click command, or None) declared, or a cautious default."""
    callback = getattr(command, "callback", None)
    declared = getattr(callback, ATTRIBUTE, None) or getattr(command, ATTRIBUTE, None)
    return declared or "Stopped before the end. Files this command finishes are only put in " \
                       "place when complete, so no half-written output is left."
