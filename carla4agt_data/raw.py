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
import uuid
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import __version__
from .errors import FileFormatError, MissingFileError, UserError
from .fileio import dump_yaml, parse_yaml, pid_alive, write_atomic
from .names import check_layout_id, check_names, is_safe_name
from .taxonomy import TAG_TABLE_NAMES, lut_for_table

RAW_FORMAT = 1
MARKER = "commit.json"
LAYOUT_FILE = "layout.yaml"
RUN_FILE = "run.yaml"
MAX_SIDE = 8192  # pixels, the largest image side a run can have
MAX_MARKER_BYTES = 4 * 2**20
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
    """Complete layout folders of a raw folder, sorted by name (see :class:`RawFolder`)."""
    folder = RawFolder(raw)
    return [folder.path / i for i in folder.ids]


def read_marker(folder: Path) -> dict[str, Any]:
    """The commit marker of one layout folder, checked (see :class:`RawFolder`)."""
    return RawFolder(folder.parent).marker(folder.name)


@dataclass(frozen=True)
class RawLayout:
    """Every image of one layout, decoded and checked against its commit marker."""

    layout_id: str
    appearances: tuple[str, ...]
    rgb: np.ndarray  # uint8 [A, H, W, 3]
    tags: np.ndarray  # uint8 [A, H, W], CARLA tag ids
    tag_table: str
    layout_yaml: str


@dataclass(frozen=True)
class _Listing:
    ids: tuple[str, ...]  # complete layouts
    incomplete: tuple[str, ...]  # folders without a commit marker
    in_flight: dict[str, int]  # layout id -> pid of the live process writing it
    foreign: tuple[str, ...]  # entries whose names no layout id can have


class RawFolder:
    """A read-only view of a raw folder, shaped like the HDF5 reader.

    Every name read from a folder or a commit marker is checked with the layout-id rule,
    every file against its checksum and every image against the marker's size, so a
    hand-edited or foreign folder fails with a message naming the file.

    Example:
        >>> raw = RawFolder("raw")
        >>> raw.ids[:2], raw.appearances
        (('layout-00000', 'layout-00001'), ('noon', 'sunset', 'night', 'fog'))
        >>> rgb = raw.read_rgb("layout-00000", "fog")       # uint8 [H, W, 3]
        >>> label = raw.read_label("layout-00000")          # trainIds, 255 = ignore
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            if self.path.exists():
                raise UserError(f"{self.path}: is not a folder. Pass the --out folder of "
                                "carla4agt generate.")
            raise MissingFileError(f"{self.path}: no such folder. Pass the --out folder of "
                                   "carla4agt generate.")
        self._markers: dict[str, dict[str, Any]] = {}

    # --- listing --------------------------------------------------------------------
    @cached_property
    def _listing(self) -> _Listing:
        ids, incomplete, foreign = [], [], []
        in_flight: dict[str, int] = {}
        for entry in self.path.iterdir():
            name = entry.name
            match = _TMP.match(name)
            if match:  # a layout being written, or left by a killed run
                pid = int(match["pid"])
                if entry.is_dir() and pid_alive(pid):
                    in_flight[match["id"]] = pid
                continue
            if name.startswith(".") or not entry.is_dir():
                continue
            if not is_safe_name(name):
                foreign.append(name)
            elif is_complete(entry):
                ids.append(name)
            else:
                incomplete.append(name)
        return _Listing(tuple(sorted(ids)), tuple(sorted(incomplete)),
                        dict(sorted(in_flight.items())), tuple(sorted(foreign)))

    @property
    def ids(self) -> tuple[str, ...]:
        """Complete layouts (a commit marker was written), sorted."""
        return self._listing.ids

    @property
    def incomplete(self) -> tuple[str, ...]:
        """Layout folders without a commit marker (left by other tools or killed copies)."""
        return self._listing.incomplete

    @property
    def in_flight(self) -> dict[str, int]:
        """Layouts a live process is writing now (``generate`` running): id -> its pid."""
        return self._listing.in_flight

    @property
    def foreign(self) -> tuple[str, ...]:
        """Folders whose names cannot be layout ids (ignored)."""
        return self._listing.foreign

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, layout_id: object) -> bool:
        return isinstance(layout_id, str) and layout_id in self.ids

    @property
    def appearances(self) -> tuple[str, ...]:
        """The appearances of the first complete layout (see :meth:`appearances_of`)."""
        if not self.ids:
            raise UserError(f"{self.path}: no complete layouts. Run carla4agt generate (or "
                            "let it finish) first.")
        return self.appearances_of(self.ids[0])

    def appearances_of(self, layout_id: str) -> tuple[str, ...]:
        return tuple(self.marker(layout_id)["appearances"])

    def size_of(self, layout_id: str) -> tuple[int, int]:
        """(width, height) of the layout's images."""
        w, h = self.marker(layout_id)["size"]
        return int(w), int(h)

    @cached_property
    def run_id(self) -> str:
        """The id of the run that wrote this folder (from ``run.yaml``; older folders
        without one: a hash of the folder's absolute path)."""
        path = self.path / RUN_FILE
        if path.is_file():
            try:
                data = parse_yaml(path.read_text(encoding="utf-8"), path)
            except (OSError, UnicodeDecodeError):
                data = None
            if isinstance(data, dict) and isinstance(data.get("run_id"), str):
                return data["run_id"]
        return "path-" + hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:16]

    # --- one layout -----------------------------------------------------------------
    def folder(self, layout_id: str) -> Path:
        """The folder of a complete layout (the id is checked first)."""
        check_layout_id(layout_id, self.path)
        folder = self.path / layout_id
        if not is_complete(folder):
            raise MissingFileError(f"{folder}: no complete layout here (no {MARKER}). Run "
                                   "carla4agt generate to render it.")
        return folder

    def marker(self, layout_id: str) -> dict[str, Any]:
        """The layout's commit marker, checked field by field."""
        if layout_id not in self._markers:
            self._markers[layout_id] = _checked_marker(self.folder(layout_id))
        return self._markers[layout_id]

    def checksums(self, layout_id: str) -> dict[str, str]:
        """File name -> sha256 recorded in the commit marker."""
        return {n: e["sha256"] for n, e in self.marker(layout_id)["files"].items()}

    def read_bytes(self, layout_id: str, name: str) -> bytes:
        """A file of the layout, checked against its checksum."""
        sums = self.checksums(layout_id)
        path = self.path / layout_id / name
        if name not in sums:
            raise UserError(f"{path}: not listed in {self.path / layout_id / MARKER}. Delete "
                            f"{self.path / layout_id} and render it again.")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingFileError(f"{path}: missing, but listed in its commit marker. Delete "
                                   f"{path.parent} and render it again.") from None
        if hashlib.sha256(data).hexdigest() != sums[name]:
            raise UserError(f"{path}: its content does not match the checksum in "
                            f"{path.parent / MARKER}. Delete {path.parent} and render it again.")
        return data

    def read_rgb(self, layout_id: str, appearance: str) -> np.ndarray:
        """One image: ``uint8 [H, W, 3]``."""
        self._check_appearance(layout_id, appearance)
        return self._decode(layout_id, rgb_name(appearance), ("RGB",))

    def read_tags(self, layout_id: str, appearance: str) -> np.ndarray:
        """One tag map: ``uint8 [H, W]`` of CARLA tag ids."""
        self._check_appearance(layout_id, appearance)
        return self._decode(layout_id, tags_name(appearance), ("L",))

    def read_label(self, layout_id: str, num_classes: int = 16) -> np.ndarray:
        """The label map of the first appearance: trainIds ``uint8 [H, W]``, 255 = ignore."""
        tags = self.read_tags(layout_id, self.appearances_of(layout_id)[0])
        return lut_for_table(self.marker(layout_id)["tag_table"], num_classes)[tags]

    def read_layout_yaml(self, layout_id: str) -> str:
        path = self.path / layout_id / LAYOUT_FILE
        try:
            return self.read_bytes(layout_id, LAYOUT_FILE).decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text. Delete {path.parent} and render it "
                            "again.") from None

    def read_layout(self, layout_id: str) -> RawLayout:
        """Every image of a layout, checked (what ``pack`` stores)."""
        names = self.appearances_of(layout_id)
        return RawLayout(
            layout_id, names,
            np.stack([self.read_rgb(layout_id, a) for a in names]),
            np.stack([self.read_tags(layout_id, a) for a in names]),
            self.marker(layout_id)["tag_table"], self.read_layout_yaml(layout_id))

    def _check_appearance(self, layout_id: str, appearance: str) -> None:
        if appearance not in self.appearances_of(layout_id):
            raise UserError(f"{self.path / layout_id}: no appearance {appearance!r}. It has "
                            + ", ".join(self.appearances_of(layout_id)) + ".")

    def _decode(self, layout_id: str, name: str, modes: tuple[str, ...]) -> np.ndarray:
        path = self.path / layout_id / name
        data = self.read_bytes(layout_id, name)
        w, h = self.size_of(layout_id)
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.size != (w, h):  # checked before decoding: no decompression bomb
                    raise UserError(f"{path}: {im.size[0]}x{im.size[1]} pixels, but its commit "
                                    f"marker says {w}x{h}. Delete {path.parent} and render "
                                    "it again.")
                if modes == ("L",) and im.mode != "L":
                    raise UserError(f"{path}: expected a single-channel 8-bit tag image, got "
                                    f"mode {im.mode}. Re-render this layout.")
                return np.asarray(im.convert(modes[0]) if im.mode not in modes else im)
        except (OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, UserError):
                raise
            raise UserError(f"{path}: not a readable PNG ({exc}). Delete {path.parent} and "
                            "render it again.") from None


def _checked_marker(folder: Path) -> dict[str, Any]:
    """Read a commit marker and check every field the readers use."""
    path = folder / MARKER
    hint = f"Delete the folder {folder} and re-run carla4agt generate to render it again."
    try:
        if path.stat().st_size > MAX_MARKER_BYTES:
            raise FileFormatError(path, None, f"is larger than {MAX_MARKER_BYTES} bytes", hint)
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UserError(f"{path}: unreadable commit marker ({exc}). {hint}") from None
    if not isinstance(marker, dict):
        raise FileFormatError(path, None, "is not a JSON object", hint)
    appearances = check_names(marker.get("appearances"), "appearances", path)
    size = marker.get("size")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE
                       for v in size)):
        raise FileFormatError(path, "size", f"should be [width, height] in pixels (1 to "
                              f"{MAX_SIDE}), got {str(size)[:80]}", hint)
    table = marker.get("tag_table")
    if table not in TAG_TABLE_NAMES:
        raise FileFormatError(path, "tag_table", f"is {str(table)[:80]!r}; valid names are "
                              + ", ".join(TAG_TABLE_NAMES), hint)
    if not isinstance(marker.get("backend"), str):
        raise FileFormatError(path, "backend", "should be the name of a backend", hint)
    files = marker.get("files")
    if not isinstance(files, dict):
        raise FileFormatError(path, "files", "should map file names to checksums", hint)
    for name, entry in files.items():
        if not (is_safe_name(name) and isinstance(entry, dict)
                and isinstance(entry.get("sha256"), str)):
            raise FileFormatError(path, f"files.{str(name)[:80]}", "should be a file name of "
                                  "this folder with its sha256", hint)
    needed = [LAYOUT_FILE] + [f(a) for a in appearances for f in (rgb_name, tags_name)]
    missing = [n for n in needed if n not in files]
    if missing:
        raise FileFormatError(path, "files", "has no checksum for " + ", ".join(missing), hint)
    return marker


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
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # name the layout folder the user will look for, not the hidden temporary one (a
        # full disk's write error names no file at all)
        if exc.filename is None or str(tmp) in str(exc.filename):
            raise OSError(exc.errno, exc.strerror or str(exc), str(final)) from exc
        raise
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
    # run_id: the datasets packed from this folder carry it, so a later pack knows which
    # existing dataset it may replace (one of its own run) and which it must not
    write_atomic(path, dump_yaml({"run_id": uuid.uuid4().hex, **settings}))
