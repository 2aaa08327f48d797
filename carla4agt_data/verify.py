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

Each statistic has a warning limit below its failure limit (:class:`Limits`): a suspicion
is reported with severity "warn" and passes unless ``--strict``. The limits come from
benchmarks/verify_calibration.py (clean built-in layouts and planted faults).
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from . import imagechecks as ic
from .dataset import CarlaDataset, open_dataset
from .errors import MissingFileError, UserError
from .names import NAME_RULE
from .raw import RawFolder
from .schema import FORMAT, SCHEMA_VERSION, SPLIT_NAMES
from .taxonomy import CARLA_TAGS, CARLA_TAGS_LEGACY, IGNORE, classes, lut_for_table

CHECKS = ("completeness", "label_identity", "alignment", "label_fit", "distinct",
          "label_values", "integrity")
MIN_DIFFERENCE = 1.0  # mean absolute difference (0..255) below which two images are "the same"


@dataclass(frozen=True)
class Limits:
    """Where a statistic stops being clean: ``warn`` (a suspicion, exit 0 unless --strict)
    and ``fail``. Calibrated on clean built-in renders and planted faults
    (benchmarks/verify_calibration.py; the margins are in the README)."""

    warn: float
    fail: float


# Alignment against the other appearances, in pixels of displacement: the shift, and what
# zoom and rotation move the farthest agreeing tile (at most the image's left and right
# edges). Clean renders stay below 0.1 px; a 1 px shift, a 1 % zoom (5 px at the edge of
# 1024 wide) or a 0.5 degree rotation (4.5 px) are far above.
SHIFT = Limits(warn=0.2, fail=0.35)
ZOOM = Limits(warn=0.3, fail=0.6)
ROTATION = Limits(warn=0.3, fail=0.6)
# Label fit: median edge strength on the label boundaries over the median in the band
# around them (1 = edges unrelated to the label). Lower is worse.
FIT = Limits(warn=1.1, fail=1.03)
# Actors (people, vehicles): how much better the images' edges follow an actor's label
# outline moved by 2 px or more than where it is (1.0: best where it is). A label from
# another frame of a moving actor is off.
ACTOR = Limits(warn=1.6, fail=2.0)
# Night's mean luminance over noon's: a clean night is darker (a lamp-lit street under a
# shaded noon comes close to 1); much brighter means the presets were swapped.
NIGHT = Limits(warn=1.0, fail=1.2)
ACTOR_CLASS_NAMES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")


@dataclass
class Finding:
    check: str
    layout: str
    message: str
    appearance: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    severity: str = "fail"  # "fail", or "warn" for a suspicion (a margin too thin to call)

    def line(self) -> str:
        where = self.layout + (f" [{self.appearance}]" if self.appearance else "")
        tag = "warning " if self.severity == "warn" else ""
        return f"{self.check:15s} {tag}{where}: {self.message}"


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
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != "warn"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warn"]

    @property
    def ok(self) -> bool:
        """No failure (warnings allowed; see :meth:`passes`)."""
        return not self.failures

    def passes(self, strict: bool = False) -> bool:
        return self.ok and not (strict and self.warnings)

    def failed_layouts(self, check: str) -> set[str]:
        return {f.layout for f in self.failures if f.check == check}

    def warned_layouts(self, check: str) -> set[str]:
        return {f.layout for f in self.warnings if f.check == check}

    def add(self, result: LayoutResult) -> None:
        self.layouts += 1
        for check in result.checked:
            self.checked[check] += 1
        self.findings.extend(result.findings)

    def summary(self, max_lines: int = 30, strict: bool = False) -> str:
        rows = [f"Verified {self.layouts} layouts in {self.path} ({self.kind})", "",
                f"{'check':15s} {'layouts':>8s} {'failed':>7s} {'warned':>7s}"]
        for check in CHECKS:
            rows.append(f"{check:15s} {self.checked[check]:8d} "
                        f"{len(self.failed_layouts(check)):7d} "
                        f"{len(self.warned_layouts(check)):7d}")
        shown = self.failures + self.warnings
        if shown:
            rows += ["", f"{len(self.failures)} failures, {len(self.warnings)} warnings:"]
            rows += [f.line() for f in shown[:max_lines]]
            if len(shown) > max_lines:
                rows.append(f"... and {len(shown) - max_lines} more (see --json)")
        if self.notes:
            rows += ["", *self.notes]
        if not self.ok:
            verdict = "Some checks FAILED."
        elif self.warnings:
            verdict = (f"Checks passed with {len(self.warnings)} warnings"
                       + (" (--strict: they count as failures): FAILED." if strict else
                          ": look at the layouts named above (--strict makes them fail)."))
        else:
            verdict = "All checks passed."
        return "\n".join([*rows, "", verdict])

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "kind": self.kind, "layouts": self.layouts,
                           "ok": self.ok, "failures": len(self.failures),
                           "warnings": len(self.warnings), "checked": self.checked,
                           "notes": self.notes,
                           "findings": [asdict(f) for f in self.findings]}, indent=1)


# --- checks on decoded images (shared by raw and HDF5) ----------------------------------

@dataclass
class Alignment:
    """One appearance against the others: the median over the other appearances of each
    displacement (pixels), and how many others could be compared at all."""

    shift: float
    zoom: float
    rotation: float
    partners: int
    transform: ic.Transform | None  # against the first partner that disagrees most


@dataclass
class ActorFit:
    box: tuple[int, int, int, int]  # y0, y1, x0, x1
    offset: tuple[int, int]  # (dy, dx) where the images' outline follows the label best
    gain: float  # how much better there than at (0, 0)

    @property
    def moved(self) -> bool:
        return max(abs(self.offset[0]), abs(self.offset[1])) >= 2


@dataclass
class ImageStats:
    """The statistics the image checks decide on, per appearance (for calibration too)."""

    alignment: dict[str, Alignment]
    fit: dict[str, float]
    actors: list[ActorFit]
    difference: dict[tuple[str, str], float]
    luminance: dict[str, float]


def image_statistics(images: dict[str, np.ndarray], label: np.ndarray,
                     num_classes: int = 16) -> ImageStats:
    names = list(images)
    size = ic.tile_size(label.shape)
    boundary = ic.label_boundaries(label)
    tiles = ic.select_tiles(boundary, size=size)
    bands = ic.tile_bands(boundary, tiles, size=size)
    on_boundary = ic.boundary_tiles(boundary, tiles, size=size)
    centres = ic.tile_centres(tiles, label.shape, size)
    half_width = label.shape[1] / 2
    edges = {n: ic.tile_edges(images[n], tiles, size=size) for n in names}
    spectra = ic.spectra(np.stack(list(edges.values())), bands)  # [A, T, ...], one FFT call
    order = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    t_count = len(tiles)
    shifts = ic.tile_shifts(spectra[[i for i, _ in order]], spectra[[j for _, j in order]],
                            size)  # every pair at once, flattened [P * T]
    pairs: dict[tuple[str, str], ic.Transform] = {}
    for k, (i, j) in enumerate(order):
        part = slice(k * t_count, (k + 1) * t_count)
        t = ic.fit_transform(ic.TileShifts(shifts.shifts[part], shifts.clear[part],
                                           shifts.peaks[part]), centres, half_width)
        pairs[names[i], names[j]], pairs[names[j], names[i]] = t, t.inverse()  # (ref, moved)
    alignment = {}
    for n in names:
        judged = [pairs[m, n] for m in names if m != n and pairs[m, n].judged]
        if not judged:
            alignment[n] = Alignment(0.0, 0.0, 0.0, 0, None)
            continue
        shift = [float(np.hypot(*t.shift)) for t in judged]
        worst = judged[int(np.argmax(shift))]
        alignment[n] = Alignment(float(np.median(shift)),
                                 float(np.median([t.zoom_seen for t in judged])),
                                 float(np.median([t.rotation_seen for t in judged])),
                                 len(judged), worst)
    fit = {n: ic.boundary_agreement(edges[n], on_boundary, bands) for n in names}
    actor_ids = tuple(c.train_id for c in classes(num_classes) if c.name in ACTOR_CLASS_NAMES)
    is_actor = np.zeros(256, bool)
    is_actor[list(actor_ids)] = True
    actors = []
    for box in ic.actor_boxes(label, is_actor):
        offset, gain, (x0, x1) = ic.actor_offset(list(images.values()), label, is_actor, box)
        actors.append(ActorFit((box[0], box[1], x0, x1), offset, gain))
    # Every 4th pixel each way: these are statistics of the whole image, 16 times cheaper.
    small = {n: images[n][::4, ::4].astype(np.int16) for n in names}
    lum = {n: float(ic.luminance(small[n]).mean()) for n in names}
    diff = {(a, b): float(np.abs(small[a] - small[b]).mean())
            for i, a in enumerate(names) for b in names[i + 1:]}
    return ImageStats(alignment, fit, actors, diff, lum)


def _severity(value: float, limits: Limits, higher_is_worse: bool = True) -> str | None:
    if higher_is_worse:
        return "fail" if value >= limits.fail else "warn" if value >= limits.warn else None
    return "fail" if value <= limits.fail else "warn" if value <= limits.warn else None


def judge_images(layout: str, stats: ImageStats) -> list[Finding]:
    """Findings from the statistics (one place for every threshold)."""
    findings: list[Finding] = []
    names = list(stats.fit)
    any_judged = any(a.partners for a in stats.alignment.values())
    if not any_judged and len(names) > 1:
        findings.append(Finding("alignment", layout, "too little clear structure to compare "
                                "the appearances: alignment not judged", severity="warn"))
    for n, a in stats.alignment.items():
        if not a.partners:
            if any_judged:
                findings.append(Finding(
                    "alignment", layout, "no clear match with any other appearance: a "
                    "different scene or camera?", n, {"partners": 0}))
            continue
        t = a.transform
        assert t is not None
        for what, value, limits, text in (
                ("shift", a.shift, SHIFT, f"shifted by ({t.shift[0]:.2f}, {t.shift[1]:.2f}) "
                 "pixels (rows, columns)"),
                ("zoom", a.zoom, ZOOM, f"zoomed by {t.zoom_percent:.2f} %"),
                ("rotation", a.rotation, ROTATION, f"rotated by {t.rotation_degrees:.2f} "
                 "degrees")):
            severity = _severity(value, limits)
            if severity:
                where = "" if what == "shift" else " at the farthest tile"
                findings.append(Finding(
                    "alignment", layout, f"{text} against the other appearances ({value:.2f} "
                    f"px{where}; limit {limits.fail} px)", n,
                    {what: value, "partners": a.partners, "transform": {
                        "shift": list(t.shift), "zoom_percent": t.zoom_percent,
                        "rotation_degrees": t.rotation_degrees}}, severity))
    misaligned = {f.appearance for f in findings if f.check == "alignment"}
    best = max(stats.fit.values()) if stats.fit else 2 * FIT.warn
    severity = _severity(best, FIT, higher_is_worse=False)
    if severity:  # no appearance follows the label: the label itself is off
        findings.append(Finding(
            "label_fit", layout, f"no appearance's edges follow the label boundaries (best "
            f"fit {best:.2f}; 1 = unrelated, limit {FIT.fail})", None, {"fit": best}, severity))
    for n in names:
        severity = _severity(stats.fit[n], FIT, higher_is_worse=False)
        # An appearance that alignment matched with the others at zero shares their
        # geometry: its weak fit is lighting (long shadows across the boundaries), at most
        # a suspicion worth a look. Unconfirmed, it fails.
        confirmed = stats.alignment[n].partners >= 2 and n not in misaligned
        if severity == "fail" and confirmed:
            severity = "warn"
        elif severity == "warn" and confirmed:
            severity = None
        if severity and best > FIT.warn:
            findings.append(Finding(
                "label_fit", layout, f"its edges hardly follow the label boundaries (fit "
                f"{stats.fit[n]:.2f}; 1 = unrelated, limit {FIT.fail})"
                + (", though it is aligned with the other appearances" if confirmed else ""),
                n, {"fit": stats.fit[n]}, severity))
    for actor in stats.actors:
        severity = _severity(actor.gain, ACTOR) if actor.moved else None
        if severity:
            y0, y1, x0, x1 = actor.box
            findings.append(Finding(
                "label_fit", layout, f"the label of the actor in x {x0}..{x1 - 1}, y {y0}.."
                f"{y1 - 1} sits {actor.offset} px (rows, columns) off its outline in the images "
                f"(fit {actor.gain:.2f} times better there; limit {ACTOR.fail}): a label from "
                "another frame?", None, {"box_yyxx": list(actor.box),
                                         "offset": list(actor.offset), "gain": actor.gain},
                severity))
    for (first, second), diff in stats.difference.items():
        if diff < MIN_DIFFERENCE:
            findings.append(Finding("distinct", layout, f"{first} and {second} are (nearly) "
                                    f"identical (mean difference {diff:.2f}): was the weather "
                                    "applied?", second, {"difference": diff}))
    lum = stats.luminance
    if "night" in lum and "noon" in lum:
        ratio = lum["night"] / max(lum["noon"], 1e-6)
        severity = _severity(ratio, NIGHT)
        if severity:
            findings.append(Finding("distinct", layout, f"night is not darker than noon "
                                    f"(mean luminance {lum['night']:.0f} vs {lum['noon']:.0f}; "
                                    f"limit {NIGHT.fail} times)", "night",
                                    {"night_over_noon": ratio}, severity))
    return findings


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
    histogram = np.bincount(label.ravel(), minlength=256)  # cheaper than np.unique
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
    jobs = [(path, a, b) for a, b in _chunks(n)]
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
