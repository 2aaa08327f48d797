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


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def label_boundaries(label: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label."""
    b = np.zeros(label.shape, bool)
    b[:, :-1] |= label[:, :-1] != label[:, 1:]
    b[:-1] |= label[:-1] != label[1:]
    return b


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for axis in (-2, -1):  # separable: a (2r+1) square
        grown = out.copy()
        for d in range(1, r + 1):
            grown |= np.roll(out, d, axis) | np.roll(out, -d, axis)
        out = grown
    return out


def tile_size(shape: tuple[int, ...]) -> int:
    """The tile side for an image: TILE, or less for small images (at least three rows of
    tiles, so that zoom and rotation show; a 1-pixel margin)."""
    return max(min(TILE, shape[0] // 4, shape[1] // 4), min(16, shape[0] - 2, shape[1] - 2))


def select_tiles(boundary: np.ndarray, count: int = TILES,
                 size: int = TILE) -> list[tuple[int, int]]:
    """Top-left corners of the ``count`` tiles with the most label boundary pixels (tiles
    with hardly any boundary are left out: nothing there to align)."""
    h, w = boundary.shape
    scores = []
    for y in range(1, h - size, size):
        for x in range(1, w - size, size):
            scores.append((int(boundary[y:y + size, x:x + size].sum()), y, x))
    scores.sort(key=lambda s: (-s[0], s[1], s[2]))
    best = [(y, x) for s, y, x in scores[:count] if s >= size // 2]
    return best or [(y, x) for _, y, x in scores[:1]]


def tile_edges(rgb: np.ndarray, tiles: list[tuple[int, int]], size: int = TILE) -> np.ndarray:
    """Gradient magnitude of log-luminance on each tile, ``[T, size, size]``: multiplicative
    light changes (night, sunset) leave it unchanged, so one geometry gives alike edges."""
    out = np.empty((len(tiles), size, size), np.float32)
    for i, (y, x) in enumerate(tiles):
        log = np.log1p(luminance(rgb[y - 1:y + size + 1, x - 1:x + size + 1]))
        gy = log[2:, 1:-1] - log[:-2, 1:-1]
        gx = log[1:-1, 2:] - log[1:-1, :-2]
        out[i] = np.hypot(gx, gy)
    return out


def tile_bands(boundary: np.ndarray, tiles: list[tuple[int, int]], band: int = 4,
               size: int = TILE) -> np.ndarray:
    """Bands around the label boundaries on each tile, ``[T, size, size]`` bool."""
    return np.stack([_dilate(boundary[y:y + size, x:x + size], band) for y, x in tiles])


def boundary_tiles(boundary: np.ndarray, tiles: list[tuple[int, int]],
                   size: int = TILE) -> np.ndarray:
    return np.stack([boundary[y:y + size, x:x + size] for y, x in tiles])


def spectra(edges: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Whitened spectra of the edges inside the bands, one per tile (for :func:`tile_shifts`)."""
    window = np.outer(np.hanning(edges.shape[-2]), np.hanning(edges.shape[-1]))
    spec = np.fft.rfft2(edges * bands * window.astype(np.float32))
    return spec / (np.abs(spec) + 1e-6)


def _subpixel(left: float, mid: float, right: float) -> float:
    denom = left - 2 * mid + right
    return 0.0 if denom >= 0 else float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


@dataclass
class TileShifts:
    """Per tile: (dy, dx) of the moved image against the reference, and whether the tile
    had a clear, unambiguous correlation peak."""

    shifts: np.ndarray  # float [T, 2]
    clear: np.ndarray  # bool [T]
    peaks: np.ndarray  # float [T]


def tile_shifts(reference: np.ndarray, moved: np.ndarray, size: int) -> TileShifts:
    """Phase correlation per tile between two sets of whitened spectra."""
    corr = np.fft.irfft2(moved * np.conj(reference), s=(size, size))
    t = corr.shape[0]
    flat = corr.reshape(t, -1)
    arg = flat.argmax(axis=1)
    peak = flat[np.arange(t), arg]
    iy, ix = np.unravel_index(arg, (size, size))
    shifts = np.empty((t, 2))
    clear = np.empty(t, bool)
    for i in range(t):
        y, x = int(iy[i]), int(ix[i])
        c = corr[i]
        fy = _subpixel(c[y - 1, x], c[y, x], c[(y + 1) % size, x])
        fx = _subpixel(c[y, x - 1], c[y, x], c[y, (x + 1) % size])
        dy, dx = (y - size if y > size // 2 else y), (x - size if x > size // 2 else x)
        shifts[i] = (dy + fy, dx + fx)
        # the second peak: the highest value outside the main peak's 5x5 neighbourhood
        rolled = np.roll(c, (2 - y, 2 - x), axis=(0, 1))
        second = max(float(rolled[5:].max()), float(rolled[:5, 5:].max()))
        clear[i] = peak[i] >= MIN_PEAK and second < MAX_SECOND * peak[i]
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

    @property
    def judged(self) -> bool:
        return self.tiles >= 3

    def inverse(self) -> Transform:
        """The other direction (to first order, which is all that small faults need)."""
        return Transform((-self.shift[0], -self.shift[1]), -self.zoom, -self.rotation,
                         -self.zoom_percent, -self.rotation_degrees, self.tiles, self.clear)


def fit_transform(shifts: TileShifts, centres: np.ndarray, half_width: float) -> Transform:
    """Least squares of shift = t + s * c + r * perp(c) over the clear tiles, outliers
    removed one at a time (tiles on a moving object, repeated texture)."""
    use = shifts.clear.copy()
    n_clear = int(use.sum())
    params = np.zeros(4)
    while use.sum() >= 3:
        c = centres[use] / half_width  # [n, 2] (y, x), about -1..1
        n = len(c)
        a = np.zeros((2 * n, 4))
        a[0::2, 0] = 1  # dy = ty + s*cy + r*cx
        a[0::2, 2] = c[:, 0]
        a[0::2, 3] = c[:, 1]
        a[1::2, 1] = 1  # dx = tx + s*cx - r*cy
        a[1::2, 2] = c[:, 1]
        a[1::2, 3] = -c[:, 0]
        b = shifts.shifts[use].reshape(-1)
        params = np.linalg.lstsq(a, b, rcond=None)[0]
        residual = np.hypot(*(a @ params - b).reshape(-1, 2).T)
        worst = int(residual.argmax())
        if residual[worst] <= INLIER:
            break
        use[np.flatnonzero(use)[worst]] = False
    ty, tx, s, r = (float(v) for v in params)
    if use.sum() < 3:
        ty = tx = s = r = 0.0
    return Transform((ty, tx), s, r, 100 * s / half_width,
                     float(np.degrees(np.arctan2(r, half_width))), int(use.sum()), n_clear)


def tile_centres(tiles: list[tuple[int, int]], shape: tuple[int, ...], size: int) -> np.ndarray:
    h, w = shape[:2]
    return np.array([(y + size / 2 - h / 2, x + size / 2 - w / 2) for y, x in tiles], float)


def boundary_agreement(edges: np.ndarray, boundaries: np.ndarray, bands: np.ndarray) -> float:
    """How well an image's edges sit on the label boundaries: the median edge strength on
    the boundary pixels over the median in the band around them (1 = no relation). Medians
    keep a minority of extra edges (shadows, lamps) from dragging the ratio down."""
    if not boundaries.any():
        return 1.0
    return float(np.median(edges[boundaries]) / max(float(np.median(edges[bands])), 1e-6))
