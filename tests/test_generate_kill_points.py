"""Kill points of generate (issue 13, defects 5 and 17): SIGKILL and SIGTERM of the main
process at moments given by markers on disk; its render workers must be gone, nothing
under a real name is incomplete, and a resume completes and reads back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from carla4agt_data.dataset import open_dataset
from carla4agt_data.raw import complete_layouts, is_complete

from .test_processes import pid_alive, wait_until

SIZE = "64x32"


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(t) for t in text)
    return found


def _cmd(out: Path, layouts: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "carla4agt", "generate", "--layouts", str(layouts),
            "--weathers", "noon", "--size", SIZE, "--out", str(out), "--no-progress",
            "--backend", "builtin", "--workers", str(workers), "--pack-workers", "1"]


def _no_half_folders(out: Path) -> None:
    for entry in out.iterdir():
        if entry.is_dir() and not entry.name.startswith("."):
            assert is_complete(entry), entry


def _resume_and_read_back(out: Path, layouts: int) -> None:
    proc = subprocess.run(_cmd(out, layouts, 1), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ds = open_dataset(out / "dataset.h5")
    assert len(ds) == layouts
    for i in range(len(ds)):  # every image and label reads back
        assert ds.read_rgb(i, "noon").shape == (32, 64, 3)
        assert ds.read_label(i).shape == (32, 64)
    assert len(complete_layouts(out)) >= layouts


KILL_POINTS = [  # (signal, workers, complete layouts to wait for)
    pytest.param(signal.SIGKILL, 2, 2, id="sigkill-2-workers-mid-run"),
    pytest.param(signal.SIGTERM, 2, 2, id="sigterm-2-workers-mid-run"),
    pytest.param(signal.SIGTERM, 1, 1, id="sigterm-1-worker-mid-run"),
    pytest.param(signal.SIGKILL, 2, 0, id="sigkill-2-workers-at-start"),
]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")
@pytest.mark.parametrize("sig, workers, wait_for", KILL_POINTS)
def test_kill_generate_then_resume(tmp_path, sig, workers, wait_for):
    out = tmp_path / "raw"
    # Far more layouts than a test renders: workers that outlive the kill would go on.
    proc = subprocess.Popen(_cmd(out, 100_000, workers), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        if workers > 1:  # the render processes have started (their GL contexts exist)
            wait_until(lambda: len(_children(proc.pid)) >= workers, "the workers to start")
        if wait_for:
            wait_until(lambda: out.is_dir() and len(complete_layouts(out)) >= wait_for,
                       "layouts to complete")
        else:
            wait_until(lambda: (out / "run.yaml").is_file(), "run.yaml")
        workers_pids = _children(proc.pid)
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, stderr
        assert "Finished layouts are kept" in stderr and "Traceback" not in stderr
    wait_until(lambda: not any(pid_alive(p) for p in workers_pids), "the workers to die")
    done = len(complete_layouts(out))
    assert done < 100_000
    _no_half_folders(out)
    _resume_and_read_back(out, 4)
