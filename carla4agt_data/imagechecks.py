"""Image analysis for verify: edge maps, the transform between appearances, label fit.

Everything runs on full-resolution tiles where the label has the most boundaries
(structure that the weather does not change), which keeps verify close to decoding speed
and keeps flat sky, fog and darkness out of the estimate. Lighting adds edges (long sunset
shadows, lamps, headlights) but never moves the ones the appearances share, so alignment
is judged per tile from correlation peaks, and only tiles with a clear peak take part: the
transform most tiles agree on is the answer (shift, zoom and rotation judged separately).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILE = 64
TILES = 12  # tiles per layout: spread enough over the image to see zoom and rotation
MIN_PEAK = 0.03  # phase-correlation peak below which a tile is left out (no clear match)
MAX_SECOND = 0.6  # a second peak above this share of the first: ambiguous, left out
INLIER = 0.6  # pixels: a tile whose shift is this far from the model is an outlier
_RGB_TO_Y = np.array([0.299, 0.587, 0.114], np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ _RGB_TO_Y


def log_luminance(rgb: np.ndarray) -> np.ndarray:
    """log(1 + Y) of uint8 RGB ``[..., 3]``: multiplicative light changes become offsets."""
    return np.log1p(luminance(rgb))


def label_boundaries(label: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label."""
    b = np.zeros(label.shape, bool)
    b[:, :-1] |= label[:, :-1] != label[:, 1:]
    b[:-1] |= label[:-1] != label[1:]
    return b


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Grow a [..., H, W] mask by a (2r+1) square (separable; no wrap-around)."""
    rows = mask.copy()
    for d in range(1, r + 1):
        rows[..., d:, :] |= mask[..., :-d, :]
        rows[..., :-d, :] |= mask[..., d:, :]
    out = rows.copy()
    for d in range(1, r + 1):
        out[..., :, d:] |= rows[..., :, :-d]
        out[..., :, :-d] |= rows[..., :, d:]
    return out


def tile_size(shape: tuple[int, ...]) -> int:
    """The tile side for an image: TILE, or less for small images (at least three rows of
    tiles, so that zoom and rotation show; a 1-pixel margin)."""
    return max(min(TILE, shape[0] // 4, shape[1] // 4), min(16, shape[0] - 2, shape[1] - 2))


def select_tiles(boundary: np.ndarray, count: int = TILES,
                 size: int = TILE, zones: tuple[int, int] = (3, 4)) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` tiles rich in label boundary pixels, spread over the
    image: the best tile of each of ``zones`` (rows, columns) first, then the best of the
    rest. Zoom and rotation grow with the distance from the centre, so tiles far apart see
    them; the richest tiles alone often crowd the middle. Tiles with hardly any boundary
    are left out (nothing there to align)."""
    h, w = boundary.shape
    ny, nx = (h - 2) // size, (w - 2) // size  # as many as fit with a 1-pixel margin
    if ny < 1 or nx < 1:
        return [(1, 1)]
    scores = boundary[1:1 + ny * size, 1:1 + nx * size].reshape(ny, size, nx, size).sum(
        axis=(1, 3), dtype=np.int32)
    picked: list[int] = []  # flat tile indices, row-major (ties go to the upper left)
    for rows in np.array_split(np.arange(ny), min(zones[0], ny)):
        for cols in np.array_split(np.arange(nx), min(zones[1], nx)):
            zone = scores[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            r, c = np.unravel_index(int(zone.argmax()), zone.shape)
            if zone[r, c] >= size // 2:
                picked.append(int((rows[0] + r) * nx + cols[0] + c))
    flat = scores.ravel()
    ranked = np.argsort(-flat, kind="stable")
    rest = [int(i) for i in ranked if flat[i] >= size // 2 and int(i) not in picked]
    picked = (picked + rest)[:count] or [int(ranked[0])]
    return [(1 + (i // nx) * size, 1 + (i % nx) * size) for i in picked]


def tile_edges(images: list[np.ndarray], tiles: list[tuple[int, int]],
               size: int = TILE) -> np.ndarray:
    """Gradient magnitude of log-luminance on each tile of each image, ``[A, T, size, size]``:
    multiplicative light changes (night, sunset) leave it unchanged, so one geometry gives
    alike edges."""
    crops = np.stack([rgb[y - 1:y + size + 1, x - 1:x + size + 1]
                      for rgb in images for y, x in tiles])
    log = log_luminance(crops)
    gy = log[:, 2:, 1:-1] - log[:, :-2, 1:-1]
    gx = log[:, 1:-1, 2:] - log[:, 1:-1, :-2]
    return np.sqrt(gx * gx + gy * gy).reshape(len(images), len(tiles), size, size)


def tile_bands(boundary: np.ndarray, tiles: list[tuple[int, int]], band: int = 4,
               size: int = TILE) -> np.ndarray:
    """Bands around the label boundaries on each tile, ``[T, size, size]`` bool."""
    return _dilate(boundary_tiles(boundary, tiles, size), band)


def boundary_tiles(boundary: np.ndarray, tiles: list[tuple[int, int]],
                   size: int = TILE) -> np.ndarray:
    return np.stack([boundary[y:y + size, x:x + size] for y, x in tiles])


def spectra(edges: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Whitened spectra of the edges inside the bands, one per tile (for :func:`tile_shifts`)."""
    window = np.outer(np.hanning(edges.shape[-2]), np.hanning(edges.shape[-1]))
    # float64 in: numpy's forward real FFT is three times slower in float32
    spec = np.fft.rfft2((edges * bands) * window).astype(np.complex64)
    magnitude = np.abs(spec)
    magnitude += 1e-6
    spec /= magnitude
    return spec


@dataclass
class TileShifts:
    """Per tile: (dy, dx) of the moved image against the reference, and whether the tile
    had a clear, unambiguous correlation peak."""

    shifts: np.ndarray  # float [T, 2]
    clear: np.ndarray  # bool [T]
    peaks: np.ndarray  # float [T]


def tile_shifts(reference: np.ndarray, moved: np.ndarray, size: int) -> TileShifts:
    """Phase correlation per tile between two sets of whitened spectra (any leading
    dimensions: several pairs at once; the results are flattened over them)."""
    corr = np.fft.irfft2(moved * np.conj(reference), s=(size, size)).reshape(-1, size, size)
    t = corr.shape[0]
    rows = np.arange(t)
    flat = corr.reshape(t, -1)
    arg = flat.argmax(axis=1)
    peak = flat[rows, arg]
    iy, ix = np.unravel_index(arg, (size, size))

    def at(dy: int, dx: int) -> np.ndarray:
        return corr[rows, (iy + dy) % size, (ix + dx) % size]

    def subpixel(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        denom = left - 2 * peak + right
        safe = np.where(denom < 0, denom, -1.0)
        return np.where(denom < 0, np.clip(0.5 * (left - right) / safe, -0.5, 0.5), 0.0)

    dy = np.where(iy > size // 2, iy - size, iy) + subpixel(at(-1, 0), at(1, 0))
    dx = np.where(ix > size // 2, ix - size, ix) + subpixel(at(0, -1), at(0, 1))
    shifts = np.stack([dy, dx], axis=1)
    # the second peak: the highest value outside the main peak's 5x5 neighbourhood
    d = np.arange(-2, 3)
    corr[rows[:, None, None], (iy[:, None, None] + d[None, :, None]) % size,
         (ix[:, None, None] + d[None, None, :]) % size] = -np.inf
    second = corr.reshape(t, -1).max(axis=1)
    clear = (peak >= MIN_PEAK) & (second < MAX_SECOND * peak)
    return TileShifts(shifts, clear, peak)


@dataclass
class Transform:
    """The similarity transform most tiles agree on, as displacements in pixels.

    ``shift`` (dy, dx) at the image centre; ``zoom`` and ``rotation`` as the largest
    displacement they cause at the edge of the image (half the width away from the centre),
    with ``zoom_percent`` and ``rotation_degrees`` for people.
    """

    shift: tuple[float, float]
    zoom: float
    rotation: float
    zoom_percent: float
    rotation_degrees: float
    tiles: int  # tiles that agree (inliers)
    clear: int  # tiles with a clear peak
    reach: float = 1.0  # the farthest agreeing tile from the centre, in half widths

    @property
    def zoom_seen(self) -> float:
        """Pixels the zoom moves the farthest agreeing tile: what was measured, where an
        extrapolation to the image edge would magnify the noise of clustered tiles."""
        return abs(self.zoom) * min(self.reach, 1.0)

    @property
    def rotation_seen(self) -> float:
        return abs(self.rotation) * min(self.reach, 1.0)

    @property
    def judged(self) -> bool:
        return self.tiles >= 3

    def inverse(self) -> Transform:
        """The other direction (to first order, which is all that small faults need)."""
        return Transform((-self.shift[0], -self.shift[1]), -self.zoom, -self.rotation,
                         -self.zoom_percent, -self.rotation_degrees, self.tiles, self.clear,
                         self.reach)


def _design(c: np.ndarray) -> np.ndarray:
    """Rows of dy = ty + s*cy + r*cx and dx = tx + s*cx - r*cy for centres c [n, 2]."""
    a = np.zeros((2 * len(c), 4))
    a[0::2, 0] = 1
    a[0::2, 2] = c[:, 0]
    a[0::2, 3] = c[:, 1]
    a[1::2, 1] = 1
    a[1::2, 2] = c[:, 1]
    a[1::2, 3] = -c[:, 0]
    return a


def fit_transform(shifts: TileShifts, centres: np.ndarray, half_width: float) -> Transform:
    """Least squares of shift = t + s * c + r * perp(c) over the clear tiles, outliers
    removed one at a time (tiles on a moving object, repeated texture)."""
    use = shifts.clear.copy()
    n_clear = int(use.sum())
    params = np.zeros(4)
    while use.sum() >= 3:
        a = _design(centres[use] / half_width)
        b = shifts.shifts[use].reshape(-1)
        params = np.linalg.lstsq(a, b, rcond=None)[0]
        residual = np.hypot(*(a @ params - b).reshape(-1, 2).T)
        worst = int(residual.argmax())
        if residual[worst] <= INLIER:
            break
        use[np.flatnonzero(use)[worst]] = False
    if use.sum() >= 4:  # one far tile must not decide: each value as small as leaving out
        # any single tile makes it (a fault moves every tile; a lamp fools one). Normal
        # equations less each tile's share: every left-out fit in one batched solve.
        a = _design(centres[use] / half_width).reshape(-1, 2, 4)
        b = shifts.shifts[use].reshape(-1, 2)
        ata = np.einsum("kri,krj->kij", a, a)
        atb = np.einsum("kri,kr->ki", a, b)
        loo_params = np.linalg.solve(ata.sum(axis=0) - ata, (atb.sum(axis=0) - atb)[..., None])[
            ..., 0]
        params = np.array([*loo_params[np.argmin(np.hypot(loo_params[:, 0], loo_params[:, 1])),
                                       :2],
                           loo_params[np.argmin(np.abs(loo_params[:, 2])), 2],
                           loo_params[np.argmin(np.abs(loo_params[:, 3])), 3]])
    ty, tx, s, r = (float(v) for v in params)
    reach = float(np.hypot(*(centres[use] / half_width).T).max()) if use.any() else 0.0
    if use.sum() < 3:
        ty = tx = s = r = reach = 0.0
    return Transform((ty, tx), s, r, 100 * s / half_width,
                     float(np.degrees(np.arctan2(r, half_width))), int(use.sum()), n_clear,
                     reach)


def tile_centres(tiles: list[tuple[int, int]], shape: tuple[int, ...], size: int) -> np.ndarray:
    h, w = shape[:2]
    return np.array([(y + size / 2 - h / 2, x + size / 2 - w / 2) for y, x in tiles], float)


def boundary_agreement(edges: np.ndarray, boundaries: np.ndarray,
                       bands: np.ndarray) -> np.ndarray:
    """How well each image's edges (``[A, ...]``) sit on the label boundaries: the median
    edge strength on the boundary pixels over the median in the band around them (1 = no
    relation). Medians keep a minority of extra edges (shadows, lamps) from dragging the
    ratio down."""
    if not boundaries.any():
        return np.ones(len(edges))
    flat = edges.reshape(len(edges), -1)
    on = _median(np.take(flat, np.flatnonzero(boundaries), axis=1))
    around = _median(np.take(flat, np.flatnonzero(bands), axis=1))
    return on / np.maximum(around, 1e-6)


def _median(values: np.ndarray) -> np.ndarray:
    """The (upper) median of each row: one partition, where np.median costs five times more."""
    middle = values.shape[1] // 2
    return np.partition(values, middle, axis=1)[:, middle]


# --- actors: does each one's label sit where its outline is? ---------------------------

def actor_boxes(label: np.ndarray, is_actor: np.ndarray, cell: int = 8, min_pixels: int = 150,
                limit: int = 4) -> list[tuple[int, int, int, int]]:
    """Boxes (y0, y1, x0, x1) around the largest groups of actor pixels (people, vehicles;
    ``is_actor[label]``), found as connected cells of a coarse grid (cheap; touching actors
    share a box)."""
    h, w = label.shape
    hc, wc = h // cell, w // cell
    if not hc or not wc:
        return []
    half = cell // 2  # every other pixel each way is plenty to count them
    counts = 4 * np.take(is_actor, label[:hc * cell:2, :wc * cell:2]).view(np.uint8).reshape(
        hc, half, wc, half).sum(axis=(1, 3), dtype=np.int32)
    groups = []
    for rows, starts, ends in _connected_runs(counts > 0):
        pixels = int(sum(counts[r, s:e].sum() for r, s, e in zip(rows, starts, ends,
                                                                  strict=True)))
        if pixels >= min_pixels:
            groups.append((pixels, min(rows) * cell, (max(rows) + 1) * cell,
                           min(starts) * cell, max(ends) * cell))
    groups.sort(reverse=True)
    return [g[1:] for g in groups[:limit]]


def _connected_runs(grid: np.ndarray) -> list[tuple[list[int], list[int], list[int]]]:
    """8-connected regions of a bool grid, each as its runs along rows: (rows, starts,
    ends), ends exclusive. Runs rather than cells: a few dozen, where cells are hundreds."""
    edge = np.diff(np.pad(grid.view(np.int8), ((0, 0), (1, 1))), axis=1)
    rows, starts = np.nonzero(edge == 1)
    ends = np.nonzero(edge == -1)[1]
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(rows, np.arange(grid.shape[0] + 1))  # runs of row r: first[r]..
    for i in range(len(rows)):
        r = rows[i]
        if r == 0:
            continue
        for j in range(first[r - 1], first[r]):  # runs of the row above touching this one
            if starts[j] <= ends[i] and starts[i] <= ends[j]:
                parent[root(i)] = root(j)
    regions: dict[int, tuple[list[int], list[int], list[int]]] = {}
    for i in range(len(rows)):
        region = regions.setdefault(root(i), ([], [], []))
        region[0].append(int(rows[i]))
        region[1].append(int(starts[i]))
        region[2].append(int(ends[i]))
    return list(regions.values())


def actor_offset(images: list[np.ndarray], label: np.ndarray, is_actor: np.ndarray,
                 box: tuple[int, int, int, int],
                 radius: int = 4, samples: int = 120, strip: int = 96, min_pixels: int = 20
                 ) -> tuple[tuple[int, int], float, tuple[int, int]]:
    """Where the actor outline in the images sits against its label: the offset, up to
    ``radius`` px along rows or columns, at which the images' edges (every appearance, each
    normalised, so that no light dominates) follow the label's outline best, and how much
    better they follow it there than at (0, 0) (1.0 when the label is where the outline is).

    Judged per vertical strip of the box (neighbouring actors share a box; one of them may
    be off), the strip where an offset gains most is returned, with its columns."""
    h, w = label.shape
    m = radius + 2
    y0, y1, x0, x1 = max(box[0] - m, 0), min(box[1] + m, h), max(box[2] - m, 0), min(box[3] + m, w)
    region = is_actor[label[y0:y1, x0:x1]]
    outline = label_boundaries(region)
    outline[:m] = outline[-m:] = False
    outline[:, :m] = outline[:, -m:] = False
    ys, xs = np.nonzero(outline)
    if len(ys) < min_pixels:
        return (0, 0), 1.0, (x0, x1)
    step = max(1, len(ys) // samples)
    ys, xs = ys[::step], xs[::step]
    d = np.arange(-radius, radius + 1)
    zero = np.zeros_like(d)
    dy, dx = np.r_[d, zero], np.r_[zero, d]  # along columns, then along rows
    py, px = ys[None, :] + dy[:, None], xs[None, :] + dx[:, None]
    # the four neighbours of every (offset, outline pixel): one gather per image
    ny = py[None] + y0 + np.array([1, -1, 0, 0])[:, None, None]
    nx = px[None] + x0 + np.array([0, 0, 1, -1])[:, None, None]
    flat = ny * w + nx  # np.take on flat indices: 30 times faster than rgb[ny, nx]
    strength = np.zeros(py.shape)
    for rgb in images:  # log-luminance gradients only where they are needed
        log = log_luminance(np.take(rgb.reshape(-1, 3), flat, axis=0))
        gy, gx = log[0] - log[1], log[2] - log[3]
        e = np.sqrt(gy * gy + gx * gx)
        strength += e / max(float(e.mean()), 1e-6)
    strips = xs // strip
    best: tuple[tuple[int, int], float, tuple[int, int]] = ((0, 0), 1.0, (x0, x1))
    for k in np.unique(strips):
        inside = strips == k
        if inside.sum() < min_pixels:
            continue
        scores = strength[:, inside].mean(axis=1)
        i = int(scores.argmax())
        gain = float(scores[i] / max(float(scores[radius]), 1e-6))
        if gain > best[1]:
            cols = (x0 + int(k) * strip, min(x0 + (int(k) + 1) * strip, x1))
            best = ((int(dy[i]), int(dx[i])), gain, cols)
    return best
