"""``carla4agt pack``: raw folders -> one HDF5 dataset (schema v1, see schema.py).

Decoding (PNG, checksums, tag remapping, class counts) runs in worker processes; the main
process writes in layout order, so memory stays bounded by a few layouts whatever the
dataset size. The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from . import __version__
from .errors import UserError
from .fileio import atomic_path
from .raw import (
    LAYOUT_FILE,
    complete_layouts,
    read_marker,
    read_rgb,
    read_tags,
    rgb_name,
    tags_name,
)
from .schema import (
    DEFAULT_SPLIT_RATIOS,
    FORMAT,
    SCHEMA_VERSION,
    SPLIT_NAMES,
    Compression,
    parse_compression,
    split_of,
)
from .taxonomy import IGNORE, classes, lut_for_table, palette


@dataclass
class PackSummary:
    path: Path
    packed: list[str]
    incomplete: list[str] = field(default_factory=list)  # raw folders without a marker
    refused: dict[str, int] = field(default_factory=dict)  # id -> differing label pixels
    kept_mismatch: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Decoded:
    layout_id: str
    rgb: np.ndarray  # [A, H, W, 3]
    label: np.ndarray  # [H, W]
    counts: np.ndarray  # [K]
    ignore: int
    mismatch: int
    layout_yaml: str


def _decode(folder: Path, appearances: tuple[str, ...], num_classes: int) -> _Decoded:
    """Read one complete layout folder: check checksums, compare tag maps, remap labels."""
    marker = read_marker(folder)
    for name, entry in marker["files"].items():
        data = (folder / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise UserError(f"{folder / name}: its content does not match the checksum in "
                            f"{folder / 'commit.json'}. Delete {folder} and render it again.")
    tags = [read_tags(folder / tags_name(a)) for a in appearances]
    differs = np.zeros(tags[0].shape, bool)
    for t in tags[1:]:
        differs |= t != tags[0]
    label = lut_for_table(marker["tag_table"], num_classes)[tags[0]]
    counts = np.bincount(label.ravel(), minlength=256)
    rgb = np.stack([read_rgb(folder / rgb_name(a)) for a in appearances])
    return _Decoded(folder.name, rgb, label, counts[:num_classes].astype(np.int64),
                    int(counts[IGNORE]), int(differs.sum()),
                    (folder / LAYOUT_FILE).read_text(encoding="utf-8"))


def _scan(raw: Path, layout_ids: Sequence[str] | None) -> tuple[list[Path], list[str]]:
    complete = complete_layouts(raw)
    names = {p.name for p in complete}
    incomplete = sorted(p.name for p in raw.iterdir()
                        if p.is_dir() and not p.name.startswith(".") and p.name not in names)
    if layout_ids is not None:
        wanted = set(layout_ids)
        complete = [p for p in complete if p.name in wanted]
        incomplete = sorted(wanted - {p.name for p in complete})
    return complete, incomplete


def _check_consistent(folders: list[Path]) -> tuple[tuple[str, ...], tuple[int, int], dict]:
    first = read_marker(folders[0])
    appearances, size = tuple(first["appearances"]), tuple(first["size"])
    backends, tables, versions = set(), set(), {}
    for folder in folders:
        marker = read_marker(folder)
        if tuple(marker["appearances"]) != appearances or tuple(marker["size"]) != size:
            raise UserError(
                f"{folder}: appearances {marker['appearances']} at {marker['size'][0]}x"
                f"{marker['size'][1]} differ from {folders[0].name}'s {list(appearances)} at "
                f"{size[0]}x{size[1]}. Pack layouts of one run together (or re-render).")
        backends.add(marker["backend"])
        tables.add(marker["tag_table"])
        versions.setdefault(marker["backend"], marker.get("versions", {}))
    meta = {"backends": sorted(backends), "tag_tables": sorted(tables), "versions": versions}
    return appearances, size, meta


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
                     compression: str) -> None:
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
    })


def pack(raw: Path, output: Path, *, num_classes: int = 16, compression: str = "gzip-1",
         split_ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS,
         allow_label_mismatch: bool = False, workers: int = 2, layout_ids: Sequence[str] | None
         = None, progress: bool = True) -> PackSummary:
    """Pack the complete layouts of a raw folder into one HDF5 file.

    Args:
        raw: folder written by ``carla4agt generate``.
        output: the .h5 file; written under a temporary name, renamed when complete.
        num_classes: 16 (default) or 19 (Cityscapes trainIds).
        compression: filter for the RGB images (see :func:`schema.parse_compression`).
        allow_label_mismatch: keep layouts whose appearances' tag maps differ (the first
            appearance's map is stored and the count recorded) instead of refusing them.
        layout_ids: pack only these layouts (default: every complete layout).
    """
    classes(num_classes)  # validates
    comp = parse_compression(compression)
    folders, incomplete = _scan(raw, layout_ids)
    if not folders:
        raise UserError(f"{raw}: no complete layouts to pack"
                        + (f" ({len(incomplete)} incomplete)" if incomplete else "")
                        + ". Run carla4agt generate (or finish it) first.")
    appearances, (width, height), meta = _check_consistent(folders)
    summary = PackSummary(output, [], incomplete)
    with atomic_path(output) as tmp, h5py.File(tmp, "w") as f:
        create_datasets(f, len(folders), len(appearances), height, width, num_classes, comp)
        write_attributes(f, appearances=appearances, width=width, height=height,
                         num_classes=num_classes, split_ratios=split_ratios,
                         compression=comp.name, **meta)
        n = 0
        for item in _decoded_in_order(folders, appearances, num_classes, workers, progress):
            if item.mismatch and not allow_label_mismatch:
                summary.refused[item.layout_id] = item.mismatch
                continue
            if item.mismatch:
                summary.kept_mismatch[item.layout_id] = item.mismatch
            for a in range(len(appearances)):
                f["rgb"][n, a] = item.rgb[a]
            f["label"][n] = item.label
            f["layout_id"][n] = item.layout_id
            f["layout_yaml"][n] = item.layout_yaml
            f["split"][n] = split_of(item.layout_id, split_ratios)
            f["class_pixels"][n] = item.counts
            f["ignore_pixels"][n] = item.ignore
            f["label_mismatch"][n] = item.mismatch
            summary.packed.append(item.layout_id)
            n += 1
        if n == 0:
            raise UserError(f"{raw}: every layout was refused for differing label maps "
                            "across appearances. Re-render them, or pack with "
                            "--allow-label-mismatch.")
        if n < len(folders):  # refused layouts leave rows at the end: drop them
            for name in f:
                f[name].resize(n, axis=0)
    return summary


def _decoded_in_order(folders: list[Path], appearances: tuple[str, ...], num_classes: int,
                      workers: int, progress: bool):
    bar = tqdm(total=len(folders), unit="layout", desc="Packing", disable=not progress,
               dynamic_ncols=True)
    try:
        if workers <= 1:
            for folder in folders:
                yield _decode(folder, appearances, num_classes)
                bar.update(1)
            return
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            pending: list[Future] = []
            todo = iter(folders)
            for folder in todo:  # keep a few layouts in flight, write them in order
                pending.append(pool.submit(_decode, folder, appearances, num_classes))
                if len(pending) >= 2 * workers:
                    yield pending.pop(0).result()
                    bar.update(1)
            for future in pending:
                yield future.result()
                bar.update(1)
    finally:
        bar.close()


def default_pack_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))
