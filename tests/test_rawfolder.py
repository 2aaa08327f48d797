"""RawFolder: the one reader of the raw format (pack, stats, preview and verify use it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from carla4agt_data.errors import MissingFileError, UserError
from carla4agt_data.names import InvalidNameError, check_layout_id
from carla4agt_data.raw import MARKER, RawFolder
from carla4agt_data.taxonomy import tag_lut


@pytest.fixture
def raw(tmp_path, small_raw):
    return shutil.copytree(small_raw, tmp_path / "raw")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reads_what_generate_wrote(small_raw):
    raw = RawFolder(small_raw)
    assert len(raw) == 3 and raw.appearances == ("noon", "sunset", "night", "fog")
    lid = raw.ids[1]
    folder = small_raw / lid
    with Image.open(folder / "night.png") as im:
        np.testing.assert_array_equal(raw.read_rgb(lid, "night"), np.asarray(im.convert("RGB")))
    with Image.open(folder / "noon.tags.png") as im:
        tags = np.asarray(im)
    np.testing.assert_array_equal(raw.read_tags(lid, "noon"), tags)
    np.testing.assert_array_equal(raw.read_label(lid), tag_lut("0.9.16")[tags])
    np.testing.assert_array_equal(raw.read_label(lid, 19), tag_lut("0.9.16", 19)[tags])
    assert set(raw.checksums(lid)) == {"layout.yaml", *(f"{a}{s}" for a in raw.appearances
                                                        for s in (".png", ".tags.png"))}
    layout = raw.read_layout(lid)
    assert layout.rgb.shape == (4, 128, 256, 3) and layout.tags.shape == (4, 128, 256)
    assert layout.layout_yaml == (folder / "layout.yaml").read_text()
    assert raw.size_of(lid) == (256, 128) and raw.run_id and lid in raw


def test_listing_tells_complete_incomplete_in_flight_and_foreign(raw):
    victim = RawFolder(raw).ids[2]
    (raw / victim / MARKER).unlink()
    (raw / f".builtin-0-000099.tmp-{os.getpid()}").mkdir()  # being written by a live process
    (raw / f".builtin-0-000098.tmp-{_dead_pid()}").mkdir()  # left by a killed run
    (raw / "has space").mkdir()
    listing = RawFolder(raw)
    assert len(listing.ids) == 2 and listing.incomplete == (victim,)
    assert listing.in_flight == {"builtin-0-000099": os.getpid()}
    assert listing.foreign == ("has space",)
    with pytest.raises(MissingFileError, match="no complete layout"):
        listing.read_rgb(victim, "noon")


@pytest.mark.parametrize("field, value, message", [
    ("appearances", "noon", "should be a list of names"),
    ("appearances", ["../../x"], "cannot be used as a file name"),
    ("appearances", ["noon", "noon"], "twice"),
    ("appearances", [], "is empty"),
    ("size", [256], "should be \\[width, height\\]"),
    ("size", [10**9, 128], "should be \\[width, height\\]"),
    ("tag_table", "9.9", "field 'tag_table'"),
    ("files", [], "field 'files'"),
])
def test_bad_markers_are_named(raw, field, value, message):
    lid = RawFolder(raw).ids[0]
    path = raw / lid / MARKER
    marker = json.loads(path.read_text())
    marker[field] = value
    path.write_text(json.dumps(marker))
    with pytest.raises(UserError, match=message) as info:
        RawFolder(raw).read_rgb(lid, "noon")
    assert str(path) in str(info.value)


def test_images_are_checked_against_marker_and_checksum(raw):
    folder = RawFolder(raw)
    lid = folder.ids[0]
    (raw / lid / "fog.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="fog.png: its content does not match"):
        RawFolder(raw).read_rgb(lid, "fog")
    with pytest.raises(UserError, match="no appearance 'dusk'"):
        RawFolder(raw).read_rgb(lid, "dusk")


def test_errors_are_value_errors_and_names_follow_one_rule(tmp_path):
    with pytest.raises(FileNotFoundError):
        RawFolder(tmp_path / "missing")
    with pytest.raises(ValueError):
        RawFolder(tmp_path / "missing")
    for bad in ("../x", "/abs", ".hidden", "a\n", "", "x" * 129, "a/b", "a..b"):
        with pytest.raises(InvalidNameError):
            check_layout_id(bad)
    assert check_layout_id("builtin-0-000001") == "builtin-0-000001"
