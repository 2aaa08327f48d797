"""A full disk during render or a checkpoint save: one message naming the user's file, no
traceback, nothing half-written left (issue 13, defect 13)."""

from __future__ import annotations

import errno
import pathlib
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from generator.runner import _plain
from tests.synthetic import synthetic_dataset


def _full_disk_on(suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pathlib.Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if self.name.endswith(suffix):  # what a full disk raises: no file name at all
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


def test_render_on_a_full_disk_names_the_layout_folder(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _full_disk_on(".tags.png", monkeypatch)
    out = tmp_path / "raw"
    res = CliRunner().invoke(cli, ["generate", "--layouts", "1", "--size", "64x32",
                                   "--weathers", "noon,fog", "--out", str(out), "--workers",
                                   "1", "--backend", "builtin", "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert f"{out / 'builtin-0-000000'}: no space left" in res.output
    assert "free there" in res.output and ".tmp" not in res.output
    assert [p.name for p in out.iterdir()] == ["run.yaml"]  # nothing half-written


def test_worker_errors_keep_errno_and_file_across_processes() -> None:
    sent = _plain(OSError(errno.ENOSPC, "No space left on device", "raw/x"))
    got = pickle.loads(pickle.dumps(sent))
    assert isinstance(got, OSError) and got.errno == errno.ENOSPC and got.filename == "raw/x"


def test_checkpoint_on_a_full_disk_is_one_message(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import training.loop

    def save(*args: object, **kwargs: object) -> None:  # what torch raises on a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(training.loop, "free_bytes", lambda path: 0)
    data = synthetic_dataset(tmp_path / "d.h5", layouts=4, size=(64, 32), block=8)
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", "--data", str(data), "--out", str(out),
                                   "--recipe", "quick", "--iters", "1", "--batch", "2",
                                   "--crop", "32", "--workers", "0", "--no-progress"])
    assert res.exit_code == 1, res.output
    assert f"{out / 'last.pt'}: no space left" in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in out.iterdir()) == ["log.csv", "run.yaml"]
