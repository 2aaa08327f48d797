"""Kill points for `carla4agt train` (issue 13): SIGKILL, SIGTERM and SIGINT at several
moments, then the same command (with --resume where a checkpoint exists) finishes and every
output reads back completely. Synchronised on files the run writes, never on sleeps alone."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .synthetic import synthetic_dataset

ROOT = Path(__file__).resolve().parent.parent
ITERS = 60


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "carla4agt", "train", "--recipe", "quick", "--data",
            str(data), "--out", str(out), "--iters", str(ITERS), "--batch", "2", "--crop", "32",
            "--workers", "0", "--checkpoint-every", "2", "--no-progress", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_dataset(tmp_path_factory.mktemp("kill") / "d.h5", layouts=8,
                             size=(64, 32), block=8)


@pytest.mark.slow
@pytest.mark.parametrize("sig,marker", [
    (signal.SIGKILL, "run.yaml"),  # before any checkpoint
    (signal.SIGKILL, "last.pt"),  # mid-run, a checkpoint on disk
    (signal.SIGTERM, "last.pt"),
    (signal.SIGINT, "last.pt"),
], ids=["kill-at-start", "kill-mid-run", "term-mid-run", "int-mid-run"])
def test_kill_train_then_finish_and_read_back(data: Path, tmp_path: Path, sig: int,
                                              marker: str) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(data, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    try:
        while not (out / marker).exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the kill point"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in stderr, stderr
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # no temporaries left
    kept = out / "last.pt"
    if kept.exists():  # whatever is on disk under the real name is complete
        assert torch.load(kept, weights_only=True)["step"] % 2 == 0
    again = subprocess.run(_cmd(data, out, *(["--resume"] if kept.exists() else [])),
                           capture_output=True, text=True, env=_env(), timeout=600)
    assert again.returncode == 0, again.stderr
    state = torch.load(kept, weights_only=True)
    assert state["step"] == ITERS
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    with open(out / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # every step exactly once: rows past the kept checkpoint were done again, none lost
    assert [int(r["step"]) for r in rows] == list(range(1, ITERS + 1))
    assert all(r["loss"] for r in rows)
