"""``carla4agt merge``: several packed shards -> one dataset, by copy or virtually."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from .dataset import open_dataset
from .errors import UserError
from .fileio import atomic_path
from .pack import create_datasets, write_attributes
from .schema import parse_compression

_TABLES = ("layout_id", "layout_yaml", "split", "class_pixels", "ignore_pixels",
           "label_mismatch")


def _check_compatible(paths: Sequence[Path]) -> list:
    if len(paths) < 2:
        raise UserError("Give at least two datasets to merge.")
    shards = [open_dataset(p) for p in paths]
    first = shards[0]
    for other in shards[1:]:
        for what, a, b in (("appearances", first.appearances, other.appearances),
                           ("image size", first.size, other.size),
                           ("class count", first.num_classes, other.num_classes),
                           ("split ratios", tuple(first.attrs["split_ratios"]),
                            tuple(other.attrs["split_ratios"]))):
            if a != b:
                raise UserError(f"Cannot merge {other.path} into {first.path}: {what} differ "
                                f"(existing {a} vs new {b}). Merge datasets of one run.")
    seen: dict[str, Path] = {}
    for shard in shards:
        for lid in shard.layout_ids:
            if lid in seen:
                raise UserError(f"The layout {lid!r} is in both {seen[lid]} and {shard.path}. "
                                "Merge disjoint shards (carla4agt generate --shard I/N).")
            seen[lid] = shard.path
    return shards


def merge(paths: Sequence[Path], output: Path, *, virtual: bool = False,
          progress: bool = True) -> int:
    """Merge datasets; returns the number of layouts.

    Copy mode moves compressed chunks as they are (no decompression; Fletcher-32 checksums
    travel with them). Virtual mode writes only the small tables and an HDF5 virtual dataset
    that points at the shards by relative path: keep the shards beside the output.
    """
    paths = [Path(p) for p in paths]
    shards = _check_compatible(paths)
    first = shards[0]
    total = sum(len(s) for s in shards)
    w, h = first.size
    a = len(first.appearances)
    versions: dict = {}
    for s in shards:
        versions.update(s.versions)
    backends = sorted({b for s in shards for b in s.backends})
    tables = sorted({str(t) for s in shards for t in s.attrs["tag_tables"]})
    with atomic_path(output) as tmp, h5py.File(tmp, "w") as f:
        if virtual:
            _write_virtual(f, shards, output, total, a, h, w)
        else:
            create_datasets(f, total, a, h, w, first.num_classes,
                            _compression_of(first.attrs["compression"]))
            _copy_chunks(f, shards, progress)
        for name in _TABLES:
            data = np.concatenate([_read_table(s.path, name) for s in shards])
            if name in f:
                f[name][...] = data
            else:
                f.create_dataset(name, data=data,
                                 dtype=h5py.string_dtype() if data.dtype == object else None)
        write_attributes(f, appearances=first.appearances, width=w, height=h,
                         num_classes=first.num_classes, backends=backends, tag_tables=tables,
                         versions=versions, split_ratios=tuple(first.attrs["split_ratios"]),
                         compression=str(first.attrs["compression"]))
        f.attrs["merged_from"] = json.dumps([str(p) for p in paths])
    for s in shards:
        s.close()
    return total


def _read_table(path: Path, name: str) -> np.ndarray:
    with h5py.File(path, "r") as src:
        return src[name][...]


def _compression_of(name: str):
    try:
        return parse_compression(name)
    except UserError:
        return parse_compression("gzip-1")


def _copy_chunks(f: h5py.File, shards, progress: bool) -> None:
    """Copy every chunk of rgb and label as stored bytes, layout by layout."""
    offset = 0
    bar = tqdm(total=sum(len(s) for s in shards), unit="layout", desc="Merging",
               disable=not progress, dynamic_ncols=True)
    for shard in shards:
        with h5py.File(shard.path, "r") as src:
            same = (src["rgb"].compression == f["rgb"].compression
                    and src["rgb"].compression_opts == f["rgb"].compression_opts)
            for i in range(len(shard)):
                for a in range(src["rgb"].shape[1]):
                    if same:
                        mask, chunk = src["rgb"].id.read_direct_chunk((i, a, 0, 0, 0))
                        f["rgb"].id.write_direct_chunk((offset + i, a, 0, 0, 0), chunk, mask)
                    else:
                        f["rgb"][offset + i, a] = src["rgb"][i, a]
                mask, chunk = src["label"].id.read_direct_chunk((i, 0, 0))
                f["label"].id.write_direct_chunk((offset + i, 0, 0), chunk, mask)
                bar.update(1)
        offset += len(shard)
    bar.close()


def _write_virtual(f: h5py.File, shards, output: Path, total: int, a: int, h: int,
                   w: int) -> None:
    rgb = h5py.VirtualLayout((total, a, h, w, 3), np.uint8)
    label = h5py.VirtualLayout((total, h, w), np.uint8)
    offset = 0
    for shard in shards:
        # Relative paths: the output and its shards can move together.
        rel = os.path.relpath(shard.path.resolve(), output.resolve().parent)
        n = len(shard)
        rgb[offset:offset + n] = h5py.VirtualSource(rel, "rgb", (n, a, h, w, 3), np.uint8)
        label[offset:offset + n] = h5py.VirtualSource(rel, "label", (n, h, w), np.uint8)
        offset += n
    f.create_virtual_dataset("rgb", rgb)
    f.create_virtual_dataset("label", label)
