"""The image statistics verify decides on, per layout: how each appearance aligns with the
others, how its edges follow the label, whether each actor's label sits on its outline, and
how the appearances differ (analysis in imagechecks.py; limits in imagejudge.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import imagechecks as ic
from .taxonomy import classes

ACTOR_CLASS_NAMES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")


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
    dark: dict[str, float]  # the luminance a quarter of the pixels are darker than


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
    edges = ic.tile_edges(list(images.values()), tiles, size=size)  # [A, T, size, size]
    spectra = ic.spectra(edges, bands)  # one FFT call
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
    fit = dict(zip(names, ic.boundary_agreement(edges, on_boundary, bands).tolist(),
                   strict=True))
    actor_ids = tuple(c.train_id for c in classes(num_classes) if c.name in ACTOR_CLASS_NAMES)
    is_actor = np.zeros(256, bool)
    is_actor[list(actor_ids)] = True
    actors = []
    for box in ic.actor_boxes(label, is_actor):
        offset, gain, (x0, x1) = ic.actor_offset(list(images.values()), label, is_actor, box)
        actors.append(ActorFit((box[0], box[1], x0, x1), offset, gain))
    # Every 8th pixel each way (8,192 at 1024x512): statistics of the whole image, cheaply.
    small = {n: images[n][::8, ::8].astype(np.int16) for n in names}
    lum = np.stack([ic.luminance(small[n]).ravel() for n in names])
    dark = dict(zip(names, np.partition(lum, lum.shape[1] // 4, axis=1)[:, lum.shape[1] // 4]
                    .tolist(), strict=True))
    diff = {(a, b): float(np.abs(small[a] - small[b]).mean())
            for i, a in enumerate(names) for b in names[i + 1:]}
    return ImageStats(alignment, fit, actors, diff, dark)
