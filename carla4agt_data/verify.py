"""``carla4agt verify``: prove that every layout's appearances share one pixel-perfect label
map, or name each layout where they do not.

Checks, each reported per layout:

1. ``completeness``: every appearance's RGB and labels exist, decode, and have the size.
2. ``label_identity`` (raw): the tag maps of all appearances are identical.
3. ``alignment``: no translation between an appearance and the first (phase correlation of
   edge maps around the label boundaries, see imagechecks.py).
4. ``label_fit``: each appearance's edges sit on the label boundaries about as well as the
   other appearances' do.
5. ``distinct``: no two appearances are (nearly) identical; night is darker than noon.
6. ``label_values``: labels hold only known values (0..K-1 and 255; raw: known CARLA tags).
7. ``integrity``: checksums (raw: sha256 in commit.json; HDF5: Fletcher-32 per chunk) and
   attributes/schema.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing as mp
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from . import imagechecks as ic
from .dataset import open_dataset
from .errors import UserError
from .raw import MARKER, complete_layouts, read_marker, rgb_name, tags_name
from .schema import FORMAT, SCHEMA_VERSION
from .taxonomy import CARLA_TAGS, CARLA_TAGS_LEGACY, IGNORE, classes, lut_for_table

CHECKS = ("completeness", "label_identity", "alignment", "label_fit", "distinct",
          "label_values", "integrity")
FIT_RATIO = 0.75  # flag an appearance whose label fit is below 75 % of the others' median
MIN_DIFFERENCE = 1.0  # mean absolute difference (0..255) below which two images are "the same"


@dataclass
class Finding:
    check: str
    layout: str
    message: str
    appearance: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        where = self.layout + (f" [{self.appearance}]" if self.appearance else "")
        return f"{self.check:15s} {where}: {self.message}"


@dataclass
class LayoutResult:
    layout: str
    checked: list[str]
    findings: list[Finding]
    classes_present: list[int] = field(default_factory=list)


@dataclass
class Report:
    path: str
    kind: str  # "raw" or "hdf5"
    layouts: int = 0
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def failed_layouts(self, check: str) -> set[str]:
        return {f.layout for f in self.findings if f.check == check}

    def add(self, result: LayoutResult) -> None:
        self.layouts += 1
        for check in result.checked:
            self.checked[check] += 1
        self.findings.extend(result.findings)

    def summary(self, max_lines: int = 30) -> str:
        rows = [f"Verified {self.layouts} layouts in {self.path} ({self.kind})", "",
                f"{'check':15s} {'layouts':>8s} {'failed':>7s}"]
        for check in CHECKS:
            rows.append(f"{check:15s} {self.checked[check]:8d} "
                        f"{len(self.failed_layouts(check)):7d}")
        if self.findings:
            rows += ["", f"{len(self.findings)} findings:"]
            rows += [f.line() for f in self.findings[:max_lines]]
            if len(self.findings) > max_lines:
                rows.append(f"... and {len(self.findings) - max_lines} more (see --json)")
        if self.notes:
            rows += ["", *self.notes]
        rows += ["", "All checks passed." if self.ok else "Some checks FAILED."]
        return "\n".join(rows)

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "kind": self.kind, "layouts": self.layouts,
                           "ok": self.ok, "checked": self.checked, "notes": self.notes,
                           "findings": [asdict(f) for f in self.findings]}, indent=1)


# --- checks on decoded images (shared by raw and HDF5) ----------------------------------

def _image_checks(layout: str, images: dict[str, np.ndarray], label: np.ndarray,
                  findings: list[Finding]) -> None:
    names = list(images)
    if len(names) < 2:
        return
    size = ic.tile_size(label.shape)
    tiles = ic.select_tiles(label, size=size)
    bands = ic.tile_bands(label, tiles, size=size)
    boundaries = ic.boundary_tiles(label, tiles, size=size)
    edges = {n: ic.tile_edges(images[n], tiles, size=size) for n in names}
    first = names[0]
    for n in names[1:]:
        dy, dx = ic.estimate_shift(edges[first], edges[n], bands)
        if (dy, dx) != (0, 0):
            findings.append(Finding("alignment", layout, f"shifted by ({dy}, {dx}) pixels "
                                    f"(rows, columns) against {first}", n, {"shift": [dy, dx]}))
    fit = {n: ic.boundary_agreement(edges[n], boundaries, bands) for n in names}
    for n in names:
        others = float(np.median([fit[m] for m in names if m != n]))
        if fit[n] < FIT_RATIO * others:
            findings.append(Finding("label_fit", layout, f"its edges fit the label much worse "
                                    f"than the others' ({fit[n]:.2f} vs {others:.2f})", n,
                                    {"fit": fit[n], "others_median": others}))
    # Every 4th pixel each way: these are statistics of the whole image, 16 times cheaper.
    small = {n: images[n][::4, ::4].astype(np.int16) for n in names}
    lum = {n: float(ic.luminance(small[n]).mean()) for n in names}
    for a, b in ((a, b) for i, a in enumerate(names) for b in names[i + 1:]):
        diff = float(np.abs(small[a] - small[b]).mean())
        if diff < MIN_DIFFERENCE:
            findings.append(Finding("distinct", layout, f"{a} and {b} are (nearly) identical "
                                    f"(mean difference {diff:.2f}): was the weather applied?",
                                    b, {"difference": diff}))
    if "night" in lum and "noon" in lum and lum["night"] >= lum["noon"]:
        findings.append(Finding("distinct", layout, f"night is not darker than noon "
                                f"(mean luminance {lum['night']:.0f} vs {lum['noon']:.0f})",
                                "night"))


# --- raw folders ---------------------------------------------------------------------------

def _decode_png(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert(mode) if im.mode != mode else im)


def _verify_raw_layout(folder: Path, appearances: tuple[str, ...], size: tuple[int, int],
                       tolerance: float) -> LayoutResult:
    lid = folder.name
    findings: list[Finding] = []
    checked = ["completeness", "integrity"]
    if not (folder / MARKER).is_file():
        findings.append(Finding("completeness", lid, "no commit marker: the layout was never "
                                "finished (re-run carla4agt generate)"))
        return LayoutResult(lid, checked, findings)
    marker = read_marker(folder)
    for name, entry in marker.get("files", {}).items():
        path = folder / name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            findings.append(Finding("integrity", lid, f"{name} does not match its checksum"))
    images: dict[str, np.ndarray] = {}
    tags: dict[str, np.ndarray] = {}
    for a in appearances:
        for fname, mode, store in ((rgb_name(a), "RGB", images), (tags_name(a), "L", tags)):
            path = folder / fname
            if not path.is_file():
                findings.append(Finding("completeness", lid, f"{fname} is missing", a))
                continue
            try:
                array = _decode_png(path, mode)
            except (OSError, UnidentifiedImageError, SyntaxError) as exc:
                findings.append(Finding("completeness", lid, f"{fname} cannot be decoded ({exc})",
                                        a))
                continue
            if array.shape[:2] != (size[1], size[0]):
                findings.append(Finding("completeness", lid, f"{fname} is {array.shape[1]}x"
                                        f"{array.shape[0]}, expected {size[0]}x{size[1]}", a))
                continue
            store[a] = array
    present: list[int] = []
    if tags:
        checked += ["label_identity", "label_values"]
        names = list(tags)
        ref = tags[names[0]]
        for a in names[1:]:
            differs = tags[a] != ref
            count = int(differs.sum())
            share = count / differs.size
            if count and share > tolerance:
                ys, xs = np.nonzero(differs)
                box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
                findings.append(Finding(
                    "label_identity", lid, f"{count} tag pixels ({share:.4%}) differ from "
                    f"{names[0]}, in the box x {box[0]}..{box[2]}, y {box[1]}..{box[3]}", a,
                    {"pixels": count, "share": share, "bbox_xyxy": box}))
        table = CARLA_TAGS_LEGACY if marker.get("tag_table") == "0.9.10-0.9.13" else CARLA_TAGS
        unknown = sorted(set(np.unique(ref).tolist()) - set(table))
        if unknown:
            findings.append(Finding("label_values", lid, f"unknown CARLA tags {unknown}"))
        label = lut_for_table(marker.get("tag_table", "0.9.14+"), 16)[ref]
        present = sorted(int(v) for v in np.unique(label) if v != IGNORE)
        if len(images) == len(appearances):
            checked += ["alignment", "label_fit", "distinct"]
            _image_checks(lid, images, label, findings)
    return LayoutResult(lid, checked, findings, present)


# --- HDF5 ----------------------------------------------------------------------------------

def _h5_attribute_findings(path: Path) -> list[Finding]:
    """Schema and attribute consistency, read without the reader's refusals."""
    out = []
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        return [Finding("integrity", "-", f"not a readable HDF5 file ({exc})")]
    with f:
        attrs = dict(f.attrs)
        if attrs.get("format") != FORMAT:
            out.append(Finding("integrity", "-", f"attribute 'format' is {attrs.get('format')!r},"
                               f" expected '{FORMAT}'"))
        if "schema_version" not in attrs:
            out.append(Finding("integrity", "-", "attribute 'schema_version' is missing"))
        elif int(attrs["schema_version"]) != SCHEMA_VERSION:
            out.append(Finding("integrity", "-", f"schema version {attrs['schema_version']}, this "
                               f"carla4agt reads {SCHEMA_VERSION}"))
        needed = ("rgb", "label", "layout_id", "split", "class_pixels")
        missing = [n for n in needed if n not in f]
        if missing:
            out.append(Finding("integrity", "-", f"datasets missing: {', '.join(missing)}"))
        if out:
            return out
        n, a, h, w, _ = f["rgb"].shape
        expected = {"appearances": a, "width": w, "height": h}
        for key, value in expected.items():
            actual = len(attrs[key]) if key == "appearances" else int(attrs[key])
            if actual != value:
                out.append(Finding("integrity", "-", f"attribute {key!r} says {actual} but the "
                                   f"data has {value}"))
        if len(attrs["class_names"]) != int(attrs["num_classes"]):
            out.append(Finding("integrity", "-", "class_names and num_classes disagree"))
        if f["label"].shape != (n, h, w) or len(f["layout_id"]) != n:
            out.append(Finding("integrity", "-", "datasets have inconsistent lengths or sizes"))
    return out


def _verify_h5_layout(path: Path, index: int) -> LayoutResult:
    ds = _worker_dataset(path)
    lid = str(ds.layout_ids[index])
    findings: list[Finding] = []
    images: dict[str, np.ndarray] = {}
    for a in ds.appearances:
        try:
            images[a] = ds.read_rgb(index, a)
        except OSError as exc:
            findings.append(Finding("integrity", lid, f"the RGB chunk fails its checksum or "
                                    f"cannot be read ({exc})", a))
    checked = ["completeness", "integrity", "label_values"]
    try:
        label = ds.read_label(index)
    except OSError as exc:
        findings.append(Finding("integrity", lid, f"the label chunk fails its checksum ({exc})"))
        return LayoutResult(lid, checked, findings)
    values = np.unique(label)
    bad = [int(v) for v in values if v >= ds.num_classes and v != IGNORE]
    if bad:
        findings.append(Finding("label_values", lid, f"label values {bad} are not classes "
                                f"0..{ds.num_classes - 1} or {IGNORE}", details={"values": bad}))
    counts = np.bincount(label.ravel(), minlength=256)[:ds.num_classes]
    if not np.array_equal(counts, ds.class_pixels[index]):
        findings.append(Finding("integrity", lid, "stored class pixel counts do not match the "
                                "label"))
    present = [int(v) for v in values if v < ds.num_classes]
    if len(images) == len(ds.appearances):
        checked += ["alignment", "label_fit", "distinct"]
        _image_checks(lid, images, label, findings)
    return LayoutResult(lid, checked, findings, present)


@functools.lru_cache(maxsize=4)
def _worker_dataset(path: Path):
    """One open reader per worker process and file (the cache lives in each process)."""
    return open_dataset(path)


# --- driver ----------------------------------------------------------------------------

def _run(jobs: list[tuple[Any, ...]], func, workers: int, progress: bool) -> Iterator[LayoutResult]:
    bar = tqdm(total=len(jobs), unit="layout", desc="Verifying", disable=not progress,
               dynamic_ncols=True)
    try:
        if workers <= 1:
            for job in jobs:
                yield func(*job)
                bar.update(1)
            return
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            for result in pool.map(func, *zip(*jobs, strict=True), chunksize=4):
                yield result
                bar.update(1)
    finally:
        bar.close()


def verify(path: str | Path, *, tolerance: float = 0.0, workers: int = 2,
           progress: bool = True) -> Report:
    """Check a raw folder or an HDF5 dataset; returns a :class:`Report` (``report.ok``)."""
    path = Path(path)
    if path.is_dir():
        return _verify_raw(path, tolerance, workers, progress)
    if not path.is_file():
        raise UserError(f"{path}: no such file or folder. Pass a raw folder or a .h5 dataset.")
    report = Report(str(path), "hdf5")
    attribute_findings = _h5_attribute_findings(path)
    if attribute_findings:
        report.findings.extend(attribute_findings)
        report.checked["integrity"] += 1
        return report
    ds = open_dataset(path)
    results = _run([(path, i) for i in range(len(ds))], _verify_h5_layout, workers, progress)
    _collect(report, results, ds.num_classes)
    return report


def _verify_raw(raw: Path, tolerance: float, workers: int, progress: bool) -> Report:
    report = Report(str(raw), "raw")
    folders = sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith("."))
    complete = complete_layouts(raw)
    if not folders:
        raise UserError(f"{raw}: no layout folders. Pass the --out folder of carla4agt generate.")
    if not complete:
        report.findings.append(Finding("completeness", "-", "no complete layout"))
        return report
    first = read_marker(complete[0])
    appearances, size = tuple(first["appearances"]), tuple(first["size"])
    jobs = [(f, appearances, size, tolerance) for f in folders]
    _collect(report, _run(jobs, _verify_raw_layout, workers, progress), 16)
    return report


def _collect(report: Report, results, num_classes: int) -> None:
    seen: set[int] = set()
    for result in results:
        report.add(result)
        seen.update(result.classes_present)
    names = [c.name for c in classes(num_classes)]
    never = [names[i] for i in range(num_classes) if i not in seen]
    if never:
        report.notes.append("Note: classes never present in the whole dataset: "
                            + ", ".join(never) + ".")
