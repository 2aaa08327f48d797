"""Feature-alignment losses between two pixel-aligned appearances of one layout.

Every loss takes features ``fa``, ``fb`` of shape ``[B, C, h, w]`` and a boolean ``valid``
mask ``[B, h, w]`` (pixels whose downscaled label is a class, not ignore or mixed) and
returns a scalar; it is 0 for identical features and has gradients for both inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from carla4agt_data.taxonomy import IGNORE


def downscale_label(label: torch.Tensor, size: tuple[int, int], num_classes: int,
                    threshold: float = 0.75) -> torch.Tensor:
    """Labels ``[B, H, W]`` -> ``[B, h, w]``: the majority class of each window if it covers
    at least ``threshold`` of it, else 255 (mixed windows are not aligned)."""
    b, height, width = label.shape
    h, w = size
    valid = label != IGNORE
    if height % h == 0 and width % w == 0:
        # Count classes per window with one bincount over the pixels: far cheaper than a
        # one-hot [B, K, H, W] tensor (the usual case: strides divide the crop).
        sy, sx = height // h, width // w
        rows = torch.arange(height, device=label.device).div(sy, rounding_mode="floor")
        cols = torch.arange(width, device=label.device).div(sx, rounding_mode="floor")
        window = (rows[:, None] * w + cols[None, :]).expand(b, -1, -1)
        batch = torch.arange(b, device=label.device).view(b, 1, 1)
        index = ((batch * (num_classes + 1) + torch.where(valid, label, num_classes)) * (h * w)
                 + window)
        counts = torch.bincount(index.flatten(), minlength=b * (num_classes + 1) * h * w)
        share = counts.view(b, num_classes + 1, h, w)[:, :num_classes].float() / (sy * sx)
    else:
        onehot = F.one_hot(torch.where(valid, label, 0), num_classes).permute(0, 3, 1, 2)
        share = F.adaptive_avg_pool2d(onehot.float() * valid.unsqueeze(1), size)  # [B, K, h, w]
    top, cls = share.max(dim=1)
    return torch.where(top >= threshold, cls, torch.full_like(cls, IGNORE))


def _pixels(f: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w], [B, h, w] -> [N, C] features of the valid pixels."""
    return f.permute(0, 2, 3, 1)[valid]


def cosine_alignment(fa: torch.Tensor, fb: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(fa, fb) over valid pixels (0 where nothing is valid)."""
    if not valid.any():
        return fa.sum() * 0
    return (1 - F.cosine_similarity(_pixels(fa, valid), _pixels(fb, valid), dim=1)).mean()


def l2_alignment(fa: torch.Tensor, fb: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per channel over valid pixels."""
    if not valid.any():
        return fa.sum() * 0
    return (_pixels(fa, valid) - _pixels(fb, valid)).pow(2).mean()


def _sample(x: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    if len(x) <= n:
        return x
    idx = torch.randperm(len(x), generator=generator, device="cpu")[:n].to(x.device)
    return x[idx]


def gaussian_mmd(a: torch.Tensor, b: torch.Tensor, kernels: int = 5,
                 multiplier: float = 2.0) -> torch.Tensor:
    """Biased squared MMD between samples ``a`` [n, C] and ``b`` [m, C] with a sum of
    Gaussian kernels whose bandwidths are the mean pairwise squared distance times
    ``multiplier`` ** (k - kernels // 2) (Long et al., DAN)."""
    x = torch.cat([a, b])
    d2 = torch.cdist(x, x).pow(2)
    n = len(x)
    base = d2.detach().sum() / max(n * n - n, 1)
    k = torch.stack([torch.exp(-d2 / (base * multiplier ** (i - kernels // 2) + 1e-12))
                     for i in range(kernels)]).sum(0)
    na = len(a)
    return k[:na, :na].mean() + k[na:, na:].mean() - 2 * k[:na, na:].mean()


def mmd_alignment(fa: torch.Tensor, fb: torch.Tensor, valid: torch.Tensor, *,
                  samples: int = 1024, generator: torch.Generator | None = None) -> torch.Tensor:
    """Distribution-level alignment: MMD between valid pixels of A and of B, each sampled
    to at most ``samples`` pixels (memory grows with the square of the sample)."""
    if not valid.any():
        return fa.sum() * 0
    return gaussian_mmd(_sample(_pixels(fa, valid), samples, generator),
                        _sample(_pixels(fb, valid), samples, generator))


def contrastive_alignment(fa: torch.Tensor, fb: torch.Tensor, valid: torch.Tensor, *,
                          samples: int = 1024, temperature: float = 0.1,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixel InfoNCE: the aligned pixel of the other appearance is the positive, the other
    sampled pixels are negatives; symmetric over A->B and B->A."""
    if not valid.any():
        return fa.sum() * 0
    idx = torch.nonzero(valid.flatten(), as_tuple=True)[0]
    if len(idx) > samples:
        idx = idx[torch.randperm(len(idx), generator=generator)[:samples].to(idx.device)]
    a = F.normalize(fa.permute(0, 2, 3, 1).reshape(-1, fa.shape[1])[idx], dim=1)
    b = F.normalize(fb.permute(0, 2, 3, 1).reshape(-1, fb.shape[1])[idx], dim=1)
    logits = a @ b.t() / temperature  # [n, n]: row i's positive is column i
    target = torch.arange(len(a), device=a.device)
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    # InfoNCE does not reach 0 even for identical features (negatives stay similar): report
    # it relative to matching each appearance with itself, so identical features give 0.
    with torch.no_grad():
        floor = (F.cross_entropy(a @ a.t() / temperature, target)
                 + F.cross_entropy(b @ b.t() / temperature, target)) / 2
    return loss - floor


ALIGNMENTS = {"cosine": cosine_alignment, "l2": l2_alignment, "mmd": mmd_alignment,
              "contrast": contrastive_alignment}


class AlignmentLoss(nn.Module):
    """Weighted sum over layers of one alignment loss, masked by the downscaled label.

    Args:
        kind: "cosine", "l2", "mmd" or "contrast".
        weights: layer name -> weight.
        num_classes: for downscaling the label.

    Shape:
        forward(feats_a: dict[str, Tensor[B, C, h, w]], feats_b: same, label: [B, H, W])
        -> (total, {layer: term})
    """

    def __init__(self, kind: str, weights: dict[str, float], num_classes: int) -> None:
        super().__init__()
        if kind not in ALIGNMENTS:
            raise ValueError(f"Unknown alignment {kind!r}; valid: {', '.join(ALIGNMENTS)}.")
        self.kind, self.weights, self.num_classes = kind, dict(weights), num_classes
        self.fn = ALIGNMENTS[kind]

    def forward(self, feats_a: dict[str, torch.Tensor], feats_b: dict[str, torch.Tensor],
                label: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = {}
        for layer, weight in self.weights.items():
            fa, fb = feats_a[layer], feats_b[layer]
            small = downscale_label(label, (fa.shape[-2], fa.shape[-1]), self.num_classes)
            terms[layer] = weight * self.fn(fa.float(), fb.float(), small != IGNORE)
        total = (torch.stack(list(terms.values())).sum() if terms else
                 label.new_zeros((), dtype=torch.float32))
        return total, terms
