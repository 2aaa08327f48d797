"""One run at a time per output folder and shard (``fcntl.flock`` on a hidden lock file).

Two ``generate`` runs writing the same layouts would delete each other's temporary folders;
runs of different shards (``--shard 0/4`` and ``1/4``) may share a folder. A shard of
another numbering (``0/2`` while ``0/4`` runs) overlaps, so it is refused too. The kernel
drops the lock when its process dies, however it dies; the file a killed run leaves is
removed by the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from carla4agt_data.errors import UserError

_NAME = re.compile(r"\.lock-shard(\d+)-of-(\d+)")


def lock_path(out: Path, index: int, count: int) -> Path:
    return out / f".lock-shard{index}-of-{count}"


def _holder(fh: IO[str]) -> str:
    """Who holds a lock, as its file says."""
    try:
        fh.seek(0)
        info: dict[str, Any] = json.loads(fh.read(4096) or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another run (it has not written its details yet)"
    command = str(info.get("command", "?"))[:300]
    return f"process {info.get('pid')} on {str(info.get('host', '?'))[:100]} ({command})"


def _try_lock(path: Path) -> IO[str] | None:
    """The open, exclusively locked file, or None when another process holds it.

    A holder removes its file when done; if it did so between our open and our lock, we
    locked a file nobody else will see, so we try again with the file now at ``path``.
    """
    while True:
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (kept open while held)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino:
                return fh
        except FileNotFoundError:
            pass
        fh.close()


def _release(path: Path, fh: IO[str]) -> None:
    """Remove the lock file while still holding it, then let go."""
    try:
        path.unlink(missing_ok=True)
    finally:
        fh.close()


def _refuse(out: Path, path: Path, what: str) -> UserError:
    try:
        with open(path, encoding="utf-8") as fh:
            holder = _holder(fh)
    except OSError:  # it finished just now
        holder = "another run"
    return UserError(f"{out} is being written by {holder}, {what}. Wait for it to finish or "
                     "stop it, or write into another --out (different shards of one numbering, "
                     "--shard 0/4 and 1/4, may share a folder).")


@contextlib.contextmanager
def run_lock(out: Path, index: int = 0, count: int = 1) -> Iterator[Path]:
    """Hold the lock of shard ``index``/``count`` of ``out`` for the block.

    Raises:
        UserError: another live run writes this shard, or an overlapping one.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = lock_path(out, index, count)
    fh = _try_lock(path)
    if fh is None:
        raise _refuse(out, path, f"shard {index}/{count}")
    try:
        fh.truncate(0)
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "command": " ".join(sys.argv)[:1000]}))
        fh.flush()
        for other in sorted(out.glob(".lock-shard*")):
            match = _NAME.fullmatch(other.name)
            if other == path or not match or int(match[2]) == count:
                continue
            probe = _try_lock(other)  # a numbering of its own overlaps ours
            if probe is None:
                raise _refuse(out, other, f"shard {match[1]}/{match[2]}, which overlaps "
                              f"shard {index}/{count}")
            _release(other, probe)  # left by a killed run
        yield path
    finally:
        _release(path, fh)
