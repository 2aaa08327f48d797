"""HDF5 schema v1 of a carla4agt dataset: names, attributes, splits, compression choices.

Few large datasets, one image per chunk, every chunk checked by HDF5's Fletcher-32 filter:

    rgb           uint8 [N, A, H, W, 3]   chunks (1, 1, H, W, 3)
    label         uint8 [N, H, W]         chunks (1, H, W); trainIds, 255 = ignore
    layout_id     str   [N]
    layout_yaml   str   [N]               the layout file, verbatim
    split         uint8 [N]               0 train, 1 val, 2 test (hash of the layout id)
    class_pixels  int64 [N, K]            pixels of each class in the label
    ignore_pixels int64 [N]
    label_mismatch int64 [N]              pixels where the appearances' tag maps differed

File attributes: ``format`` ("carla4agt"), ``schema_version``, ``num_classes``,
``class_names``, ``palette``, ``ignore_index``, ``appearances``, ``width``, ``height``,
``backends``, ``is_carla``, ``tag_tables``, ``versions`` (JSON), ``tool_version``,
``created``, ``split_names``, ``split_ratios``, ``compression``, ``dataset_id`` (unique per
file written), ``run_id`` (the raw run it was packed from; shared by a run's shards).
A virtual merge adds ``virtual_sources`` (JSON: each shard's relative path, dataset_id and
layout count), checked when the file is opened.

This module writes the schema; :mod:`.dataset` reads it and checks it with
:func:`check_file` at open.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from .errors import FileFormatError, UserError
from .names import check_layout_id, check_names
from .taxonomy import IGNORE, classes, palette

FORMAT = "carla4agt"
SCHEMA_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class Compression:
    """An HDF5 filter choice for the image datasets."""

    name: str  # as given to --compression: "gzip-1", "lzf", "none", "zstd-3"...
    h5py_kwargs: tuple[tuple[str, Any], ...]  # compression / compression_opts for h5py
    needs_plugin: bool = False  # hdf5plugin must be imported to read it

    def kwargs(self) -> dict[str, Any]:
        return dict(self.h5py_kwargs)


def parse_compression(name: str) -> Compression:
    """``gzip-N`` (N 0..9, readable everywhere), ``lzf`` (h5py only), ``none``, or with the
    optional hdf5plugin package ``zstd-N`` / ``lz4``."""
    text = name.strip().lower()
    if text == "none":
        return Compression("none", ())
    if text == "lzf":
        return Compression("lzf", (("compression", "lzf"),))
    if text.startswith("gzip"):
        level = text[5:] if text.startswith("gzip-") else "4"
        if level.isdigit() and 0 <= int(level) <= 9:
            return Compression(f"gzip-{level}", (("compression", "gzip"),
                                                 ("compression_opts", int(level))))
    if text.startswith("zstd") or text == "lz4":
        try:
            import hdf5plugin
        except ImportError:
            raise UserError(f"Compression {name!r} needs the hdf5plugin package: "
                            "pip install 'carla4agt[plugins]' (or use gzip-N).") from None
        if text == "lz4":
            return Compression("lz4", tuple(hdf5plugin.LZ4().items()), needs_plugin=True)
        level = text[5:] if text.startswith("zstd-") else "3"
        if level.isdigit():
            return Compression(f"zstd-{level}", tuple(hdf5plugin.Zstd(clevel=int(level)).items()),
                               needs_plugin=True)
    raise UserError(f"Unknown compression {name!r}. Valid values are gzip-0 to gzip-9, lzf, "
                    "none, and with hdf5plugin zstd-N or lz4.")


def parse_split_ratios(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> train, val and test shares (they must add up to 1)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if (len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values)
            or abs(sum(values) - 1) > 1e-6):
        raise UserError(f"Invalid split ratios {text!r}: give three shares for train, val and "
                        "test that add up to 1, for example 0.8,0.1,0.1.")
    return values


def split_of(layout_id: str, ratios: tuple[float, float, float]) -> int:
    """0 (train), 1 (val) or 2 (test), from a hash of the layout id: the same layout lands in
    the same split in every pack, merge and machine."""
    u = int.from_bytes(hashlib.sha256(layout_id.encode()).digest()[:8], "big") / 2**64
    if u < ratios[0]:
        return 0
    return 1 if u < ratios[0] + ratios[1] else 2


# --- writing ------------------------------------------------------------------------
def create_datasets(f: h5py.File, n: int, num_appearances: int, height: int, width: int,
                    num_classes: int, compression: Compression) -> None:
    """The datasets of schema v1, empty, for ``n`` layouts."""
    def make(name: str, shape: tuple[int, ...], dtype: Any, **kwargs: Any) -> None:
        # resizable along the layouts (pack drops refused rows, merge appends)
        f.create_dataset(name, (n, *shape), dtype, maxshape=(None, *shape), **kwargs)

    make("rgb", (num_appearances, height, width, 3), np.uint8,
         chunks=(1, 1, height, width, 3), fletcher32=True, **compression.kwargs())
    make("label", (height, width), np.uint8, chunks=(1, height, width), fletcher32=True,
         compression="gzip", compression_opts=4)  # labels compress 30 to 170 times
    text = h5py.string_dtype()
    make("layout_id", (), text, chunks=True)
    make("layout_yaml", (), text, chunks=True)
    make("split", (), np.uint8, chunks=True)
    make("class_pixels", (num_classes,), np.int64, chunks=True)
    make("ignore_pixels", (), np.int64, chunks=True)
    make("label_mismatch", (), np.int64, chunks=True)


def write_attributes(f: h5py.File, *, appearances: Sequence[str], width: int, height: int,
                     num_classes: int, backends: Sequence[str], tag_tables: Sequence[str],
                     versions: dict[str, Any], split_ratios: Sequence[float],
                     compression: str, run_id: str = "") -> None:
    table = classes(num_classes)
    f.attrs.update({
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "num_classes": num_classes,
        "class_names": [c.name for c in table],
        "palette": palette(num_classes)[:num_classes],
        "ignore_index": IGNORE,
        "appearances": list(appearances),
        "width": width,
        "height": height,
        "backends": list(backends),
        "is_carla": list(backends) == ["carla"],
        "tag_tables": list(tag_tables),
        "versions": json.dumps(versions, sort_keys=True),
        "tool_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "split_names": list(SPLIT_NAMES),
        "split_ratios": list(split_ratios),
        "compression": compression,
        "dataset_id": uuid.uuid4().hex,
        "run_id": run_id,
    })


# --- checking, once, when a file is opened ----------------------------------------
MAX_SIDE = 8192
_HINT = ("The file was not written by carla4agt, or was changed since: pack (or merge) it "
         "again.")


@dataclass(frozen=True)
class CheckedFile:
    """What :func:`check_file` read and checked: plain Python values, no HDF5 objects."""

    attrs: dict[str, Any]
    appearances: tuple[str, ...]
    num_classes: int
    width: int
    height: int
    layout_ids: np.ndarray  # fixed-width unicode [N]
    splits: np.ndarray  # uint8 [N]
    class_pixels: np.ndarray  # int64 [N, K]
    ignore_pixels: np.ndarray  # int64 [N]
    label_mismatch: np.ndarray  # int64 [N]


def check_file(f: h5py.File, path: Any) -> CheckedFile:
    """Check a carla4agt file's attributes, datasets, shapes, dtypes, names and virtual
    sources; raise FileFormatError (a UserError) naming ``path`` and the field."""
    def fail(field: str | None, problem: str, hint: str = _HINT) -> FileFormatError:
        return FileFormatError(path, field, problem, hint)

    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    appearances, num_classes, width, height = _check_attributes(attrs, path, fail)
    _check_datasets(f, len(appearances), num_classes, width, height, fail)
    layout_ids, splits = _check_rows(f, path, fail)
    _check_virtual_sources(f, path, attrs, fail)
    return CheckedFile(attrs, appearances, num_classes, width, height, layout_ids,
                       splits.astype(np.uint8), f["class_pixels"][...].astype(np.int64),
                       f["ignore_pixels"][...].astype(np.int64),
                       f["label_mismatch"][...].astype(np.int64))


def _check_attributes(attrs: dict[str, Any], path: Any,
                      fail: Any) -> tuple[tuple[str, ...], int, int, int]:
    """Format, version, classes, appearances, size, split ratios, the text attributes."""
    if attrs.get("format") != FORMAT:
        raise UserError(f"{path}: not a carla4agt dataset (no format attribute '{FORMAT}'). "
                        "Create one with carla4agt pack.")
    version = attrs.get("schema_version")
    if not _is_int(version):
        raise fail("schema_version", f"should be an integer, got {_short(version)}")
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: schema version {version}, but this carla4agt reads version "
                        f"{SCHEMA_VERSION}. Upgrade carla4agt, or re-pack the raw folders with "
                        "this version.")
    num_classes = attrs.get("num_classes")
    if num_classes not in (16, 19) or not _is_int(num_classes):
        raise fail("num_classes", f"should be 16 or 19, got {_short(num_classes)}")
    appearances = check_names(attrs.get("appearances"), "appearances", path)
    for key in ("width", "height"):
        if not (_is_int(attrs.get(key)) and 1 <= attrs[key] <= MAX_SIDE):
            raise fail(key, f"should be 1 to {MAX_SIDE} pixels, got {_short(attrs.get(key))}")
    width, height = int(attrs["width"]), int(attrs["height"])
    ratios = attrs.get("split_ratios")
    if not (isinstance(ratios, list) and len(ratios) == 3
            and all(isinstance(r, (int, float)) and np.isfinite(r) and r >= 0 for r in ratios)):
        raise fail("split_ratios", f"should be three shares, got {_short(ratios)}")
    for key in ("backends", "tag_tables"):
        value = attrs.get(key)
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise fail(key, f"should be a list of names, got {_short(value)}")
    for key in ("compression", "versions"):
        if not isinstance(attrs.get(key), str):
            raise fail(key, f"should be text, got {_short(attrs.get(key))}")
    try:
        versions = json.loads(attrs["versions"])
    except (ValueError, RecursionError):
        versions = None
    if not isinstance(versions, dict):
        raise fail("versions", "should be a JSON object of version strings")
    return appearances, int(num_classes), width, height


def _check_datasets(f: h5py.File, a: int, num_classes: int, width: int, height: int,
                    fail: Any) -> None:
    """Every dataset present (hard links only), with its shape, row count and dtype."""
    specs = {  # name: (shape after N, dtype kind)
        "rgb": ((a, height, width, 3), "u1"),
        "label": ((height, width), "u1"),
        "layout_id": ((), "str"),
        "layout_yaml": ((), "str"),
        "split": ((), "int"),
        "class_pixels": ((num_classes,), "int"),
        "ignore_pixels": ((), "int"),
        "label_mismatch": ((), "int"),
    }
    n = None
    for name, (shape, kind) in specs.items():
        link = f.get(name, getlink=True)
        # hard links only: an external link would make us read some other file
        obj = f[name] if isinstance(link, h5py.HardLink) else link
        if not isinstance(obj, h5py.Dataset):
            raise fail(name, "is missing" if obj is None else "is not a dataset",
                       "The file is not a complete carla4agt dataset: pack it again.")
        want = ("N", *shape)
        if len(obj.shape) != len(want) or tuple(obj.shape[1:]) != shape:
            raise fail(name, f"has shape {tuple(obj.shape)}, expected [{', '.join(map(str, want))}]"
                       f" for {a} appearances at {width}x{height}")
        if n is None:
            n = obj.shape[0]
        elif obj.shape[0] != n:
            raise fail(name, f"has {obj.shape[0]} rows, but rgb has {n}")
        if not _dtype_ok(obj.dtype, kind):
            raise fail(name, f"has type {obj.dtype}, expected "
                       + {"u1": "uint8", "str": "text", "int": "integers"}[kind])
    if not n:
        raise fail(None, "holds no layouts", "Pack at least one layout.")


def _check_rows(f: h5py.File, path: Any, fail: Any) -> tuple[np.ndarray, np.ndarray]:
    """Layout ids: distinct safe names; split values 0..2."""
    try:
        layout_ids = np.array(f["layout_id"].asstr()[...], dtype=str)
    except UnicodeDecodeError:
        raise fail("layout_id", "holds text that is not UTF-8") from None
    for lid in layout_ids:
        check_layout_id(str(lid), path)
    unique, counts = np.unique(layout_ids, return_counts=True)
    if (counts > 1).any():
        raise fail("layout_id", f"lists {str(unique[counts > 1][0])!r} twice",
                   "Merge disjoint shards, or pack the raw folder again.")
    splits = f["split"][...]
    if splits.size and (splits.min() < 0 or splits.max() >= len(SPLIT_NAMES)):
        bad = int(splits[(splits < 0) | (splits >= len(SPLIT_NAMES))][0])
        raise fail("split", f"holds {bad}; valid values are 0 (train), 1 (val), 2 (test)")
    return layout_ids, splits


def _check_virtual_sources(f: h5py.File, path: Any, attrs: dict[str, Any], fail: Any) -> None:
    """A virtual merge reads its shards beside it: each must exist and be the very file the
    merge was made from (HDF5 would silently read zeros, or a same-named file elsewhere)."""
    here = Path(path).parent
    recorded: dict[str, dict[str, Any]] = {}
    if "virtual_sources" in attrs:
        try:
            entries = json.loads(attrs["virtual_sources"])
            recorded = {str(e["path"]): e for e in entries}
        except (ValueError, TypeError, KeyError, RecursionError):
            raise fail("virtual_sources", "is not a list of shards") from None
    names: set[str] = set()
    for dset in ("rgb", "label"):
        if f[dset].is_virtual:
            names |= {m.file_name for m in f[dset].virtual_sources()}
    if recorded and set(recorded) != names:
        raise fail("virtual_sources", "does not match the shards the data points at")
    merge_hint = (f"Keep the shards beside {path} as they were when it was merged, or merge "
                  "them again (carla4agt merge without --virtual copies the data).")
    for name in sorted(names):
        if name == ".":  # the file itself (an HDF5 convention)
            continue
        source = here / name
        if not source.is_file():
            raise UserError(f"{path} is a virtual merge and reads its images from {source}, "
                            f"which is missing. {merge_hint}")
        if name not in recorded:
            continue
        want = recorded[name]
        try:
            with h5py.File(source, "r") as src:
                got_id = _plain(src.attrs.get("dataset_id", ""))
                got_n = src["layout_id"].shape[0] if "layout_id" in src else None
        except OSError:
            raise UserError(f"{path} is a virtual merge and reads its images from {source}, "
                            f"which cannot be read as HDF5. {merge_hint}") from None
        if got_id != want.get("dataset_id") or got_n != want.get("layouts"):
            raise UserError(f"{path} is a virtual merge, but {source} is not the shard it was "
                            f"made from (another file of that name). {merge_hint}")


def _plain(value: Any) -> Any:
    """An HDF5 attribute as plain Python: str, int, float, bool or lists of them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.ndim else _plain(value.item())
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dtype_ok(dtype: np.dtype, kind: str) -> bool:
    if kind == "str":
        return h5py.check_string_dtype(dtype) is not None
    if kind == "u1":
        return dtype == np.uint8
    return dtype.kind in "iu"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
