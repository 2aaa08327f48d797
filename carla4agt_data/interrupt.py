"""Stopping long writes at safe points on Ctrl-C and SIGTERM.

A KeyboardInterrupt raised at a random moment inside HDF5 can be swallowed (h5py prints it
as an ignored exception in a callback and carries on) or leave a file half-closed. Within
:func:`stop_on_signals` the two signals only set a flag; the command's loop calls
``check()`` between units of work and stops there, cleaning up on the way out. A second
signal stops at once. What is raised is what the CLI expects of any interrupt: a
KeyboardInterrupt for Ctrl-C, :class:`~carla4agt_data.processes.Terminated` for SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from .processes import Terminated


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated(signum) if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], None]]:
    """Yield ``check()``, which raises once SIGINT or SIGTERM has arrived. Outside the main
    thread signals are left alone (``check`` never raises)."""
    received: list[int] = []

    def check() -> None:
        if received:
            raise _interrupt(received[0])

    if threading.current_thread() is not threading.main_thread():
        yield check
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:  # the second one: stop now
            raise _interrupt(signum)
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield check
    finally:
        for s, h in previous.items():
            signal.signal(s, h)  # a signal after the last check: the work is done anyway


def worker_init(parent_pid: int) -> None:
    """Initializer of pool workers: die with the parent; leave Ctrl-C to the parent, which
    stops the pool (otherwise every worker prints its own KeyboardInterrupt)."""
    from .processes import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
