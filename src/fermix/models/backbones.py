"""Backbones: image -> feature map, with the stages exposed.

Methods need more than a pooled vector: IERN projects the last 512×7×7 map, AU-align reads the
attention of an intermediate layer, DMUE shares the trunk to layer3 and copies layer4 into
branches. Every backbone is therefore a sequence of stages (`stages[0]` includes the stem) with
known output channels, so a method can take any prefix or copy any stage.

Pretrained weights never come from the network implicitly: `pretrained=None` is random init,
`pretrained="torchvision"` uses torchvision's weights through its local cache (it fails with a
clear message offline if the cache is empty), and a file path loads a local state dict with
`weights_only=True` (torchvision key layout; the classifier `fc.*` is ignored).
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import Tensor, nn

from fermix.errors import FermixError


class Backbone(nn.Module):
    """A feature extractor made of stages; `forward` returns the last stage's map."""

    def __init__(self, stages: list[nn.Module], channels: list[int]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.channels = list(channels)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """Every stage's output, first to last (for methods that read intermediate layers)."""
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def trunk(self, upto: int) -> nn.Sequential:
        """Stages [0, upto) as one module (shared, not copied)."""
        return nn.Sequential(*self.stages[:upto])

    def copy_stage(self, index: int) -> nn.Module:
        """An independent copy of one stage (for multi-branch methods)."""
        return copy.deepcopy(self.stages[index])


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCNN(Backbone):
    """Four stages of two 3×3 convs each, stride 2 per stage: 64 px -> 4×4 map.

    Small enough for the CPU defaults (~0.3 M parameters at width 32), deep enough that
    intermediate maps are meaningful for attention-based methods.
    """

    def __init__(self, width: int = 32, in_channels: int = 3, pretrained: str | None = None) -> None:
        widths = [width, width * 2, width * 4, width * 8]
        stages: list[nn.Module] = []
        cin = in_channels
        for w in widths:
            stages.append(nn.Sequential(_conv_bn_relu(cin, w, 2), _conv_bn_relu(w, w, 1)))
            cin = w
        super().__init__(stages, widths)
        if pretrained:
            _load_local_weights(self, pretrained)


class ResNetBackbone(Backbone):
    """A torchvision ResNet without its pooling and classifier: stem+layer1, layer2, layer3, layer4."""

    def __init__(self, arch: str, pretrained: str | None = None, last_stride: int = 2) -> None:
        import torchvision

        weights = None
        if pretrained == "torchvision":
            weights = "DEFAULT"
        try:
            net = getattr(torchvision.models, arch)(weights=weights)
        except (OSError, RuntimeError) as exc:  # download impossible offline, or a corrupt cache
            raise FermixError(
                f"cannot load torchvision's pretrained {arch} weights ({exc.__class__.__name__}); "
                f"put a state dict in pretrained_models/ and set backbone.pretrained=PATH"
            ) from exc
        if last_stride != 2:
            _set_stage_stride(net.layer4, last_stride)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        stages = [stem, net.layer2, net.layer3, net.layer4]
        channels = [_stage_channels(s) for s in stages]
        super().__init__(stages, channels)
        self.arch = arch
        if pretrained and pretrained != "torchvision":
            _load_local_weights(self, pretrained, torchvision_layout=True)


def _stage_channels(stage: nn.Module) -> int:
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def _set_stage_stride(layer: nn.Sequential, stride: int) -> None:
    """Change the stride of a ResNet stage's first block (conv and downsample), e.g. to 1."""
    block = layer[0]
    conv = block.conv2 if hasattr(block, "conv3") else block.conv1  # bottleneck strides in conv2
    conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


_TORCHVISION_PREFIXES = {
    "conv1.": "stages.0.0.",
    "bn1.": "stages.0.1.",
    "layer1.": "stages.0.4.",
    "layer2.": "stages.1.",
    "layer3.": "stages.2.",
    "layer4.": "stages.3.",
}


def _load_local_weights(model: Backbone, path: str, torchvision_layout: bool = False) -> None:
    from fermix.models.weights import read_state_dict

    file = Path(path).expanduser()
    state = read_state_dict(file)
    if torchvision_layout and not any(k.startswith("stages.") for k in state):
        renamed = {}
        for key, value in state.items():
            for old, new in _TORCHVISION_PREFIXES.items():
                if key.startswith(old):
                    renamed[new + key[len(old) :]] = value
                    break
        state = renamed
    missing, _unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise FermixError(f"{file} lacks {len(missing)} backbone weights (first: {missing[0]})")


def resnet18(pretrained: str | None = None, last_stride: int = 2) -> ResNetBackbone:
    return ResNetBackbone("resnet18", pretrained, last_stride)


def resnet34(pretrained: str | None = None, last_stride: int = 2) -> ResNetBackbone:
    return ResNetBackbone("resnet34", pretrained, last_stride)


def resnet50(pretrained: str | None = None, last_stride: int = 2) -> ResNetBackbone:
    return ResNetBackbone("resnet50", pretrained, last_stride)


def build_backbone(cfg: dict) -> Backbone:
    """Build the backbone named by `cfg["name"]`; the other keys are its keyword arguments."""
    from fermix.registry import BACKBONES

    kwargs = {k: v for k, v in dict(cfg).items() if k != "name"}
    return BACKBONES.get(cfg["name"])(**kwargs)
