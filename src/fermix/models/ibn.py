"""ResNet-50-IBN-a (Pan et al., ECCV 2018) as a fermix Backbone.

IBN-a replaces bn1 of every bottleneck in layer1-3 by an IBN layer: affine InstanceNorm on the
first half of the channels, BatchNorm on the rest. layer4 and the stem are a plain ResNet-50's
(ReLU, 3×3/2 max-pool). Instance normalisation removes per-image appearance (contrast, colour
cast) from the shallow features; DMUE's larger backbone uses it.

The stages are laid out like `ResNetBackbone`'s (stem+layer1, layer2, layer3, layer4), and
module names follow torchvision plus the IBN-Net key names (`bn1.IN.*`, `bn1.BN.*`), so a state
dict in the published IBN-Net layout loads with `pretrained=PATH`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fermix.errors import FermixError
from fermix.models.backbones import (
    Backbone,
    _load_local_weights,
    _set_stage_stride,
    _stage_channels,
    names_torchvision_weights,
)


class IBN(nn.Module):
    """InstanceNorm (affine) on the first `int(channels * ratio)` channels, BatchNorm on the rest."""

    def __init__(self, channels: int, ratio: float = 0.5) -> None:
        super().__init__()
        self.half = int(channels * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: Tensor) -> Tensor:
        first, rest = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.IN(first.contiguous()), self.BN(rest.contiguous())], dim=1)


class ResNetIBN(Backbone):
    """torchvision's ResNet-50 layout with IBN-a in layer1-3; random init or a local state dict."""

    def __init__(self, pretrained: str | None = None, last_stride: int = 2) -> None:
        import torchvision

        if names_torchvision_weights(pretrained):
            raise FermixError(
                "torchvision has no ResNet-50-IBN-a weights; set backbone.pretrained=PATH to a local state dict"
            )
        net = torchvision.models.resnet50(weights=None)
        for layer in (net.layer1, net.layer2, net.layer3):
            for block in layer:
                block.bn1 = IBN(block.bn1.num_features)
        if last_stride != 2:
            _set_stage_stride(net.layer4, last_stride)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        stages = [stem, net.layer2, net.layer3, net.layer4]
        super().__init__(stages, [_stage_channels(s) for s in stages])
        self.arch = "resnet50_ibn_a"
        if pretrained:
            _load_local_weights(self, pretrained, torchvision_layout=True)


def resnet50_ibn(pretrained: str | None = None, last_stride: int = 2) -> ResNetIBN:
    return ResNetIBN(pretrained, last_stride)
