"""``carla4agt merge``: several packed shards -> one dataset, by copy or virtually."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from .dataset import CarlaDataset, open_dataset
from .errors import UserError
from .interrupt import stop_on_signals
from .output import check_replaceable, free_space_check, h5_writing, same_file
from .schema import Compression, create_datasets, parse_compression, write_attributes

_TABLES = ("layout_id", "layout_yaml", "split", "class_pixels", "ignore_pixels",
           "label_mismatch")


def _check_inputs(paths: Sequence[Path]) -> None:
    if len(paths) < 2:
        raise UserError("Give at least two datasets to merge.")
    for i, a in enumerate(paths):
        for b in paths[i + 1:]:
            if same_file(a, b):
                raise UserError(f"{a} and {b} are the same file. Give each shard once.")


def _check_compatible(shards: list[CarlaDataset]) -> None:
    first = shards[0]
    for other in shards[1:]:
        for what, a, b in (("appearances", first.appearances, other.appearances),
                           ("image size", first.size, other.size),
                           ("class count", first.num_classes, other.num_classes),
                           ("split ratios", tuple(first.attrs["split_ratios"]),
                            tuple(other.attrs["split_ratios"]))):
            if a != b:
                raise UserError(f"Cannot merge {other.path} into {first.path}: {what} differ "
                                f"({first.path.name}: {_show(a)}, {other.path.name}: "
                                f"{_show(b)}). Merge datasets of one run.")
    seen: dict[str, Path] = {}
    for shard in shards:
        for lid in shard.layout_ids:
            lid = str(lid)
            if lid in seen:
                raise UserError(f"The layout {lid!r} is in both {seen[lid]} and {shard.path}. "
                                "Merge disjoint shards (carla4agt generate --shard I/N).")
            seen[lid] = shard.path


def _show(value: Any) -> str:
    """Plain text for tuples of numpy strings and numbers (no ``np.str_('noon')``)."""
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def _merged_run_id(shards: list[CarlaDataset]) -> str:
    """The shards' run id when they come from one run; else one derived from their ids."""
    runs = {s.run_id for s in shards}
    if len(runs) == 1 and "" not in runs:
        return runs.pop()
    ids = sorted(s.dataset_id or str(s.path.resolve()) for s in shards)
    return "merge-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def merge(paths: Sequence[Path], output: Path, *, virtual: bool = False,
          progress: bool = True, overwrite: bool = False) -> int:
    """Merge datasets; returns the number of layouts.

    Copy mode moves compressed chunks as they are (no decompression; Fletcher-32 checksums
    travel with them). Virtual mode writes only the small tables and an HDF5 virtual dataset
    that points at the shards by relative path, and records each shard's dataset id: the
    merged file opens only beside those very shards.

    Raises:
        UserError (a ValueError): bad or incompatible inputs, an output that is an input or
        a dataset of another run (without ``overwrite``). KeyboardInterrupt on Ctrl-C or
        SIGTERM; nothing is written then.
    """
    paths = [Path(p) for p in paths]
    output = Path(output)
    _check_inputs(paths)
    for p in paths:  # by inode: a shard must never be replaced by the merge of itself
        if same_file(output, p):
            raise UserError(f"{output} is also an input ({p}). Write the merge to another "
                            "file: the output replaces what is there.")
    shards = [open_dataset(p) for p in paths]
    try:
        _check_compatible(shards)
        check_replaceable(output, _merged_run_id(shards), overwrite, sources=paths)
        return _write(shards, output, virtual, progress)
    finally:
        for s in shards:
            s.close()


def _write(shards: list[CarlaDataset], output: Path, virtual: bool, progress: bool) -> int:
    first = shards[0]
    total = sum(len(s) for s in shards)
    w, h = first.size
    a = len(first.appearances)
    versions: dict[str, Any] = {}
    for s in shards:
        versions.update(s.versions)
    backends = sorted({b for s in shards for b in s.backends})
    tables = sorted({str(t) for s in shards for t in s.attrs["tag_tables"]})
    needed = 2**20 if virtual else sum(s.path.stat().st_size for s in shards)
    free_space_check(output, needed)
    with stop_on_signals() as check, h5_writing(output, needed) as f:
        if virtual:
            sources = _write_virtual(f, shards, output, total, a, h, w)
        else:
            create_datasets(f, total, a, h, w, first.num_classes,
                            _compression_of(str(first.attrs["compression"])))
            _copy_chunks(f, shards, progress, check)
        for name in _TABLES:
            data = np.concatenate([_read_table(s, name) for s in shards])
            if name in f:
                f[name][...] = data
            else:
                f.create_dataset(name, data=data,
                                 dtype=h5py.string_dtype() if data.dtype == object else None)
        write_attributes(f, appearances=first.appearances, width=w, height=h,
                         num_classes=first.num_classes, backends=backends, tag_tables=tables,
                         versions=versions, split_ratios=tuple(first.attrs["split_ratios"]),
                         compression=str(first.attrs["compression"]),
                         run_id=_merged_run_id(shards))
        f.attrs["merged_from"] = json.dumps([str(s.path) for s in shards])
        if virtual:
            f.attrs["virtual_sources"] = json.dumps(sources)
        check()
    return total


def _read_table(shard: CarlaDataset, name: str) -> np.ndarray:
    with h5py.File(shard.path, "r") as src:
        return src[name][...]


def _compression_of(name: str) -> Compression:
    try:
        return parse_compression(name)
    except UserError:
        return parse_compression("gzip-1")


def _chunks_copyable(src: h5py.Dataset, dst: h5py.Dataset) -> bool:
    """Stored chunks can move as bytes only between identically laid out datasets (a
    virtual merge has no chunks of its own)."""
    return (not src.is_virtual and src.chunks == dst.chunks
            and src.compression == dst.compression
            and src.compression_opts == dst.compression_opts
            and src.fletcher32 == dst.fletcher32 and src.shuffle == dst.shuffle)


def _copy_chunks(f: h5py.File, shards: list[CarlaDataset], progress: bool, check) -> None:
    """Copy every chunk of rgb and label as stored bytes, layout by layout."""
    offset = 0
    bar = tqdm(total=sum(len(s) for s in shards), unit="layout", desc="Merging",
               disable=not progress, dynamic_ncols=True)
    try:
        for shard in shards:
            with h5py.File(shard.path, "r") as src:
                raw_rgb = _chunks_copyable(src["rgb"], f["rgb"])
                raw_label = _chunks_copyable(src["label"], f["label"])
                for i in range(len(shard)):
                    check()
                    for k in range(src["rgb"].shape[1]):
                        if raw_rgb:
                            mask, chunk = src["rgb"].id.read_direct_chunk((i, k, 0, 0, 0))
                            f["rgb"].id.write_direct_chunk((offset + i, k, 0, 0, 0), chunk,
                                                           mask)
                        else:  # through the reader: a damaged chunk is named, not a trace
                            f["rgb"][offset + i, k] = shard.read_rgb(i, k)
                    if raw_label:
                        mask, chunk = src["label"].id.read_direct_chunk((i, 0, 0))
                        f["label"].id.write_direct_chunk((offset + i, 0, 0), chunk, mask)
                    else:
                        f["label"][offset + i] = shard.read_label(i)
                    bar.update(1)
            offset += len(shard)
    finally:
        bar.close()


def _write_virtual(f: h5py.File, shards: list[CarlaDataset], output: Path, total: int, a: int,
                   h: int, w: int) -> list[dict[str, Any]]:
    rgb = h5py.VirtualLayout((total, a, h, w, 3), np.uint8)
    label = h5py.VirtualLayout((total, h, w), np.uint8)
    offset = 0
    sources = []
    for shard in shards:
        # Relative paths: the output and its shards can move together.
        rel = os.path.relpath(shard.path.resolve(), output.resolve().parent)
        n = len(shard)
        rgb[offset:offset + n] = h5py.VirtualSource(rel, "rgb", (n, a, h, w, 3), np.uint8)
        label[offset:offset + n] = h5py.VirtualSource(rel, "label", (n, h, w), np.uint8)
        sources.append({"path": rel, "dataset_id": shard.dataset_id, "layouts": n})
        offset += n
    f.create_virtual_dataset("rgb", rgb)
    f.create_virtual_dataset("label", label)
    return sources
