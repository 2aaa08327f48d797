"""verify fails files it used to pass (issue 13, defect 11), each with one clear finding and
no traceback; a running generate's layouts in flight are named, not silently passed."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data.pack import pack
from carla4agt_data.verify import verify


def _break_ids(f):
    ids = f["layout_id"].asstr()[...]
    f["layout_id"][1] = ids[0]


def _float_images(f):
    shape = f["rgb"].shape
    del f["rgb"]
    f.create_dataset("rgb", shape=shape, dtype="float32")


def _split_7(f):
    f["split"][2] = 7


def _appearances(f):
    f.attrs["appearances"] = ["noon", "noon", "night", "fog"]


def _versions(f):
    f.attrs["versions"] = "{not json"


H5_CASES = {
    "duplicate layout ids": (_break_ids, "more than once: builtin-7-000000"),
    "repeated appearance names": (_appearances, "repeats noon"),
    "float images": (_float_images, "'rgb' is float32"),
    "split value 7": (_split_7, "split values [7]"),
    "bad versions attribute": (_versions, "'versions'"),
}


@pytest.fixture(scope="module")
def packed(small_raw, tmp_path_factory):
    path = pack(small_raw, tmp_path_factory.mktemp("h5") / "d.h5", workers=1,
                progress=False).path
    assert verify(path, workers=1, progress=False).ok
    return path


@pytest.mark.parametrize("case", list(H5_CASES))
def test_broken_hdf5_fails(tmp_path, packed, case):
    path = shutil.copy(packed, tmp_path / "d.h5")
    change, words = H5_CASES[case]
    with h5py.File(path, "a") as f:
        change(f)
    result = CliRunner().invoke(cli, ["verify", str(path), "--no-progress", "--workers", "1"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert words in result.stdout and "integrity" in result.stdout


def test_zero_layouts_fail(tmp_path, packed):
    path = shutil.copy(packed, tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        for name in ("rgb", "label", "layout_id", "layout_yaml", "split", "class_pixels",
                     "ignore_pixels", "label_mismatch"):
            data = f[name]
            shape, dtype = (0, *data.shape[1:]), data.dtype
            del f[name]
            f.create_dataset(name, shape=shape, dtype=dtype)
    report = verify(path, workers=1, progress=False)
    assert not report.ok
    assert any("no layouts" in f.message for f in report.failures), report.summary()


@pytest.fixture
def raw(tmp_path, small_raw):
    return shutil.copytree(small_raw, tmp_path / "raw")


def _folder(raw, i=0):
    return sorted(p for p in raw.iterdir() if p.is_dir())[i]


def test_commit_marker_without_checksums_fails(raw):
    folder = _folder(raw)
    marker = json.loads((folder / "commit.json").read_text())
    del marker["files"]
    (folder / "commit.json").write_text(json.dumps(marker))
    report = verify(raw, workers=1, progress=False)
    assert [(f.check, f.layout) for f in report.failures] == [("integrity", folder.name)]
    assert "field 'files': should map file names to checksums" in report.failures[0].message


def test_layout_without_layout_yaml_fails(raw):
    folder = _folder(raw, 1)
    (folder / "layout.yaml").unlink()
    report = verify(raw, workers=1, progress=False)
    assert [(f.check, f.layout) for f in report.failures] == [("completeness", folder.name)]
    assert "layout.yaml: missing" in report.failures[0].message


def test_a_layout_copied_under_another_name_fails(raw):
    copy = raw / "builtin-7-000099"
    shutil.copytree(_folder(raw, 0), copy)
    report = verify(raw, workers=1, progress=False)
    assert {(f.check, f.layout) for f in report.failures} == {("integrity", copy.name)}
    assert "names layout 'builtin-7-000000'" in report.failures[0].message


def test_repeated_appearances_in_a_commit_marker_fail(raw):
    folder = _folder(raw, 2)
    marker = json.loads((folder / "commit.json").read_text())
    marker["appearances"] = [*marker["appearances"], "fog"]
    (folder / "commit.json").write_text(json.dumps(marker))
    report = verify(raw, workers=1, progress=False)
    assert [(f.check, f.layout) for f in report.failures] == [("integrity", folder.name)]
    assert "lists 'fog' twice" in report.failures[0].message


def test_layouts_in_flight_are_named(raw, tmp_path):
    # what raw.py writes while a layout is being assembled, by a process that is alive
    (raw / f".builtin-7-000003.tmp-{os.getpid()}").mkdir()
    (raw / ".builtin-7-000004.tmp-999999999").mkdir()  # left by a dead process: not in flight
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["verify", str(raw), "--no-progress", "--workers", "1",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "All checks passed" not in result.stdout
    assert "1 layouts are being written right now" in result.stdout
    warning = json.loads(out.read_text())["findings"][0]
    assert warning["severity"] == "warn" and warning["details"]["in_flight"] == 1
    strict = CliRunner().invoke(cli, ["verify", str(raw), "--no-progress", "--strict",
                                      "--workers", "1"])
    assert strict.exit_code == 1
