"""Run the carla4agt command line with one function paused at its k-th call.

Used by test_kill_points.py as ``python -m tests.killpoint ARGS...`` with
``CARLA4AGT_KILLPOINT="module:attr.path|k|marker|fifo"``: at the k-th call the function
writes ``marker`` (this process's id) and blocks opening ``fifo`` until the test opens it
for writing -- so the test signals the command at a known moment, never by sleeping.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path


def _install(spec: str) -> None:
    target, k, marker, fifo = spec.split("|")
    module_name, attr = target.split(":")
    owner = importlib.import_module(module_name)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    real = getattr(owner, name)
    calls = [0]

    def paused(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(k):
            Path(marker).write_text(str(os.getpid()))
            with open(fifo, "rb") as f:  # blocks until the test opens the other end
                f.read()
        return real(*args, **kwargs)

    setattr(owner, name, paused)


if __name__ == "__main__":
    _install(os.environ["CARLA4AGT_KILLPOINT"])
    from carla4agt.cli import main

    sys.argv = ["carla4agt", *sys.argv[1:]]
    main()
