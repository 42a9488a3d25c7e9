"""IERN's networks (spec §1): feature encoders, the fuser, discriminators and the classifier.

Every module takes the feature width C and spatial size S as arguments, so the same code runs
the published ResNet-50 model (C=512, S=7 at 224 px) and the small CPU variant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the identity; no activation after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class FeatureEncoder(nn.Module):
    """g_e / g_c: a biased 3×3 conv, then residual blocks; C×S×S in and out."""

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), *(ResidualBlock(channels) for _ in range(blocks))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class Fuser(nn.Module):
    """g_r: concat [emotion, context] on channels → 3×3 conv 2C→C → residual blocks.

    One module serves reconstruction (context = g_c's output) and fusion with a dictionary
    entry; the emotion always fills the first C channels.
    """

    def __init__(self, channels: int, blocks: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 3, padding=1), *(ResidualBlock(channels) for _ in range(blocks))
        )

    def forward(self, emotion: Tensor, context: Tensor) -> Tensor:
        return self.layers(torch.cat((emotion, context), dim=1))


class Discriminator(nn.Module):
    """d_e / d_c: a 4×4 stride-2 conv (S → ⌊S/2⌋), channel-halving 1×1 convs, then a bias-free
    ⌊S/2⌋×⌊S/2⌋ conv to the class scores. Output is always B×classes (batch of one included)."""

    def __init__(self, channels: int, spatial: int, num_classes: int, blocks: int) -> None:
        super().__init__()
        if spatial < 2:
            raise ValueError(f"IERN needs a feature map of at least 2×2, got {spatial}×{spatial}")
        layers: list[nn.Module] = [nn.Conv2d(channels, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
        width = channels
        for _ in range(blocks):
            layers += [nn.Conv2d(width, width // 2, 1), nn.LeakyReLU(0.01)]
            width //= 2
        layers.append(nn.Conv2d(width, num_classes, spatial // 2, bias=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x).flatten(1)


class Classifier(nn.Module):
    """f_c: global average pooling, then one linear layer."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def init_normal(module: nn.Module, gain: float = 0.02) -> None:
    """The pix2pix-style init of the original: conv/linear ~ N(0, gain²), BN weight ~ N(1, gain²), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
