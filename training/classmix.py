"""Cross-appearance ClassMix (DACS) with an EMA teacher, as DAFormer runs it.

ClassMix pastes the pixels of half the classes present in a source label onto a target
image: ``M = 1[y_s in C]``, ``x_m = M x_s + (1 - M) x_t``, ``y_m = M y_s + (1 - M) y_hat_t``
(teacher pseudo-labels), pixel weight ``M + (1 - M) q`` with ``q`` the share of the
batch's target pixels whose teacher confidence is at least 0.968. The cross-appearance
variant uses the SAME mask for appearance A and B of one source layout, so the two mixed
images are pixel-aligned like a source pair. Ignore pixels (255) of the source are never
pasted: the target shows through there, with its pseudo-label.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from carla4agt_data.taxonomy import IGNORE
from loaders.transforms import MEAN, STD


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
    """Teacher logits [B, K, H, W] -> (labels [B, H, W], confidence weight q [B]).

    ``q`` is one number for the whole batch (DACS, DAFormer), repeated per image.
    """
    prob = teacher_logits.float().softmax(dim=1)
    conf, labels = prob.max(dim=1)
    q = (conf >= threshold).float().mean()
    return labels, q.expand(len(labels))


def pseudo_crop_rows(height: int, top: int = 15, bottom: int = 120, reference: int = 512
                     ) -> tuple[int, int]:
    """DAFormer's pseudo-label crop (rows of a 512-row crop whose pseudo-labels are not
    trusted: ego vehicle and sky border), scaled to a crop of ``height`` rows."""
    scale = height / reference
    return round(top * scale), round(bottom * scale)


def mixed_weight(mask: torch.Tensor, q: torch.Tensor,
                 ignore_rows: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Per-pixel weight: 1 on pasted source pixels, q on target pixels (0 in the ignored
    top and bottom rows of the target)."""
    target_weight = q.view(-1, 1, 1).expand(mask.shape).float().clone()
    top, bottom = ignore_rows
    if top:
        target_weight[:, :top] = 0
    if bottom:
        target_weight[:, -bottom:] = 0
    return torch.where(mask, torch.ones_like(target_weight), target_weight)


def ema_alpha(step: int, limit: float = 0.999) -> float:
    """The teacher's momentum at ``step`` (0-based): min(1 - 1 / (step + 1), limit), so
    early on the teacher follows the student closely (DACS, DAFormer)."""
    return min(1.0 - 1.0 / (step + 1), limit)


def _dropout_off(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) or type(module).__name__ == "DropPath":
            module.eval()


def make_teacher(model: nn.Module) -> nn.Module:
    """A frozen copy in train mode (target images are normalised with their own batch
    statistics) with dropout and drop-path off. Build it BEFORE registering feature taps
    on the student: a deep copy would copy the hooks too."""
    teacher = copy.deepcopy(model)
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.train()
    _dropout_off(teacher)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float = 0.999) -> None:
    """teacher = alpha * teacher + (1 - alpha) * student, parameters only (the teacher's
    BatchNorm statistics are its own)."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(alpha).add_(s.detach(), alpha=1 - alpha)


def strong_augment(x: torch.Tensor, generator: torch.Generator, *, pairs: int = 0,
                   jitter: float = 0.2, p_jitter: float = 0.8, p_blur: float = 0.5,
                   sigma: tuple[float, float] = (0.15, 1.15)) -> torch.Tensor:
    """DACS's augmentation after mixing, per image of ImageNet-normalised ``x`` [B, 3, H, W]:
    colour jitter (brightness, contrast, saturation and hue by up to ``jitter``) with
    probability ``p_jitter``, Gaussian blur (sigma uniform in ``sigma``, kernel about 0.1
    of the crop) with probability ``p_blur``.

    ``pairs``: when > 0, image i and image i + pairs share one draw (appearances A and B
    of a mixed pair); 0 draws for every image.
    """
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    images = ((x.float() * std + mean) / 255).clamp(0, 1)
    draws = pairs or len(x)
    params = [_draw(generator, jitter, p_jitter, p_blur, sigma) for _ in range(draws)]
    kernel = max(3, int(0.1 * x.shape[-1]) // 2 * 2 + 1)
    out = []
    for i, img in enumerate(images):
        b, c, s, h, blur = params[i % draws]
        if b is not None:
            img = TF.adjust_brightness(img, b)
            img = TF.adjust_contrast(img, c)
            img = TF.adjust_saturation(img, s)
            img = TF.adjust_hue(img, h)
        if blur is not None:
            img = TF.gaussian_blur(img, [kernel, kernel], [blur, blur])
        out.append(img)
    return ((torch.stack(out) * 255 - mean) / std).to(x.dtype)


def _draw(gen: torch.Generator, jitter: float, p_jitter: float, p_blur: float,
          sigma: tuple[float, float]) -> tuple:
    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=gen))

    b = c = s = h = None
    if float(torch.rand((), generator=gen)) < p_jitter:
        b, c, s = (uniform(1 - jitter, 1 + jitter) for _ in range(3))
        h = uniform(-jitter, jitter) / 2  # hue shifts are fractions of the colour circle
    blur = uniform(*sigma) if float(torch.rand((), generator=gen)) < p_blur else None
    return b, c, s, h, blur


def feature_distance(student: torch.Tensor, frozen: torch.Tensor, label: torch.Tensor,
                     things: list[int], num_classes: int) -> torch.Tensor:
    """DAFormer's ImageNet feature distance: mean L2 distance between the student's and the
    frozen ImageNet encoder's features over pixels whose downscaled label (75 % majority)
    is a thing class."""
    from .losses import downscale_label

    small = downscale_label(label, (student.shape[-2], student.shape[-1]), num_classes)
    keep = torch.isin(small, torch.tensor(things, device=small.device))
    if not keep.any():
        return student.sum() * 0
    dist = torch.norm(student.float() - frozen.float(), dim=1)  # [B, h, w]
    return dist[keep].mean()


def thing_classes(names: list[str]) -> list[int]:
    """Indices of DAFormer's thing classes in a class table."""
    things = {"traffic light", "traffic sign", "person", "rider", "car", "truck", "bus",
              "train", "motorcycle", "bicycle"}
    return [i for i, n in enumerate(names) if n in things]

