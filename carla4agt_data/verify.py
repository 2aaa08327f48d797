"""``carla4agt verify``: prove that every layout's appearances share one pixel-perfect label
map, or name each layout where they do not.

Checks, each reported per layout:

1. ``completeness``: every appearance's RGB and labels exist, decode, and have the size;
   layouts a running process is writing are named (a warning).
2. ``label_identity`` (raw): the tag maps of all appearances are identical.
3. ``alignment``: no shift, zoom or rotation between an appearance and the others (per-tile
   phase correlation of edges around the label boundaries, the transform most clear tiles
   agree on; see imagechecks.py).
4. ``label_fit``: each appearance's edges follow the label boundaries, and each actor's
   label sits on its outline in the images (not on another frame's).
5. ``distinct``: no two appearances are (nearly) identical; night is darker than noon.
6. ``label_values``: labels hold only known values (0..K-1 and 255; raw: known CARLA tags).
7. ``integrity``: checksums (raw: sha256 in commit.json; HDF5: Fletcher-32 per chunk) and
   attributes/schema.

Each statistic has a warning limit below its failure limit (imagejudge.py): a suspicion
is reported with severity "warn" and passes unless ``--strict``. The limits come from
benchmarks/verify_calibration.py (clean built-in layouts and planted faults). The image
analysis is in imagechecks.py, its statistics per layout in imagestats.py, the report in
findings.py; this module reads the layouts and runs the checks.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from .dataset import CarlaDataset, open_dataset
from .errors import MissingFileError, UserError
from .findings import CHECKS, Finding, LayoutResult, Report
from .imagejudge import Limits, judge_images
from .imagestats import image_statistics
from .names import NAME_RULE
from .raw import RawFolder
from .schema import FORMAT, SCHEMA_VERSION, SPLIT_NAMES
from .taxonomy import CARLA_TAGS, CARLA_TAGS_LEGACY, IGNORE, classes, lut_for_table

__all__ = ["CHECKS", "Finding", "LayoutResult", "Limits", "Report", "image_statistics",
           "judge_images", "tag_findings", "verify"]


def _image_checks(layout: str, images: dict[str, np.ndarray], label: np.ndarray,
                  findings: list[Finding], num_classes: int = 16) -> None:
    if len(images) < 2:
        return
    findings.extend(judge_images(layout, image_statistics(images, label, num_classes)))


# --- raw folders ---------------------------------------------------------------------------

def tag_findings(layout: str, tags: dict[str, np.ndarray], tolerance: float) -> list[Finding]:
    """label_identity: every appearance's tag map against the first one's."""
    findings = []
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
                "label_identity", layout, f"{count} tag pixels ({share:.4%}) differ from "
                f"{names[0]}, in the box x {box[0]}..{box[2]}, y {box[1]}..{box[3]}", a,
                {"pixels": count, "share": share, "bbox_xyxy": box}))
    return findings


def _file_finding(lid: str, exc: UserError, appearance: str | None) -> Finding:
    """A refusal of the raw reader, as a finding of the check it concerns."""
    text = str(exc)
    missing = isinstance(exc, MissingFileError)
    check = "integrity" if not missing and ("checksum" in text or "not listed" in text) \
        else "completeness"
    return Finding(check, lid, text, appearance)


def _verify_raw_layouts(raw: Path, ids: list[str], tolerance: float) -> list[LayoutResult]:
    folder = RawFolder(raw)  # one reader per call and process
    return [_verify_raw_layout(folder, lid, tolerance) for lid in ids]


def _verify_raw_layout(raw: RawFolder, lid: str, tolerance: float) -> LayoutResult:
    findings: list[Finding] = []
    checked = ["completeness", "integrity"]
    try:
        marker = raw.marker(lid)
    except UserError as exc:
        return LayoutResult(lid, checked, [Finding("integrity", lid, str(exc))])
    if marker.get("layout_id") != lid:
        findings.append(Finding("integrity", lid, f"commit.json names layout "
                                f"{marker.get('layout_id')!r}, not the folder's {lid!r}"))
    appearances = raw.appearances_of(lid)
    try:
        raw.read_layout_yaml(lid)
    except UserError as exc:
        findings.append(_file_finding(lid, exc, None))
    images: dict[str, np.ndarray] = {}
    tags: dict[str, np.ndarray] = {}
    for a in appearances:
        for read, store in ((raw.read_rgb, images), (raw.read_tags, tags)):
            try:
                store[a] = read(lid, a)
            except UserError as exc:
                findings.append(_file_finding(lid, exc, a))
    present: list[int] = []
    if tags:
        checked += ["label_identity", "label_values"]
        findings.extend(tag_findings(lid, tags, tolerance))
        ref = tags[next(iter(tags))]
        table = CARLA_TAGS_LEGACY if marker["tag_table"] == "0.9.10-0.9.13" else CARLA_TAGS
        values = np.flatnonzero(np.bincount(ref.ravel(), minlength=256))  # cheaper than unique
        unknown = sorted(set(values.tolist()) - set(table))
        if unknown:
            findings.append(Finding("label_values", lid, f"unknown CARLA tags {unknown}"))
        lut = lut_for_table(marker["tag_table"], 16)
        label = lut[ref]
        present = sorted({int(v) for v in lut[values]} - {IGNORE})
        if len(images) == len(appearances):
            checked += ["alignment", "label_fit", "distinct"]
            _image_checks(lid, images, label, findings)
    return LayoutResult(lid, checked, findings, present)


# --- HDF5 ----------------------------------------------------------------------------------

def _h5_attribute_findings(path: Path) -> list[Finding]:
    """Schema, attributes and tables, read without the reader's refusals: every problem is
    named, none is a traceback."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        return [Finding("integrity", "-", f"not a readable HDF5 file ({exc})")]
    with f:
        try:
            return _h5_structure(f)
        except (KeyError, TypeError, ValueError, OSError) as exc:
            return [Finding("integrity", "-", f"malformed attribute or table ({exc})")]


def _h5_structure(f: h5py.File) -> list[Finding]:
    out: list[Finding] = []

    def bad(message: str) -> None:
        out.append(Finding("integrity", "-", message))

    attrs = dict(f.attrs)
    if attrs.get("format") != FORMAT:
        bad(f"attribute 'format' is {attrs.get('format')!r}, expected '{FORMAT}'")
    if "schema_version" not in attrs:
        bad("attribute 'schema_version' is missing")
    elif int(attrs["schema_version"]) != SCHEMA_VERSION:
        bad(f"schema version {attrs['schema_version']}, this carla4agt reads {SCHEMA_VERSION}")
    needed = ("rgb", "label", "layout_id", "split", "class_pixels")
    missing = [n for n in needed if n not in f]
    if missing:
        bad(f"datasets missing: {', '.join(missing)}")
    absent = [k for k in ("appearances", "width", "height", "num_classes", "class_names")
              if k not in attrs]
    if absent:
        bad(f"attributes missing: {', '.join(absent)}")
    if out:
        return out
    rgb, label = f["rgb"], f["label"]
    if rgb.ndim != 5 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        bad(f"'rgb' is {rgb.dtype} {rgb.shape}, expected uint8 [layouts, appearances, height, "
            "width, 3]")
    if label.ndim != 3 or label.dtype != np.uint8:
        bad(f"'label' is {label.dtype} {label.shape}, expected uint8 [layouts, height, width]")
    if out:
        return out
    n, a, h, w, _ = rgb.shape
    if n == 0:
        bad("the dataset holds no layouts")
    appearances = attrs["appearances"]
    if isinstance(appearances, (str, bytes)):
        bad(f"attribute 'appearances' is one string ({appearances!r}), expected a list of names")
        return out
    names = [str(x) for x in appearances]
    repeated = sorted(x for x, k in Counter(names).items() if k > 1)
    if repeated:
        bad(f"attribute 'appearances' repeats {', '.join(repeated)}")
    for key, value in {"appearances": a, "width": w, "height": h}.items():
        actual = len(names) if key == "appearances" else int(attrs[key])
        if actual != value:
            bad(f"attribute {key!r} says {actual} but the data has {value}")
    if len(attrs["class_names"]) != int(attrs["num_classes"]):
        bad("class_names and num_classes disagree")
    if label.shape != (n, h, w) or len(f["layout_id"]) != n or len(f["split"]) != n:
        bad("datasets have inconsistent lengths or sizes")
    try:
        versions = json.loads(attrs.get("versions", "{}"))
    except (TypeError, ValueError):
        versions = None
    if not isinstance(versions, dict):
        bad(f"attribute 'versions' is {attrs.get('versions')!r}, expected a JSON object")
    ids = [str(x) for x in f["layout_id"].asstr()[...]]
    dupes = sorted(x for x, k in Counter(ids).items() if k > 1)
    if dupes:
        bad(f"layout ids occur more than once: {', '.join(dupes[:5])}"
            + (f" and {len(dupes) - 5} more" if len(dupes) > 5 else ""))
    split = f["split"][...]
    if split.dtype.kind not in "ui" or (split.size and int(split.max()) > len(SPLIT_NAMES) - 1):
        wrong = sorted({int(x) for x in split if not 0 <= x < len(SPLIT_NAMES)})[:5] \
            if split.dtype.kind in "ui" else [str(split.dtype)]
        bad(f"split values {wrong} are not 0 (train), 1 (val) or 2 (test)")
    return out


def _verify_h5_layouts(path: Path, start: int, stop: int) -> list[LayoutResult]:
    """Layouts start..stop-1, with a reader of their own: a file replaced between two
    verifies in one process is read anew (no reader outlives its call)."""
    with open_dataset(path) as ds:
        return [_verify_h5_layout(ds, i) for i in range(start, stop)]


def _verify_h5_layout(ds: CarlaDataset, index: int) -> LayoutResult:
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
    histogram = _histogram(label, ds.num_classes)
    values = np.flatnonzero(histogram)
    bad = [int(v) for v in values if v >= ds.num_classes and v != IGNORE]
    if bad:
        findings.append(Finding("label_values", lid, f"label values {bad} are not classes "
                                f"0..{ds.num_classes - 1} or {IGNORE}", details={"values": bad}))
    if not np.array_equal(histogram[:ds.num_classes], ds.class_pixels[index]):
        findings.append(Finding("integrity", lid, "stored class pixel counts do not match the "
                                "label"))
    present = [int(v) for v in values if v < ds.num_classes]
    if len(images) == len(ds.appearances):
        checked += ["alignment", "label_fit", "distinct"]
        _image_checks(lid, images, label, findings, ds.num_classes)
    return LayoutResult(lid, checked, findings, present)


def _histogram(label: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels per value 0..255. One comparison per class and the ignore value is about
    three times cheaper than np.bincount, which first widens every byte to 64 bits; the
    full count only where other values are present."""
    counts = np.zeros(256, np.int64)
    for value in (*range(num_classes), IGNORE):
        counts[value] = np.count_nonzero(label == value)
    if counts.sum() != label.size:
        return np.bincount(label.ravel(), minlength=256)
    return counts


# --- driver ----------------------------------------------------------------------------

def _run(jobs: list[tuple[Any, ...]], func: Callable[..., list[LayoutResult]], total: int,
         workers: int, progress: bool) -> Iterator[LayoutResult]:
    """Results of ``func(*job)`` (each a list of layouts), in order."""
    bar = tqdm(total=total, unit="layout", desc="Verifying", disable=not progress,
               dynamic_ncols=True)
    try:
        if workers <= 1:
            results: Iterator[list[LayoutResult]] = (func(*job) for job in jobs)
            for chunk in results:
                yield from chunk
                bar.update(len(chunk))
            return
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            for chunk in pool.map(func, *zip(*jobs, strict=True)):
                yield from chunk
                bar.update(len(chunk))
    finally:
        bar.close()


def _chunks(n: int, size: int = 8) -> list[tuple[int, int]]:
    return [(i, min(i + size, n)) for i in range(0, n, size)]


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
    try:
        with open_dataset(path) as ds:
            n, num_classes = len(ds), ds.num_classes
    except UserError as exc:  # the reader's own refusal, in its words
        report.findings.append(Finding("integrity", "-", str(exc)))
        report.checked["integrity"] += 1
        return report
    # Big chunks: each opens the file anew (about 8 ms with its schema checks); at least
    # eight per worker keep the workers equally busy to the end.
    size = min(max(n // (8 * max(workers, 1)), 8), 32)
    jobs = [(path, a, b) for a, b in _chunks(n, size)]
    _collect(report, _run(jobs, _verify_h5_layouts, n, workers, progress), num_classes)
    return report


def _verify_raw(path: Path, tolerance: float, workers: int, progress: bool) -> Report:
    report = Report(str(path), "raw")
    raw = RawFolder(path)
    if not raw.ids and not raw.incomplete:
        raise UserError(f"{path}: no layout folders. Pass the --out folder of carla4agt "
                        "generate.")
    for lid in raw.incomplete:
        report.findings.append(Finding("completeness", lid, "no commit marker: the layout was "
                                       "never finished (re-run carla4agt generate)"))
    for name in raw.foreign:
        report.findings.append(Finding("integrity", name, "this folder's name cannot be a "
                                       f"layout id ({NAME_RULE}): not a carla4agt layout"))
    if raw.in_flight:
        pids = sorted(set(raw.in_flight.values()))
        report.findings.append(Finding(
            "completeness", "-", f"{len(raw.in_flight)} layouts are being written right now by "
            f"process {', '.join(map(str, pids))} (a running carla4agt generate?): they were "
            "not checked. Verify again when it has finished.",
            details={"in_flight": len(raw.in_flight), "pids": pids}, severity="warn"))
    if not raw.ids:
        report.findings.append(Finding("completeness", "-", "no complete layout"))
        return report
    report.layouts += len(raw.incomplete)
    report.checked["completeness"] += len(raw.incomplete)
    ids = list(raw.ids)
    jobs = [(path, ids[a:b], tolerance) for a, b in _chunks(len(ids))]
    _collect(report, _run(jobs, _verify_raw_layouts, len(ids), workers, progress), 16)
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
