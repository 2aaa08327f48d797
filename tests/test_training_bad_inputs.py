"""Bad input to train and evaluate (issue 13, defects 4, 9, 16, 17): exit code 1 or 2, no
traceback, the user's value or path named, nothing NaN written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from carla4agt.cli import cli

from .synthetic import synthetic_dataset

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny dataset, one with no val layouts, a trained checkpoint and bad files."""
    root = tmp_path_factory.mktemp("bad")
    data = synthetic_dataset(root / "syn.h5", layouts=8, size=(64, 32), block=8,
                             ratios=(0.6, 0.4, 0.0))
    synthetic_dataset(root / "noval.h5", layouts=4, size=(64, 32), block=8,
                      ratios=(1.0, 0.0, 0.0))
    result = CliRunner().invoke(cli, ["train", "--recipe", "quick", "--data", str(data), "--out",
                                      str(root / "run"), "--iters", "1", "--batch", "2",
                                      "--crop", "32", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    state = torch.load(root / "run" / "last.pt", weights_only=True)
    torch.save({**state, "model_name": "this:x"}, root / "code.pt")
    torch.save(state["model"], root / "plain.pt")
    torch.save([1, 2, 3], root / "list.pt")
    (root / "junk.pt").write_bytes(b"PK\x03\x04 not really a zip")
    torch.save({"something.else": torch.zeros(3)}, root / "mismatch.pt")
    (root / "run.yaml").write_text("- a list\n- not a mapping\n")
    (root / "code.yaml").write_text(f"data: {data}\nout: {root / 'x'}\nmodel: os:system\n")
    (root / "typo.yaml").write_text("lrr: 0.1\n")
    (root / "badlr.yaml").write_text("lr: -0.5\n")
    target = root / "target" / "images"
    target.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(target / "0.png")
    return root


def _train(root, *extra):
    return ["train", "--recipe", "quick", "--data", str(root / "syn.h5"), "--out",
            str(root / "out"), "--iters", "2", "--batch", "2", "--crop", "32", "--workers", "0",
            *extra]


def _eval(root, checkpoint, *extra):
    return ["evaluate", "--checkpoint", str(root / checkpoint), "--data", str(root / "syn.h5"),
            *extra]


# (name, command builder, exit code, text the message must contain ({root}: the folder)).
# A bad value on the command line is a usage error (2), as in generate; in a file, or one
# that does not fit the data (a crop larger than its images), 1.
CASES = [
    ("lr negative", lambda r: _train(r, "--lr", "-1"), 2, "--lr -1"),
    ("lr nan", lambda r: _train(r, "--lr", "nan"), 2, "--lr nan"),
    ("lr not a number", lambda r: _train(r, "--lr", "fast"), 2, "'fast'"),
    ("align weight nan", lambda r: _train(r, "--align-weight", "nan"), 2, "--align-weight nan"),
    ("iters 0", lambda r: _train(r, "--iters", "0"), 2, "--iters 0"),
    ("batch 1", lambda r: _train(r, "--batch", "1"), 2, "--batch 1"),
    ("crop too large", lambda r: _train(r, "--crop", "4096"), 1, "--crop 4096"),
    ("crop absurd", lambda r: _train(r, "--crop", "100000"), 2, "--crop 100000"),
    ("ema above 1", lambda r: _train(r, "--ema", "1.5"), 2, "--ema 1.5"),
    ("device foo", lambda r: _train(r, "--device", "foo"), 1, "--device 'foo'"),
    ("device cuda without gpu", lambda r: _train(r, "--device", "cuda:7"), 1, "--device cuda:7"),
    ("weights junk", lambda r: _train(r, "--weights", str(r / "junk.pt")), 1, "junk.pt"),
    ("weights missing", lambda r: _train(r, "--weights", str(r / "nope.pt")), 1, "nope.pt"),
    ("weights mismatched", lambda r: _train(r, "--pretrained", str(r / "mismatch.pt")), 1,
     "mismatch.pt: its weights do not fit"),
    ("weights a list", lambda r: _train(r, "--weights", str(r / "list.pt")), 1, "list.pt"),
    ("unknown model", lambda r: _train(r, "--model", "unet"), 1, "'unet'"),
    ("unknown appearance", lambda r: _train(r, "--appearances", "noon,rain"), 1, "'rain'"),
    ("uda without target", lambda r: _train(r, "--mode", "uda"), 1, "--target"),
    ("config not a mapping", lambda r: _train(r, "--config", str(r / "run.yaml")), 1,
     "run.yaml"),
    ("config names code", lambda r: ["train", "--config", str(r / "code.yaml")], 1,
     "'os:system'"),
    ("config typo", lambda r: _train(r, "--config", str(r / "typo.yaml")), 1, "lrr"),
    ("config lr negative", lambda r: _train(r, "--config", str(r / "badlr.yaml")), 1,
     "--lr -0.5: must be a finite number above 0 and at most 1000 (from {root}/badlr.yaml)"),
    ("config lr overridden badly", lambda r: _train(r, "--config", str(r / "badlr.yaml"),
                                                    "--lr", "-2"), 2, "--lr -2.0: must be"),
    ("recipe unknown", lambda r: _train(r, "--recipe", "hrda"), 2, "'hrda'"),
    ("evaluate checkpoint names code", lambda r: _eval(r, "code.pt"), 1, "'this:x'"),
    ("evaluate plain state dict", lambda r: _eval(r, "plain.pt"), 1, "plain.pt: a plain state"),
    ("evaluate a list", lambda r: _eval(r, "list.pt"), 1, "list.pt: holds a list"),
    ("evaluate junk", lambda r: _eval(r, "junk.pt"), 1, "junk.pt"),
    ("evaluate empty split", lambda r: _eval(r, "run/last.pt", "--split", "test"), 1,
     "no layouts in the split 'test'"),
    ("evaluate device foo", lambda r: _eval(r, "run/last.pt", "--device", "foo"), 1, "'foo'"),
]


@pytest.mark.parametrize("name, build, code, text", CASES, ids=[c[0] for c in CASES])
def test_bad_input(files, name, build, code, text):
    result = CliRunner().invoke(cli, [*build(files), "--no-progress"])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == code, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert text.format(root=files) in output, output
    assert not (files / "out" / "last.pt").exists()  # nothing written for a refused run


def test_code_named_by_a_checkpoint_is_never_imported(files, tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "evil_model.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                            "def build(num_classes): pass\n")
    state = torch.load(files / "run" / "last.pt", weights_only=True)
    torch.save({**state, "model_name": "evil_model:build"}, tmp_path / "evil.pt")
    sys.path.insert(0, str(tmp_path))
    try:
        result = CliRunner().invoke(cli, _eval(files, tmp_path / "evil.pt", "--no-progress"))
    finally:
        sys.path.remove(str(tmp_path))
    assert result.exit_code == 1 and "may not name code to import" in result.stderr
    assert not marker.exists()


class _NanAfterOne(torch.nn.Module):
    """A model whose second forward pass returns NaN logits."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, num_classes, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.conv(x)
        return out * float("nan") if self.calls > 1 else out


def nan_after_one(num_classes: int) -> torch.nn.Module:
    return _NanAfterOne(num_classes)


def test_a_loss_that_becomes_nan_stops_without_writing_weights(files, tmp_path):
    out = tmp_path / "nan"
    result = CliRunner().invoke(cli, [
        "train", "--recipe", "quick", "--data", str(files / "syn.h5"), "--out", str(out),
        "--iters", "5", "--batch", "2", "--crop", "32", "--workers", "0", "--mode", "baseline",
        "--model", "tests.test_training_bad_inputs:nan_after_one", "--checkpoint-every", "1",
        "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "stopped being finite at step 2" in result.stderr
    assert f"{out / 'last.pt'} (step 1) is kept unchanged" in result.stderr
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_evaluate_json_has_no_nan(files, tmp_path):
    result = CliRunner().invoke(cli, _eval(files, "run/last.pt", "--json",
                                           str(tmp_path / "e.json"), "--no-progress"))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "e.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


def _stub_without_torch(folder: Path) -> dict[str, str]:
    for name in ("torch", "torchvision"):
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")
    return {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"}


@pytest.mark.parametrize("command", ["evaluate", pytest.param("train", marks=pytest.mark.slow)])
def test_without_torch_installed(files, tmp_path, command):
    args = (_eval(files, "run/last.pt") if command == "evaluate" else _train(files))
    proc = subprocess.run([sys.executable, "-m", "carla4agt", *args], capture_output=True,
                          text=True, env=_stub_without_torch(tmp_path), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "pip install 'carla4agt[torch]'" in proc.stderr


@pytest.mark.slow
def test_sigterm_says_which_checkpoint_is_kept(files, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "carla4agt", *_train(files)[:5], "--out", str(out), "--iters",
         "100000", "--batch", "2", "--crop", "32", "--workers", "0", "--checkpoint-every", "2",
         "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        while not (out / "last.pt").exists():  # the marker: a first checkpoint
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr  # 128 + SIGTERM
    assert "Traceback" not in stderr and "Interrupted at step" in stderr
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert f"{out / 'last.pt'} from step {step} is kept" in stderr
