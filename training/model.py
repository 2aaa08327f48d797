"""Reference segmentation models, with the feature layers they publish, and feature taps.

Built-in models (nothing is downloaded; see :mod:`training.weights` for weights):

- torchvision: ``lraspp_mobilenet_v3_large``, ``deeplabv3_mobilenet_v3_large``,
  ``deeplabv3_resnet50``, ``deeplabv3_resnet101``;
- ``segformer_mit_b0`` ... ``segformer_mit_b5``: segmentation-models-pytorch's SegFormer
  (MiT encoder, all-MLP decoder);
- ``daformer_mit_b0`` ... ``daformer_mit_b5``: the same MiT encoder with DAFormer's
  context-aware fusion decoder (:mod:`training.daformer`).

Every model is wrapped in :class:`SegModel`, which publishes ``alignment_layers`` (module
names to tap), ``feature_channels`` and ``feature_strides`` of those layers, and
``backbone`` (the prefix of the encoder's parameters, for weights and learning rates).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as seg

from carla4agt_data.errors import UserError

MIT_VARIANTS = tuple(f"mit_b{i}" for i in range(6))


@dataclass(frozen=True)
class ModelSpec:
    """How to build one built-in model and which of its layers to align by default."""

    build: Callable[[int], nn.Module]
    backbone: str  # prefix of the encoder's parameters inside SegModel
    layers: tuple[str, ...]  # default alignment layers
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    size_multiple: int = 1  # inputs are padded to a multiple of this
    encoder: str = ""  # smp encoder name, for --weights imagenet


def _torchvision(builder: Callable[..., nn.Module]) -> Callable[[int], nn.Module]:
    return lambda k: builder(weights=None, weights_backbone=None, num_classes=k)


_MIT_CHANNELS = {"mit_b0": (32, 64, 160, 256)}


def _mit_channels(variant: str) -> tuple[int, ...]:
    return _MIT_CHANNELS.get(variant, (64, 128, 320, 512))


def _segformer(variant: str) -> Callable[[int], nn.Module]:
    def build(k: int) -> nn.Module:
        import segmentation_models_pytorch as smp

        # SegFormer's decoder is 256 wide for B0 and B1, 768 from B2 on (Xie et al., 2021).
        width = 256 if variant in ("mit_b0", "mit_b1") else 768
        return smp.Segformer(encoder_name=variant, encoder_weights=None, classes=k,
                             decoder_segmentation_channels=width)
    return build


def _daformer(variant: str) -> Callable[[int], nn.Module]:
    def build(k: int) -> nn.Module:
        from .daformer import DAFormer

        return DAFormer(variant, k)
    return build


MODELS: dict[str, ModelSpec] = {
    "lraspp_mobilenet_v3_large": ModelSpec(
        _torchvision(seg.lraspp_mobilenet_v3_large), "net.backbone.",
        ("net.backbone.4", "net.backbone.16"), (40, 960), (8, 16)),
    "deeplabv3_mobilenet_v3_large": ModelSpec(
        _torchvision(seg.deeplabv3_mobilenet_v3_large), "net.backbone.",
        ("net.backbone.4", "net.backbone.16"), (40, 960), (8, 16)),
    "deeplabv3_resnet50": ModelSpec(
        _torchvision(seg.deeplabv3_resnet50), "net.backbone.",
        ("net.backbone.layer2", "net.backbone.layer4"), (512, 2048), (8, 8)),
    "deeplabv3_resnet101": ModelSpec(
        _torchvision(seg.deeplabv3_resnet101), "net.backbone.",
        ("net.backbone.layer2", "net.backbone.layer4"), (512, 2048), (8, 8)),
}
for _v in MIT_VARIANTS:
    _stages = tuple(f"net.encoder.norm{i}" for i in range(1, 5))
    MODELS[f"segformer_{_v}"] = ModelSpec(_segformer(_v), "net.encoder.", _stages,
                                          _mit_channels(_v), (4, 8, 16, 32), 32, _v)
    MODELS[f"daformer_{_v}"] = ModelSpec(_daformer(_v), "net.encoder.", _stages,
                                         _mit_channels(_v), (4, 8, 16, 32), 32, _v)


class SegModel(nn.Module):
    """Wraps a model so that ``forward`` returns logits ``[B, K, H, W]`` at input size.

    Inputs whose size is not a multiple of ``size_multiple`` (32 for MiT encoders) are
    padded with zeros (the normalised mean colour) at the bottom and right, and the logits
    cropped back.

    Attributes:
        alignment_layers: module names whose outputs are aligned by default.
        feature_channels, feature_strides: of those layers (empty when unknown).
        backbone: prefix of the encoder's parameter names ("" when unknown).
    """

    def __init__(self, net: nn.Module, *, alignment_layers: Sequence[str] = (),
                 feature_channels: Sequence[int] = (), feature_strides: Sequence[int] = (),
                 backbone: str = "", size_multiple: int = 1) -> None:
        super().__init__()
        self.net = net
        self.alignment_layers = tuple(alignment_layers)
        self.feature_channels = tuple(feature_channels)
        self.feature_strides = tuple(feature_strides)
        self.backbone = backbone
        self.size_multiple = size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, [0, pad_w, 0, pad_h])
        out = self.net(x)
        if isinstance(out, dict):
            out = out["out"]
        if out.shape[-2:] != x.shape[-2:]:
            out = F.interpolate(out, x.shape[-2:], mode="bilinear", align_corners=False)
        return out[..., :h, :w] if pad_h or pad_w else out


def build_model(name: str, num_classes: int = 16, *, custom: bool = False) -> SegModel:
    """A built-in model, or your own with ``custom=True``, with random weights.

    Args:
        name: one of :data:`MODELS`; with ``custom=True``, ``"module:function"`` called as
            ``function(num_classes=...)``, returning logits or a dict with ``"out"``. Your
            model may publish ``alignment_layers`` (names of its own modules) for aligned and
            uda training, and ``backbone`` (the prefix of its encoder's parameters).
        custom: allow importing code. Only the user's command line sets it: a file (a
            checkpoint, a config) may name built-in models only.

    Example:
        >>> model = build_model("daformer_mit_b0", 16)
        >>> model.alignment_layers[0], model.feature_strides
        ('net.encoder.norm1', (4, 8, 16, 32))
    """
    if name in MODELS:
        spec = MODELS[name]
        model = SegModel(spec.build(num_classes), alignment_layers=spec.layers,
                         feature_channels=spec.channels, feature_strides=spec.strides,
                         backbone=spec.backbone, size_multiple=spec.size_multiple)
    elif ":" in name and custom:
        model = _custom(name, num_classes)
    elif ":" in name:
        raise UserError(f"The model {name!r} is not a built-in model, and a file may not name "
                        "code to import. Pass it on the command line: --model " + name + ".")
    else:
        close = difflib.get_close_matches(name, list(MODELS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"Unknown model {name!r}.{hint} Valid values are " + ", ".join(MODELS)
                        + ", or 'module:function' for your own.")
    # torchvision's MobileNetV3 uses BatchNorm momentum 0.01 (TensorFlow's): its running
    # statistics then trail a short run so far that eval-mode predictions collapse. 0.1
    # (PyTorch's default) follows the network as it trains.
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.1
    return model


def _custom(name: str, num_classes: int) -> SegModel:
    module_name, func = name.split(":", 1)
    try:
        net = getattr(importlib.import_module(module_name), func)(num_classes=num_classes)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"Cannot build the model {name!r} ({exc}). Use 'module:function' "
                        "with an importable module.") from None
    if not isinstance(net, nn.Module):
        raise UserError(f"{name} returned a {type(net).__name__}, not a torch.nn.Module.")
    layers = tuple(f"net.{layer}" for layer in getattr(net, "alignment_layers", ()))
    backbone = getattr(net, "backbone", "")
    return SegModel(net, alignment_layers=layers,
                    backbone=f"net.{backbone}" if isinstance(backbone, str) and backbone else "")


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
