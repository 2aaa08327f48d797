"""The reference training loop (baseline, aligned, uda).

``train`` reads as its steps: set up the run, build the parts (model, teacher, taps,
optimiser), restore a checkpoint, make the data streams, then repeat one step; use the
pieces (losses, ClassMix, taps) in your own loop as well.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import io
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from carla4agt_data.dataset import open_dataset
from carla4agt_data.errors import UserError
from carla4agt_data.fileio import atomic_path, write_atomic
from carla4agt_data.output import free_bytes
from carla4agt_data.processes import interrupt_exit_code, sigterm_as_interrupt
from carla4agt_data.taxonomy import IGNORE
from loaders import AppearanceDataset, PairedAppearanceDataset, image_folder, joint_transforms
from loaders.samplers import RareClassCrop, RareClassSampler
from loaders.transforms import RandomScaleCrop

from .classmix import (
    class_mask,
    ema_alpha,
    ema_update,
    feature_distance,
    make_teacher,
    mix,
    mixed_weight,
    pseudo_crop_rows,
    pseudo_labels,
    strong_augment,
    thing_classes,
)
from .config import TrainConfig, write_config
from .losses import AlignmentLoss
from .model import FeatureTaps, SegModel, build_model
from .optim import make_optimizer
from .weights import apply_weights

LOG_COLUMNS = ["step", "loss", "ce", "align", "mix", "fdist", "lr", "seconds"]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """See :func:`training.evaluate.load_checkpoint`."""
    from .evaluate import load_checkpoint as load

    return load(path)


class TrainingInterrupted(UserError):
    """Ctrl-C or SIGTERM: the message says which checkpoint (and step) is kept;
    ``exit_code`` is the shell's (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TrainingDiverged(UserError):
    """The loss or the weights stopped being finite; nothing of that step was saved."""


def device_for(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked against this machine."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {name!r}: not a device. Valid values are auto, cpu, cuda, "
                        "cuda:N and mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: torch sees no CUDA GPU on this machine (torch "
                        f"{torch.__version__}, built for CUDA {torch.version.cuda}). Use "
                        "--device cpu, or install a CUDA build of torch.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s).")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available here. Use --device cpu.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {name!r}: valid values are auto, cpu, cuda, cuda:N, mps.")
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per process
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


_device = device_for  # the name training.study_run uses


def _distributed(device: torch.device) -> bool:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return True


def stream_seed(cfg: TrainConfig, step: int, rank: int, stream: int) -> int:
    """A seed for one random stream (loader order, crops, mixing) of one process, from the
    run's seed and the step it starts at: a resumed run continues with fresh draws
    instead of replaying the first epoch, and every rank draws differently."""
    return int(np.random.SeedSequence([cfg.seed, step, rank, stream]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------
# data


def _forever(loader: DataLoader) -> Iterator[dict[str, Any]]:
    for epoch in itertools.count():
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader


def _check_crop(cfg: TrainConfig, height: int, width: int) -> None:
    # scaled by up to 2 (joint_transforms), an image covers at most twice its longer side
    limit = 2 * max(height, width)
    if cfg.crop > limit:
        raise UserError(f"--crop {cfg.crop} is larger than the images of {cfg.data} "
                        f"({width}x{height}) can cover even scaled by 2: use at most {limit}.")


def _source(cfg: TrainConfig, seed: int):
    appearances = list(cfg.appearances) or None
    transforms = joint_transforms(cfg.crop)
    if cfg.mode == "baseline":
        return AppearanceDataset(cfg.data, "train", appearances=appearances,
                                 transforms=transforms, seed=seed), cfg.batch
    return PairedAppearanceDataset(cfg.data, "train", appearances=appearances,
                                   transforms=transforms, seed=seed), max(1, cfg.batch // 2)


def make_loaders(cfg: TrainConfig, step: int = 0, rank: int = 0, world: int = 1
                 ) -> tuple[DataLoader, DataLoader | None]:
    """The source loader (rare-class sampling with ``cfg.rcs``) and, for uda, the target
    loader, seeded for (run seed, starting step, rank)."""
    source, per_step = _source(cfg, stream_seed(cfg, step, rank, 0))
    if len(source) == 0:
        raise UserError(f"{cfg.data} has no training layouts. Pack with a train share > 0.")
    kw: dict[str, Any] = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0}
    order_seed = stream_seed(cfg, step, rank, 1)
    dataset: Any
    if cfg.rcs:
        sampler: Any = RareClassSampler(source, temperature=cfg.rcs_temperature,
                                        min_pixels=cfg.rcs_min_pixels, seed=order_seed,
                                        max_layouts=cfg.max_layouts, with_class=True)
        dataset = RareClassCrop(source, cfg.rcs_min_pixels * cfg.rcs_min_crop_ratio)
    else:
        dataset = source
        if cfg.max_layouts and cfg.max_layouts < len(source.layouts):
            dataset = Subset(source, range(cfg.max_layouts * source.items_per_layout))
        # every rank shuffles with the same seed: DistributedSampler then hands each rank
        # its own share of one permutation
        shared = stream_seed(cfg, step, 0, 1)
        sampler = (DistributedSampler(dataset, world, rank, shuffle=True, seed=shared)
                   if world > 1 else
                   torch.utils.data.RandomSampler(
                       dataset, generator=torch.Generator().manual_seed(order_seed)))
    main = DataLoader(dataset, batch_size=per_step, sampler=sampler,
                      drop_last=len(dataset) >= per_step, **kw)
    target = None
    if cfg.mode == "uda":
        if not cfg.target:
            raise UserError("--mode uda needs --target FOLDER (unlabelled target images).")
        folder = image_folder(cfg.target, transforms=RandomScaleCrop(cfg.crop))
        target = DataLoader(folder, batch_size=per_step, shuffle=True, drop_last=False,
                            generator=torch.Generator().manual_seed(stream_seed(cfg, step,
                                                                                rank, 2)),
                            **kw)
    return main, target


# ---------------------------------------------------------------------------------------
# the parts of a run


@dataclass
class Parts:
    model: SegModel
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    teacher: nn.Module | None
    imnet: nn.Module | None  # frozen initial encoder for the feature distance
    taps: FeatureTaps | None
    imnet_taps: FeatureTaps | None
    align: AlignmentLoss
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype
    layers: tuple[str, ...]
    things: list[int]
    num_classes: int


def amp_settings(device: torch.device, amp: bool) -> tuple[torch.dtype, bool]:
    """(autocast dtype, whether a GradScaler is needed): float16 on a GPU needs one,
    bfloat16 (the CPU's) does not."""
    if device.type == "cuda":
        return torch.float16, amp
    return torch.bfloat16, False


def build_parts(cfg: TrainConfig, num_classes: int, class_names: list[str],
                device: torch.device, distributed: bool, custom_model: bool = False,
                log: Callable[[str], None] = lambda s: None) -> Parts:
    """Model (with its weights), teacher and frozen ImageNet copy (both built before the
    feature taps, so their forwards never write the student's taps), taps, alignment loss,
    optimiser and schedule."""
    model = build_model(cfg.model, num_classes, custom=custom_model)
    report = apply_weights(model, cfg.weights, cfg.model)
    if report is not None:
        log(str(report))
    model.to(device).train()
    teacher = make_teacher(model) if cfg.mode == "uda" else None
    imnet = None
    if cfg.mode == "uda" and cfg.fdist_lambda > 0:
        if report is None:
            log("Feature distance off: the model starts from random weights (no --weights).")
        elif not model.alignment_layers:
            log("Feature distance off: the model publishes no encoder layers.")
        else:
            imnet = make_teacher(model).eval()
    # names may be given inside the user's model ("conv") or inside the wrapper ("net.conv")
    modules = dict(model.named_modules())
    layers = tuple(name if name in modules or f"net.{name}" not in modules else f"net.{name}"
                   for name in cfg.align_layers) or model.alignment_layers
    if cfg.mode != "baseline" and not layers:
        raise UserError(
            f"--mode {cfg.mode} aligns features, but the model {cfg.model} publishes no "
            "alignment layers. Name them with --align-layers (module names, e.g. "
            "backbone.layer2,backbone.layer4), or give your model an 'alignment_layers' "
            "attribute.")
    align = AlignmentLoss(cfg.align, {layer: cfg.align_weight for layer in layers}, num_classes)
    last = model.alignment_layers[-1:] if imnet is not None else ()
    taps = (FeatureTaps(model, tuple(dict.fromkeys(layers + last)))
            if cfg.mode != "baseline" else None)
    imnet_taps = FeatureTaps(imnet, last) if imnet is not None else None
    opt, sched = make_optimizer(model, cfg)
    dtype, scaled = amp_settings(device, cfg.amp)
    net: nn.Module = model
    if distributed:
        net = DistributedDataParallel(model, device_ids=[device.index]
                                      if device.type == "cuda" else None)
    return Parts(model, net, teacher, imnet, taps, imnet_taps, align, opt, sched,
                 torch.amp.GradScaler(device.type, enabled=scaled), dtype, layers,
                 thing_classes(class_names), num_classes)


# ---------------------------------------------------------------------------------------
# checkpoints


def _save(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as exc:  # torch reports a failed write (a full disk) this way
            raise OSError(errno.EIO if free_bytes(path) > 2**26 else errno.ENOSPC,
                          f"could not write the checkpoint ({str(exc).splitlines()[0]})",
                          str(path)) from exc


def _checkpoint(parts: Parts, cfg: TrainConfig, step: int, class_names: list[str],
                mix_gen: torch.Generator) -> dict[str, Any]:
    return {"model": parts.model.state_dict(), "optimizer": parts.opt.state_dict(),
            "scheduler": parts.sched.state_dict(), "scaler": parts.scaler.state_dict(),
            "step": step, "teacher": parts.teacher.state_dict() if parts.teacher else {},
            "num_classes": parts.num_classes, "model_name": cfg.model,
            "config": json.dumps(dataclasses.asdict(cfg)), "class_names": class_names,
            "rng": {"torch": torch.get_rng_state(), "mix": mix_gen.get_state()}}


def _restore(parts: Parts, path: Path, data: str) -> tuple[int, dict[str, Any]]:
    from .evaluate import load_checkpoint

    state = load_checkpoint(path)
    if state["num_classes"] != parts.num_classes:
        raise UserError(f"{path} was trained with {state['num_classes']} classes, "
                        f"{data} has {parts.num_classes}.")
    try:
        parts.model.load_state_dict(state["model"])
        parts.opt.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: does not fit this run's model and settings "
                        f"({str(exc).splitlines()[0][:200]}). Resume with the settings of "
                        "its run.yaml.") from None
    parts.sched.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        parts.scaler.load_state_dict(state["scaler"])
    if parts.teacher is not None and state.get("teacher"):
        parts.teacher.load_state_dict(state["teacher"])
    return int(state["step"]), state.get("rng") or {}


def _saved_step(path: Path) -> int | None:
    """The step of the checkpoint on disk (the interrupt may come during a save)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:  # none yet, or unreadable: nothing is kept
        return None


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


# ---------------------------------------------------------------------------------------
# one step


def _forward_pair(parts: Parts, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy on both appearances and their alignment; returns the source features
    too (for the feature distance)."""
    n = len(a)
    logits = parts.net(torch.cat([a, b]))
    assert parts.taps is not None
    feats = dict(parts.taps.features)
    ce = F.cross_entropy(logits, torch.cat([y, y]), ignore_index=IGNORE)
    align, _ = parts.align({k: feats[k][:n] for k in parts.layers},
                           {k: feats[k][n:] for k in parts.layers}, y)
    return ce, align, feats


def _fdist(parts: Parts, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor,
           feats: dict[str, torch.Tensor]) -> torch.Tensor:
    assert parts.imnet is not None and parts.imnet_taps is not None
    layer = parts.model.alignment_layers[-1]
    with torch.no_grad():
        parts.imnet(x)
    frozen = parts.imnet_taps.features[layer]
    return cfg.fdist_lambda * feature_distance(feats[layer][: len(x)], frozen, y, parts.things,
                                               parts.num_classes)


def _mixed(parts: Parts, cfg: TrainConfig, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
           t: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Cross-appearance ClassMix: one mask pastes A and B onto the same target image."""
    n = min(len(a), len(t))
    a, b, y, t = a[:n], b[:n], y[:n], t[:n]
    assert parts.teacher is not None and parts.taps is not None
    with torch.no_grad():
        pseudo, q = pseudo_labels(parts.teacher(t), cfg.pseudo_threshold)
    mask = class_mask(y.cpu(), gen).to(y.device)
    ma, mb = mix(mask, a, t), mix(mask, b, t)
    mixed = strong_augment(torch.cat([ma, mb]), gen, pairs=n if cfg.mix_aug_shared else 0)
    ym = mix(mask, y, pseudo)
    rows = pseudo_crop_rows(y.shape[-2]) if cfg.pseudo_crop else (0, 0)
    weight = mixed_weight(mask, q, rows)
    logits = parts.net(mixed)
    feats = dict(parts.taps.features)
    ce = F.cross_entropy(logits, torch.cat([ym, ym]), ignore_index=IGNORE, reduction="none")
    align, _ = parts.align({k: feats[k][:n] for k in parts.layers},
                           {k: feats[k][n:] for k in parts.layers}, ym)
    return {"mix": (ce * torch.cat([weight, weight])).mean(), "align": align}


def _terms(parts: Parts, cfg: TrainConfig, batch: dict[str, Any], target: dict[str, Any] | None,
           device: torch.device, gen: torch.Generator) -> dict[str, torch.Tensor]:
    if "image" in batch:  # baseline: independent images
        x, y = batch["image"].to(device), batch["label"].to(device)
        return {"ce": F.cross_entropy(parts.net(x), y, ignore_index=IGNORE)}
    a, b = batch["image_a"].to(device), batch["image_b"].to(device)
    y = batch["label"].to(device)
    ce, align, feats = _forward_pair(parts, a, b, y)
    terms = {"ce": ce, "align": align}
    if target is None:
        return terms
    if parts.imnet is not None:
        terms["fdist"] = _fdist(parts, cfg, a, y, feats)
    mixed = _mixed(parts, cfg, a, b, y, target["image"].to(device), gen)
    terms["mix"] = mixed["mix"]
    terms["align"] = terms["align"] + mixed["align"]
    return terms


def _optimise(parts: Parts, loss: torch.Tensor) -> None:
    parts.opt.zero_grad(set_to_none=True)
    parts.scaler.scale(loss).backward()
    parts.scaler.step(parts.opt)
    parts.scaler.update()
    parts.sched.step()


# ---------------------------------------------------------------------------------------
# the run


def _diverged(cfg: TrainConfig, step: int, values: dict[str, float], saved: int | None,
              last: Path) -> TrainingDiverged:
    terms = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
    kept = (f"{last} (step {saved}) is kept unchanged" if saved else "no checkpoint was written")
    return TrainingDiverged(
        f"The loss stopped being finite at step {step + 1} ({terms}); training stops and "
        f"nothing of this step is saved: {kept}. Lower --lr (now {cfg.lr:g}) or "
        f"--align-weight (now {cfg.align_weight:g}), or try without --amp.")


@dataclass
class Run:
    """The state of one run between steps."""

    cfg: TrainConfig
    device: torch.device
    parts: Parts
    last: Path  # <out>/last.pt
    step: int
    saved: int | None  # step of the checkpoint written by this run (or resumed from)
    batches: Iterator[dict[str, Any]]
    targets: Iterator[dict[str, Any]] | None
    mix_gen: torch.Generator
    class_names: list[str]
    writer: bool  # rank 0 writes the log and checkpoints
    distributed: bool


def start_run(cfg: TrainConfig, resume: bool = False, custom_model: bool = False,
              log: Callable[[str], None] = lambda s: None) -> Run:
    """Check the settings against the data and machine, build the parts, restore a
    checkpoint (``resume``), write ``run.yaml`` and open the data streams."""
    device = device_for(cfg.device)
    torch.manual_seed(cfg.seed)
    ds = open_dataset(cfg.data)
    width, height = ds.size
    _check_crop(cfg, height, width)
    distributed = _distributed(device)
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    class_names = [c.name for c in ds.classes]
    parts = build_parts(cfg, ds.num_classes, class_names, device, distributed, custom_model,
                        log if rank == 0 else (lambda s: None))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    step, rng = _restore(parts, last, cfg.data) if resume else (0, {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    mix_gen = torch.Generator().manual_seed(stream_seed(cfg, step, rank, 3))
    if "mix" in rng and not distributed:
        mix_gen.set_state(rng["mix"])
    if rank == 0:
        write_config(cfg, out / "run.yaml")
    main, target = make_loaders(cfg, step, rank, world)
    return Run(cfg, device, parts, last, step, step if resume else None, _forever(main),
               _forever(target) if target is not None else None, mix_gen, class_names,
               rank == 0, distributed)


def train_step(run: Run) -> tuple[float, dict[str, float]]:
    """One optimisation step (and the teacher's EMA update); returns the loss and its terms.
    Raises :class:`TrainingDiverged` before touching the weights if the loss is not finite."""
    cfg, parts = run.cfg, run.parts
    batch = next(run.batches)
    target = next(run.targets) if run.targets is not None else None
    with torch.autocast(run.device.type, enabled=cfg.amp, dtype=parts.amp_dtype):
        terms = _terms(parts, cfg, batch, target, run.device, run.mix_gen)
    loss = torch.stack(list(terms.values())).sum()
    values = {k: float(v.detach()) for k, v in terms.items()}
    if not math.isfinite(float(loss.detach())):
        raise _diverged(cfg, run.step, values, run.saved, run.last)
    _optimise(parts, loss)
    if parts.teacher is not None:
        ema_update(parts.teacher, parts.model, ema_alpha(run.step, cfg.ema))
    run.step += 1
    return float(loss.detach()), values


def save_checkpoint(run: Run, values: dict[str, float]) -> None:
    """Write ``last.pt`` (rank 0), unless the weights stopped being finite."""
    if not _all_finite(run.parts.model):
        raise _diverged(run.cfg, run.step - 1, values, run.saved, run.last)
    if run.writer:
        _save(run.last, _checkpoint(run.parts, run.cfg, run.step, run.class_names, run.mix_gen))
    run.saved = run.step


def _interrupted(run: Run, exc: KeyboardInterrupt) -> TrainingInterrupted:
    saved = _saved_step(run.last) if run.writer else run.saved
    kept = (f"{run.last} from step {saved} is kept; run the same command with --resume to "
            "continue from there" if saved else
            "no checkpoint had been written yet, so nothing is kept")
    return TrainingInterrupted(f"Interrupted at step {run.step} of {run.cfg.iters}: {kept}.",
                               interrupt_exit_code(exc))


def _finish(run: Run) -> None:
    for taps in (run.parts.taps, run.parts.imnet_taps):
        if taps is not None:
            taps.remove()
    if run.distributed:
        dist.destroy_process_group()


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True,
          custom_model: bool = False, log: Callable[[str], None] = lambda s: None) -> Path:
    """Train; returns the path of the last checkpoint (``<out>/last.pt``).

    Started with ``torchrun --nproc_per_node N``, it trains with DistributedDataParallel
    (``--batch`` is then per process); only rank 0 writes the log and checkpoints.

    Args:
        cfg: the run's settings (:func:`training.config.resolve`).
        resume: continue from ``<out>/last.pt``.
        custom_model: allow ``cfg.model`` to name code (``module:function``); only the
            user's command line may.
        log: receives one-line notes (weights loaded, features off).

    Raises:
        TrainingInterrupted: on Ctrl-C or SIGTERM, saying which checkpoint is kept.
        TrainingDiverged: when the loss is no longer finite.
    """
    run = start_run(cfg, resume, custom_model, log)
    bar = tqdm(total=cfg.iters, initial=run.step, desc=f"train {cfg.mode}",
               disable=not (progress and run.writer), dynamic_ncols=True)
    try:
        with sigterm_as_interrupt(), _Log(Path(cfg.out), resume, run.writer,
                                          cfg.tensorboard, run.step) as logger:
            while run.step < cfg.iters:
                t0 = time.perf_counter()
                loss, values = train_step(run)
                logger.row(run.step, loss, values, float(run.parts.sched.get_last_lr()[0]),
                           time.perf_counter() - t0)
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
                bar.update(1)
                if run.step % cfg.checkpoint_every == 0 or run.step == cfg.iters:
                    logger.flush()  # every row up to a checkpoint is on disk before it
                    save_checkpoint(run, values)
    except KeyboardInterrupt as exc:
        raise _interrupted(run, exc) from None
    finally:
        bar.close()
        _finish(run)
    return run.last


class _Log:
    """``log.csv`` (one row per step; rank 0 only) and optional TensorBoard events."""

    def __init__(self, out: Path, resume: bool, writer: bool, tensorboard: bool,
                 start_step: int = 0) -> None:
        self.path = out / "log.csv"
        self.resume = resume
        self.writer = writer
        self.tensorboard = tensorboard and writer
        self.start_step = start_step
        self.events: Any = None

    def _kept_rows(self) -> list[list[str]]:
        """On resume, the rows up to the checkpoint's step: a killed run may have left rows
        past it (steps that are done again now) or lost its unflushed rows and header."""
        if not (self.resume and self.path.exists()):
            return []
        with open(self.path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and r[0].isdigit()]
        return [r for r in rows if int(r[0]) <= self.start_step]

    def __enter__(self) -> _Log:
        if not self.writer:
            self.fh = open(os.devnull, "w")
            self.csv = csv.writer(self.fh)
        else:
            # header and kept rows replace the file in one rename, then rows are appended
            text = io.StringIO()
            csv.writer(text).writerows([LOG_COLUMNS, *self._kept_rows()])
            write_atomic(self.path, text.getvalue())
            self.fh = open(self.path, "a", newline="")
            self.csv = csv.writer(self.fh)
        if self.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.fh.close()
                raise UserError("--tensorboard needs the tensorboard package: pip install "
                                "tensorboard (log.csv is written without it).") from None
            self.events = SummaryWriter(str(self.path.parent / "tensorboard"))
        return self

    def row(self, step: int, loss: float, values: dict[str, float], lr: float,
            seconds: float) -> None:
        self.csv.writerow([step, f"{loss:.5f}", *(f"{values.get(k, 0):.5f}" for k in
                                                  ("ce", "align", "mix", "fdist")),
                           f"{lr:.3g}", f"{seconds:.4f}"])
        if step % 20 == 0:
            self.flush()  # so that `tail -f log.csv` follows the run
        if self.events is not None:
            self.events.add_scalar("loss/total", loss, step)
            for k, v in values.items():
                self.events.add_scalar(f"loss/{k}", v, step)
            self.events.add_scalar("lr", lr, step)

    def flush(self) -> None:
        try:
            self.fh.flush()
            if self.writer:
                os.fsync(self.fh.fileno())
        except OSError as error:  # a full disk: name the log, not a file descriptor
            raise OSError(error.errno, error.strerror, str(self.path)) from error

    def __exit__(self, *exc: object) -> None:
        try:
            self.fh.close()
        except OSError as error:  # a full disk: name the log, not a file descriptor
            if exc[0] is None:  # else the error already on its way (a checkpoint) is the news
                raise OSError(error.errno, error.strerror, str(self.path)) from error
        if self.events is not None:
            self.events.close()
