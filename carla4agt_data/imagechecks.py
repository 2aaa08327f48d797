"""Image analysis for verify: edge maps, translation between appearances, label fit.

Everything runs on a few full-resolution tiles where the label has the most boundaries
(structure that the weather does not change), which keeps verify close to decoding speed
and keeps flat sky, fog and darkness out of the estimate.
"""

from __future__ import annotations

import numpy as np

TILE = 128


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
    """The tile side for an image: TILE, or less for small images (1-pixel margin)."""
    return min(TILE, shape[0] - 2, shape[1] - 2)


def select_tiles(label: np.ndarray, count: int = 4, size: int = TILE) -> list[tuple[int, int]]:
    """Top-left corners of the ``count`` tiles with the most label boundary pixels."""
    h, w = label.shape
    boundary = label_boundaries(label)
    scores = []
    for y in range(1, h - size, size):
        for x in range(1, w - size, size):
            scores.append((int(boundary[y:y + size, x:x + size].sum()), y, x))
    scores.sort(key=lambda s: (-s[0], s[1], s[2]))
    return [(y, x) for _, y, x in scores[:count]]


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


def tile_bands(label: np.ndarray, tiles: list[tuple[int, int]], band: int = 4,
               size: int = TILE) -> np.ndarray:
    """Bands around the label boundaries on each tile, ``[T, size, size]`` bool."""
    boundary = label_boundaries(label)
    return np.stack([_dilate(boundary[y:y + size, x:x + size], band) for y, x in tiles])


def estimate_shift(reference: np.ndarray, moved: np.ndarray, bands: np.ndarray) -> tuple[int, int]:
    """Integer (dy, dx) that best maps the reference edges onto the moved ones: phase
    correlation inside the bands, cross-power spectra summed over the tiles."""
    window = np.outer(np.hanning(reference.shape[-2]), np.hanning(reference.shape[-1]))
    a = reference * bands * window
    b = moved * bands * window
    cross = np.fft.rfft2(b) * np.conj(np.fft.rfft2(a))
    cross = (cross / (np.abs(cross) + 1e-6)).sum(axis=0)
    corr = np.fft.irfft2(cross, s=a.shape[-2:])
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    return int(dy - h if dy > h // 2 else dy), int(dx - w if dx > w // 2 else dx)


def boundary_agreement(edges: np.ndarray, boundaries: np.ndarray, bands: np.ndarray) -> float:
    """How well an image's edges sit on the label boundaries: the mean edge strength on the
    boundary pixels over the mean in the band around them (1 = no relation; aligned images
    score well above 1, a shift of 2 pixels brings it close to 1)."""
    if not boundaries.any():
        return 1.0
    return float(edges[boundaries].mean() / max(float(edges[bands].mean()), 1e-6))


def boundary_tiles(label: np.ndarray, tiles: list[tuple[int, int]], size: int = TILE) -> np.ndarray:
    boundary = label_boundaries(label)
    return np.stack([boundary[y:y + size, x:x + size] for y, x in tiles])
