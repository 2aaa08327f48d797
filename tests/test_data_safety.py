"""Issue 13's data-side defects: nothing lost, nothing escapes, plain messages.

Each test here failed on the code before the fix it names (#N = item of issue 13).
"""

from __future__ import annotations

import fnmatch
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data import output as output_module
from carla4agt_data.dataset import open_dataset
from carla4agt_data.errors import UserError
from carla4agt_data.export import export
from carla4agt_data.fileio import temporary_name
from carla4agt_data.merge import merge
from carla4agt_data.pack import pack
from carla4agt_data.raw import RawFolder
from carla4agt_data.taxonomy import classes

from .synthetic import synthetic_dataset


def _run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def shards(tmp_path):
    """Two disjoint synthetic shards of one 'run'."""
    a = synthetic_dataset(tmp_path / "a.h5", layouts=3, seed=1)
    b = synthetic_dataset(tmp_path / "b.h5", layouts=3, seed=2)
    with h5py.File(b, "a") as f:  # disjoint ids
        ids = [f"other-{i}" for i in range(3)]
        f["layout_id"][...] = np.array(ids, dtype=object)
    for p in (a, b):
        with h5py.File(p, "a") as f:
            f.attrs["run_id"] = "run-1"
            f.attrs["dataset_id"] = p.stem
    return a, b


# --- #1 an output that is also an input -----------------------------------------------
@pytest.mark.parametrize("virtual", [False, True], ids=["copy", "virtual"])
def test_merge_refuses_an_output_that_is_an_input(tmp_path, shards, virtual):
    a, b = shards
    before = a.read_bytes()
    os.link(a, tmp_path / "alias.h5")  # the same file under another name (by inode)
    for out in (a, tmp_path / "alias.h5"):
        result = _run("merge", a, b, "-o", out, *(["--virtual"] if virtual else []),
                      "--no-progress")
        assert result.exit_code == 1, result.output
        assert "is also an input" in result.stderr and "Traceback" not in result.output
    assert a.read_bytes() == before
    assert len(open_dataset(a)) == 3


# --- #2 a virtual merge opened without, or with foreign, shards -------------------------
def test_virtual_merge_checks_its_shards(tmp_path, shards):
    a, b = shards
    merged = tmp_path / "m.h5"
    merge([a, b], merged, virtual=True, progress=False)
    assert len(open_dataset(merged)) == 6
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(b, elsewhere / "b.h5")
    with pytest.raises(UserError, match="b.h5, which is missing"):
        open_dataset(merged)
    # a same-named shard of another run in the current folder must not be picked up
    synthetic_dataset(tmp_path / "b.h5", layouts=3, seed=9)
    with pytest.raises(UserError, match="is not the shard it was made from"):
        open_dataset(merged)
    shutil.move(elsewhere / "b.h5", b)
    assert len(open_dataset(merged)) == 6  # the real shard is back


def test_virtual_merge_without_shards_fails_from_another_folder(tmp_path, shards):
    a, b = shards
    merge([a, b], tmp_path / "m.h5", virtual=True, progress=False)
    b.unlink()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    synthetic_dataset(cwd / "b.h5", layouts=3, seed=5)  # HDF5 would fall back to this one
    code = ("import sys; from carla4agt_data.dataset import open_dataset\n"
            "try: open_dataset(sys.argv[1])\nexcept ValueError as e: print('refused:', e)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.h5")], cwd=cwd,
                          capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("refused:") and "which is missing" in proc.stdout


# --- #3 names read from a file --------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("layout_id", "../../escaped"), ("layout_id", "/tmp/abs-escape"),
    ("appearances", ["../up", "sunset", "night", "fog"]),
])
def test_names_from_a_file_cannot_escape_the_export_folder(tmp_path, field, value):
    work = tmp_path / "work"
    work.mkdir()
    path = synthetic_dataset(work / "d.h5", layouts=2)
    with h5py.File(path, "a") as f:
        if field == "layout_id":
            f["layout_id"][0] = value
        else:
            f.attrs["appearances"] = value
    before = _files(tmp_path)
    result = _run("export", "gta", path, work / "out", "--no-progress")
    assert result.exit_code == 1 and "cannot be used as a" in result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.output
    assert _files(tmp_path) - before <= {"work/out"}
    assert not Path("/tmp/abs-escape_noon.png").exists()


# --- #7 another run's dataset ----------------------------------------------------------
def test_pack_never_replaces_another_runs_dataset(tmp_path, small_raw):
    out = tmp_path / "dataset.h5"
    synthetic_dataset(out, layouts=2)  # another run's dataset in the default place
    before = out.read_bytes()
    result = _run("pack", small_raw, "-o", out, "--no-progress", "--pack-workers", "1")
    assert result.exit_code == 1 and "--overwrite" in result.stderr
    assert out.read_bytes() == before
    pack(small_raw, out, workers=1, progress=False, overwrite=True)
    assert open_dataset(out).run_id == RawFolder(small_raw).run_id
    pack(small_raw, out, workers=1, progress=False)  # the same run: replaced quietly
    (tmp_path / "notes.h5").write_text("my notes")
    with pytest.raises(UserError, match="not a carla4agt dataset of this run"):
        pack(small_raw, tmp_path / "notes.h5", workers=1, progress=False)


# --- #8 temporaries of killed runs ----------------------------------------------------
def test_temporaries_match_no_reader_glob_and_stale_ones_are_swept(tmp_path, small_raw):
    for name in ("dataset.h5", "x_leftImg8bit.png", "y_labelTrainIds.png"):
        tmp = temporary_name(name)
        assert tmp.startswith(".")
        assert not any(fnmatch.fnmatch(tmp, g) for g in ("*.h5", "*.png", "*_leftImg8bit.png",
                                                          "*labelTrainIds.png"))
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".d.h5.tmp-{dead}-0123abcd"
    live = tmp_path / f".d.h5.tmp-{alive}-0123abcd"
    stale.write_bytes(b"left by a killed pack")
    live.write_bytes(b"another pack, still running")
    pack(small_raw, tmp_path / "d.h5", workers=1, progress=False)
    assert not stale.exists() and live.exists()
    out = tmp_path / "gta"
    staging = out / f".export.tmp-{dead}-0123abcd"
    staging.mkdir(parents=True)
    (staging / "half.png").write_bytes(b"\x89PNG half")
    export(tmp_path / "d.h5", out, "gta", progress=False)
    assert not staging.exists()
    assert not [p for p in out.rglob(".*")]  # nothing hidden left behind


# --- #13 disk full --------------------------------------------------------------------
def test_disk_full_is_one_message_and_nothing_is_left(tmp_path, small_raw, monkeypatch):
    monkeypatch.setattr(output_module, "free_bytes", lambda path: 1000)
    result = _run("pack", small_raw, "-o", tmp_path / "d.h5", "--no-progress",
                  "--pack-workers", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{tmp_path / 'd.h5'}: not enough disk space" in result.stderr
    assert "needs about" in result.stderr and "0.0 MiB free" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_file_size_limit_mid_write_is_a_message_not_a_crash(tmp_path, small_raw):
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    proc = subprocess.run([sys.executable, "-m", "carla4agt", "pack", str(small_raw), "-o",
                           str(tmp_path / "d.h5"), "--no-progress", "--pack-workers", "1"],
                          preexec_fn=limit, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # was a segfault (-11)
    assert f"{tmp_path / 'd.h5'}: the file system refused" in proc.stderr
    assert "Traceback" not in proc.stderr and ".tmp-" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


# --- #18 messages ---------------------------------------------------------------------
def test_merge_messages_show_plain_names(tmp_path, shards):
    a, b = shards
    with h5py.File(b, "a") as f:
        f.attrs["appearances"] = ["noon", "sunset", "night", "dusk"]
    result = _run("merge", a, b, "-o", tmp_path / "m.h5", "--no-progress")
    assert result.exit_code == 1 and "appearances differ" in result.stderr
    assert "np.str_" not in result.stderr and "(noon, sunset, night, dusk)" in result.stderr


def test_export_with_no_split_is_a_usage_error(tmp_path, shards):
    result = _run("export", "gta", shards[0], tmp_path / "out", "--splits", ",")
    assert result.exit_code == 2 and "no split given" in result.stderr
    assert not (tmp_path / "out").exists()


def test_appearances_as_one_string_is_refused(tmp_path):
    path = synthetic_dataset(tmp_path / "d.h5", layouts=2)
    with h5py.File(path, "a") as f:
        f.attrs["appearances"] = "noon"
    with pytest.raises(ValueError, match="should be a list of names, got 'noon'"):
        open_dataset(path)


def test_split_ratios_must_be_finite(tmp_path, small_raw):
    result = _run("pack", small_raw, "-o", tmp_path / "d.h5", "--split", "nan,0.5,0.5")
    assert result.exit_code in (1, 2) and "nan,0.5,0.5" in result.stderr
    assert not (tmp_path / "d.h5").exists()


# --- #11 pack while generate runs -----------------------------------------------------
def test_pack_names_layouts_in_flight(tmp_path, small_raw):
    raw = shutil.copytree(small_raw, tmp_path / "raw")
    (raw / f".builtin-0-000007.tmp-{os.getppid()}").mkdir()  # a live writer
    result = _run("pack", raw, "-o", tmp_path / "d.h5", "--no-progress", "--pack-workers", "1")
    assert result.exit_code == 0, result.output
    assert "1 layouts are being rendered right now" in result.stderr
    assert str(os.getppid()) in result.stderr


# --- issue 15: the DAFormer config ----------------------------------------------------
@pytest.mark.parametrize("fmt", ["gta", "cityscapes"])
def test_daformer_config_points_at_the_export(tmp_path, fmt):
    path = synthetic_dataset(tmp_path / "d.h5", layouts=4, ratios=(0.5, 0.5, 0.0))
    out = tmp_path / fmt
    n = export(path, out, fmt, splits=["train", "val"], progress=False)
    config = runpy.run_path(str(out / "daformer_dataset.py"))
    names = tuple(c.name for c in classes(19))
    assert config["classes"] == names and config["ignore_index"] == 255
    assert config["palette"] == [list(c.color) for c in classes(19)]
    splits = ["train"] if fmt == "gta" else ["train", "val"]
    found = 0
    for split in splits:
        d = config[split]
        assert d["classes"] == names and Path(d["data_root"]) == out.resolve()
        images = sorted((Path(d["data_root"]) / d["img_dir"]).rglob("*" + d["img_suffix"]))
        assert images
        for image in images:  # mmseg's rule: label = ann_dir / (name - img_suffix + suffix)
            rel = str(image.relative_to(Path(d["data_root"]) / d["img_dir"]))
            label = (Path(d["data_root"]) / d["ann_dir"]
                     / (rel[:-len(d["img_suffix"])] + d["seg_map_suffix"]))
            assert label.is_file(), label
        found += len(images)
    assert found == n
    source = config["train"]
    code = [line for line in (out / "daformer_dataset.py").read_text().splitlines()
            if not line.startswith("#")]
    assert source["type"] == "CustomDataset" and not any("import" in line for line in code)


# --- #14 a copy-merge of a virtual merge ------------------------------------------------
def test_copy_merge_of_a_virtual_merge(tmp_path, shards):
    a, b = shards
    virtual = tmp_path / "v.h5"
    merge([a, b], virtual, virtual=True, progress=False)
    c = synthetic_dataset(tmp_path / "c.h5", layouts=2, seed=7)
    with h5py.File(c, "a") as f:
        f["layout_id"][...] = np.array(["c-0", "c-1"], dtype=object)
    result = _run("merge", virtual, c, "-o", tmp_path / "all.h5", "--no-progress")
    assert result.exit_code == 0, result.output  # was a traceback (no chunks to copy)
    merged, parts = open_dataset(tmp_path / "all.h5"), [open_dataset(p) for p in (a, b, c)]
    assert len(merged) == 8
    for part in parts:
        for i, lid in enumerate(part.layout_ids):
            j = merged.index_of(str(lid))
            np.testing.assert_array_equal(merged.read_layout(j), part.read_layout(i))
            np.testing.assert_array_equal(merged.read_label(j), part.read_label(i))


def test_missing_files_are_file_not_found_errors(tmp_path):
    from carla4agt_data.fileio import read_yaml

    for call in (lambda: open_dataset(tmp_path / "no.h5"), lambda: RawFolder(tmp_path / "no"),
                 lambda: read_yaml(tmp_path / "no.yaml")):
        with pytest.raises(FileNotFoundError, match="no such"):
            call()


def test_export_disk_full_names_the_file_and_leaves_nothing_partial(tmp_path, shards,
                                                                     monkeypatch):
    import errno

    from PIL import Image

    real_save, calls = Image.Image.save, []

    def full(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 3:
            Path(fp).write_bytes(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(fp))
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "out"
    result = _run("export", "gta", shards[0], out, "--no-progress")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not enough disk space" in result.stderr and ".tmp-" not in result.stderr
    assert str(out / "images") in result.stderr and "written so far are complete" in \
        result.stderr
    assert not [p for p in out.rglob(".*")]  # no temporary, no staging folder
    for p in out.rglob("*.png"):
        with Image.open(p) as im:
            im.load()
