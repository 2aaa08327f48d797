"""Metrics named by protocol (issue 14, item 2), on matrices and models with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torch import nn

from carla4agt.cli import cli
from carla4agt_data.taxonomy import CLASSES_19
from loaders.transforms import MEAN, STD
from training.metrics import ConfusionMatrix
from training.model import SegModel

NAMES19 = [c.name for c in CLASSES_19]


def test_19_class_matrix_by_hand():
    cm = ConfusionMatrix(19)
    for c in range(19):  # every class right on 10 pixels
        cm.matrix[c, c] = 10
    cm.matrix[NAMES19.index("terrain"), NAMES19.index("vegetation")] = 10  # terrain -> veg.
    cm.matrix[NAMES19.index("wall"), NAMES19.index("road")] = 10  # wall -> road
    p = cm.protocols()
    assert set(p) == {"miou19", "miou16", "miou16_daformer", "miou13"}
    # 19: terrain 10/20, vegetation 10/20, wall 10/20, road 10/20, 15 others 1
    assert p["miou19"] == pytest.approx((15 + 4 * 0.5) / 19)
    # ours: terrain pixels are not counted, so vegetation is perfect; wall and road half
    assert p["miou16"] == pytest.approx((14 + 2 * 0.5) / 16)
    # DAFormer's: terrain pixels predicted as vegetation are false positives of vegetation
    assert p["miou16_daformer"] == pytest.approx((13 + 3 * 0.5) / 16)
    # 13 classes (no wall, fence, pole): road is the only imperfect one
    assert p["miou13"] == pytest.approx((12 + 0.5) / 13)
    assert cm.miou13() == p["miou13"]


def test_16_class_matrix_has_no_19_class_protocols():
    cm = ConfusionMatrix(16)
    cm.matrix += torch.eye(16, dtype=torch.int64)
    assert cm.protocols() == {"miou16": 1.0, "miou13": 1.0}


class Oracle(nn.Module):
    """Reads the class from the red channel (class * 10): right everywhere."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.k = num_classes
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, 0] * STD[0] + MEAN[0]
        cls = torch.round(red / 10).long().clamp(0, self.k - 1)
        return F.one_hot(cls, self.k).permute(0, 3, 1, 2).float() + 0 * self.unused


def oracle(num_classes: int) -> nn.Module:
    return Oracle(num_classes)


def _cityscapes(root):
    rng = np.random.default_rng(0)
    for i in range(2):
        label = np.kron(rng.integers(0, 19, (4, 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
        label[0, :5] = 255
        red = np.where(label == 255, 0, label * 10).astype(np.uint8)
        image = np.stack([red, red, red], -1)
        for kind, name, arr in (("leftImg8bit", "leftImg8bit", image),
                                ("gtFine", "gtFine_labelTrainIds", label)):
            folder = root / kind / "val" / "city"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(folder / f"city_{i:06d}_000019_{name}.png")


def test_a_19_class_model_right_everywhere_scores_100_on_cityscapes(tmp_path):
    _cityscapes(tmp_path / "cs")
    model = SegModel(Oracle(19))
    torch.save({"model": model.state_dict(), "num_classes": 19, "step": 1,
                "model_name": "tests.test_training_metrics:oracle"}, tmp_path / "o.pt")
    result = CliRunner().invoke(cli, [
        "evaluate", "--checkpoint", str(tmp_path / "o.pt"), "--model",
        "tests.test_training_metrics:oracle", "--cityscapes", str(tmp_path / "cs"),
        "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    for key in ("miou19", "miou16", "miou16_daformer", "miou13"):
        assert report[key] == pytest.approx(1.0), key
    assert "DAFormer" in report["protocols"]["miou16_daformer"]
    assert "mIoU16 (DAFormer) 100.00%" in result.output
