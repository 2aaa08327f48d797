"""``carla4agt export``: folder layouts that other tools read without this project.

- ``cityscapes``: ``leftImg8bit/<split>/<appearance>/<layout>_<appearance>_leftImg8bit.png``
  and ``gtFine/<split>/<appearance>/<layout>_<appearance>_gtFine_labelIds.png`` (real
  Cityscapes ids, 0 = unlabeled) and ``..._gtFine_labelTrainIds.png`` (Cityscapes 19-class
  trainIds, 255 = ignore), so ``torchvision.datasets.Cityscapes`` and Cityscapes tooling
  load it; each appearance plays the part of a city.
- ``gta``: ``images/<layout>_<appearance>.png`` and
  ``labels/<layout>_<appearance>_labelTrainIds.png`` (Cityscapes 19-class trainIds), the
  layout DAFormer/mmsegmentation converters expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .dataset import CarlaDataset, open_dataset
from .errors import UserError
from .fileio import atomic_path
from .schema import SPLIT_NAMES
from .taxonomy import IGNORE

FORMATS = ("cityscapes", "gta")


def _tables(ds: CarlaDataset) -> tuple[np.ndarray, np.ndarray]:
    """Stored trainIds -> (Cityscapes labelIds, Cityscapes 19-class trainIds)."""
    label_ids = np.zeros(256, np.uint8)  # 0 = unlabeled
    train_ids = np.full(256, IGNORE, np.uint8)
    for c in ds.classes:
        label_ids[c.train_id] = c.cityscapes_id
        train_ids[c.train_id] = c.cityscapes_train_id
    return label_ids, train_ids


def _save_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def export(path: Path, out: Path, fmt: str, *, splits: Sequence[str] = SPLIT_NAMES,
           appearances: Sequence[str] | None = None, progress: bool = True) -> int:
    """Export a dataset to a folder layout; returns the number of images written."""
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}. Valid values are "
                        + ", ".join(FORMATS) + ".")
    ds = open_dataset(path)
    names = list(appearances or ds.appearances)
    for name in names:
        ds.appearance_index(name)  # validates
    label_ids, train_ids = _tables(ds)
    jobs = [(split, int(i)) for split in splits for i in ds.split_indices(split)]
    written = 0
    for split, index in tqdm(jobs, unit="layout", desc=f"Exporting {fmt}",
                             disable=not progress, dynamic_ncols=True):
        lid = ds.layout_ids[index]
        label = ds.read_label(index)
        for name in names:
            rgb = ds.read_rgb(index, name)
            stem = f"{lid}_{name}"
            if fmt == "cityscapes":
                _save_png(out / "leftImg8bit" / split / name / f"{stem}_leftImg8bit.png", rgb)
                gt = out / "gtFine" / split / name
                _save_png(gt / f"{stem}_gtFine_labelIds.png", label_ids[label])
                _save_png(gt / f"{stem}_gtFine_labelTrainIds.png", train_ids[label])
            else:
                _save_png(out / "images" / f"{stem}.png", rgb)
                _save_png(out / "labels" / f"{stem}_labelTrainIds.png", train_ids[label])
            written += 1
    ds.close()
    return written
