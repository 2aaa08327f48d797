"""DAFormer's context-aware fusion decoder (Hoyer et al., CVPR 2022, section 3.2).

Written here from the paper: each encoder stage is embedded to ``channels`` by a linear
layer (a 1x1 convolution, no norm, no activation), upsampled to the 1/4 resolution of the
first stage and concatenated; a fusion module then mixes them with context at several
scales: parallel depthwise separable 3x3 convolutions with dilations (6, 12, 18) beside a
1x1 branch (the "dilation 1" branch), each with BatchNorm and ReLU, concatenated and
reduced by a 3x3 convolution. A dropout and a 1x1 classifier give the logits at 1/4 of
the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1,
                  groups: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation,
                                   groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SeparableBranch(nn.Sequential):
    """A depthwise 3x3 convolution at a dilation, then a pointwise one (each BN + ReLU)."""

    def __init__(self, cin: int, cout: int, dilation: int) -> None:
        super().__init__(_conv_bn_relu(cin, cin, 3, dilation, groups=cin),
                         _conv_bn_relu(cin, cout, 1))


class ContextFusion(nn.Module):
    """Fuses the stacked stage embeddings with context from several dilation rates."""

    def __init__(self, cin: int, channels: int, dilations: Sequence[int] = (1, 6, 12, 18)
                 ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            _conv_bn_relu(cin, channels, 1) if d == 1 else SeparableBranch(cin, channels, d)
            for d in dilations)
        self.bottleneck = _conv_bn_relu(len(dilations) * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(torch.cat([branch(x) for branch in self.branches], dim=1))


class DAFormerHead(nn.Module):
    """The decoder: stage embeddings, context-aware fusion, classifier.

    Args:
        in_channels: channels of the encoder stages, finest first (MiT-B0: 32, 64, 160, 256).
        num_classes: output classes.
        channels: embedding and fusion width (DAFormer: 256).
        dilations: of the fusion branches (DAFormer: 1, 6, 12, 18).
        dropout: before the classifier (DAFormer: 0.1).

    Shape:
        forward(features: list of [B, C_i, H / s_i, W / s_i]) -> [B, num_classes, H/4, W/4]
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, channels: int = 256,
                 dilations: Sequence[int] = (1, 6, 12, 18), dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.fusion = ContextFusion(len(in_channels) * channels, channels, dilations)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        embedded = [F.interpolate(e(f), size, mode="bilinear", align_corners=False)
                    if f.shape[-2:] != size else e(f)
                    for e, f in zip(self.embed, features, strict=True)]
        return self.classifier(self.dropout(self.fusion(torch.cat(embedded, dim=1))))


class DAFormer(nn.Module):
    """A MiT encoder (segmentation-models-pytorch) with :class:`DAFormerHead`."""

    def __init__(self, variant: str, num_classes: int) -> None:
        super().__init__()
        from segmentation_models_pytorch.encoders import get_encoder

        self.encoder = get_encoder(variant, weights=None)
        self.decode_head = DAFormerHead(self.encoder.out_channels[2:], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.encoder(x)[2:])  # [0] is the input, [1] an empty stage
