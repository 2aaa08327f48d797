"""``carla4agt stats``: class frequencies per split, appearance statistics, counts, size."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .dataset import open_dataset
from .imagechecks import luminance
from .raw import RawFolder
from .schema import DEFAULT_SPLIT_RATIOS, SPLIT_NAMES, split_of
from .taxonomy import classes


@dataclass
class Stats:
    path: str
    layouts: int
    appearances: tuple[str, ...]
    bytes_on_disk: int
    num_classes: int
    class_pixels: dict[str, np.ndarray]  # split -> [K] pixel counts
    layouts_per_split: dict[str, int]
    luminance: dict[str, tuple[float, float]] = field(default_factory=dict)  # mean, contrast
    sampled: int = 0

    def table(self) -> str:
        names = [c.name for c in classes(self.num_classes)]
        lines = [f"{self.path}: {self.layouts} layouts x {len(self.appearances)} appearances = "
                 f"{self.layouts * len(self.appearances)} images, "
                 f"{self.bytes_on_disk / 2**20:.1f} MiB on disk",
                 "layouts per split: " + ", ".join(f"{s} {n}" for s, n in
                                                   self.layouts_per_split.items()), "",
                 f"{'class':14s}" + "".join(f"{s:>9s}" for s in self.class_pixels)]
        shares = {s: c / max(c.sum(), 1) for s, c in self.class_pixels.items()}
        for i, name in enumerate(names):
            lines.append(f"{name:14s}" + "".join(f"{shares[s][i]:9.2%}" for s in shares))
        if self.luminance:
            lines += ["", f"appearance statistics over {self.sampled} layouts "
                      "(luminance 0..255):", f"{'appearance':12s} {'mean':>7s} {'contrast':>9s}"]
            for name, (mean, contrast) in self.luminance.items():
                lines.append(f"{name:12s} {mean:7.1f} {contrast:9.1f}")
        return "\n".join(lines)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def compute_stats(path: str | Path, *, sample: int = 100) -> Stats:
    """Statistics of a .h5 dataset or a raw folder; appearance statistics from up to
    ``sample`` evenly spaced layouts (0: skip them)."""
    path = Path(path)
    lum: dict[str, list[tuple[float, float]]] = {}
    if path.is_dir():
        raw = RawFolder(path)
        ids = raw.ids
        appearances = raw.appearances if ids else ()
        per_split = {s: np.zeros(16, np.int64) for s in SPLIT_NAMES}
        count = dict.fromkeys(SPLIT_NAMES, 0)
        picks = set(np.linspace(0, len(ids) - 1, min(sample, len(ids))).astype(int)) \
            if sample and ids else set()
        for i, lid in enumerate(ids):
            label = raw.read_label(lid, 16)
            split = SPLIT_NAMES[split_of(lid, DEFAULT_SPLIT_RATIOS)]
            per_split[split] += np.bincount(label.ravel(), minlength=256)[:16]
            count[split] += 1
            if i in picks:
                for a in raw.appearances_of(lid):
                    y = luminance(raw.read_rgb(lid, a))
                    lum.setdefault(a, []).append((float(y.mean()), float(y.std())))
        stats = Stats(str(path), len(ids), appearances, _size(path), 16, per_split, count)
    else:
        ds = open_dataset(path)
        per_split, count = {}, {}
        for s in SPLIT_NAMES:
            idx = ds.split_indices(s)
            per_split[s] = ds.class_pixels[idx].sum(axis=0)
            count[s] = len(idx)
        stats = Stats(str(path), len(ds), ds.appearances, _size(path), ds.num_classes,
                      per_split, count)
        if sample and len(ds):
            for i in np.unique(np.linspace(0, len(ds) - 1, min(sample, len(ds))).astype(int)):
                for a in ds.appearances:
                    y = luminance(ds.read_rgb(int(i), a))
                    lum.setdefault(a, []).append((float(y.mean()), float(y.std())))
        ds.close()
    stats.luminance = {a: (float(np.mean([v[0] for v in vals])),
                           float(np.mean([v[1] for v in vals]))) for a, vals in lum.items()}
    stats.sampled = len(next(iter(lum.values()), []))
    return stats


def plot_stats(stats: Stats, width: int = 900) -> Image.Image:
    """A bar chart: class pixel share per split (class colours), and appearance luminance."""
    table = classes(stats.num_classes)
    splits = [s for s, c in stats.class_pixels.items() if c.sum() > 0]
    row_h, left, top = 18, 130, 30
    height = top + len(table) * row_h * max(len(splits), 1) // 2 + 60 + 24 * len(stats.luminance)
    im = Image.new("RGB", (width, max(height, 200)), "white")
    draw = ImageDraw.Draw(im)
    draw.text((10, 8), f"Class pixel share per split ({', '.join(splits)}; "
                       "bar length: share of labelled pixels, up to 50 %)", fill="black")
    bar_w = (width - left - 20)
    y = top
    sub_h = max(4, row_h // max(len(splits), 1))
    for c in table:
        draw.text((10, y + 2), c.name, fill="black")
        for j, s in enumerate(splits):
            counts = stats.class_pixels[s]
            share = counts[c.train_id] / max(counts.sum(), 1)
            x1 = left + int(bar_w * min(share / 0.5, 1.0))
            y0 = y + j * sub_h
            draw.rectangle((left, y0, max(x1, left + 1), y0 + sub_h - 2), fill=c.color,
                           outline=(0, 0, 0) if j else None)
        y += row_h
    y += 20
    if stats.luminance:
        draw.text((10, y), f"Mean luminance per appearance (0..255, {stats.sampled} layouts)",
                  fill="black")
        y += 18
        for name, (mean, contrast) in stats.luminance.items():
            draw.text((10, y + 2), name, fill="black")
            draw.rectangle((left, y, left + int(bar_w * mean / 255), y + 14), fill=(90, 90, 160))
            draw.text((left + int(bar_w * mean / 255) + 6, y + 2),
                      f"{mean:.0f} (contrast {contrast:.0f})", fill="black")
            y += 22
    return im.crop((0, 0, width, y + 10))


