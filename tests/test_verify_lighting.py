"""Built-in layouts that once fooled verify (issue 16), at full size: clean ones whose low
sun failed it, and a planted rotation it let pass.

`carla4agt generate --layouts N --shard I/N` renders exactly layout I of an N-layout run;
at smaller sizes these layouts never showed the problems.
"""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data.imagechecks import actor_boxes
from carla4agt_data.pack import pack
from carla4agt_data.raw import read_rgb
from carla4agt_data.verify import verify

from .test_verify_faults import save_planted, warp

# 919 and 4644: sunset label_fit false alarms of the old checks; 3164: of an earlier fix;
# 1095: long sunset shadows across low-contrast boundaries (once a warning);
# 3121: night lamps gave one far tile a clear but wrong peak (a zoom and rotation).
LAYOUTS = (919, 4644, 3164, 1095, 3121)
ACTORS = (10, 11, 12, 13, 14, 15)  # person .. bicycle in the 16 classes


@pytest.mark.slow
def test_sunset_layouts_of_the_5000_run_pass(tmp_path):
    raw = tmp_path / "raw"
    for i in LAYOUTS:
        result = CliRunner().invoke(cli, [
            "generate", "--layouts", "5000", "--shard", f"{i}/5000", "--out", str(raw),
            "--no-pack", "--no-progress", "--backend", "builtin", "--workers", "1"])
        assert result.exit_code == 0, result.output
    h5 = pack(raw, tmp_path / "d.h5", workers=1, progress=False).path
    for path in (raw, h5):
        report = verify(path, workers=1, progress=False)
        assert report.layouts == len(LAYOUTS)
        assert report.ok, report.summary()
        assert not report.warnings, report.summary()
    # the same layouts with one actor's label from the next frame: moved 4 px sideways
    with h5py.File(h5, "a") as f:
        for i in range(len(LAYOUTS)):
            label = f["label"][i]
            f["label"][i] = _move_largest_actor(label, 4)
            f["class_pixels"][i] = np.bincount(f["label"][i].ravel(), minlength=256)[:16]
        ids = set(f["layout_id"].asstr()[...])
    report = verify(h5, workers=1, progress=False)
    # caught in 61 % of 1,000 layouts (README), named at least as a suspicion here
    found = [f for f in report.findings if f.check == "label_fit" and "actor" in f.message]
    assert {f.layout for f in found} >= ids - {"builtin-0-001095"}, report.summary()
    assert sum(f.severity == "fail" for f in found) >= 2, report.summary()


def _move_largest_actor(label: np.ndarray, pixels: int) -> np.ndarray:
    actor = np.isin(label, ACTORS)
    y0, y1, x0, x1 = actor_boxes(label, np.isin(np.arange(256), ACTORS))[0]
    box = np.zeros_like(actor)
    box[y0:y1, x0:x1] = True
    mine = actor & box
    out = label.copy()
    around = label[y0:y1, x0:x1][~actor[y0:y1, x0:x1]]
    out[mine] = np.bincount(around).argmax()  # what was behind it
    out[np.roll(mine, pixels, axis=1)] = label[mine][0]
    return out


@pytest.mark.slow
def test_rotation_of_half_a_degree_in_a_layout_whose_structure_crowds_the_middle(tmp_path):
    """Layout 594 of the 1,000-layout calibration set: its richest label boundaries all lie
    near the image centre, where a 0.5 degree roll moves them under 1 px. Tiles spread over
    the image see it (4 px at the edges)."""
    raw = tmp_path / "raw"
    result = CliRunner().invoke(cli, [
        "generate", "--layouts", "1000", "--shard", "594/1000", "--out", str(raw), "--no-pack",
        "--no-progress", "--backend", "builtin", "--workers", "1"])
    assert result.exit_code == 0, result.output
    folder = raw / "builtin-0-000594"
    assert verify(raw, workers=1, progress=False).ok
    save_planted(folder, "night.png", warp(read_rgb(folder / "night.png"), degrees=0.5))
    report = verify(raw, workers=1, progress=False)
    assert {(f.check, f.appearance) for f in report.failures} == {("alignment", "night")}, (
        report.summary())
    assert re.search(r"rotated by -?0\.(4[5-9]|5\d) degrees", report.failures[0].message), (
        report.summary())
