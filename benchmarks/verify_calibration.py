"""Calibration of `carla4agt verify`: false alarms on clean data, detection of planted faults.

Over a clean built-in set at 1024x512 (rendered into OUT/raw if absent; re-running resumes
the render), it reports per check the distribution of its statistic on clean layouts and
the margin between the worst clean layout and the failure threshold, then plants graded
faults into in-memory copies and reports the detection rate per fault and size:

- camera shift 0.5, 1, 2 px; zoom 0.5, 1, 2 %; rotation 0.25, 0.5 degrees (one appearance,
  resampled bicubically about the image centre);
- a tag region of 8x8, 16x16, 32x32 px in one appearance's tag map (raw folders);
- one appearance swapped with the same appearance of another layout;
- the presets swapped: noon's image saved as night and night's as noon;
- the label of one moving actor (person, rider, vehicle) one frame off: moved by 4 px
  (a car at 30 km/h, 12 m away, at 20 frames/s, seen with a 90 degree lens at 1024 px).

The checks run are verify's own (carla4agt_data.verify). Each fault is planted into one
appearance per layout, taking turns over the appearances.

    python benchmarks/verify_calibration.py --out /work/cal --layouts 1000 [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from carla4agt_data import imagejudge as judge
from carla4agt_data import verify as v
from carla4agt_data.raw import (
    complete_layouts,
    read_marker,
    read_rgb,
    read_tags,
    rgb_name,
    tags_name,
)
from carla4agt_data.taxonomy import lut_for_table

FAULTS: tuple[tuple[str, float], ...] = (
    ("shift px", 0.5), ("shift px", 1), ("shift px", 2),
    ("zoom %", 0.5), ("zoom %", 1), ("zoom %", 2),
    ("rotation deg", 0.25), ("rotation deg", 0.5),
    ("tag region px", 8), ("tag region px", 16), ("tag region px", 32),
    ("swapped appearance", 1), ("swapped presets", 1), ("actor label one frame off", 4),
)
ACTOR_CLASSES = (10, 11, 12, 13, 14, 15)  # 16-class trainIds: person .. bicycle


def warp(rgb: np.ndarray, shift: float = 0.0, zoom: float = 0.0, degrees: float = 0.0
         ) -> np.ndarray:
    """The image seen by a camera moved right by ``shift`` px, zoomed by ``zoom`` % and
    rolled by ``degrees`` about the image centre (bicubic, edges replicated)."""
    h, w = rgb.shape[:2]
    s = 1 + zoom / 100
    a = np.radians(degrees)
    cos, sin = np.cos(a) / s, np.sin(a) / s
    cx, cy, pad = w / 2, h / 2, 8
    # output pixel (x, y) samples the input at (a x + b y + c, d x + e y + f)
    coeffs = (cos, sin, cx - shift - cos * cx - sin * cy + pad,
              -sin, cos, cy + sin * cx - cos * cy + pad)
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    out = Image.fromarray(padded).transform((w, h), Image.Transform.AFFINE, coeffs,
                                            resample=Image.Resampling.BICUBIC)
    return np.asarray(out)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """Connected regions of a mask (4-neighbourhood), largest first, as index arrays."""
    from collections import deque

    seen = np.zeros(mask.shape, bool)
    out = []
    h, w = mask.shape
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        queue, pixels = deque([(y0, x0)]), []
        seen[y0, x0] = True
        while queue:
            y, x = queue.popleft()
            pixels.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        out.append(np.array(pixels))
    return sorted(out, key=len, reverse=True)


def move_actor(label: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray | None:
    """The label with its largest actor moved sideways by ``pixels``; None without actors."""
    mask = np.isin(label, ACTOR_CLASSES)
    if mask.sum() < 100:
        return None
    # a coarse pass finds the biggest actor cheaply; then its full-resolution pixels
    comps = _components(mask[::2, ::2])
    if not comps or len(comps[0]) < 25:
        return None
    ys, xs = comps[0][:, 0] * 2, comps[0][:, 1] * 2
    y0, y1, x0, x1 = ys.min(), ys.max() + 2, xs.min(), xs.max() + 2
    box = np.zeros(label.shape, bool)
    box[y0:y1, x0:x1] = True
    actor = mask & box
    cls = int(np.bincount(label[actor]).argmax())
    out = label.copy()
    # what was behind the actor: the most common non-actor class around its box
    ring = label[max(y0 - 4, 0):y1 + 4, max(x0 - 4, 0):x1 + 4]
    behind = ring[~np.isin(ring, ACTOR_CLASSES)]
    out[actor] = int(np.bincount(behind).argmax()) if behind.size else 0
    d = int(pixels) * (1 if rng.random() < 0.5 else -1)
    moved = np.roll(actor, d, axis=1)
    out[moved] = cls
    return out


def _load(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    marker = read_marker(folder)
    names = marker["appearances"]
    images = {a: read_rgb(folder / rgb_name(a)) for a in names}
    tags = {a: read_tags(folder / tags_name(a)) for a in names}
    label = lut_for_table(marker.get("tag_table", "0.9.14+"), 16)[tags[names[0]]]
    return images, tags, label


def _caught(findings: list[v.Finding]) -> list[str]:
    """The checks that failed (empty: not caught)."""
    return sorted({f.check for f in findings if f.severity == "fail"})


def calibrate_layout(folder: str, other: str, index: int, plant: bool) -> dict:
    """Clean statistics and, if ``plant``, per planted fault whether verify fails it."""
    images, tags, label = _load(Path(folder))
    names = list(images)
    stats = v.image_statistics(images, label)
    findings = v.judge_images(Path(folder).name, stats) + v.tag_findings("x", tags, 0.0)
    clean = {
        "findings": [(f.check, f.severity) for f in findings],
        "shift": max(a.shift for a in stats.alignment.values()),
        "zoom": max(a.zoom for a in stats.alignment.values()),
        "rotation": max(a.rotation for a in stats.alignment.values()),
        "partners": min(a.partners for a in stats.alignment.values()),
        "fit": min(stats.fit.values()),
        "actor": max([a.gain for a in stats.actors if a.moved], default=1.0),
        "difference": min(stats.difference.values()),
        "night_over_noon": stats.dark.get("night", 0) / max(stats.dark.get("noon", 1), 1e-6),
    }
    rng = np.random.default_rng(index)
    target = names[index % len(names)]
    detected: dict[str, list[str] | None] = {}
    other_images = None
    for kind, size in FAULTS if plant else ():
        key = f"{kind} {size:g}"
        planted_images, planted_label, planted_tags = dict(images), label, tags
        if kind == "shift px":
            planted_images[target] = warp(images[target], shift=size)
        elif kind == "zoom %":
            planted_images[target] = warp(images[target], zoom=size)
        elif kind == "rotation deg":
            planted_images[target] = warp(images[target], degrees=size)
        elif kind == "tag region px":
            t = tags[target].copy()
            k = int(size)
            y = int(rng.integers(0, t.shape[0] - k))
            x = int(rng.integers(0, t.shape[1] - k))
            t[y:y + k, x:x + k] = (t[y:y + k, x:x + k].astype(int) + 1) % 256
            planted_tags = {**tags, target: t}
            detected[key] = _caught(v.tag_findings("x", planted_tags, 0.0))
            continue
        elif kind == "swapped appearance":
            if other_images is None:
                other_images = _load(Path(other))[0]
            planted_images[target] = other_images[target]
        elif kind == "swapped presets":
            planted_images["noon"], planted_images["night"] = images["night"], images["noon"]
        elif kind == "actor label one frame off":
            moved = move_actor(label, size, rng)
            if moved is None:
                detected[key] = None  # no actor in this layout
                continue
            planted_label = moved
        found = v.judge_images("x", v.image_statistics(planted_images, planted_label))
        detected[key] = _caught(found)
    return {"layout": Path(folder).name, "clean": clean, "detected": detected}


def render(out: Path, layouts: int) -> Path:
    raw = out / "raw"
    have = len(complete_layouts(raw)) if raw.is_dir() else 0
    if have < layouts:
        print(f"Rendering {layouts} layouts into {raw} ({have} there; resumable) ...",
              flush=True)
        subprocess.run([sys.executable, "-m", "carla4agt", "generate", "--layouts", str(layouts),
                        "--out", str(raw), "--no-pack", "--no-progress", "--size", "1024x512",
                        "--backend", "builtin"], check=True)
    return raw


def _quantiles(values: list[float]) -> str:
    q = np.quantile(values, [0, 0.5, 0.99, 1])
    return " / ".join(f"{x:.3f}" for x in q)


def report(results: list[dict]) -> str:
    n = len(results)
    clean = [r["clean"] for r in results]
    fails = sum(1 for c in clean if any(s == "fail" for _, s in c["findings"]))
    warns = sum(1 for c in clean if any(s == "warn" for _, s in c["findings"]))
    rows = [f"Clean layouts: {n}; failing {fails} ({1000 * fails / n:.1f} per 1,000), "
            f"warned {warns} ({1000 * warns / n:.1f} per 1,000)", "",
            "| check: statistic | min / median / 99 % / max on clean | fail at | margin |",
            "|---|---|---|---|"]
    for stat, limits, worse in (("shift", judge.SHIFT, max), ("zoom", judge.ZOOM, max),
                                ("rotation", judge.ROTATION, max), ("fit", judge.FIT, min),
                                ("actor", judge.ACTOR, max)):
        values = [c[stat] for c in clean]
        worst = worse(values)
        margin = (limits.fail / worst) if worse is max else (worst / limits.fail)
        unit = {"fit": "label_fit: fit (lower is worse)",
                "actor": "label_fit: actor outline gain off its label (higher is worse)"}.get(
            stat, f"alignment: {stat} px (higher is worse)")
        rows.append(f"| {unit} | {_quantiles(values)} | {limits.fail} (warn {limits.warn}) | "
                    f"x{margin:.1f} |")
    diffs = [c["difference"] for c in clean]
    rows.append(f"| distinct: smallest mean difference | {_quantiles(diffs)} | "
                f"{judge.MIN_DIFFERENCE} | x{min(diffs) / judge.MIN_DIFFERENCE:.1f} |")
    lum = [c["night_over_noon"] for c in clean]
    night = judge.NIGHT
    rows.append("| distinct: night / noon darker-quarter luminance (higher is worse) | "
                f"{_quantiles(lum)} | "
                f"{night.fail} (warn {night.warn}) | x{night.fail / max(lum):.1f} |")
    partners = [c["partners"] for c in clean]
    rows.append(f"| alignment: fewest appearances matched | min {min(partners)} | 0 | - |")
    rows += ["", "| planted fault | size | detected | failed checks |", "|---|---|---|---|"]
    for kind, size in FAULTS:
        key = f"{kind} {size:g}"
        got = [r["detected"][key] for r in results if r["detected"].get(key) is not None]
        rate = 100 * sum(bool(x) for x in got) / len(got) if got else float("nan")
        by = Counter(c for x in got for c in x)
        name, unit = kind, ""
        if kind.endswith(("px", "%", "deg")):
            name, unit = kind.rsplit(" ", 1)
        rows.append(f"| {name} | {size:g} {unit} | {rate:.1f} % of {len(got)} | "
                    + ", ".join(f"{c} {k}" for c, k in by.most_common()) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("calibration"),
                        help="folder of the clean set (OUT/raw) and the results")
    parser.add_argument("--layouts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plant-every", type=int, default=1,
                        help="plant the faults into every Nth clean layout (1: all)")
    args = parser.parse_args()
    raw = render(args.out, args.layouts)
    folders = [str(p) for p in complete_layouts(raw)][:args.layouts]
    others = folders[1:] + folders[:1]
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        plant = [i % args.plant_every == 0 for i in range(len(folders))]
        results = list(pool.map(calibrate_layout, folders, others, range(len(folders)), plant,
                                chunksize=4))
    (args.out / "calibration.json").write_text(json.dumps(results))
    text = report(results)
    worst: dict[str, list] = defaultdict(list)
    for r in results:
        for check, severity in r["clean"]["findings"]:
            worst[f"{check} {severity}"].append(r["layout"])
    for key, ids in sorted(worst.items()):
        text += f"\n\nClean layouts with {key}: {', '.join(ids[:20])}"
    print(text)
    (args.out / "calibration.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
