"""verify at small sizes: graded faults are caught, lighting is not a fault, warnings pass
unless --strict, and every verify reads the file as it is now."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from carla4agt.cli import cli
from carla4agt_data import imagejudge
from carla4agt_data.pack import pack
from carla4agt_data.raw import read_rgb, read_tags
from carla4agt_data.verify import Limits, verify


def warp(rgb: np.ndarray, shift: float = 0.0, zoom: float = 0.0, degrees: float = 0.0):
    """The image of a camera moved sideways by ``shift`` px, zoomed by ``zoom`` % and rolled
    by ``degrees`` about the image centre (bicubic)."""
    h, w = rgb.shape[:2]
    s, a, pad = 1 + zoom / 100, np.radians(degrees), 8
    cos, sin = np.cos(a) / s, np.sin(a) / s
    cx, cy = w / 2, h / 2
    coeffs = (cos, sin, cx - shift - cos * cx - sin * cy + pad,
              -sin, cos, cy + sin * cx - cos * cy + pad)
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return np.asarray(Image.fromarray(padded).transform(
        (w, h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BICUBIC))


def save_planted(folder, name, array):
    """Write an image and its checksum, as a renderer with this fault would."""
    Image.fromarray(array).save(folder / name)
    marker = json.loads((folder / "commit.json").read_text())
    marker["files"][name]["sha256"] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "commit.json").write_text(json.dumps(marker))


@pytest.fixture
def raw(tmp_path, small_raw):
    return shutil.copytree(small_raw, tmp_path / "raw")


def _folder(raw, i):
    return sorted(p for p in raw.iterdir() if p.is_dir())[i]


def _failed(report, check):
    return {(f.layout, f.appearance) for f in report.failures if f.check == check}


# at 256x128 a 1 % zoom moves the farthest tile about 1 px; 2 % is the small-image twin
@pytest.mark.parametrize("fault", [{"shift": 1.0}, {"zoom": 2.0}, {"degrees": 0.5}])
def test_graded_camera_faults_fail(raw, fault):
    folder = _folder(raw, 1)
    save_planted(folder, "fog.png", warp(read_rgb(folder / "fog.png"), **fault))
    report = verify(raw, workers=1, progress=False)
    assert {(f.check, f.layout, f.appearance) for f in report.failures} == {
        ("alignment", folder.name, "fog")}, report.summary()


def test_tag_region_16px_fails(raw):
    folder = _folder(raw, 0)
    tags = read_tags(folder / "night.tags.png").copy()
    tags[30:46, 60:76] = (tags[30:46, 60:76].astype(int) + 1) % 256
    save_planted(folder, "night.tags.png", tags)
    report = verify(raw, workers=1, progress=False)
    finding = next(f for f in report.failures if f.check == "label_identity")
    assert (finding.layout, finding.appearance, finding.details["pixels"]) == (
        folder.name, "night", 256)


def test_appearance_swapped_with_another_layouts_fails(raw):
    folder, other = _folder(raw, 0), _folder(raw, 2)
    save_planted(folder, "noon.png", read_rgb(other / "noon.png"))
    report = verify(raw, workers=1, progress=False)
    assert (folder.name, "noon") in _failed(report, "alignment") | _failed(report, "label_fit")
    assert {lid for lid, _ in _failed(report, "alignment") | _failed(report, "label_fit")} == {
        folder.name}


def test_swapped_presets_fail(raw):
    """noon's image saved as night and night's as noon: same geometry, wrong names."""
    folder = _folder(raw, 2)
    noon, night = read_rgb(folder / "noon.png"), read_rgb(folder / "night.png")
    save_planted(folder, "noon.png", night)
    save_planted(folder, "night.png", noon)
    report = verify(raw, workers=1, progress=False)
    assert {(f.check, f.layout, f.appearance) for f in report.failures} == {
        ("distinct", folder.name, "night")}, report.summary()
    assert "night is not darker than noon" in report.failures[0].message


def test_long_shadows_are_not_a_fault(raw):
    """Dark diagonal bands (a low sun's shadows) over the sunset image move no edge."""
    folder = _folder(raw, 1)
    rgb = read_rgb(folder / "sunset.png").astype(np.float32)
    h, w = rgb.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    shadow = ((x + 2 * y) // 9) % 3 == 0
    rgb[shadow] *= 0.35
    save_planted(folder, "sunset.png", rgb.astype(np.uint8))
    report = verify(raw, workers=1, progress=False)
    assert report.ok and not report.warnings, report.summary()


def test_warnings_pass_unless_strict(small_raw, tmp_path, monkeypatch):
    # Every clean layout is then a suspicion, never a failure.
    monkeypatch.setattr(imagejudge, "SHIFT", Limits(warn=0.0, fail=10.0))
    out = tmp_path / "r.json"
    args = ["verify", str(small_raw), "--workers", "1", "--no-progress", "--json", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "warning" in result.stdout and "FAILED" not in result.stdout
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["warnings"] > 0 and report["failures"] == 0
    assert {f["severity"] for f in report["findings"]} == {"warn"}
    strict = CliRunner().invoke(cli, [*args, "--strict"])
    assert strict.exit_code == 1 and "FAILED" in strict.stdout


def test_a_replaced_file_is_read_anew(small_raw, tmp_path):
    """One process: verify, replace the file by a broken one, verify again (issue 12)."""
    h5 = pack(small_raw, tmp_path / "d.h5", workers=1, progress=False).path
    broken = tmp_path / "broken.h5"
    shutil.copy(h5, broken)
    with h5py.File(broken, "a") as f:
        label = f["label"][0]
        label[5:7, 5:7] = 40
        f["label"][0] = label
    assert verify(h5, workers=1, progress=False).ok
    os.replace(broken, h5)
    report = verify(h5, workers=1, progress=False)
    assert any(f.check == "label_values" for f in report.findings), report.summary()
