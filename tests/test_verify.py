"""verify: a clean set passes; every planted fault fails, naming the layout and the check."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data.pack import pack
from carla4agt_data.raw import read_rgb, read_tags
from carla4agt_data.verify import verify
from tests.test_verify_faults import save_planted


@pytest.fixture
def raw(tmp_path, small_raw):
    return shutil.copytree(small_raw, tmp_path / "raw")


@pytest.fixture
def h5(tmp_path, small_raw):
    return pack(small_raw, tmp_path / "d.h5", workers=1, progress=False).path


def _layout(raw, i=1):
    return sorted(p for p in raw.iterdir() if p.is_dir())[i]


def _failed(report, check):
    return {(f.layout, f.appearance) for f in report.findings if f.check == check}


def test_clean_raw_and_hdf5_pass(small_raw, h5, tmp_path):
    for path in (small_raw, h5):
        report = verify(path, workers=1, progress=False)
        assert report.ok, report.summary()
        assert report.layouts == 3 and report.checked["alignment"] == 3
    result = CliRunner().invoke(cli, ["verify", str(h5), "--json", str(tmp_path / "r.json"),
                                      "--no-progress", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "All checks passed." in result.stdout and "FAILED" not in result.stdout
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True


def test_altered_tag_region(raw):
    folder = _layout(raw)
    tags = read_tags(folder / "sunset.tags.png").copy()
    tags[40:60, 100:120] = 20
    save_planted(folder, "sunset.tags.png", tags)
    report = verify(raw, workers=1, progress=False)
    finding = next(f for f in report.findings if f.check == "label_identity")
    assert (finding.layout, finding.appearance) == (folder.name, "sunset")
    assert finding.details["bbox_xyxy"][0] >= 100 and finding.details["bbox_xyxy"][2] <= 119
    assert finding.details["pixels"] <= 400
    tolerant = verify(raw, workers=1, tolerance=0.05, progress=False)
    assert not _failed(tolerant, "label_identity")


@pytest.mark.parametrize("shift", [(0, 2), (1, 0), (0, -1)])
def test_shifted_rgb(raw, shift):
    folder = _layout(raw, 2)
    rgb = np.roll(read_rgb(folder / "night.png"), shift, axis=(0, 1))
    save_planted(folder, "night.png", rgb)
    report = verify(raw, workers=1, progress=False)
    assert (folder.name, "night") in _failed(report, "alignment")
    finding = next(f for f in report.findings if f.check == "alignment")
    assert finding.appearance == "night" and finding.severity == "fail"
    assert np.allclose(finding.details["transform"]["shift"], shift, atol=0.25)


def test_appearance_replaced_by_a_copy(raw):
    folder = _layout(raw, 0)
    save_planted(folder, "fog.png", read_rgb(folder / "noon.png"))
    report = verify(raw, workers=1, progress=False)
    assert (folder.name, "fog") in _failed(report, "distinct")


def test_missing_and_truncated_files(raw):
    missing, truncated = _layout(raw, 0), _layout(raw, 1)
    (missing / "sunset.png").unlink()
    data = (truncated / "fog.png").read_bytes()
    (truncated / "fog.png").write_bytes(data[: len(data) // 2])
    report = verify(raw, workers=2, progress=False)
    assert (missing.name, "sunset") in _failed(report, "completeness")
    assert (truncated.name, "fog") in _failed(report, "integrity")  # fails its checksum
    assert not report.ok


def test_flipped_byte_in_an_hdf5_chunk(h5):
    with h5py.File(h5, "a") as f:
        mask, chunk = f["rgb"].id.read_direct_chunk((2, 1, 0, 0, 0))
        broken = bytearray(chunk)
        broken[len(broken) // 3] ^= 0x01
        f["rgb"].id.write_direct_chunk((2, 1, 0, 0, 0), bytes(broken), mask)
        lid = f["layout_id"].asstr()[2]
    report = verify(h5, workers=1, progress=False)
    assert (lid, "sunset") in _failed(report, "integrity")


def test_label_value_40(h5):
    with h5py.File(h5, "a") as f:
        label = f["label"][0]
        label[5:7, 5:7] = 40
        f["label"][0] = label
        lid = f["layout_id"].asstr()[0]
    report = verify(h5, workers=1, progress=False)
    assert (lid, None) in _failed(report, "label_values")
    assert "[40]" in next(f.message for f in report.findings if f.check == "label_values")


def test_schema_attribute_removed(h5):
    with h5py.File(h5, "a") as f:
        del f.attrs["schema_version"]
    result = CliRunner().invoke(cli, ["verify", str(h5), "--no-progress"])
    assert result.exit_code == 1
    assert "schema_version' is missing" in result.stdout and "integrity" in result.stdout


def test_usage_errors_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "nope.h5")])
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, ["verify", str(tmp_path), "--tolerance", "2"])
    assert result.exit_code == 2
