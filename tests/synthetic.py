"""Small synthetic carla4agt HDF5 files whose content makes alignment checkable."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from carla4agt_data.schema import create_datasets, parse_compression, split_of, write_attributes

APPEARANCES = ("noon", "sunset", "night", "fog")


def code(label: np.ndarray) -> np.ndarray:
    """The red value that encodes a label in synthetic images (255 -> 0)."""
    return np.where(label == 255, 0, (label.astype(np.int32) + 1) * 15).astype(np.uint8)


def synthetic_dataset(path: Path, layouts: int = 6, size: tuple[int, int] = (128, 64),
                      block: int = 16, seed: int = 0, ratios=(0.5, 0.25, 0.25)) -> Path:
    """Labels of random ``block``-sized squares; appearance k has red = code(label),
    green = a horizontal ramp, blue = 40 * k, so images and labels can be compared after
    any geometric transform (image_b = image_a + a constant in blue)."""
    w, h = size
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        create_datasets(f, layouts, len(APPEARANCES), h, w, 16, parse_compression("gzip-1"))
        write_attributes(f, appearances=APPEARANCES, width=w, height=h, num_classes=16,
                         backends=["builtin"], tag_tables=["0.9.14+"], versions={},
                         split_ratios=ratios, compression="gzip-1")
        ramp = np.tile(np.linspace(0, 250, w).astype(np.uint8), (h, 1))
        for i in range(layouts):
            blocks = rng.choice(np.r_[np.arange(16), 255], size=(h // block, w // block))
            if i == layouts - 1:  # only the last layout shows class 15 (rare-class test)
                blocks[0, 0] = 15
            else:
                blocks[blocks == 15] = 3
            label = np.kron(blocks, np.ones((block, block), np.uint8)).astype(np.uint8)
            for k in range(len(APPEARANCES)):
                f["rgb"][i, k] = np.stack([code(label), ramp, np.full((h, w), 40 * k, np.uint8)],
                                          axis=-1)
            lid = f"synthetic-{i:03d}"
            f["label"][i] = label
            f["layout_id"][i] = lid
            f["layout_yaml"][i] = f"id: {lid}\n"
            f["split"][i] = split_of(lid, ratios)
            counts = np.bincount(label.ravel(), minlength=256)
            f["class_pixels"][i] = counts[:16]
            f["ignore_pixels"][i] = counts[255]
    return path
