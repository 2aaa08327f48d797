"""How a study trains and scores one cell: the reference loop, then one confusion matrix
per evaluation set (each appearance of the val split, each real target)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from loaders import PairedAppearanceDataset

from .evaluate import model_from_checkpoint
from .loop import TrainConfig, _device, load_checkpoint, train
from .metrics import ConfusionMatrix
from .study import Cell, StudyRun


def cell_config(base: TrainConfig, cell: Cell, folder: Path) -> TrainConfig:
    overrides = dict(cell.overrides)
    if "appearances" in overrides:
        overrides["appearances"] = tuple(overrides["appearances"])
    return dataclasses.replace(base, out=str(folder), **overrides)


@torch.no_grad()
def dataset_matrices(model: torch.nn.Module, path: str, split: str, device: torch.device,
                     progress: bool) -> tuple[dict[str, ConfusionMatrix], list[str]]:
    """One confusion matrix per appearance of ``split`` (every appearance of a layout is
    predicted in one batch)."""
    ds = PairedAppearanceDataset(path, split, all_appearances=True)
    k = ds.reader.num_classes
    per = {name: ConfusionMatrix(k) for name in ds.appearances}
    model.eval()
    items = (ds[i] for i in range(len(ds)))
    for item in tqdm(items, total=len(ds), desc="evaluate", disable=not progress, leave=False):
        preds = model(item["images"].to(device)).argmax(1).cpu()
        for name, pred in zip(ds.appearances, preds, strict=True):
            per[name].update(pred, item["label"])
    return per, [c.name for c in ds.reader.classes]


def folder_matrix(model: torch.nn.Module, dataset: Any, num_classes: int,
                  device: torch.device, progress: bool) -> ConfusionMatrix:
    cm = ConfusionMatrix(num_classes)
    model.eval()
    with torch.no_grad():
        for item in tqdm(dataset, desc="evaluate", disable=not progress, leave=False):
            pred = model(item["image"].unsqueeze(0).to(device)).argmax(1)[0].cpu()
            cm.update(pred, item["label"])
    return cm


def make_study_run(base: TrainConfig, *, split: str = "val",
                   targets: Mapping[str, Any] | None = None, progress: bool = True) -> StudyRun:
    """Train a cell with :func:`training.loop.train` from ``base`` plus the cell's
    overrides; evaluate it on ``split`` of the training dataset and on ``targets``
    (name -> a labelled folder dataset such as ``loaders.cityscapes(root, "val")``)."""
    device = _device(base.device)

    def run_train(cell: Cell, folder: Path, resume: bool) -> Path:
        return train(cell_config(base, cell, folder), resume=resume, progress=progress)

    def run_evaluate(cell: Cell, checkpoint: Path) -> dict[str, Any]:
        state = load_checkpoint(checkpoint)
        k = int(state["num_classes"])
        model = model_from_checkpoint(state, checkpoint).to(device)
        per, classes = dataset_matrices(model, base.data, split, device, progress)
        matrices = {name: cm.matrix.tolist() for name, cm in per.items()}
        for name, dataset in (targets or {}).items():
            matrices[name] = folder_matrix(model, dataset, k, device, progress).matrix.tolist()
        return {"classes": classes, "appearances": list(per),
                "train_appearances": list(cell.overrides.get("appearances") or per),
                "targets": list(targets or {}), "split": split, "step": int(state["step"]),
                "matrices": matrices}

    return StudyRun(train=run_train, evaluate=run_evaluate)
