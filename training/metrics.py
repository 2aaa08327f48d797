"""Segmentation metrics from one confusion matrix per evaluation."""

from __future__ import annotations

import torch

from carla4agt_data.taxonomy import CLASSES_13_TRAIN_IDS

IGNORE = 255


class ConfusionMatrix:
    """Accumulates a [K, K] matrix (rows: ground truth, columns: prediction); 255 ignored."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        keep = (target != IGNORE) & (target >= 0) & (target < self.num_classes)
        k = self.num_classes
        idx = target[keep].long().cpu() * k + pred[keep].long().cpu()
        self.matrix += torch.bincount(idx, minlength=k * k).view(k, k)

    def iou(self) -> torch.Tensor:
        """Per-class IoU = TP / (TP + FP + FN); NaN for classes absent from both."""
        m = self.matrix.double()
        tp = m.diag()
        denom = m.sum(0) + m.sum(1) - tp
        return torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))

    def miou(self, classes: list[int] | tuple[int, ...] | None = None) -> float:
        iou = self.iou()
        if classes is not None:
            iou = iou[list(classes)]
        iou = iou[~iou.isnan()]
        return float(iou.mean()) if len(iou) else float("nan")

    def miou13(self) -> float:
        return self.miou(CLASSES_13_TRAIN_IDS)

    def pixel_accuracy(self) -> float:
        return float(self.matrix.diag().sum() / self.matrix.sum().clamp(min=1))


def agreement(pred_a: torch.Tensor, pred_b: torch.Tensor, target: torch.Tensor) -> float:
    """Share of labelled pixels where two predictions (two appearances) agree."""
    keep = target != IGNORE
    return float((pred_a[keep] == pred_b[keep]).float().mean()) if keep.any() else float("nan")
