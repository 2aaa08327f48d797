"""Starting weights: a local file in any of the usual key layouts, or ImageNet downloads.

A state dict's key names depend on who saved it: torchvision classification models
(``features.0.0.weight``), torchvision segmentation models (``backbone.0.0.weight``),
segmentation-models-pytorch and its hub files (``encoder.patch_embed1...`` or bare
``patch_embed1...``), mmsegmentation/DAFormer (``backbone.patch_embed1...`` under
``state_dict``), DistributedDataParallel (``module.``) and our checkpoints (``net.``). We
try each way of renaming the file's keys onto the model's and keep the one under which
most tensors fit; tensors whose shape differs (a classifier for another class count) are
skipped and named in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from carla4agt_data.errors import UserError

from .model import MODELS, SegModel

_SOURCE_PREFIXES = ("", "features.", "backbone.", "encoder.", "model.", "net.")
_TARGET_PREFIXES = ("", "net.", "net.backbone.", "net.encoder.")


@dataclass
class LoadReport:
    """What a weight file gave the model (counts exclude BatchNorm's step counters)."""

    source: str
    loaded: int
    total: int
    backbone_loaded: int
    backbone_total: int
    shape_mismatch: list[str] = field(default_factory=list)  # "name [file] vs [model]"
    unused: int = 0  # tensors of the file that fit no parameter of the model

    def __str__(self) -> str:
        backbone = ("all" if self.backbone_loaded == self.backbone_total else
                    f"{self.backbone_loaded} of {self.backbone_total}")
        text = (f"{self.source}: loaded {self.loaded} of {self.total} tensors "
                f"(backbone: {backbone})")
        if self.shape_mismatch:
            shown = ", ".join(self.shape_mismatch[:3])
            more = len(self.shape_mismatch) - 3
            text += (f"; skipped {len(self.shape_mismatch)} of another shape ({shown}"
                     + (f", and {more} more" if more > 0 else "") + ")")
        if self.unused:
            text += f"; {self.unused} tensors of the file fit nothing"
        return text + "."


def _counted(key: str) -> bool:
    return not key.endswith("num_batches_tracked")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weight file (``.pt``/``.pth``/``.bin`` or ``.safetensors``), from a
    plain state dict or one wrapped in ``model``/``state_dict`` (a checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weight file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors errors of every kind
        raise UserError(f"{path}: not a readable weight file ({type(exc).__name__}: "
                        f"{str(exc)[:200]}). Pass a state dict saved with torch.save, a "
                        ".safetensors file or a carla4agt checkpoint.") from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise UserError(f"{path}: holds a {type(obj).__name__}, not a dictionary of tensors "
                        "(a state dict).")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"{path}: holds no tensors.")
    return tensors


def _rename(state: Mapping[str, torch.Tensor], src: str, dst: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        while key.startswith("module."):  # DistributedDataParallel
            key = key[len("module."):]
        if key.startswith(src):
            out[dst + key[len(src):]] = value
    return out


def match_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str
                     ) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The renaming of ``state`` under which most tensors fit ``model``, and its report."""
    target = model.state_dict()
    best: dict[str, torch.Tensor] = {}
    best_fit = -1
    for src in _SOURCE_PREFIXES:
        for dst in _TARGET_PREFIXES:
            renamed = _rename(state, src, dst)
            fit = sum(1 for k, v in renamed.items()
                      if k in target and target[k].shape == v.shape and _counted(k))
            if fit > best_fit:
                best, best_fit = renamed, fit
    fits = {k: v for k, v in best.items() if k in target and target[k].shape == v.shape}
    mismatch = [f"{k} {list(v.shape)} vs {list(target[k].shape)}"
                for k, v in best.items() if k in target and target[k].shape != v.shape]
    prefix = getattr(model, "backbone", "") or ""
    counted = [k for k in target if _counted(k)]
    in_backbone = [k for k in counted if k.startswith(prefix)]
    report = LoadReport(source, loaded=sum(1 for k in fits if _counted(k)), total=len(counted),
                        backbone_loaded=sum(1 for k in in_backbone if k in fits),
                        backbone_total=len(in_backbone), shape_mismatch=mismatch,
                        unused=sum(1 for k in best if k not in target and _counted(k))
                        + (len(state) - len(best)))
    return fits, report


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                 model_name: str = "the model") -> LoadReport:
    """Load what fits; fail unless the whole backbone (the whole model when it publishes no
    backbone) loaded."""
    fits, report = match_state_dict(model, state, source)
    if report.backbone_loaded < report.backbone_total or report.loaded == 0:
        raise UserError(
            f"{source}: its weights do not fit {model_name}: {report} The backbone must load "
            "completely. Is it a file of another model? Weight files of torchvision, "
            "segmentation-models-pytorch, mmsegmentation/DAFormer and carla4agt are "
            "understood.")
    model.load_state_dict(fits, strict=False)
    return report


def load_weight_file(model: nn.Module, path: str | Path, model_name: str = "the model"
                     ) -> LoadReport:
    """Load a local file into ``model`` (see :func:`load_weights`)."""
    return load_weights(model, read_state_dict(path), str(path), model_name)


def imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of a built-in model's encoder, downloaded by the library that
    owns them (segmentation-models-pytorch from the Hugging Face hub, torchvision from its
    servers) into their usual caches."""
    spec = MODELS.get(name)
    if spec is None:
        raise UserError(f"--weights imagenet needs a built-in model, not {name!r}; pass a "
                        "local file with --weights PATH.")
    try:
        if spec.encoder:
            from segmentation_models_pytorch.encoders import get_encoder

            return get_encoder(spec.encoder, weights="imagenet").state_dict()
        import torchvision.models as tvm

        if "mobilenet_v3" in name:
            return tvm.mobilenet_v3_large(weights="IMAGENET1K_V1").state_dict()
        builder = tvm.resnet50 if "resnet50" in name else tvm.resnet101
        return builder(weights="IMAGENET1K_V1").state_dict()
    except Exception as exc:  # offline: hub, URL and socket errors of every kind
        where = (f"smp-hub/{spec.encoder}.imagenet on the Hugging Face hub" if spec.encoder
                 else "torchvision's ImageNet weights of the backbone")
        raise UserError(
            f"Could not download the ImageNet weights of {name} ({type(exc).__name__}: "
            f"{str(exc)[:200]}). This machine may be offline. Download {where} on a machine "
            "that is online and pass the file with --weights PATH.") from None


def apply_weights(model: SegModel, weights: str, model_name: str) -> LoadReport | None:
    """``weights``: "" (random), "imagenet" or a path."""
    if not weights:
        return None
    if weights == "imagenet":
        return load_weights(model, imagenet_state_dict(model_name), f"ImageNet ({model_name})",
                            model_name)
    return load_weight_file(model, weights, model_name)
