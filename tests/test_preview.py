from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from carla4agt.cli import cli
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


def test_preview_and_stats_of_hdf5(tmp_path, small_raw):
    from carla4agt_data.dataset import open_dataset
    from carla4agt_data.pack import pack
    from carla4agt_data.stats import compute_stats

    path = pack(small_raw, tmp_path / "d.h5", workers=1, progress=False).path
    ds = open_dataset(path)
    lid = str(ds.layout_ids[1])
    result = CliRunner().invoke(cli, ["preview", str(path), "-o", str(tmp_path / "s.png"),
                                      "--layouts", lid, "--tile-width", "64"])
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "s.png")).shape == (32, 5 * 64, 3)
    stats = compute_stats(path, sample=3)
    raw_stats = compute_stats(small_raw, sample=3)
    total = sum(c.sum() for c in stats.class_pixels.values())
    assert total == ds.class_pixels.sum() == sum(c.sum() for c in raw_stats.class_pixels.values())
    assert stats.luminance["night"][0] < stats.luminance["noon"][0]
    assert stats.luminance == raw_stats.luminance
    result = CliRunner().invoke(cli, ["stats", str(path), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0 and "building" in result.stdout
    assert Image.open(tmp_path / "p.png").width == 900
