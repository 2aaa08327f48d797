"""Reference segmentation models and feature taps on named layers."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import segmentation as seg

from carla4agt_data.errors import UserError

# name -> (builder, default alignment layers inside the wrapped model)
MODELS: dict[str, tuple[Callable[..., nn.Module], tuple[str, ...]]] = {
    "lraspp_mobilenet_v3_large": (seg.lraspp_mobilenet_v3_large,
                                  ("net.backbone.4", "net.backbone.16")),
    "deeplabv3_mobilenet_v3_large": (seg.deeplabv3_mobilenet_v3_large,
                                     ("net.backbone.4", "net.backbone.16")),
    "deeplabv3_resnet50": (seg.deeplabv3_resnet50, ("net.backbone.layer2", "net.backbone.layer4")),
    "deeplabv3_resnet101": (seg.deeplabv3_resnet101,
                            ("net.backbone.layer2", "net.backbone.layer4")),
}


class SegModel(nn.Module):
    """Wraps a model so that ``forward`` returns logits ``[B, K, H, W]`` at input size."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if isinstance(out, dict):
            out = out["out"]
        if out.shape[-2:] != x.shape[-2:]:
            out = nn.functional.interpolate(out, x.shape[-2:], mode="bilinear",
                                            align_corners=False)
        return out


def build_model(name: str, num_classes: int = 16, pretrained: str | Path | None = None
                ) -> tuple[SegModel, tuple[str, ...]]:
    """A model and its default alignment layers.

    Args:
        name: one of :data:`MODELS`, or ``"module:function"`` for your own model (called as
            ``function(num_classes=...)``; it returns logits or a dict with ``"out"``).
        pretrained: a local checkpoint (a state dict, or a carla4agt checkpoint) to load;
            nothing is downloaded.
    """
    if name in MODELS:
        builder, layers = MODELS[name]
        net = builder(weights=None, weights_backbone=None, num_classes=num_classes)
    elif ":" in name:
        module_name, func = name.split(":", 1)
        try:
            net = getattr(importlib.import_module(module_name), func)(num_classes=num_classes)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"Cannot build the model {name!r} ({exc}). Use 'module:function' "
                            "with an importable module.") from None
        layers = ()
    else:
        raise UserError(f"Unknown model {name!r}. Valid values are " + ", ".join(MODELS)
                        + ", or 'module:function' for your own.")
    model = SegModel(net)
    # torchvision's MobileNetV3 uses BatchNorm momentum 0.01 (TensorFlow's): its running
    # statistics then trail a short run so far that eval-mode predictions collapse. 0.1
    # (PyTorch's default) follows the network as it trains.
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.1
    if pretrained is not None:
        state = torch.load(pretrained, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if len(missing) == len(model.state_dict()):
            raise UserError(f"{pretrained}: none of its weights fit the model {name}.")
    return model, layers


class FeatureTaps:
    """Forward hooks on named layers; ``taps.features`` holds their last outputs.

    Example:
        >>> taps = FeatureTaps(model, ["net.backbone.4", "net.backbone.16"])
        >>> logits = model(images)
        >>> {k: v.shape for k, v in taps.features.items()}
    """

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        modules = dict(model.named_modules())
        for layer in layers:
            if layer not in modules:
                close = difflib.get_close_matches(layer, list(modules), n=3)
                hint = (f" Did you mean {', '.join(close)}?" if close else
                        f" Valid names include {', '.join(list(modules)[1:8])}, ...")
                raise UserError(f"Unknown layer {layer!r} in {type(model).__name__}.{hint}")
        self.features: dict[str, torch.Tensor] = {}
        self._handles = [modules[layer].register_forward_hook(self._hook(layer))
                         for layer in layers]

    def _hook(self, layer: str):
        def hook(module: nn.Module, inputs, output) -> None:
            self.features[layer] = output["out"] if isinstance(output, dict) else output
        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
