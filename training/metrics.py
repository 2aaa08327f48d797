"""Segmentation metrics from one confusion matrix per evaluation, named by protocol.

Protocols choose classes by name, so a matrix of 16 or 19 classes gives the right subset:

- ``miou19``: the 19 Cityscapes classes (19-class models only).
- ``miou16``: ours. The 16 classes of SYNTHIA/CARLA; ground-truth pixels of terrain,
  truck and train are ignored (they are not classes of the protocol).
- ``miou16_daformer``: DAFormer's reading of Cityscapes for 16-class benchmarks: the model
  is evaluated on all 19 classes and the mean is taken over the 16 shared ones, so
  terrain, truck and train pixels still count (a terrain pixel predicted as vegetation is
  a false positive of vegetation). 19-class matrices only.
- ``miou13``: the 16-class protocol's IoUs over 13 classes (no wall, fence, pole).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist

from carla4agt_data.taxonomy import CLASSES_16, IGNORE, classes

NAMES_16 = tuple(c.name for c in CLASSES_16)
NAMES_13 = tuple(n for n in NAMES_16 if n not in ("wall", "fence", "pole"))

PROTOCOLS = {
    "miou19": "mIoU over the 19 Cityscapes classes",
    "miou16": "mIoU over 16 classes; terrain, truck and train pixels ignored (ours)",
    "miou16_daformer": "mIoU over the 16 shared classes of a 19-class evaluation; terrain, "
                       "truck and train pixels count as errors (DAFormer's Cityscapes protocol)",
    "miou13": "mIoU16 (ours) without wall, fence and pole",
}


class ConfusionMatrix:
    """Accumulates a [K, K] matrix (rows: ground truth, columns: prediction); 255 ignored.

    Args:
        num_classes: K.
        names: class names in trainId order (default: our 16- or 19-class table).
    """

    def __init__(self, num_classes: int, names: Sequence[str] | None = None) -> None:
        self.num_classes = num_classes
        if names is None and num_classes in (16, 19):
            names = [c.name for c in classes(num_classes)]
        self.names = tuple(names) if names is not None else tuple(map(str, range(num_classes)))
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        keep = (target != IGNORE) & (target >= 0) & (target < self.num_classes)
        k = self.num_classes
        idx = target[keep].long().cpu() * k + pred[keep].long().cpu()
        self.matrix += torch.bincount(idx, minlength=k * k).view(k, k)

    def all_reduce(self) -> None:
        """Sum the matrices of every process (under torch.distributed)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix)

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def iou(self, ignore_gt: Sequence[str] = ()) -> torch.Tensor:
        """Per-class IoU = TP / (TP + FP + FN); NaN for classes absent from both.

        ``ignore_gt``: classes whose ground-truth pixels are left out (their rows dropped);
        predictions of those classes on other pixels still count as errors.
        """
        m = self.matrix.double().clone()
        for name in ignore_gt:
            if name in self.names:
                m[self.names.index(name)] = 0
        tp = m.diag()
        denom = m.sum(0) + m.sum(1) - tp
        return torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))

    def miou(self, names: Sequence[str] | None = None, ignore_gt: Sequence[str] = ()) -> float:
        """Mean IoU over ``names`` (default: all), NaN classes skipped."""
        iou = self.iou(ignore_gt)
        if names is not None:
            iou = iou[[self.names.index(n) for n in names]]
        iou = iou[~iou.isnan()]
        return float(iou.mean()) if len(iou) else float("nan")

    def protocols(self) -> dict[str, float]:
        """Every protocol this matrix can answer (see the module docstring)."""
        out: dict[str, float] = {}
        not_16 = tuple(n for n in self.names if n not in NAMES_16)
        if set(NAMES_16) <= set(self.names):
            if len(self.names) == 19:
                out["miou19"] = self.miou()
            out["miou16"] = self.miou(NAMES_16, ignore_gt=not_16)
            if len(self.names) == 19:
                out["miou16_daformer"] = self.miou(NAMES_16)
            out["miou13"] = self.miou(NAMES_13, ignore_gt=not_16)
        else:
            out["miou"] = self.miou()
        return out

    def miou13(self) -> float:
        return self.protocols()["miou13"]

    def pixel_accuracy(self) -> float:
        return float(self.matrix.diag().sum() / self.matrix.sum().clamp(min=1))


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined metric is written as null."""
    return None if math.isnan(value) else value


def agreement(pred_a: torch.Tensor, pred_b: torch.Tensor, target: torch.Tensor) -> float:
    """Share of labelled pixels where two predictions (two appearances) agree."""
    keep = target != IGNORE
    return float((pred_a[keep] == pred_b[keep]).float().mean()) if keep.any() else float("nan")
