"""Pack, reader, merge and export: raw -> HDF5 -> back, bit for bit."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data import pack as pack_module
from carla4agt_data.dataset import open_dataset
from carla4agt_data.errors import UserError
from carla4agt_data.export import export
from carla4agt_data.merge import merge
from carla4agt_data.pack import pack
from carla4agt_data.raw import MARKER, encode_png, read_rgb, read_tags
from carla4agt_data.schema import split_of
from carla4agt_data.taxonomy import CLASSES_16, tag_lut


@pytest.fixture
def raw(tmp_path, small_raw):
    """A private copy of the shared small raw folder (tests modify it)."""
    return shutil.copytree(small_raw, tmp_path / "raw")


def _set_tags(folder, appearance, tags):
    """Replace a tag image and update its checksum, as a buggy renderer would write it."""
    data = encode_png(tags)
    (folder / f"{appearance}.tags.png").write_bytes(data)
    marker = json.loads((folder / MARKER).read_text())
    marker["files"][f"{appearance}.tags.png"]["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / MARKER).write_text(json.dumps(marker))


def test_round_trip_is_bit_exact(tmp_path, small_raw):
    out = tmp_path / "d.h5"
    summary = pack(small_raw, out, workers=2, progress=False)
    assert len(summary.packed) == 3 and not summary.incomplete
    ds = open_dataset(out)
    assert ds.appearances == ("noon", "sunset", "night", "fog")
    assert ds.size == (256, 128) and ds.num_classes == 16 and len(ds) == 3
    assert ds.backends == ("builtin",) and not ds.attrs["is_carla"]
    lut = tag_lut("0.9.16")
    for i, lid in enumerate(ds.layout_ids):
        folder = small_raw / lid
        for a in ds.appearances:
            np.testing.assert_array_equal(ds.read_rgb(i, a), read_rgb(folder / f"{a}.png"))
        label = ds.read_label(i)
        np.testing.assert_array_equal(label, lut[read_tags(folder / "noon.tags.png")])
        counts = np.bincount(label.ravel(), minlength=256)
        np.testing.assert_array_equal(ds.class_pixels[i], counts[:16])
        assert ds.ignore_pixels[i] == counts[255]
        assert ds.read_layout_yaml(i) == (folder / "layout.yaml").read_text()
        assert ds.read_layout(i).shape == (4, 128, 256, 3)
    with h5py.File(out) as f:
        assert f["rgb"].fletcher32 and f["label"].fletcher32
        assert f["rgb"].chunks == (1, 1, 128, 256, 3) and f["rgb"].compression == "gzip"
    assert [c.name for c in ds.classes] == [c.name for c in CLASSES_16]
    assert not (tmp_path / ".d.h5").exists() and [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_legacy_tag_table_is_used_for_old_servers(tmp_path, raw):
    folder = sorted(p for p in raw.iterdir() if p.is_dir())[0]
    marker = json.loads((folder / MARKER).read_text())
    marker["tag_table"] = "0.9.10-0.9.13"  # as a CARLA 0.9.13 server would have written
    (folder / MARKER).write_text(json.dumps(marker))
    ds = open_dataset(pack(raw, tmp_path / "d.h5", workers=1, progress=False).path)
    i = ds.index_of(folder.name)
    tags = read_tags(folder / "noon.tags.png")
    np.testing.assert_array_equal(ds.read_label(i), tag_lut("0.9.13")[tags])
    assert not np.array_equal(ds.read_label(i), tag_lut("0.9.16")[tags])
    assert set(ds.attrs["tag_tables"]) == {"0.9.14+", "0.9.10-0.9.13"}


def test_nineteen_classes(tmp_path, small_raw):
    ds = open_dataset(pack(small_raw, tmp_path / "d.h5", num_classes=19, workers=1,
                           progress=False).path)
    folder = small_raw / ds.layout_ids[0]
    np.testing.assert_array_equal(ds.read_label(0),
                                  tag_lut("0.9.16", 19)[read_tags(folder / "noon.tags.png")])
    assert ds.num_classes == 19 and ds.class_pixels.shape == (3, 19)


def test_label_mismatch_refused_or_kept(tmp_path, raw):
    folder = sorted(p for p in raw.iterdir() if p.is_dir())[1]
    tags = read_tags(folder / "fog.tags.png").copy()
    tags[10:30, 40:60] = 20 if tags[10, 40] != 20 else 21
    _set_tags(folder, "fog", tags)
    summary = pack(raw, tmp_path / "a.h5", workers=1, progress=False)
    assert summary.refused == {folder.name: 400}
    assert folder.name not in open_dataset(summary.path).layout_ids
    assert len(open_dataset(summary.path)) == 2
    kept = pack(raw, tmp_path / "b.h5", workers=1, allow_label_mismatch=True, progress=False)
    ds = open_dataset(kept.path)
    assert ds.label_mismatch[ds.index_of(folder.name)] == 400
    result = CliRunner().invoke(cli, ["pack", str(raw), "-o", str(tmp_path / "c.h5"),
                                      "--no-progress"])
    assert result.exit_code == 1 and "Refused 1 layouts" in result.stderr
    assert f"{folder.name} (400 px)" in result.stderr


def test_partial_raw_folder(tmp_path, raw):
    victim = sorted(p for p in raw.iterdir() if p.is_dir())[2]
    (victim / MARKER).unlink()
    result = CliRunner().invoke(cli, ["pack", str(raw), "-o", str(tmp_path / "d.h5"),
                                      "--no-progress", "--pack-workers", "1"])
    assert result.exit_code == 0, result.output
    assert "Packed 2 layouts" in result.stdout
    assert f"Skipped 1 incomplete layouts (no commit marker): {victim.name}" in result.stderr


def test_corrupt_raw_file_is_named(tmp_path, raw):
    folder = sorted(p for p in raw.iterdir() if p.is_dir())[0]
    data = bytearray((folder / "night.png").read_bytes())
    data[5000] ^= 0xFF
    (folder / "night.png").write_bytes(bytes(data))
    with pytest.raises(UserError, match="night.png: its content does not match"):
        pack(raw, tmp_path / "d.h5", workers=1, progress=False)
    assert not (tmp_path / "d.h5").exists()


def test_interrupted_pack_leaves_no_dataset(tmp_path, small_raw, monkeypatch):
    real = pack_module._decode
    calls = []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(pack_module, "_decode", flaky)
    with pytest.raises(KeyboardInterrupt):
        pack(small_raw, tmp_path / "d.h5", workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def _by_id(ds):
    return {lid: (ds.read_layout(i), ds.read_label(i), int(ds.splits[i]),
                  tuple(ds.class_pixels[i])) for i, lid in enumerate(ds.layout_ids)}


@pytest.mark.parametrize("virtual", [False, True], ids=["copy", "virtual"])
def test_merge_equals_single_pack(tmp_path, small_raw, virtual):
    ids = sorted(p.name for p in small_raw.iterdir() if p.is_dir())
    shards = tmp_path / "shards"
    pack(small_raw, shards / "a.h5", layout_ids=ids[:2], workers=1, progress=False)
    pack(small_raw, shards / "b.h5", layout_ids=ids[2:], workers=1, progress=False)
    whole = open_dataset(pack(small_raw, tmp_path / "all.h5", workers=1, progress=False).path)
    merged_path = shards / "merged.h5"
    assert merge([shards / "a.h5", shards / "b.h5"], merged_path, virtual=virtual,
                 progress=False) == 3
    if virtual:  # the shards travel with it: move the folder, read from elsewhere
        moved = shutil.move(shards, tmp_path / "moved")
        merged_path = tmp_path / "moved" / "merged.h5"
        code = ("import sys, numpy as np; from carla4agt_data.dataset import open_dataset; "
                "ds = open_dataset(sys.argv[1]); print(int(ds.read_layout(2).sum()))")
        proc = subprocess.run([sys.executable, "-c", code, str(merged_path)], cwd="/",
                              capture_output=True, text=True, check=True)
        assert int(proc.stdout) == int(whole.read_layout(whole.index_of(ids[2])).sum())
        assert moved
    merged = open_dataset(merged_path)
    a, b = _by_id(merged), _by_id(whole)
    assert a.keys() == b.keys()
    for lid in a:
        np.testing.assert_array_equal(a[lid][0], b[lid][0])
        np.testing.assert_array_equal(a[lid][1], b[lid][1])
        assert a[lid][2:] == b[lid][2:]
    assert merged.appearances == whole.appearances


def test_merge_refuses_overlap_and_mismatch(tmp_path, small_raw):
    pack(small_raw, tmp_path / "a.h5", workers=1, progress=False)
    pack(small_raw, tmp_path / "b.h5", workers=1, progress=False)
    with pytest.raises(UserError, match="is in both"):
        merge([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.h5", progress=False)
    ids = sorted(p.name for p in small_raw.iterdir() if p.is_dir())
    pack(small_raw, tmp_path / "c.h5", layout_ids=ids[:1], num_classes=19, workers=1,
         progress=False)
    with pytest.raises(UserError, match="class count differ"):
        merge([tmp_path / "a.h5", tmp_path / "c.h5"], tmp_path / "m.h5", progress=False)
    assert not (tmp_path / "m.h5").exists()


def test_reader_refuses_foreign_and_future_files(tmp_path, small_raw):
    path = pack(small_raw, tmp_path / "d.h5", workers=1, progress=False).path
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(UserError, match="schema version 99"):
        open_dataset(path)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(UserError, match="not a carla4agt dataset"):
        open_dataset(tmp_path / "other.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(UserError, match="cannot be read as HDF5"):
        open_dataset(tmp_path / "text.h5")
    with pytest.raises(UserError, match="no such file"):
        open_dataset(tmp_path / "missing.h5")


def test_corrupt_chunk_is_caught_by_fletcher32(tmp_path, small_raw):
    path = pack(small_raw, tmp_path / "d.h5", workers=1, progress=False).path
    with h5py.File(path, "a") as f:
        mask, chunk = f["rgb"].id.read_direct_chunk((1, 2, 0, 0, 0))
        broken = bytearray(chunk)
        broken[len(broken) // 2] ^= 0x55
        f["rgb"].id.write_direct_chunk((1, 2, 0, 0, 0), bytes(broken), mask)
    ds = open_dataset(path)
    ds.read_rgb(1, 1)  # other chunks still read
    with pytest.raises(OSError):
        ds.read_rgb(1, 2)


def test_reader_pickles_and_reopens_in_each_process(tmp_path, small_raw):
    ds = open_dataset(pack(small_raw, tmp_path / "d.h5", workers=1, progress=False).path)
    expected = ds.read_rgb(2, "night")
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone.read_rgb(2, "night"), expected)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reads through the inherited object: it must reopen the file
        ok = np.array_equal(ds.read_rgb(2, "night"), expected)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert "3 layouts x 4 appearances" in repr(ds)
    ds.close()
    assert "closed" in repr(ds)


def test_splits_follow_the_layout_id(tmp_path, small_raw):
    ds = open_dataset(pack(small_raw, tmp_path / "d.h5", split_ratios=(0.0, 0.0, 1.0),
                           workers=1, progress=False).path)
    assert list(ds.split_indices("test")) == [0, 1, 2] and len(ds.split_indices("train")) == 0
    ids = [f"layout-{i}" for i in range(2000)]
    shares = np.bincount([split_of(i, (0.8, 0.1, 0.1)) for i in ids], minlength=3) / 2000
    assert abs(shares[0] - 0.8) < 0.04 and abs(shares[1] - 0.1) < 0.03
    with pytest.raises(UserError, match="Unknown split"):
        ds.split_indices("training")


def test_export_cityscapes_read_by_torchvision(tmp_path, small_raw):
    from torchvision.datasets import Cityscapes

    ds = open_dataset(pack(small_raw, tmp_path / "d.h5", split_ratios=(1.0, 0.0, 0.0),
                           workers=1, progress=False).path)
    root = tmp_path / "cityscapes"
    assert export(ds.path, root, "cityscapes", splits=["train"], progress=False) == 12
    tv = Cityscapes(str(root), split="train", mode="fine", target_type=["semantic"])
    assert len(tv) == 12
    by_name = {c.cityscapes_id: c.train_id for c in CLASSES_16}
    for k in (0, 5, 11):
        image, target = tv[k]
        stem = os.path.basename(tv.images[k]).replace("_leftImg8bit.png", "")
        lid, appearance = stem.rsplit("_", 1)
        i = ds.index_of(lid)
        np.testing.assert_array_equal(np.asarray(image), ds.read_rgb(i, appearance))
        label_ids = np.asarray(target)
        back = np.vectorize(lambda v: by_name.get(int(v), 255), otypes=[np.uint8])(label_ids)
        np.testing.assert_array_equal(back, ds.read_label(i))
    train_ids = read_tags(root / "gtFine" / "train" / "fog" /
                          f"{ds.layout_ids[0]}_fog_gtFine_labelTrainIds.png")
    cs19 = np.array([c.cityscapes_train_id for c in CLASSES_16] + [255] * 240, np.uint8)
    np.testing.assert_array_equal(train_ids, cs19[ds.read_label(0)])


def test_export_gta(tmp_path, small_raw):
    path = pack(small_raw, tmp_path / "d.h5", workers=1, progress=False).path
    result = CliRunner().invoke(cli, ["export", "gta", str(path), str(tmp_path / "gta"),
                                      "--appearances", "noon,night", "--no-progress"])
    assert result.exit_code == 0, result.output
    images = sorted((tmp_path / "gta" / "images").iterdir())
    labels = sorted((tmp_path / "gta" / "labels").iterdir())
    assert len(images) == len(labels) == 6
    assert labels[0].name == images[0].name.replace(".png", "_labelTrainIds.png")


def test_pack_flag_errors(tmp_path, small_raw):
    invoke = CliRunner().invoke
    result = invoke(cli, ["pack", str(small_raw), "-o", str(tmp_path / "d.h5"),
                          "--compression", "brotli"])
    assert result.exit_code == 1 and "Unknown compression 'brotli'" in result.stderr
    result = invoke(cli, ["pack", str(small_raw), "-o", str(tmp_path / "d.h5"),
                          "--split", "0.5,0.5"])
    assert result.exit_code == 2 and "add up to 1" in result.stderr  # usage error


def test_generate_packs_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["generate", "--layouts", "2", "--weathers", "noon,fog",
                                      "--size", "128x64", "--no-progress", "--backend",
                                      "builtin", "--pack-workers", "1"])
    assert result.exit_code == 0, result.output
    ds = open_dataset(tmp_path / "raw" / "dataset.h5")  # inside --out: nothing outside
    assert len(ds) == 2 and ds.appearances == ("noon", "fog")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
