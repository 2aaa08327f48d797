"""Throughput of `carla4agt verify` on an HDF5 dataset against its limit, whole processes.

The limit is reading and decoding the same data (every RGB image and label) with the same
number of processes and no checks. The reference is verify with the image checks it had
before issue 16 (integer shift against the first appearance on four 128x128 tiles, label
fit relative to the other appearances), kept here. All three are timed as fresh processes
in one run.

    python benchmarks/verify_throughput.py dataset.h5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _timing import timed

from carla4agt_data.dataset import open_dataset

_DS = {}


def _read(path: str, index: int) -> int:
    if path not in _DS:
        _DS[path] = open_dataset(path)
    ds = _DS[path]
    return int(ds.read_layout(index).shape[0]) + int(ds.read_label(index).shape[0])


def _old_edges(rgb, tiles, size):
    import numpy as np

    out = np.empty((len(tiles), size, size), np.float32)
    for i, (y, x) in enumerate(tiles):
        crop = rgb[y - 1:y + size + 1, x - 1:x + size + 1].astype(np.float32)
        log = np.log1p(crop @ np.array([0.299, 0.587, 0.114], np.float32))
        out[i] = np.hypot(log[1:-1, 2:] - log[1:-1, :-2], log[2:, 1:-1] - log[:-2, 1:-1])
    return out


def _old_boundaries(label):
    import numpy as np

    b = np.zeros(label.shape, bool)
    b[:, :-1] |= label[:, :-1] != label[:, 1:]
    b[:-1] |= label[:-1] != label[1:]
    return b


def _old_dilate(mask, r):
    import numpy as np

    out = mask.copy()
    for axis in (-2, -1):
        grown = out.copy()
        for d in range(1, r + 1):
            grown |= np.roll(out, d, axis) | np.roll(out, -d, axis)
        out = grown
    return out


def _old_image_checks(layout, images, label, findings, num_classes=16) -> None:
    """verify's image checks before issue 16, as they were (same cost, findings dropped)."""
    import numpy as np

    names = list(images)
    size = min(128, label.shape[0] - 2, label.shape[1] - 2)
    boundary = _old_boundaries(label)
    scores = sorted(((int(boundary[y:y + size, x:x + size].sum()), y, x)
                     for y in range(1, label.shape[0] - size, size)
                     for x in range(1, label.shape[1] - size, size)),
                    key=lambda s: (-s[0], s[1], s[2]))
    tiles = [(y, x) for _, y, x in scores[:4]]
    bands = np.stack([_old_dilate(_old_boundaries(label)[y:y + size, x:x + size], 4)
                      for y, x in tiles])
    boundaries = np.stack([_old_boundaries(label)[y:y + size, x:x + size] for y, x in tiles])
    edges = {n: _old_edges(images[n], tiles, size) for n in names}
    window = np.outer(np.hanning(size), np.hanning(size))
    for n in names[1:]:
        cross = np.fft.rfft2(edges[n] * bands * window) * np.conj(
            np.fft.rfft2(edges[names[0]] * bands * window))
        cross = (cross / (np.abs(cross) + 1e-6)).sum(axis=0)
        np.argmax(np.fft.irfft2(cross, s=(size, size)))
    for n in names:
        float(edges[n][boundaries].mean() / max(float(edges[n][bands].mean()), 1e-6))
    small = {n: images[n][::4, ::4].astype(np.int16) for n in names}
    {n: float((small[n].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
              .mean()) for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            float(np.abs(small[a] - small[b]).mean())


def old_verify(path: Path, workers: int) -> None:
    from carla4agt_data import verify as v

    v._image_checks = _old_image_checks  # holds in this process: run with --workers 1
    v.verify(path, workers=workers, progress=False)


def read_only(path: Path, workers: int) -> None:
    n = len(open_dataset(path))
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_read, [str(path)] * n, range(n), chunksize=4))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--read-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--old-checks", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the fastest counts")
    args = parser.parse_args()
    if args.read_only:
        read_only(args.dataset, args.workers)
        return
    if args.old_checks:
        old_verify(args.dataset, args.workers)
        return
    n = len(open_dataset(args.dataset))

    def best(cmd: list[str]) -> float:  # the faster of --repeat runs: load only slows
        return min(timed(cmd) for _ in range(args.repeat))

    limit = best([sys.executable, __file__, str(args.dataset), "--read-only",
                    "--workers", str(args.workers)])
    old = best([sys.executable, __file__, str(args.dataset), "--old-checks",
                 "--workers", "1"])
    new1 = best([sys.executable, "-m", "carla4agt", "verify", str(args.dataset),
                  "--workers", "1", "--no-progress"])
    verify = best([sys.executable, "-m", "carla4agt", "verify", str(args.dataset),
                     "--workers", str(args.workers), "--no-progress"])
    print(f"{n} layouts: read+decode only ({args.workers} processes) {n / limit:.1f} layouts/s; "
          f"verify ({args.workers} processes) {n / verify:.1f} layouts/s, ratio to the limit "
          f"{limit / verify:.2f}; in one process: old checks {n / old:.1f} layouts/s, "
          f"these checks {n / new1:.1f} layouts/s, ratio {old / new1:.2f}")


if __name__ == "__main__":
    main()
