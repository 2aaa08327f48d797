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

from carla4agt_data.taxonomy import IGNORE

# ImageNet statistics on the 0..255 scale, as mmsegmentation/DAFormer use them.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def _size(flat_inputs: list[Any]) -> tuple[int, int]:
    for x in flat_inputs:
        if isinstance(x, (tv_tensors.Image, tv_tensors.Mask)):
            return int(x.shape[-2]), int(x.shape[-1])
    raise TypeError("Expected a tv_tensors.Image or tv_tensors.Mask among the inputs.")


class RandomScaleCrop(v2.Transform):
    """Random scale, then a random crop, as one transform that only resamples the crop.

    Equivalent to resizing by a factor drawn uniformly from ``scale`` and cropping ``size``
    (mmsegmentation's RandomResize + RandomCrop), but the source region of the crop is cut
    first and resized alone: the cost follows the crop, not the scaled image (4 to 16 times
    less work at scales of 1 to 2). Up to ``tries`` crops are drawn, keeping the first in
    which no class covers ``cat_max_ratio`` or more of the labelled pixels (mmseg's
    ``cat_max_ratio``). Where the scaled image is smaller than the crop, images are padded
    with 0 and masks with the ignore value.

    Images are resampled bilinearly with antialiasing; masks with ``NEAREST_EXACT``: torch's
    plain ``nearest`` (v2's default for masks) samples ``floor(y / s)``, half an input pixel
    off the pixel centres that bilinear uses, which shifts labels against images by up to
    a pixel when upscaling.
    """

    def __init__(self, size: int | Sequence[int], scale: tuple[float, float] = (0.5, 2.0),
                 cat_max_ratio: float = 1.0, ignore_index: int = IGNORE, tries: int = 10) -> None:
        super().__init__()
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}.")
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale = scale
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index
        self.tries = tries

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _size(flat_inputs)
        s = float(torch.empty(()).uniform_(*self.scale))
        ch, cw = self.size
        # the crop's extent in source pixels, and the padding the source needs for it
        sh, sw = max(1, round(ch / s)), max(1, round(cw / s))
        pad_h, pad_w = max(sh - h, 0), max(sw - w, 0)
        mask = next((x for x in flat_inputs if isinstance(x, tv_tensors.Mask)), None)
        top = left = 0
        for _ in range(self.tries):
            top = int(torch.randint(0, h + pad_h - sh + 1, ()))
            left = int(torch.randint(0, w + pad_w - sw + 1, ()))
            if mask is None or self.cat_max_ratio >= 1.0:
                break
            crop = mask[..., top:top + sh, left:left + sw]
            counts = torch.bincount(crop[crop != self.ignore_index].flatten().long())
            counts = counts[counts > 0]
            if len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio:
                break
        return {"top": top, "left": left, "box": (sh, sw)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        is_mask = isinstance(inpt, tv_tensors.Mask)
        h, w = inpt.shape[-2:]
        (top, left), (sh, sw), (ch, cw) = (params["top"], params["left"]), params["box"], self.size
        # The part of the box inside the image is resized; the rest is padding, added after
        # resizing (as when padding a resized image), so edges do not blend into the fill.
        vh, vw = min(sh, h - top), min(sw, w - left)
        out_h, out_w = min(ch, max(1, round(vh * ch / sh))), min(cw, max(1, round(vw * cw / sw)))
        inpt = F.crop(inpt, top, left, vh, vw)
        if is_mask:  # not F.resized_crop: its mask kernel always uses plain NEAREST
            inpt = F.resize(inpt, [out_h, out_w], interpolation=v2.InterpolationMode.NEAREST_EXACT)
        else:
            inpt = F.resize(inpt, [out_h, out_w], antialias=True)
        if (out_h, out_w) != (ch, cw):
            inpt = F.pad(inpt, [0, 0, cw - out_w, ch - out_h],
                         fill=self.ignore_index if is_mask else 0)
        return inpt


def joint_transforms(crop: int | Sequence[int] = 512, *, scale: tuple[float, float] = (0.5, 2.0),
                     hflip: float = 0.5, cat_max_ratio: float = 0.75) -> v2.Compose:
    """The usual segmentation training pipeline, one draw for all images and the label:
    random scale, crop (with ``cat_max_ratio``), horizontal flip.

    Example:
        >>> ds = PairedAppearanceDataset("dataset.h5", transforms=joint_transforms(512))
    """
    return v2.Compose([RandomScaleCrop(crop, scale, cat_max_ratio),
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
