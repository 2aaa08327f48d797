"""Joint geometric augmentation (one draw for every appearance and the label) and
per-image photometric augmentation, on torchvision transforms v2.

Geometric transforms receive ``tv_tensors.Image`` inputs and one ``tv_tensors.Mask``: v2
draws the parameters once per call and applies them to every input, resizing masks with
nearest neighbour and padding them with the ignore value, so label values are preserved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

IGNORE = 255
# ImageNet statistics on the 0..255 scale, as mmsegmentation/DAFormer use them.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def _size(flat_inputs: list[Any]) -> tuple[int, int]:
    for x in flat_inputs:
        if isinstance(x, (tv_tensors.Image, tv_tensors.Mask)):
            return int(x.shape[-2]), int(x.shape[-1])
    raise TypeError("Expected a tv_tensors.Image or tv_tensors.Mask among the inputs.")


class RandomScale(v2.Transform):
    """Resize by one factor drawn uniformly from ``scale``.

    Images are resized bilinearly; masks with ``NEAREST_EXACT``: torch's plain ``nearest``
    (v2's default for masks) samples ``floor(y / s)``, half an input pixel away from the
    pixel centres bilinear uses, which shifts labels against images by up to a pixel when
    upscaling.
    """

    def __init__(self, scale: tuple[float, float] = (0.5, 2.0)) -> None:
        super().__init__()
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}.")
        self.scale = scale

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _size(flat_inputs)
        s = float(torch.empty(()).uniform_(*self.scale))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return F.resize(inpt, params["size"], interpolation=v2.InterpolationMode.NEAREST_EXACT)
        return F.resize(inpt, params["size"], antialias=True)


class RandomCropCatMax(v2.Transform):
    """Random crop that avoids crops dominated by one class (mmsegmentation's
    ``cat_max_ratio``): up to ``tries`` draws, keeping the first in which no class covers
    ``cat_max_ratio`` or more of the labelled pixels. Pads smaller inputs (images with 0,
    masks with the ignore value) at the bottom and right.
    """

    def __init__(self, size: int | Sequence[int], cat_max_ratio: float = 1.0,
                 ignore_index: int = IGNORE, tries: int = 10) -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index
        self.tries = tries

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _size(flat_inputs)
        ch, cw = self.size
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        mask = next((x for x in flat_inputs if isinstance(x, tv_tensors.Mask)), None)
        top = left = 0
        for _ in range(self.tries):
            top = int(torch.randint(0, h + pad_h - ch + 1, ()))
            left = int(torch.randint(0, w + pad_w - cw + 1, ()))
            if mask is None or self.cat_max_ratio >= 1.0:
                break
            crop = mask[..., top:top + ch, left:left + cw]
            counts = torch.bincount(crop[crop != self.ignore_index].flatten().long())
            counts = counts[counts > 0]
            if len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio:
                break
        return {"top": top, "left": left, "pad": [0, 0, pad_w, pad_h]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if any(params["pad"]):
            fill = self.ignore_index if isinstance(inpt, tv_tensors.Mask) else 0
            inpt = F.pad(inpt, params["pad"], fill=fill)
        return F.crop(inpt, params["top"], params["left"], *self.size)


def joint_transforms(crop: int | Sequence[int] = 512, *, scale: tuple[float, float] = (0.5, 2.0),
                     hflip: float = 0.5, cat_max_ratio: float = 0.75) -> v2.Compose:
    """The usual segmentation training pipeline, one draw for all images and the label:
    random scale, crop (with ``cat_max_ratio``), horizontal flip.

    Example:
        >>> ds = PairedAppearanceDataset("dataset.h5", transforms=joint_transforms(512))
    """
    return v2.Compose([RandomScale(scale), RandomCropCatMax(crop, cat_max_ratio),
                       v2.RandomHorizontalFlip(hflip)])


def to_float(image: torch.Tensor, normalize: bool) -> torch.Tensor:
    """uint8 [3, H, W] -> float32 [3, H, W]: ImageNet-normalised, or in [0, 1]."""
    x = image.float()
    if normalize:
        mean = torch.tensor(MEAN).view(3, 1, 1)
        std = torch.tensor(STD).view(3, 1, 1)
        return (x - mean) / std
    return x / 255.0


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """The inverse of ``to_float(..., normalize=True)``: float [3, H, W] on 0..255."""
    return image * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
