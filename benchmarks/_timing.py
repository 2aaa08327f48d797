"""Whole-process timing shared by the benchmark scripts."""

from __future__ import annotations

import subprocess
import time


def timed(cmd: list[str]) -> float:
    """Wall seconds of one command run as a fresh process (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start
