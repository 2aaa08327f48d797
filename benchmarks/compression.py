"""Size and decode time per image of the RGB compression choices, on real builtin renders.

Writes the same images (every appearance of the first N complete layouts of a raw folder)
into one HDF5 dataset per choice, one image per chunk with Fletcher-32 as `carla4agt pack`
does, and times reading them back (cold cache is not simulated: decode cost, not disk).

    carla4agt generate --layouts 20 --out /tmp/bench-raw --no-pack
    python benchmarks/compression.py /tmp/bench-raw
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from carla4agt_data.raw import complete_layouts, read_marker, read_rgb, rgb_name
from carla4agt_data.schema import parse_compression

CHOICES = ["none", "gzip-1", "gzip-4", "gzip-9", "lzf", "png", "zstd-3", "lz4"]


def _images(raw: Path, count: int) -> list[np.ndarray]:
    images = []
    for folder in complete_layouts(raw)[:count]:
        for name in read_marker(folder)["appearances"]:
            images.append(read_rgb(folder / rgb_name(name)))
    return images


def _measure(images: list[np.ndarray], choice: str, tmp: Path) -> tuple[int, float, float]:
    path = tmp / f"{choice}.h5"
    h, w, _ = images[0].shape
    start = time.perf_counter()
    with h5py.File(path, "w") as f:
        if choice == "png":  # encoded bytes in a variable-length dataset
            data = f.create_dataset("rgb", (len(images),), h5py.vlen_dtype(np.uint8))
            for i, im in enumerate(images):
                buf = io.BytesIO()
                Image.fromarray(im).save(buf, format="PNG", compress_level=1)
                data[i] = np.frombuffer(buf.getvalue(), np.uint8)
        else:
            kwargs = parse_compression(choice).kwargs()
            data = f.create_dataset("rgb", (len(images), h, w, 3), np.uint8,
                                    chunks=(1, h, w, 3), fletcher32=True, **kwargs)
            for i, im in enumerate(images):
                data[i] = im
    encode = (time.perf_counter() - start) / len(images)
    size = path.stat().st_size
    with h5py.File(path, "r") as f:
        data = f["rgb"]
        start = time.perf_counter()
        for _ in range(3):
            for i in range(len(images)):
                item = data[i]
                if choice == "png":
                    np.asarray(Image.open(io.BytesIO(item.tobytes())))
        seconds = (time.perf_counter() - start) / (3 * len(images))
    return size, encode, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--layouts", type=int, default=10)
    args = parser.parse_args()
    images = _images(args.raw, args.layouts)
    raw_bytes = sum(im.nbytes for im in images)
    png_folder = sum((folder / rgb_name(a)).stat().st_size
                     for folder in complete_layouts(args.raw)[:args.layouts]
                     for a in read_marker(folder)["appearances"])
    print(f"{len(images)} images of {images[0].shape[1]}x{images[0].shape[0]}; "
          f"raw PNG files: {png_folder / raw_bytes:.0%} of uncompressed")
    print(f"{'choice':8s} {'size':>6s} {'write ms/image':>15s} {'read ms/image':>14s}  "
          "plain HDF5 tools")
    with tempfile.TemporaryDirectory() as tmp:
        for choice in CHOICES:
            try:
                size, encode, seconds = _measure(images, choice, Path(tmp))
            except Exception as exc:  # a plugin that is not installed
                print(f"{choice:8s} skipped: {exc}", file=sys.stderr)
                continue
            portable = "yes" if choice in ("none", "png") or choice.startswith("gzip") else "no"
            print(f"{choice:8s} {size / raw_bytes:6.0%} {encode * 1000:15.2f} "
                  f"{seconds * 1000:14.2f}  {portable}")


if __name__ == "__main__":
    main()
