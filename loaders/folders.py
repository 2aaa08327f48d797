"""Real target domains as folder datasets: Cityscapes, ACDC, and plain image folders.

Labels in Cityscapes 19-class trainIds (``*_labelTrainIds.png``) are remapped to the 16
classes (terrain, truck and train become 255). Items: ``image`` float32 [3, H, W],
``label`` int64 [H, W] when the folder has labels, ``path``, ``index``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from carla4agt_data.errors import UserError
from carla4agt_data.taxonomy import CLASSES_16, IGNORE

from .transforms import to_float

ACDC_CONDITIONS = ("fog", "night", "rain", "snow")


def cityscapes19_to_16() -> np.ndarray:
    """256-entry table: Cityscapes 19-class trainIds -> 16-class trainIds."""
    lut = np.full(256, IGNORE, np.uint8)
    for c in CLASSES_16:
        lut[c.cityscapes_train_id] = c.train_id
    return lut


class SegmentationFolder(Dataset):
    """Images with optional label files, matched by name; sorted, so the order is stable.

    Args:
        images: image files.
        labels: one label file per image (Cityscapes 19 trainIds), or ``None``.
        transforms: joint transform ``transforms(image, mask)`` on tv_tensors (or
            ``transforms(image)`` without labels).
        normalize: ImageNet mean/std (default) or [0, 1].
        num_classes: 16 (remap) or 19 (keep Cityscapes trainIds).
    """

    def __init__(self, images: Sequence[Path], labels: Sequence[Path] | None = None, *,
                 transforms: Callable[..., Any] | None = None, normalize: bool = True,
                 num_classes: int = 16) -> None:
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels.")
        self.images = list(images)
        self.labels = list(labels) if labels is not None else None
        self.transforms = transforms
        self.normalize = normalize
        self.lut = cityscapes19_to_16() if num_classes == 16 else np.arange(256, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        with Image.open(self.images[index]) as im:
            image = tv_tensors.Image(torch.from_numpy(np.asarray(im.convert("RGB")).copy())
                                     .permute(2, 0, 1))
        item: dict[str, Any] = {"path": str(self.images[index]), "index": index}
        if self.labels is None:
            if self.transforms is not None:
                image = self.transforms(image)
            item["image"] = to_float(torch.as_tensor(image), self.normalize)
            return item
        with Image.open(self.labels[index]) as lab:
            label = self.lut[np.asarray(lab)]
        mask = tv_tensors.Mask(torch.from_numpy(label.copy()))
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        item["image"] = to_float(torch.as_tensor(image), self.normalize)
        item["label"] = torch.as_tensor(mask).long()
        return item


def _require(root: Path, folders: Sequence[Path], what: str) -> None:
    missing = [str(f.relative_to(root)) for f in folders if not f.is_dir()]
    if not root.is_dir() or missing:
        expected = ", ".join(str(f.relative_to(root)) + "/" for f in folders)
        raise UserError(f"{root} does not look like {what}: expected the folders {expected}"
                        + (f" (missing: {', '.join(missing)})" if root.is_dir() else
                           " (the root does not exist)") + ".")


def _pair(images: list[Path], image_suffix: str, label_dir: Path, image_dir: Path,
          label_suffix: str) -> list[Path]:
    labels = []
    for image in images:
        rel = image.relative_to(image_dir)
        label = label_dir / rel.parent / (image.name[: -len(image_suffix)] + label_suffix)
        if not label.is_file():
            raise UserError(f"No label for {image}: expected {label}.")
        labels.append(label)
    return labels


def cityscapes(root: str | Path, split: str = "val", **kwargs: Any) -> SegmentationFolder:
    """Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (make them with cityscapesScripts'
    createTrainIdLabelImgs), remapped to the 16 classes."""
    root = Path(root)
    images_dir, labels_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    _require(root, [images_dir, labels_dir], f"a Cityscapes root with split {split!r}")
    images = sorted(images_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        raise UserError(f"{images_dir}: no *_leftImg8bit.png images in city folders.")
    labels = _pair(images, "_leftImg8bit.png", labels_dir, images_dir,
                   "_gtFine_labelTrainIds.png")
    return SegmentationFolder(images, labels, **kwargs)


def acdc(root: str | Path, condition: str = "fog", split: str = "val",
         **kwargs: Any) -> SegmentationFolder:
    """ACDC: ``rgb_anon/<condition>/<split>/<seq>/*_rgb_anon.png`` with
    ``gt/<condition>/<split>/<seq>/*_gt_labelTrainIds.png`` (unlabelled if ``split`` is
    ``"test"``)."""
    if condition not in ACDC_CONDITIONS:
        raise UserError(f"Unknown ACDC condition {condition!r}. Valid values are "
                        + ", ".join(ACDC_CONDITIONS) + ".")
    root = Path(root)
    images_dir = root / "rgb_anon" / condition / split
    labels_dir = root / "gt" / condition / split
    needed = [images_dir] if split == "test" else [images_dir, labels_dir]
    _require(root, needed, f"an ACDC root with {condition}/{split}")
    images = sorted(images_dir.glob("*/*_rgb_anon.png"))
    if not images:
        raise UserError(f"{images_dir}: no *_rgb_anon.png images in sequence folders.")
    labels = None if split == "test" else _pair(images, "_rgb_anon.png", labels_dir,
                                                images_dir, "_gt_labelTrainIds.png")
    return SegmentationFolder(images, labels, **kwargs)


def image_folder(root: str | Path, **kwargs: Any) -> SegmentationFolder:
    """A generic target folder: ``images/*`` (png, jpg) and optionally
    ``labels/<stem>_labelTrainIds.png`` (GTA/DAFormer style). Without ``labels/`` the
    items are unlabelled (UDA target images)."""
    root = Path(root)
    _require(root, [root / "images"], "an image folder")
    images = sorted(p for p in (root / "images").iterdir()
                    if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not images:
        raise UserError(f"{root / 'images'}: no .png or .jpg images.")
    labels = None
    if (root / "labels").is_dir():
        labels = [root / "labels" / f"{p.stem}_labelTrainIds.png" for p in images]
        missing = [str(p) for p in labels if not p.is_file()]
        if missing:
            raise UserError(f"{root / 'labels'} lacks {len(missing)} label files, e.g. "
                            f"{missing[0]}. Remove labels/ for unlabelled images.")
    return SegmentationFolder(images, labels, **kwargs)
