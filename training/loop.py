"""The reference training loop (baseline, aligned, uda) and evaluation.

``train`` is a few small functions around one step; use the pieces (losses, ClassMix,
taps) in your own loop as well.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from carla4agt_data.dataset import open_dataset
from carla4agt_data.errors import UserError
from carla4agt_data.fileio import atomic_path
from loaders import AppearanceDataset, PairedAppearanceDataset, image_folder, joint_transforms
from loaders.transforms import RandomScaleCrop

from .classmix import class_mask, ema_update, make_teacher, mix, mixed_weight, pseudo_labels
from .losses import AlignmentLoss
from .metrics import ConfusionMatrix, agreement
from .model import FeatureTaps, build_model

MODES = ("baseline", "aligned", "uda")
IGNORE = 255


@dataclass
class TrainConfig:
    """Everything a run needs; saved (as plain data) in every checkpoint."""

    data: str
    out: str
    mode: str = "aligned"  # baseline | aligned | uda
    align: str = "cosine"  # cosine | l2 | mmd | contrast
    align_layers: tuple[str, ...] = ()  # default: the model's
    align_weight: float = 0.1
    appearances: tuple[str, ...] = ()  # default: all in the file
    max_layouts: int = 0  # 0: all training layouts
    target: str = ""  # uda: folder of target images (images/ or Cityscapes root)
    iters: int = 1000
    batch: int = 8  # images per step (aligned and uda: batch // 2 pairs)
    crop: int = 512
    lr: float = 6e-4
    seed: int = 0
    amp: bool = False
    device: str = "auto"
    model: str = "lraspp_mobilenet_v3_large"
    pretrained: str = ""
    workers: int = 2
    ema: float = 0.999


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per process
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


def _distributed(device: torch.device) -> bool:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return True


def _forever(loader: DataLoader) -> Iterator[dict[str, Any]]:
    for epoch in itertools.count():
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader


def _limit(dataset, max_layouts: int):
    if max_layouts and max_layouts < len(dataset.layouts):
        per = dataset.items_per_layout
        return Subset(dataset, range(max_layouts * per))
    return dataset


def _loader(dataset, per_step: int, cfg: TrainConfig, seed: int, distributed: bool) -> DataLoader:
    kw = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0,
          "drop_last": len(dataset) >= per_step}
    if distributed:  # each process sees its own share; set_epoch reshuffles every pass
        return DataLoader(dataset, batch_size=per_step,
                          sampler=DistributedSampler(dataset, shuffle=True, seed=seed), **kw)
    return DataLoader(dataset, batch_size=per_step, shuffle=True,
                      generator=torch.Generator().manual_seed(seed), **kw)


def _loaders(cfg: TrainConfig, distributed: bool = False) -> tuple[DataLoader, DataLoader | None]:
    appearances = list(cfg.appearances) or None
    transforms = joint_transforms(cfg.crop)
    if cfg.mode == "baseline":
        source = AppearanceDataset(cfg.data, "train", appearances=appearances,
                                   transforms=transforms, seed=cfg.seed)
        per_step = cfg.batch
    else:
        source = PairedAppearanceDataset(cfg.data, "train", appearances=appearances,
                                         transforms=transforms, seed=cfg.seed)
        per_step = max(1, cfg.batch // 2)
    if len(source) == 0:
        raise UserError(f"{cfg.data} has no training layouts. Pack with a train share > 0.")
    main = _loader(_limit(source, cfg.max_layouts), per_step, cfg, cfg.seed, distributed)
    target = None
    if cfg.mode == "uda":
        if not cfg.target:
            raise UserError("--mode uda needs --target FOLDER (unlabelled target images).")
        folder = image_folder(cfg.target, transforms=RandomScaleCrop(cfg.crop))
        target = _loader(folder, per_step, cfg, cfg.seed + 1, distributed)
    return main, target


def _strong_aug(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Colour jitter and blur after mixing (DACS), on normalised images, per batch item."""
    out = []
    for img in x:
        scale = 1 + 0.4 * (torch.rand((), generator=generator) - 0.5)
        shift = 0.4 * (torch.rand((), generator=generator) - 0.5)
        img = img * scale + shift
        if torch.rand((), generator=generator) < 0.5:
            img = TF.gaussian_blur(img, [5, 5], [1.0, 1.0])
        out.append(img)
    return torch.stack(out)


def _save(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint, loaded with ``weights_only=True`` (a file from elsewhere runs no code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint.") from None
    except Exception as exc:  # pickle errors of every kind
        raise UserError(f"{path}: not a loadable carla4agt checkpoint ({exc}).") from None


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train; returns the path of the last checkpoint (``<out>/last.pt``).

    Started with ``torchrun --nproc_per_node N``, it trains with DistributedDataParallel
    (``--batch`` is then per process); only rank 0 writes the log and checkpoints.
    """
    if cfg.mode not in MODES:
        raise UserError(f"Unknown mode {cfg.mode!r}. Valid values are {', '.join(MODES)}.")
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(cfg.device)
    distributed = _distributed(device)
    writer = not distributed or dist.get_rank() == 0
    ds = open_dataset(cfg.data)
    model, default_layers = build_model(cfg.model, ds.num_classes, cfg.pretrained or None)
    model.to(device).train()
    layers = tuple(cfg.align_layers) or default_layers
    align = AlignmentLoss(cfg.align, {layer: cfg.align_weight for layer in layers},
                          ds.num_classes)
    taps = FeatureTaps(model, layers) if cfg.mode != "baseline" else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, cfg.iters // 20)) * (1 - s / cfg.iters) ** 0.9)
    teacher = make_teacher(model) if cfg.mode == "uda" else None
    step = 0
    last = out / "last.pt"
    if resume:
        state = load_checkpoint(last)
        if state["num_classes"] != ds.num_classes:
            raise UserError(f"{last} was trained with {state['num_classes']} classes, "
                            f"{cfg.data} has {ds.num_classes}.")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if teacher is not None and state.get("teacher"):
            teacher.load_state_dict(state["teacher"])
        step = int(state["step"])
    main, target = _loaders(cfg, distributed)
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                  else None) if distributed else model
    batches = _forever(main)
    targets = _forever(target) if target is not None else None
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    log_path = out / "log.csv"
    new_log = not (resume and log_path.exists())
    with open(log_path if writer else os.devnull, "w" if new_log else "a", newline="") as fh:
        log = csv.writer(fh)
        if new_log:
            log.writerow(["step", "loss", "ce", "align", "mix", "lr", "seconds"])
        bar = tqdm(total=cfg.iters, initial=step, desc=f"train {cfg.mode}",
                   disable=not (progress and writer), dynamic_ncols=True)
        while step < cfg.iters:
            t0 = time.perf_counter()
            batch = next(batches)
            with torch.autocast(device.type, enabled=cfg.amp,
                                dtype=torch.bfloat16 if device.type == "cpu" else torch.float16):
                terms = _step(net, taps, align, teacher, batch,
                              next(targets) if targets is not None else None, device, gen)
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if teacher is not None:
                ema_update(teacher, model, cfg.ema)
            step += 1
            values = {k: float(v.detach()) for k, v in terms.items()}
            log.writerow([step, f"{float(loss.detach()):.5f}", f"{values.get('ce', 0):.5f}",
                          f"{values.get('align', 0):.5f}", f"{values.get('mix', 0):.5f}",
                          f"{sched.get_last_lr()[0]:.3g}", f"{time.perf_counter() - t0:.4f}"])
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
            bar.update(1)
            if step % 20 == 0:
                fh.flush()  # so that `tail -f log.csv` follows the run
            if writer and (step % 500 == 0 or step == cfg.iters):
                _save(last, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "step": step,
                             "teacher": teacher.state_dict() if teacher is not None else {},
                             "num_classes": ds.num_classes, "model_name": cfg.model,
                             "config": json.dumps(dataclasses.asdict(cfg)),
                             "class_names": [c.name for c in ds.classes]})
        bar.close()
    if taps is not None:
        taps.remove()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return last


def _step(model, taps, align, teacher, batch, target_batch, device, gen) -> dict[str, torch.Tensor]:
    if "image" in batch:  # baseline: independent images
        x, y = batch["image"].to(device), batch["label"].to(device)
        return {"ce": F.cross_entropy(model(x), y, ignore_index=IGNORE)}
    a, b = batch["image_a"].to(device), batch["image_b"].to(device)
    y = batch["label"].to(device)
    n = len(a)
    logits = model(torch.cat([a, b]))
    feats = dict(taps.features)
    terms = {"ce": F.cross_entropy(logits, torch.cat([y, y]), ignore_index=IGNORE)}
    terms["align"], _ = align({k: v[:n] for k, v in feats.items()},
                              {k: v[n:] for k, v in feats.items()}, y)
    if target_batch is None:
        return terms
    t = target_batch["image"].to(device)[:n]
    n = min(n, len(t))
    a, b, y, t = a[:n], b[:n], y[:n], t[:n]
    with torch.no_grad():
        pseudo, q = pseudo_labels(teacher(t))
    mask = class_mask(y.cpu(), gen).to(device)
    ma, mb = mix(mask, a, t), mix(mask, b, t)  # the same mask for both appearances
    ma, mb = _strong_aug(ma, gen), _strong_aug(mb, gen)
    ym = mix(mask, y, pseudo)
    weight = mixed_weight(mask, q)
    mixed_logits = model(torch.cat([ma, mb]))
    mfeats = dict(taps.features)
    ce = F.cross_entropy(mixed_logits, torch.cat([ym, ym]), ignore_index=IGNORE, reduction="none")
    terms["mix"] = (ce * torch.cat([weight, weight])).mean()
    mixed_align, _ = align({k: v[:n] for k, v in mfeats.items()},
                           {k: v[n:] for k, v in mfeats.items()}, ym)
    terms["align"] = terms["align"] + mixed_align
    return terms


@torch.no_grad()
def evaluate_dataset(model, path: str, split: str, device: torch.device,
                     progress: bool = True) -> dict[str, Any]:
    """mIoU per appearance and overall, and cross-appearance consistency, on a .h5 split."""
    model.eval()
    ds = PairedAppearanceDataset(path, split, all_appearances=True)
    names = ds.appearances
    k = ds.reader.num_classes
    per = {n: ConfusionMatrix(k) for n in names}
    overall = ConfusionMatrix(k)
    pair_cm = ConfusionMatrix(k)
    agree: list[float] = []
    for item in tqdm(ds, desc="evaluate", disable=not progress, dynamic_ncols=True):
        images, label = item["images"].to(device), item["label"]
        preds = model(images).argmax(1).cpu()
        for name, pred in zip(names, preds, strict=True):
            per[name].update(pred, label)
            overall.update(pred, label)
        for i, j in itertools.combinations(range(len(names)), 2):
            agree.append(agreement(preds[i], preds[j], label))
            pair_cm.update(preds[j], torch.where(label == IGNORE, label, preds[i]))
    model.train()
    return _report(overall, ds.reader.classes, {
        "per_appearance": {n: {"miou16": cm.miou(), "miou13": cm.miou13()}
                           for n, cm in per.items()},
        "consistency": {"agreement": float(sum(agree) / max(len(agree), 1)),
                        "miou_between_appearances": pair_cm.miou()}})


@torch.no_grad()
def evaluate_folder(model, dataset, num_classes: int, device: torch.device, classes,
                    progress: bool = True) -> dict[str, Any]:
    model.eval()
    cm = ConfusionMatrix(num_classes)
    for item in tqdm(dataset, desc="evaluate", disable=not progress, dynamic_ncols=True):
        if "label" not in item:
            raise UserError(f"{item['path']} has no label: evaluation needs labelled images.")
        pred = model(item["image"].unsqueeze(0).to(device)).argmax(1)[0].cpu()
        cm.update(pred, item["label"])
    model.train()
    return _report(cm, classes, {})


def _report(cm: ConfusionMatrix, classes, extra: dict[str, Any]) -> dict[str, Any]:
    iou = cm.iou()
    return {"miou16": cm.miou(), "miou13": cm.miou13(), "pixel_accuracy": cm.pixel_accuracy(),
            "per_class": {c.name: (None if math.isnan(float(v)) else float(v))
                          for c, v in zip(classes, iou, strict=True)}, **extra}
