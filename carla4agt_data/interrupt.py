"""Stopping long commands at safe points on Ctrl-C and SIGTERM.

A signal that lands inside HDF5 or a worker pool can be swallowed or leave a file open
(h5py turns a KeyboardInterrupt raised in its callbacks into a printed warning). Instead,
within :func:`stop_on_signals` the signals only set a flag; the command's loop calls
``check()`` between units of work and stops there, cleaning up on the way out. A second
signal stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from .errors import Interrupted

_EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


@contextlib.contextmanager
def stop_on_signals(kept: str) -> Iterator[Callable[[], None]]:
    """Yield ``check()``, which raises :class:`Interrupted` (message ``kept``: what is kept)
    once SIGINT or SIGTERM has arrived. Outside the main thread, signals are left alone."""
    received: list[int] = []

    def check() -> None:
        if received:
            raise Interrupted(f"Stopped by {signal.Signals(received[0]).name}. {kept}",
                              _EXIT_CODES.get(received[0], 130))

    if threading.current_thread() is not threading.main_thread():
        yield check
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:  # the second one: stop now
            raise Interrupted(f"Stopped by {signal.Signals(signum).name}. {kept}",
                              _EXIT_CODES.get(signum, 130))
        received.append(signum)

    previous = {s: signal.signal(s, handler) for s in _EXIT_CODES}
    try:
        yield check
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def die_with_parent(parent_pid: int) -> None:
    """In a worker process: be killed when the parent dies (Linux), and leave Ctrl-C to the
    parent (which stops the pool). Elsewhere only the latter."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    import os

    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
