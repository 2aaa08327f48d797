from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from carla4agt_data.cli import cli
from carla4agt_data.taxonomy import CLASSES_16


def test_preview_contact_sheet(tmp_path, small_raw):
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["preview", str(small_raw), "-o", str(out),
                                      "--tile-width", "128"])
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (3 * 64, 5 * 128, 3)  # 3 layouts x (4 appearances + label)
    label_tile = sheet[64:128, 4 * 128:]
    colours = {tuple(c) for c in label_tile.reshape(-1, 3)}
    assert {(128, 64, 128), (70, 130, 180)} <= colours  # road and sky in the palette
    assert len(colours & {c.color for c in CLASSES_16}) >= 4
    night, noon = sheet[:64, 2 * 128:3 * 128], sheet[:64, :128]
    assert night.mean() < noon.mean()


def test_preview_unknown_layout(tmp_path, small_raw):
    result = CliRunner().invoke(cli, ["preview", str(small_raw), "-o", str(tmp_path / "s.png"),
                                      "--layouts", "nope"])
    assert result.exit_code == 1
    assert "no complete layout named nope" in result.stderr
