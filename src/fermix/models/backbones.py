"""Backbones: image -> feature map, with the stages exposed.

Methods need more than a pooled vector: IERN projects the last 512×7×7 map, AU-align reads the
attention of an intermediate layer, DMUE shares the trunk to layer3 and copies layer4 into
branches. Every backbone is therefore a sequence of stages (`stages[0]` includes the stem) with
known output channels, so a method can take any prefix or copy any stage.

Pretrained weights never come from the network implicitly: `pretrained=None` is random init; a
torchvision weights name (`IMAGENET1K_V1`, `IMAGENET1K_V2` for ResNet-50) loads those weights
through torchvision's local cache (it fails with a clear message offline if the cache lacks them);
and a file path loads a local state dict with `weights_only=True` (torchvision key layout; the
classifier `fc.*` is ignored). `torchvision` / `DEFAULT` are refused: torchvision's DEFAULT is its
newest recipe (IMAGENET1K_V2 for ResNet-50 since torchvision 0.13), while the papers used V1.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

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

        weights = torchvision_weights(arch, pretrained)
        try:
            net = getattr(torchvision.models, arch)(weights=weights)
        except (OSError, RuntimeError) as exc:  # download impossible offline, or a corrupt cache
            if weights is None:
                raise
            raise FermixError(
                f"cannot load torchvision's {arch} {weights.name} weights ({exc.__class__.__name__}): put "
                f"{Path(weights.url).name} in torchvision's cache (TORCH_HOME/hub/checkpoints), or a state dict in "
                f"pretrained_models/ and set backbone.pretrained=PATH"
            ) from exc
        if last_stride != 2:
            _set_stage_stride(net.layer4, last_stride)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        stages = [stem, net.layer2, net.layer3, net.layer4]
        channels = [_stage_channels(s) for s in stages]
        super().__init__(stages, channels)
        self.arch = arch
        if pretrained and weights is None:
            _load_local_weights(self, pretrained, torchvision_layout=True)


_AMBIGUOUS = ("torchvision", "default")  # what `pretrained` meant before the weights were named


def names_torchvision_weights(pretrained: Any) -> bool:
    """True when `pretrained` asks for torchvision's weights (a weights name, `torchvision`, `DEFAULT`), not a path."""
    if not isinstance(pretrained, str):
        return False
    value = pretrained.strip().lower()
    return value in _AMBIGUOUS or value.startswith("imagenet")


def torchvision_weights(arch: str, pretrained: Any) -> Any:
    """The torchvision weights enum member `pretrained` names for `arch` (`IMAGENET1K_V1` →
    ResNet50_Weights.IMAGENET1K_V1), or None when it is null or a path. `torchvision` and `DEFAULT`
    are refused: they would silently mean the installed torchvision's newest weights."""
    if not names_torchvision_weights(pretrained):
        return None
    import torchvision

    enum = torchvision.models.get_model_weights(arch)
    choices = [name for name in enum.__members__ if name != "DEFAULT"]
    name = pretrained.strip().upper()
    if pretrained.strip().lower() in _AMBIGUOUS:
        raise FermixError(
            f"backbone.pretrained={pretrained} is ambiguous, since torchvision's DEFAULT weights change with its "
            f"version ({enum.DEFAULT.name} for {arch} here): name them, backbone.pretrained={' or '.join(choices)} "
            f"(the IERN, AU-align and multitask originals used IMAGENET1K_V1), or give null or a PATH to a state dict"
        )
    if name not in choices:
        raise FermixError(
            f"torchvision has no {pretrained} weights for {arch}; its weights are {', '.join(choices)} "
            f"(or give backbone.pretrained=null or a PATH to a state dict)"
        )
    return enum[name]


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
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise FermixError(
            f"{file} holds weights of another architecture or width: {k} is {tuple(state[k].shape)} there but "
            f"{tuple(own[k].shape)} in this backbone ({len(wrong)} tensors differ)"
        )
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
