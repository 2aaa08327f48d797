"""DAFormer's optimiser: AdamW, head x10, no decay on norms and position blocks, linear
warm-up from ``lr * warmup_ratio``, then polynomial decay to 0."""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
          nn.modules.instancenorm._InstanceNorm)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Four groups: (backbone | head) x (decay | no decay). The backbone is the model's
    ``backbone`` prefix; a model without one is all backbone (no head multiplier)."""
    prefix = getattr(model, "backbone", "") or ""
    no_decay: set[str] = set()
    for name, module in model.named_modules():
        if isinstance(module, _NORMS):
            no_decay.update(f"{name}.{p}" if name else p for p, _ in module.named_parameters(
                recurse=False))
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        head = bool(prefix) and not name.startswith(prefix)
        decay = name not in no_decay and "pos_block" not in name and "pos_embed" not in name
        groups.setdefault((head, decay), []).append(param)
    return [{"params": params, "lr": cfg.lr * (cfg.head_lr_mult if head else 1.0),
             "weight_decay": cfg.weight_decay if decay else 0.0,
             "name": f"{'head' if head else 'backbone'}{'' if decay else ' (no decay)'}"}
            for (head, decay), params in sorted(groups.items())]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Factor on each group's base lr at ``step`` (0-based), mmcv's way: the poly factor,
    times a linear ramp from ``warmup_ratio`` to 1 over ``warmup_iters``."""
    poly = (1.0 - min(step, cfg.iters) / cfg.iters) ** cfg.poly_power
    if step < cfg.warmup_iters:
        ramp = 1.0 - (1.0 - step / cfg.warmup_iters) * (1.0 - cfg.warmup_ratio)
        return poly * ramp
    return poly


def make_optimizer(model: nn.Module, cfg: TrainConfig
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=(0.9, 0.999),
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    return opt, sched
