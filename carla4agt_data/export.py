"""``carla4agt export``: folder layouts that other tools read without this project.

- ``cityscapes``: ``leftImg8bit/<split>/<appearance>/<layout>_<appearance>_leftImg8bit.png``
  and ``gtFine/<split>/<appearance>/<layout>_<appearance>_gtFine_labelIds.png`` (real
  Cityscapes ids, 0 = unlabeled) and ``..._gtFine_labelTrainIds.png`` (Cityscapes 19-class
  trainIds, 255 = ignore), so ``torchvision.datasets.Cityscapes`` and Cityscapes tooling
  load it; each appearance plays the part of a city.
- ``gta``: ``images/<layout>_<appearance>.png`` and
  ``labels/<layout>_<appearance>_labelTrainIds.png`` (Cityscapes 19-class trainIds), the
  layout DAFormer/mmsegmentation converters expect.

Both also get ``daformer_dataset.py`` (see :mod:`.daformer`). Each file is written in a
hidden folder at the top of OUT and renamed into place when complete, so no reader that
lists an image folder ever sees a partial or temporary file; a killed export's hidden
folder is removed by the next export into OUT.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .daformer import CONFIG_NAME, daformer_config
from .dataset import CarlaDataset, open_dataset
from .errors import UserError
from .fileio import atomic_path, sweep_stale_temporaries, temporary_name, write_atomic
from .interrupt import stop_on_signals
from .output import free_bytes, is_disk_full, mib
from .schema import SPLIT_NAMES
from .taxonomy import IGNORE

FORMATS = ("cityscapes", "gta")
_TMP_DIR = "export"  # temporaries live in OUT/.export.tmp-<pid>-<hex>/


def _tables(ds: CarlaDataset) -> tuple[np.ndarray, np.ndarray]:
    """Stored trainIds -> (Cityscapes labelIds, Cityscapes 19-class trainIds)."""
    label_ids = np.zeros(256, np.uint8)  # 0 = unlabeled
    train_ids = np.full(256, IGNORE, np.uint8)
    for c in ds.classes:
        label_ids[c.train_id] = c.cityscapes_id
        train_ids[c.train_id] = c.cityscapes_train_id
    return label_ids, train_ids


def _check_arguments(fmt: str, splits: Sequence[str], out: Path) -> list[str]:
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}. Valid values are "
                        + ", ".join(FORMATS) + ".")
    if isinstance(splits, str):
        raise UserError(f"splits should be a list of split names, got the text {splits!r}.")
    chosen = list(dict.fromkeys(str(s) for s in splits))
    if not chosen:
        raise UserError("No split to export. Name at least one of "
                        + ", ".join(SPLIT_NAMES) + ".")
    for s in chosen:
        if s not in SPLIT_NAMES:
            raise UserError(f"Unknown split {s!r}. Valid values are "
                            + ", ".join(SPLIT_NAMES) + ".")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file. Name a folder to export into.")
    return chosen


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden folder at the top of OUT for temporaries (same file system as the files)."""
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries(out, _TMP_DIR)
    staging = out / temporary_name(_TMP_DIR)
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export(path: Path, out: Path, fmt: str, *, splits: Sequence[str] = SPLIT_NAMES,
           appearances: Sequence[str] | None = None, progress: bool = True) -> int:
    """Export a dataset to a folder layout; returns the number of images written.

    Raises:
        UserError (a ValueError): bad arguments, an unreadable dataset, a full disk.
        KeyboardInterrupt on Ctrl-C or SIGTERM, at the next layout: the images written so far
        are complete files.
    """
    out = Path(out)
    chosen = _check_arguments(fmt, splits, out)
    with open_dataset(path) as ds:
        names = list(appearances) if appearances is not None else list(ds.appearances)
        if not names:
            raise UserError("No appearance to export. Name at least one of "
                            + ", ".join(ds.appearances) + ".")
        for name in names:
            ds.appearance_index(name)  # validates
        label_ids, train_ids = _tables(ds)
        jobs = [(split, int(i)) for split in chosen for i in ds.split_indices(split)]
        written = 0
        with stop_on_signals() as check, _staging(out) as staging:
            def save(target: Path, array: np.ndarray) -> None:
                try:
                    with atomic_path(target, tmp_dir=staging) as tmp:
                        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)
                except OSError as exc:
                    if is_disk_full(exc):
                        per_image = 3 * array.size  # a bound; PNGs are smaller
                        left = (len(jobs) * len(names) - written) * per_image
                        raise UserError(
                            f"{target}: not enough disk space. The rest of the export needs "
                            f"up to {mib(left)} and {out.resolve()} has "
                            f"{mib(free_bytes(target))} free. Files written so far are "
                            "complete; free some space and run export again.") from None
                    raise UserError(f"{target}: cannot be written ({exc.strerror or exc}). "
                                    "Check the folder and its permissions.") from None

            for split, index in tqdm(jobs, unit="layout", desc=f"Exporting {fmt}",
                                     disable=not progress, dynamic_ncols=True):
                check()
                lid = str(ds.layout_ids[index])  # checked as a safe name by the reader
                label = ds.read_label(index)
                for name in names:
                    rgb = ds.read_rgb(index, name)
                    stem = f"{lid}_{name}"
                    if fmt == "cityscapes":
                        save(out / "leftImg8bit" / split / name / f"{stem}_leftImg8bit.png", rgb)
                        gt = out / "gtFine" / split / name
                        save(gt / f"{stem}_gtFine_labelIds.png", label_ids[label])
                        save(gt / f"{stem}_gtFine_labelTrainIds.png", train_ids[label])
                    else:
                        save(out / "images" / f"{stem}.png", rgb)
                        save(out / "labels" / f"{stem}_labelTrainIds.png", train_ids[label])
                    written += 1
            write_atomic(out / CONFIG_NAME, daformer_config(out, fmt, chosen))
    return written
