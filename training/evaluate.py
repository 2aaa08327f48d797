"""Checkpoints and evaluation: per-class IoU and mIoU by protocol (see
:mod:`training.metrics`), per appearance and cross-appearance consistency on a carla4agt
dataset; plain mIoU on real folders (Cityscapes, ACDC, image folders)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from carla4agt_data.errors import UserError
from carla4agt_data.taxonomy import IGNORE, classes
from loaders import PairedAppearanceDataset

from .metrics import PROTOCOLS, ConfusionMatrix, agreement, finite_or_none
from .model import MODELS, SegModel, build_model


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A carla4agt checkpoint, loaded with ``weights_only=True`` (a file from elsewhere runs
    no code) and checked for the entries evaluation and resuming need."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint.") from None
    except Exception as exc:  # pickle errors of every kind
        raise UserError(f"{path}: not a loadable carla4agt checkpoint "
                        f"({type(exc).__name__}: {str(exc)[:200]}).") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds a {type(state).__name__}, not a carla4agt checkpoint "
                        "(a dictionary written by carla4agt train).")
    if "model" not in state and state and all(isinstance(v, torch.Tensor)
                                               for v in state.values()):
        raise UserError(f"{path}: a plain state dict, not a carla4agt checkpoint (no class "
                        "count or model name). Start a run from it with carla4agt train "
                        "--weights " + str(path) + ".")
    missing = [k for k in ("model", "num_classes", "model_name") if k not in state]
    if missing or not isinstance(state.get("model"), dict):
        raise UserError(f"{path}: not a carla4agt checkpoint (missing "
                        f"{', '.join(missing) or 'model weights'}).")
    k = state["num_classes"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise UserError(f"{path}: num_classes {k!r} is not a class count.")
    return state


def model_from_checkpoint(state: dict[str, Any], path: str | Path,
                          model: str | None = None) -> SegModel:
    """The checkpoint's model with its weights. ``model`` (from the user's command line)
    may name your own ``module:function``; the checkpoint itself may only name a built-in
    model: a file is data and never names code to import."""
    name = model or str(state["model_name"])
    if model is None and name not in MODELS:
        raise UserError(f"{path} names the model {name!r}, which is not built in. A checkpoint "
                        "is data and may not name code to import: if it is your own model, "
                        f"pass it on the command line: --model {name}.")
    net = build_model(name, int(state["num_classes"]), custom=model is not None)
    try:
        net.load_state_dict(state["model"])
    except (RuntimeError, TypeError) as exc:
        raise UserError(f"{path}: its weights do not fit {name} with {state['num_classes']} "
                        f"classes ({str(exc).splitlines()[0][:300]}).") from None
    return net


def _report(cm: ConfusionMatrix, names: Sequence[str], extra: dict[str, Any]) -> dict[str, Any]:
    if cm.total == 0:
        raise UserError("The evaluation set has no labelled pixels: nothing to measure.")
    metrics = {k: finite_or_none(v) for k, v in cm.protocols().items()}
    return {**metrics, "pixel_accuracy": cm.pixel_accuracy(),
            "protocols": {k: PROTOCOLS[k] for k in metrics if k in PROTOCOLS},
            "per_class": {n: finite_or_none(float(v))
                          for n, v in zip(names, cm.iou(), strict=True)}, **extra}


@torch.no_grad()
def evaluate_dataset(model, path: str, split: str, device: torch.device,
                     progress: bool = True) -> dict[str, Any]:
    """mIoU per appearance and overall, and cross-appearance consistency, on a .h5 split."""
    model.eval()
    ds = PairedAppearanceDataset(path, split, all_appearances=True)
    if len(ds) == 0:
        raise UserError(f"{path} has no layouts in the split {split!r}: nothing to evaluate. "
                        "Choose another --split (train, val, test, all).")
    names = ds.appearances
    k = ds.reader.num_classes
    per = {n: ConfusionMatrix(k) for n in names}
    overall, pair_cm = ConfusionMatrix(k), ConfusionMatrix(k)
    agree: list[float] = []
    items: Any = ds
    for item in tqdm(items, desc="evaluate", disable=not progress, dynamic_ncols=True):
        images, label = item["images"].to(device), item["label"]
        preds = model(images).argmax(1).cpu()
        for name, pred in zip(names, preds, strict=True):
            per[name].update(pred, label)
            overall.update(pred, label)
        for i, j in itertools.combinations(range(len(names)), 2):
            value = agreement(preds[i], preds[j], label)
            if value == value:  # NaN when a label map has no labelled pixel
                agree.append(value)
            pair_cm.update(preds[j], torch.where(label == IGNORE, label, preds[i]))
    model.train()
    for cm in (*per.values(), overall, pair_cm):
        cm.all_reduce()
    consistency = {"agreement": sum(agree) / len(agree) if agree else None,
                   "miou_between_appearances": finite_or_none(pair_cm.miou())}
    return _report(overall, [c.name for c in ds.reader.classes], {
        "per_appearance": {n: {key: finite_or_none(v) for key, v in cm.protocols().items()}
                           for n, cm in per.items()},
        "consistency": consistency})


@torch.no_grad()
def evaluate_folder(model, dataset, num_classes: int, device: torch.device,
                    progress: bool = True) -> dict[str, Any]:
    """mIoU on a labelled folder dataset whose labels use the model's ``num_classes``."""
    if len(dataset) == 0:
        raise UserError("The folder has no images: nothing to evaluate.")
    model.eval()
    cm = ConfusionMatrix(num_classes)
    for item in tqdm(dataset, desc="evaluate", disable=not progress, dynamic_ncols=True):
        if "label" not in item:
            raise UserError(f"{item['path']} has no label: evaluation needs labelled images.")
        pred = model(item["image"].unsqueeze(0).to(device)).argmax(1)[0].cpu()
        cm.update(pred, item["label"])
    model.train()
    cm.all_reduce()
    return _report(cm, [c.name for c in classes(num_classes)], {})
