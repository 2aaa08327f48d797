"""Children die with their parent; SIGTERM is handled like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carla4agt_data.processes import (
    Terminated,
    interrupt_exit_code,
    sigterm_as_interrupt,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux")


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_until(predicate, what: str, limit: float = 30.0, step: float = 0.02) -> None:
    """Poll a state (a file, /proc) until it holds; the limit only bounds a failure."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


# A parent that starts a child which asks to die with it, then waits for ever.
_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(__import__("os").getpid()),
                          sys.argv[2]])
time.sleep(3600)
"""
_CHILD = """
import os, sys, time
from carla4agt_data.processes import die_with_parent
die_with_parent(int(sys.argv[1]))
open(sys.argv[2] + ".tmp", "w").write(str(os.getpid()))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(3600)
"""


@linux_only
def test_child_dies_when_parent_is_killed(tmp_path):
    marker = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, _CHILD, str(marker)])
    try:
        wait_until(marker.is_file, "the child to start")
        child = int(marker.read_text())
        assert pid_alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_until(lambda: not pid_alive(child), "the child to die with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@linux_only
def test_die_with_parent_returns_true_on_linux():
    # In this process nothing happens until pytest's parent dies; the call only arms it.
    code = "from carla4agt_data.processes import die_with_parent as d; print(d())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert out.stdout.strip() == "True", out.stderr


def test_sigterm_raises_terminated_inside_the_block_only():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info, sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            time.sleep(0.001)
    assert isinstance(info.value, KeyboardInterrupt)
    assert interrupt_exit_code(info.value) == 143
    assert interrupt_exit_code(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) == previous
