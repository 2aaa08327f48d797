"""Child processes that die with their parent, and SIGTERM handled like Ctrl-C.

A render or pack worker must never outlive the command that started it: killed with
``kill -9``, the parent gets no chance to stop its children, so each child asks the kernel
(Linux ``prctl(PR_SET_PDEATHSIG)``) to be killed when its parent goes. Call
:func:`die_with_parent` first thing in a worker, passing the parent's pid (as
``ProcessPoolExecutor(initializer=die_with_parent, initargs=(os.getpid(),))`` does).

Example:
    >>> with sigterm_as_interrupt():     # in the main process of a command
    ...     run_the_command()            # SIGTERM now raises Terminated (a KeyboardInterrupt)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so every ``finally`` and ``except
    KeyboardInterrupt`` runs as on Ctrl-C. ``signum`` gives the exit code 128 + signum."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"received signal {signum}")


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies.

    SIGKILL by default: a dying worker must not block on a queue nobody reads. The kernel
    ties the signal to the parent *thread* that started this process; start workers from
    the main thread. If ``parent_pid`` is given and the parent is already gone (it died
    before this call), this process exits at once. Returns False where the kernel offers no
    such call (not Linux); the parent's ``finally`` then stops the workers on SIGTERM and
    Ctrl-C, though not on ``kill -9``.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if parent_pid is not None and os.getppid() != parent_pid:  # orphaned before the call
        os.kill(os.getpid(), sig)
    return True


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` in the main thread (a subclass
    of KeyboardInterrupt). Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's exit code for this interrupt: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)


_INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends (then they arrive). Start workers inside
    it: an interrupt in the middle of sending a worker its arguments would leave the worker
    reading half a message. Children inherit the mask: call :func:`allow_interrupts` first
    thing in each."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def allow_interrupts() -> None:
    """Undo an inherited :func:`interrupts_deferred` in a child process."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _INTERRUPTS)
