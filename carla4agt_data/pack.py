"""``carla4agt pack``: raw folders -> one HDF5 dataset (schema v1, see schema.py).

Decoding (PNG, checksums, tag remapping, class counts) runs in worker processes; the main
process writes in layout order, so memory stays bounded by a few layouts whatever the
dataset size. The file is written under a temporary name and renamed when complete; a
temporary left by a killed pack is removed by the next one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import UserError
from .interrupt import stop_on_signals, worker_init
from .output import check_replaceable, free_space_check, h5_writing
from .raw import RawFolder
from .schema import (
    DEFAULT_SPLIT_RATIOS,
    create_datasets,
    parse_compression,
    split_of,
    write_attributes,
)
from .taxonomy import IGNORE, classes, lut_for_table

__all__ = ["PackSummary", "pack", "default_pack_workers", "create_datasets",
           "write_attributes"]  # the schema writer lives in schema.py; re-exported here


_TABLES = ("layout_id", "layout_yaml", "split", "class_pixels", "ignore_pixels",
           "label_mismatch")
_TEXT = ("layout_id", "layout_yaml")


@dataclass
class PackSummary:
    path: Path
    packed: list[str]
    incomplete: list[str] = field(default_factory=list)  # raw folders without a marker
    refused: dict[str, int] = field(default_factory=dict)  # id -> differing label pixels
    kept_mismatch: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)  # id -> pid rendering it now


@dataclass(frozen=True)
class _Decoded:
    layout_id: str
    rgb: np.ndarray  # [A, H, W, 3]
    label: np.ndarray  # [H, W]
    counts: np.ndarray  # [K]
    ignore: int
    mismatch: int
    layout_yaml: str


def _decode(raw: Path, layout_id: str, num_classes: int) -> _Decoded:
    """Read one complete layout: check checksums, compare tag maps, remap labels."""
    layout = RawFolder(raw).read_layout(layout_id)
    differs = (layout.tags != layout.tags[0]).any(axis=0)
    label = lut_for_table(layout.tag_table, num_classes)[layout.tags[0]]
    counts = np.bincount(label.ravel(), minlength=256)
    return _Decoded(layout_id, layout.rgb, label, counts[:num_classes].astype(np.int64),
                    int(counts[IGNORE]), int(differs.sum()), layout.layout_yaml)


def _select(raw: RawFolder, layout_ids: Sequence[str] | None) -> tuple[list[str], list[str]]:
    complete, incomplete = list(raw.ids), list(raw.incomplete)
    if layout_ids is not None:
        wanted = set(layout_ids)
        complete = [i for i in complete if i in wanted]
        incomplete = sorted(wanted - set(complete))
    return complete, incomplete


def _check_consistent(raw: RawFolder, ids: list[str]) -> tuple[tuple[str, ...], tuple[int, int],
                                                                dict]:
    appearances, size = raw.appearances_of(ids[0]), raw.size_of(ids[0])
    backends, tables = set(), set()
    versions: dict[str, Any] = {}
    for lid in ids:
        marker = raw.marker(lid)
        if raw.appearances_of(lid) != appearances or raw.size_of(lid) != size:
            raise UserError(
                f"{raw.path / lid}: appearances {list(raw.appearances_of(lid))} at "
                f"{raw.size_of(lid)[0]}x{raw.size_of(lid)[1]} differ from {ids[0]}'s "
                f"{list(appearances)} at {size[0]}x{size[1]}. Pack layouts of one run together "
                "(or re-render).")
        backends.add(marker["backend"])
        tables.add(marker["tag_table"])
        found = marker.get("versions")
        versions.setdefault(marker["backend"], found if isinstance(found, dict) else {})
    meta = {"backends": sorted(backends), "tag_tables": sorted(tables), "versions": versions}
    return appearances, size, meta


def _estimated_bytes(raw: RawFolder, ids: list[str], compression: str) -> int:
    """About what the dataset will take: the raw folder's bytes times what each filter
    stores relative to PNG (README, "Storage and packing": gzip-1 108 to 121 %, lzf 151 %), or the
    raw pixels without compression."""
    if compression == "none":
        w, h = raw.size_of(ids[0])
        return len(ids) * (len(raw.appearances_of(ids[0])) * 3 + 1) * w * h
    total = 0
    for lid in ids:
        entries = raw.marker(lid)["files"]
        total += sum(int(e.get("bytes", 0)) for e in entries.values()
                     if isinstance(e.get("bytes", 0), int))
    return int(total * (1.3 if compression.startswith("gzip") else 1.7)) + 2**20


def pack(raw: Path, output: Path, *, num_classes: int = 16, compression: str = "gzip-1",
         split_ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS,
         allow_label_mismatch: bool = False, workers: int = 2, layout_ids: Sequence[str] | None
         = None, progress: bool = True, overwrite: bool = False) -> PackSummary:
    """Pack the complete layouts of a raw folder into one HDF5 file.

    Args:
        raw: folder written by ``carla4agt generate``.
        output: the .h5 file; written under a temporary name, renamed when complete. An
            existing file is replaced only if it was packed from the same run, or with
            ``overwrite``.
        num_classes: 16 (default) or 19 (Cityscapes trainIds).
        compression: filter for the RGB images (see :func:`schema.parse_compression`).
        allow_label_mismatch: keep layouts whose appearances' tag maps differ (the first
            appearance's map is stored and the count recorded) instead of refusing them.
        layout_ids: pack only these layouts (default: every complete layout).

    Raises:
        UserError (a ValueError): bad arguments or files. KeyboardInterrupt on Ctrl-C or
        SIGTERM, at the next layout; nothing is written then.
    """
    classes(num_classes)  # validates
    comp = parse_compression(compression)
    folder = RawFolder(raw)
    output = Path(output)
    check_replaceable(output, folder.run_id, overwrite, sources=[folder.path])
    ids, incomplete = _select(folder, layout_ids)
    if not ids:
        flight = (f"; {len(folder.in_flight)} being rendered now" if folder.in_flight else "")
        raise UserError(f"{raw}: no complete layouts to pack"
                        + (f" ({len(incomplete)} incomplete{flight})" if incomplete or flight
                           else "")
                        + ". Run carla4agt generate (or let it finish) first.")
    appearances, (width, height), meta = _check_consistent(folder, ids)
    needed = _estimated_bytes(folder, ids, comp.name)
    free_space_check(output, needed)
    summary = PackSummary(output, [], incomplete, in_flight=dict(folder.in_flight))
    with stop_on_signals() as check, h5_writing(output, needed) as f:
        create_datasets(f, len(ids), len(appearances), height, width, num_classes, comp)
        write_attributes(f, appearances=appearances, width=width, height=height,
                         num_classes=num_classes, split_ratios=split_ratios,
                         compression=comp.name, run_id=folder.run_id, **meta)
        rows: dict[str, list] = {name: [] for name in _TABLES}
        for item in _decoded_in_order(folder.path, ids, num_classes, workers, progress, check):
            if item.mismatch and not allow_label_mismatch:
                summary.refused[item.layout_id] = item.mismatch
                continue
            if item.mismatch:
                summary.kept_mismatch[item.layout_id] = item.mismatch
            n = len(summary.packed)
            for a in range(len(appearances)):
                f["rgb"][n, a] = item.rgb[a]
            f["label"][n] = item.label
            for name, value in zip(_TABLES, (
                    item.layout_id, item.layout_yaml, split_of(item.layout_id, split_ratios),
                    item.counts, item.ignore, item.mismatch), strict=True):
                rows[name].append(value)
            summary.packed.append(item.layout_id)
        n = len(summary.packed)
        if n == 0:
            raise UserError(f"{raw}: every layout was refused for differing label maps "
                            "across appearances. Re-render them, or pack with "
                            "--allow-label-mismatch.")
        if n < len(ids):  # refused layouts leave rows at the end: drop them
            for name in f:
                f[name].resize(n, axis=0)
        for name, values in rows.items():  # the small tables in one write each
            f[name][...] = np.array(values, dtype=object if name in _TEXT else None)
        check()
    return summary


def _decoded_in_order(raw: Path, ids: list[str], num_classes: int, workers: int,
                      progress: bool, check) -> Iterator[_Decoded]:
    bar = tqdm(total=len(ids), unit="layout", desc="Packing", disable=not progress,
               dynamic_ncols=True)
    try:
        if workers <= 1:
            for lid in ids:
                check()
                yield _decode(raw, lid, num_classes)
                bar.update(1)
            return
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                   initializer=worker_init, initargs=(os.getpid(),))
        try:
            pending: list[Future] = []
            for lid in ids:  # keep a few layouts in flight, write them in order
                check()
                pending.append(pool.submit(_decode, raw, lid, num_classes))
                if len(pending) >= 2 * workers:
                    yield pending.pop(0).result()
                    bar.update(1)
            for future in pending:
                check()
                yield future.result()
                bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


def default_pack_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))
