"""Cross-appearance ClassMix (DACS) with an EMA teacher.

ClassMix pastes the pixels of half the classes present in a source label onto a target
image: ``M = 1[y_s in C]``, ``x_m = M x_s + (1 - M) x_t``, ``y_m = M y_s + (1 - M) y_hat_t``
(teacher pseudo-labels), pixel weight ``M + (1 - M) q`` with ``q`` the share of target
pixels whose teacher confidence is at least 0.968. The cross-appearance variant uses the
SAME mask for appearance A and B of one source layout, so the two mixed images are
pixel-aligned like a source pair. Ignore pixels (255) of the source are never pasted: the
target shows through there, with its pseudo-label.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

IGNORE = 255


def class_mask(label: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[B, H, W]`` bool: per image, the pixels of a random half of its present classes."""
    masks = []
    for lab in label:
        present = torch.unique(lab)
        present = present[present != IGNORE]
        if len(present) == 0:
            masks.append(torch.zeros_like(lab, dtype=torch.bool))
            continue
        order = torch.randperm(len(present), generator=generator).to(present.device)
        chosen = present[order[: (len(present) + 1) // 2]]
        masks.append(torch.isin(lab, chosen))
    return torch.stack(masks)


def mix(mask: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Paste ``source`` onto ``target`` where ``mask``: images [B, C, H, W] or labels [B, H, W]."""
    m = mask.unsqueeze(1) if source.dim() == 4 else mask
    return torch.where(m, source, target)


def pseudo_labels(teacher_logits: torch.Tensor,
                  threshold: float = 0.968) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher logits [B, K, H, W] -> (labels [B, H, W], confidence weight q [B])."""
    prob = teacher_logits.softmax(dim=1)
    conf, labels = prob.max(dim=1)
    q = (conf >= threshold).float().mean(dim=(1, 2))
    return labels, q


def mixed_weight(mask: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-pixel weight: 1 on pasted source pixels, q on target pixels."""
    return torch.where(mask, torch.ones_like(mask, dtype=torch.float32),
                       q.view(-1, 1, 1).expand(mask.shape).float())


def make_teacher(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(model)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float = 0.999) -> None:
    """teacher = alpha * teacher + (1 - alpha) * student (buffers copied)."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1 - alpha)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)
