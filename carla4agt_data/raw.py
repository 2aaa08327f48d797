"""The raw format: one folder per layout, committed by a marker written last.

``<out>/<layout_id>/`` holds ``layout.yaml``, ``<appearance>.png`` (RGB) and
``<appearance>.tags.png`` (CARLA tag ids, single channel) per appearance, and
``commit.json`` (checksums, backend, versions, timings). A layout is assembled in a hidden
temporary folder ``.<layout_id>.tmp-<pid>`` and renamed into place after its marker is
written, so a folder under its real name is complete, whatever moment a run was killed at.
A folder without a marker (left by other tools) counts as incomplete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import __version__
from .errors import UserError
from .fileio import dump_yaml, parse_yaml, write_atomic

RAW_FORMAT = 1
MARKER = "commit.json"
LAYOUT_FILE = "layout.yaml"
RUN_FILE = "run.yaml"
_TMP = re.compile(r"^\.(?P<id>.+)\.tmp-(?P<pid>\d+)$")


def rgb_name(appearance: str) -> str:
    return f"{appearance}.png"


def tags_name(appearance: str) -> str:
    return f"{appearance}.tags.png"


@dataclass
class Capture:
    """One appearance of one layout, as a backend returns it."""

    appearance: str
    rgb: np.ndarray  # uint8 [H, W, 3]
    tags: np.ndarray  # uint8 [H, W], CARLA tag ids
    seconds: float = 0.0  # render time
    info: dict[str, Any] = field(default_factory=dict)  # e.g. warm-up ticks (CARLA)


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes, tuned for speed: zlib level 1 with the run-length strategy is as fast as
    plain level 1 and 12 % smaller on builtin renders (level 6 takes 3 times longer)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return buf.getvalue()


def read_rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_tags(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode != "L":
            raise UserError(f"{path}: expected a single-channel 8-bit tag image, got mode "
                            f"{im.mode}. Re-render this layout.")
        return np.asarray(im)


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def complete_layouts(raw: Path) -> list[Path]:
    """Complete layout folders of a raw folder, sorted by name."""
    if not raw.is_dir():
        raise UserError(f"{raw}: no such folder. Pass the --out folder of carla4agt generate.")
    return sorted(p for p in raw.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and is_complete(p))


def read_marker(folder: Path) -> dict[str, Any]:
    path = folder / MARKER
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable commit marker ({exc}). Delete the folder "
                        f"{folder} and re-run to render it again.") from None


def write_layout_folder(out: Path, layout_id: str, layout_yaml: str, captures: list[Capture], *,
                        backend: str, versions: dict[str, str], tag_table: str,
                        timings: dict[str, Any]) -> Path:
    """Encode and write one complete layout folder atomically; returns its path.

    ``layout_id`` must already be checked as a safe folder name.
    """
    final = out / layout_id
    tmp = out / f".{layout_id}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    try:
        files: dict[str, bytes] = {LAYOUT_FILE: layout_yaml.encode()}
        for cap in captures:
            files[rgb_name(cap.appearance)] = encode_png(cap.rgb)
            files[tags_name(cap.appearance)] = encode_png(cap.tags)
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        h, w = captures[0].tags.shape
        marker = {
            "raw_format": RAW_FORMAT,
            "layout_id": layout_id,
            "backend": backend,
            "is_carla": backend == "carla",
            "tag_table": tag_table,
            "versions": {"carla4agt": __version__, **versions},
            "appearances": [c.appearance for c in captures],
            "size": [w, h],
            "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)}
                      for n, d in files.items()},
            "render_seconds": {c.appearance: round(c.seconds, 4) for c in captures},
            "capture_info": {c.appearance: c.info for c in captures if c.info},
            "timings": {**timings, "encode_write": round(time.perf_counter() - start, 4)},
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=1))  # last: the commit
        if final.exists():  # an incomplete folder under the real name (no marker)
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def remove_stale_temporaries(out: Path, layout_ids: set[str]) -> int:
    """Delete temporary folders of these layouts left by killed runs; returns how many.

    Only folders of ``layout_ids`` are touched, so shards sharing ``out`` leave each
    other's work alone.
    """
    removed = 0
    if not out.is_dir():
        return 0
    for entry in out.iterdir():
        match = _TMP.match(entry.name)
        if match and match["id"] in layout_ids and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def check_run_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record the run's settings in ``run.yaml``, or refuse to mix a different run into it."""
    path = out / RUN_FILE
    if path.is_file():
        existing = parse_yaml(path.read_text(), path) or {}
        for key, value in settings.items():
            if key in existing and existing[key] != value:
                raise UserError(
                    f"{out} holds a run with {key} = {existing[key]!r}, but this run asks for "
                    f"{value!r}. Resume with the same settings, or choose another --out."
                )
        return
    write_atomic(path, dump_yaml(settings))
