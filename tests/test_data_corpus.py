"""A corpus of bad inputs for pack, merge, export, stats, preview and the loaders.

Every bad file is made here by code (no binary blobs). Each case asserts: exit code 1 or 2,
no traceback (no exception escaped the CLI), the user's path (or option) named in the
message, no hidden temporary named, and nothing written outside the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data.raw import MARKER, Capture, encode_png, write_layout_folder
from carla4agt_data.schema import split_of

from .synthetic import synthetic_dataset

SIZE = (64, 32)
pytestmark = pytest.mark.slow  # ~260 cases: in CI (-m slow), not in the quick suite


# --- helpers ---------------------------------------------------------------------------
def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _refused(result, root: Path, before: set[str], mentions: str) -> None:
    out = result.output
    assert result.exit_code in (1, 2), out
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in out
    assert mentions in out, out
    assert ".tmp-" not in out, out
    new = _snapshot(root) - before
    assert all(p == "out" or p.startswith("out/") for p in new), new


def _invoke(args: list) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def good_h5(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "good.h5"
    return synthetic_dataset(path, layouts=4, size=SIZE, block=8)


@pytest.fixture(scope="module")
def other_h5(tmp_path_factory) -> Path:
    """A valid shard disjoint from good_h5, for merge cases."""
    path = synthetic_dataset(tmp_path_factory.mktemp("other") / "other.h5", layouts=2,
                             size=SIZE, block=8, seed=3)
    with h5py.File(path, "a") as f:
        f["layout_id"][...] = np.array(["other-0", "other-1"], dtype=object)
    return path


# --- bad HDF5 files --------------------------------------------------------------------
def _attr(name, value):
    def mutate(p: Path) -> None:
        with h5py.File(p, "a") as f:
            f.attrs[name] = value
    return mutate


def _del_attr(name):
    def mutate(p: Path) -> None:
        with h5py.File(p, "a") as f:
            del f.attrs[name]
    return mutate


def _del(name):
    def mutate(p: Path) -> None:
        with h5py.File(p, "a") as f:
            del f[name]
    return mutate


def _replace(name, data):
    def mutate(p: Path) -> None:
        with h5py.File(p, "a") as f:
            del f[name]
            f[name] = data() if callable(data) else data
    return mutate


def _row(name, index, value):
    def mutate(p: Path) -> None:
        with h5py.File(p, "a") as f:
            f[name][index] = value
    return mutate


def _resize_all(n):
    def mutate(p: Path) -> None:
        with h5py.File(p, "a") as f:
            for name in f:
                f[name].resize(n, axis=0)
    return mutate


def _group(name):
    def mutate(p: Path) -> None:
        with h5py.File(p, "a") as f:
            del f[name]
            f.create_group(name)
    return mutate


def _external(name):
    def mutate(p: Path) -> None:
        with h5py.File(p, "a") as f:
            del f[name]
            f[name] = h5py.ExternalLink("/etc/hostname", "/x")
    return mutate


def _text(content: bytes):
    def mutate(p: Path) -> None:
        p.write_bytes(content)
    return mutate


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _virtual_missing_shard(p: Path) -> None:
    """A virtual merge whose second shard was deleted."""
    from carla4agt_data.merge import merge

    a = p.parent / "shard_a.h5"
    b = p.parent / "shard_b.h5"
    shutil.move(p, a)
    synthetic_dataset(b, layouts=2, size=SIZE, block=8, seed=4)
    with h5py.File(b, "a") as f:
        f["layout_id"][...] = np.array(["b-0", "b-1"], dtype=object)
    merge([a, b], p, virtual=True, progress=False)
    b.unlink()


def _virtual_foreign_shard(p: Path) -> None:
    """A virtual merge whose shard was replaced by another file of that name."""
    _virtual_missing_shard(p)
    synthetic_dataset(p.parent / "shard_b.h5", layouts=2, size=SIZE, block=8, seed=5)


def _ids(values):
    return lambda: np.array(values, dtype=object).astype(h5py.string_dtype())


H5_CASES: dict[str, Callable[[Path], None]] = {
    "no-format": _del_attr("format"),
    "other-format": _attr("format", "imagenet"),
    "future-schema": _attr("schema_version", 99),
    "text-schema": _attr("schema_version", "one"),
    "no-schema": _del_attr("schema_version"),
    "classes-7": _attr("num_classes", 7),
    "classes-text": _attr("num_classes", "16"),
    "appearances-string": _attr("appearances", "noon"),
    "appearances-twice": _attr("appearances", ["noon", "noon", "night", "fog"]),
    "appearance-dotdot": _attr("appearances", ["../../up", "sunset", "night", "fog"]),
    "appearance-absolute": _attr("appearances", ["/abs", "sunset", "night", "fog"]),
    "appearance-hidden": _attr("appearances", [".h", "sunset", "night", "fog"]),
    "appearances-empty": _attr("appearances", np.array([], dtype=h5py.string_dtype())),
    "appearances-numbers": _attr("appearances", [1, 2, 3, 4]),
    "no-appearances": _del_attr("appearances"),
    "width-0": _attr("width", 0),
    "height-negative": _attr("height", -5),
    "width-huge": _attr("width", 10**6),
    "width-wrong": _attr("width", 65),
    "ratios-short": _attr("split_ratios", [1.0]),
    "ratios-nan": _attr("split_ratios", [float("nan"), 0.5, 0.5]),
    "versions-not-json": _attr("versions", "{not json"),
    "versions-list": _attr("versions", "[1, 2]"),
    "backends-number": _attr("backends", 3),
    "no-compression": _del_attr("compression"),
    "no-rgb": _del("rgb"),
    "no-label": _del("label"),
    "no-layout-id": _del("layout_id"),
    "no-split": _del("split"),
    "no-class-pixels": _del("class_pixels"),
    "rgb-rank-4": _replace("rgb", lambda: np.zeros((4, 4, 32, 64), np.uint8)),
    "rgb-float": _replace("rgb", lambda: np.zeros((4, 4, 32, 64, 3), np.float32)),
    "rgb-group": _group("rgb"),
    "rgb-external-link": _external("rgb"),
    "label-shape": _replace("label", lambda: np.zeros((4, 16, 64), np.uint8)),
    "label-int32": _replace("label", lambda: np.zeros((4, 32, 64), np.int32)),
    "layout-id-ints": _replace("layout_id", lambda: np.arange(4)),
    "layout-id-dotdot": _row("layout_id", 0, "../../escape"),
    "layout-id-absolute": _row("layout_id", 1, "/tmp/escape"),
    "layout-id-hidden": _row("layout_id", 2, ".hidden"),
    "layout-id-newline": _row("layout_id", 3, "a\n"),
    "layout-id-empty": _row("layout_id", 0, ""),
    "layout-id-twice": _replace("layout_id", _ids(["x", "x", "y", "z"])),
    "split-7": _row("split", 0, 7),
    "class-pixels-k": _replace("class_pixels", lambda: np.zeros((4, 3), np.int64)),
    "rows-differ": _replace("ignore_pixels", lambda: np.zeros(3, np.int64)),
    "zero-layouts": _resize_all(0),
    "plain-text": _text(b"hello, not hdf5\n"),
    "empty-file": _text(b""),
    "truncated": _truncate,
    "virtual-missing-shard": _virtual_missing_shard,
    "virtual-foreign-shard": _virtual_foreign_shard,
}

COMMANDS = {
    "export": lambda bad, root, other: ["export", "gta", bad, root / "out", "--no-progress"],
    "stats": lambda bad, root, other: ["stats", bad, "--sample", "2"],
    "merge": lambda bad, root, other: ["merge", other, bad, "-o", root / "out" / "m.h5",
                                       "--no-progress"],
}
# preview reads the same way; a sample of the cases keeps the suite fast
PREVIEW_CASES = ["appearances-string", "layout-id-dotdot", "rgb-float", "no-label",
                 "truncated", "virtual-missing-shard", "split-7", "zero-layouts"]


def _bad_file(tmp_path: Path, good: Path, case: str) -> tuple[Path, Path, set[str]]:
    root = tmp_path / "work"
    root.mkdir()
    bad = root / "bad.h5"
    shutil.copy(good, bad)
    H5_CASES[case](bad)
    return root, bad, _snapshot(root)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(H5_CASES))
def test_bad_hdf5(tmp_path, good_h5, other_h5, case, command):
    root, bad, before = _bad_file(tmp_path, good_h5, case)
    other = root / "other.h5"
    shutil.copy(other_h5, other)
    before |= {"other.h5"}
    result = _invoke(COMMANDS[command](bad, root, other))
    _refused(result, root, before, str(bad))


@pytest.mark.parametrize("case", PREVIEW_CASES)
def test_bad_hdf5_preview(tmp_path, good_h5, case):
    root, bad, before = _bad_file(tmp_path, good_h5, case)
    result = _invoke(["preview", bad, "-o", root / "out" / "sheet.png"])
    _refused(result, root, before, str(bad))


@pytest.mark.parametrize("case", ["appearances-string", "layout-id-twice", "no-rgb",
                                  "plain-text", "virtual-foreign-shard"])
def test_bad_hdf5_loader(tmp_path, good_h5, case):
    from loaders import PairedAppearanceDataset

    root, bad, _ = _bad_file(tmp_path, good_h5, case)
    with pytest.raises(ValueError, match=str(bad).replace(".", r"\.")):
        PairedAppearanceDataset(bad, split="all")


def _corrupt_chunk(p: Path) -> None:
    with h5py.File(p, "a") as f:
        mask, chunk = f["rgb"].id.read_direct_chunk((0, 0, 0, 0, 0))
        broken = bytearray(chunk)
        broken[len(broken) // 2] ^= 0x55
        f["rgb"].id.write_direct_chunk((0, 0, 0, 0, 0), bytes(broken), mask)


@pytest.mark.parametrize("command", [
    ["export", "gta", "{bad}", "{out}", "--no-progress"],
    ["stats", "{bad}", "--sample", "4"],
    ["preview", "{bad}", "-o", "{out}/sheet.png"],
    ["merge", "{bad}", "{other}", "-o", "{out}/m.h5", "--no-progress"],  # virtual: value copy
], ids=["export", "stats", "preview", "merge-of-virtual"])
def test_damaged_chunk(tmp_path, good_h5, other_h5, command):
    root, bad, before = _bad_file(tmp_path, good_h5, "no-format")  # replaced below
    shutil.copy(good_h5, bad)
    _corrupt_chunk(bad)
    if command[0] == "merge":  # a virtual merge is copied by value, through the reader
        from carla4agt_data.merge import merge

        shutil.move(bad, root / "shard.h5")
        shutil.copy(other_h5, root / "o.h5")
        merge([root / "shard.h5", root / "o.h5"], bad, virtual=True, progress=False)
        shutil.copy(other_h5, root / "other.h5")
        with h5py.File(root / "other.h5", "a") as f:
            f["layout_id"][...] = np.array(["third-0", "third-1"], dtype=object)
    before = _snapshot(root)
    values = {"bad": bad, "out": root / "out", "other": root / "other.h5"}
    result = _invoke([a.format(**values) for a in command])
    _refused(result, root, before, "cannot be read")
    assert "damaged" in result.output and str(bad) in result.output


def test_the_good_file_passes_every_command(tmp_path, good_h5, other_h5):
    """The corpus's base file is fine: each case fails because of its one change."""
    root = tmp_path / "work"
    root.mkdir()
    for command in COMMANDS.values():
        result = _invoke(command(good_h5, root, other_h5))
        assert result.exit_code == 0, result.output


# --- bad raw folders -------------------------------------------------------------------
def _make_raw(root: Path, layouts: int = 2) -> Path:
    raw = root / "raw"
    rng = np.random.default_rng(0)
    w, h = SIZE
    for i in range(layouts):
        tags = rng.integers(0, 25, (h, w), dtype=np.uint8)
        caps = [Capture(a, rng.integers(0, 255, (h, w, 3), dtype=np.uint8), tags)
                for a in ("noon", "fog")]
        write_layout_folder(raw, f"lay-{i}", f"id: lay-{i}\n", caps, backend="builtin",
                            versions={}, tag_table="0.9.14+", timings={})
    return raw


def _marker(update):
    def mutate(raw: Path) -> Path:
        path = raw / "lay-0" / MARKER
        marker = json.loads(path.read_text())
        update(marker)
        path.write_text(json.dumps(marker))
        return path
    return mutate


def _set(key, value):
    return _marker(lambda m: m.__setitem__(key, value))


def _file_bytes(name, data, fix_checksum=True):
    def mutate(raw: Path) -> Path:
        path = raw / "lay-0" / name
        path.write_bytes(data() if callable(data) else data)
        if fix_checksum:
            mp = raw / "lay-0" / MARKER
            m = json.loads(mp.read_text())
            m["files"][name]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            mp.write_text(json.dumps(m))
        return path
    return mutate


def _flip_byte(raw: Path) -> Path:
    path = raw / "lay-0" / "fog.png"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _unlink(name):
    def mutate(raw: Path) -> Path:
        (raw / "lay-0" / name).unlink()
        return raw / "lay-0" / name
    return mutate


def _no_layouts(raw: Path) -> Path:
    for p in list(raw.iterdir()):
        if p.is_dir():
            shutil.rmtree(p)
    return raw


def _other_appearances(raw: Path) -> Path:
    _set("appearances", ["noon"])(raw)
    return raw


RAW_CASES: dict[str, Callable[[Path], Path]] = {
    "marker-not-json": _file_bytes(MARKER, b"{oops", fix_checksum=False),
    "marker-a-list": _file_bytes(MARKER, b"[1, 2]", fix_checksum=False),
    "marker-appearances-string": _set("appearances", "noon"),
    "marker-appearance-dotdot": _set("appearances", ["../x", "fog"]),
    "marker-size-short": _set("size", [64]),
    "marker-size-huge": _set("size", [10**9, 32]),
    "marker-tag-table": _set("tag_table", "1.0"),
    "marker-no-files": _marker(lambda m: m.pop("files")),
    "marker-file-escape": _marker(lambda m: m["files"].__setitem__("../../x", {"sha256": "0"})),
    "marker-no-checksum-for-yaml": _marker(lambda m: m["files"].pop("layout.yaml")),
    "png-checksum-mismatch": _flip_byte,
    "png-not-png": _file_bytes("noon.png", b"not a png at all"),
    "tags-rgb-mode": _file_bytes("noon.tags.png",
                                 lambda: encode_png(np.zeros((32, 64, 3), np.uint8))),
    "png-other-size": _file_bytes("fog.png", lambda: encode_png(np.zeros((8, 8, 3), np.uint8))),
    "png-missing": _unlink("fog.png"),
    "yaml-not-utf8": _file_bytes("layout.yaml", b"\xff\xfe\x00bad"),
    "no-layouts": _no_layouts,
    "appearances-differ": _other_appearances,
}

PACK_ONLY = ("appearances-differ", "yaml-not-utf8")  # one set of appearances; layout.yaml
RAW_COMMANDS = {
    "pack": lambda raw, root: ["pack", raw, "-o", root / "out" / "d.h5", "--no-progress",
                               "--pack-workers", "1"],
    "stats": lambda raw, root: ["stats", raw, "--sample", "2"],
    "preview": lambda raw, root: ["preview", raw, "-o", root / "out" / "sheet.png"],
}


@pytest.mark.parametrize("command", list(RAW_COMMANDS))
@pytest.mark.parametrize("case", list(RAW_CASES))
def test_bad_raw_folder(tmp_path, case, command):
    if case in PACK_ONLY and command != "pack":
        pytest.skip("only pack reads this")
    root = tmp_path / "work"
    root.mkdir()
    raw = _make_raw(root)
    named = RAW_CASES[case](raw)
    before = _snapshot(root)
    result = _invoke(RAW_COMMANDS[command](raw, root))
    if case == "no-layouts" and command == "stats":  # an empty folder has statistics
        assert result.exit_code == 0 and "0 layouts" in result.output
        return
    _refused(result, root, before, str(named) if case != "marker-file-escape"
             else str(raw / "lay-0" / MARKER))


# --- bad option values -----------------------------------------------------------------
OPTION_CASES = [
    # (name, args with {raw} {h5} {other} {out}, expected text)
    ("split-nan", ["pack", "{raw}", "-o", "{out}/d.h5", "--split", "nan,0.5,0.5"],
     "nan,0.5,0.5"),
    ("split-two", ["pack", "{raw}", "-o", "{out}/d.h5", "--split", "0.5,0.5"], "0.5,0.5"),
    ("split-text", ["pack", "{raw}", "-o", "{out}/d.h5", "--split", "a,b,c"], "a,b,c"),
    ("split-negative", ["pack", "{raw}", "-o", "{out}/d.h5", "--split", "-1,1,1"], "-1,1,1"),
    ("split-inf", ["pack", "{raw}", "-o", "{out}/d.h5", "--split", "inf,0,0"], "inf,0,0"),
    ("compression-brotli", ["pack", "{raw}", "-o", "{out}/d.h5", "--compression", "brotli"],
     "brotli"),
    ("compression-gzip-10", ["pack", "{raw}", "-o", "{out}/d.h5", "--compression", "gzip-10"],
     "gzip-10"),
    ("classes-7", ["pack", "{raw}", "-o", "{out}/d.h5", "--classes", "7"], "--classes"),
    ("workers-0", ["pack", "{raw}", "-o", "{out}/d.h5", "--pack-workers", "0"],
     "--pack-workers"),
    ("pack-missing-raw", ["pack", "{root}/nope", "-o", "{out}/d.h5"], "nope"),
    ("pack-raw-is-file", ["pack", "{h5}", "-o", "{out}/d.h5"], "bad.h5"),
    ("pack-output-is-folder", ["pack", "{raw}", "-o", "{raw}", "--no-progress"], "raw"),
    ("pack-output-foreign", ["pack", "{raw}", "-o", "{h5}", "--no-progress",
                             "--pack-workers", "1"], "--overwrite"),
    ("export-format", ["export", "voc", "{h5}", "{out}"], "voc"),
    ("export-no-split", ["export", "gta", "{h5}", "{out}", "--splits", ","], "--splits"),
    ("export-bad-split", ["export", "gta", "{h5}", "{out}", "--splits", "train,dev"], "dev"),
    ("export-no-appearance", ["export", "gta", "{h5}", "{out}", "--appearances", ","],
     "--appearances"),
    ("export-bad-appearance", ["export", "gta", "{h5}", "{out}", "--appearances", "dusk",
                               "--no-progress"], "dusk"),
    ("export-out-is-file", ["export", "gta", "{h5}", "{other}", "--no-progress"], "other.h5"),
    ("export-missing-dataset", ["export", "gta", "{root}/missing.h5", "{out}"], "missing.h5"),
    ("export-dataset-is-folder", ["export", "gta", "{raw}", "{out}"], "raw"),
    ("merge-one-input", ["merge", "{h5}", "-o", "{out}/m.h5"], "at least two"),
    ("merge-same-twice", ["merge", "{h5}", "{h5}", "-o", "{out}/m.h5"], "same file"),
    ("merge-into-input", ["merge", "{h5}", "{other}", "-o", "{h5}", "--no-progress"],
     "is also an input"),
    ("merge-overlap", ["merge", "{h5}", "{h5copy}", "-o", "{out}/m.h5", "--no-progress"],
     "is in both"),
    ("merge-no-output", ["merge", "{h5}", "{other}"], "--output"),
    ("preview-unknown-layout", ["preview", "{h5}", "-o", "{out}/s.png", "--layouts", "nope"],
     "nope"),
    ("preview-count-0", ["preview", "{h5}", "-o", "{out}/s.png", "--count", "0"], "--count"),
    ("preview-tile-10", ["preview", "{h5}", "-o", "{out}/s.png", "--tile-width", "10"],
     "--tile-width"),
    ("preview-tile-huge", ["preview", "{h5}", "-o", "{out}/s.png", "--tile-width", "100000"],
     "--tile-width"),
    ("preview-count-huge", ["preview", "{h5}", "-o", "{out}/s.png", "--count", "100000"],
     "--count"),
    ("preview-too-many-layouts", ["preview", "{h5}", "-o", "{out}/s.png", "--layouts",
                                  ",".join(f"x{i}" for i in range(65))], "64 layouts"),
    ("stats-sample-negative", ["stats", "{h5}", "--sample", "-1"], "--sample"),
    ("stats-missing", ["stats", "{root}/missing.h5"], "missing.h5"),
]


@pytest.mark.parametrize("name, args, expected", OPTION_CASES,
                         ids=[c[0] for c in OPTION_CASES])
def test_bad_option_values(tmp_path, good_h5, other_h5, name, args, expected):
    root = tmp_path / "work"
    root.mkdir()
    raw = _make_raw(root, layouts=1)
    h5 = root / "bad.h5"
    shutil.copy(good_h5, h5)
    shutil.copy(good_h5, root / "copy.h5")
    shutil.copy(other_h5, root / "other.h5")
    before = _snapshot(root)
    values = {"raw": raw, "h5": h5, "other": root / "other.h5", "out": root / "out",
              "root": root, "h5copy": root / "copy.h5"}
    result = _invoke([a.format(**values) for a in args])
    _refused(result, root, before, expected)
    assert h5.read_bytes() == good_h5.read_bytes()  # inputs are never changed


def test_corpus_size():
    """The README states these counts."""
    total = (len(H5_CASES) * len(COMMANDS) + len(PREVIEW_CASES) + 5 + 4
             + len(RAW_CASES) * len(RAW_COMMANDS) - 2 * len(PACK_ONLY) + len(OPTION_CASES))
    assert total == 257
    assert split_of("x", (1.0, 0.0, 0.0)) == 0
    assert os.sep == "/"
