"""The FER+ ResNet-50 of the `multitask` method: albanie's `resnet50_ferplus_dag` as a fermix Backbone.

The original is a MatConvNet import (pytorch-mcn) of a caffe-style ResNet-50, which differs from
torchvision's v1.5 ResNet-50 in three places that change its outputs, so its weights only make
sense in this layout:
- the stride 2 of each downsampling block sits on the first 1×1 "reduce" conv, not on the 3×3;
- the stem max-pool is 3×3/2 with `ceil_mode=True` and no padding;
- the last block (`conv5_3`) has two Dropout(0.5) layers: on the 3×3 conv's output and on the
  1×1 "increase" conv's output, each before its BatchNorm. They are active in train mode.
Every conv is bias-free and BN eps is 1e-5, as in torchvision. The dag's 8-way FER+ `classifier`
and its `pool5_7x7_s1` are not part of the backbone (the method pools the 2048-channel map).

The stages are laid out like `ResNetBackbone`'s (stem+layer1, layer2, layer3, layer4) with
torchvision module names. `pretrained=PATH` reads a state dict in the dag's key layout
(`conv1_7x7_s2.weight`, `conv2_1_1x1_reduce_bn.running_mean`, ...), also under a prefix such as
the multitask repo's `backbone.model.`, through `convert_dag_state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from fermix.errors import FermixError
from fermix.models.backbones import Backbone, _stage_channels, names_torchvision_weights
from fermix.models.weights import read_state_dict

BLOCKS_PER_STAGE = (3, 4, 6, 3)  # conv2_x .. conv5_x
_BLOCK_PARTS = {  # torchvision Bottleneck submodule -> dag suffix
    "conv1": "1x1_reduce",
    "bn1": "1x1_reduce_bn",
    "conv2": "3x3",
    "bn2": "3x3_bn",
    "conv3": "1x1_increase",
    "bn3": "1x1_increase_bn",
    "downsample.0": "1x1_proj",
    "downsample.1": "1x1_proj_bn",
}
_STEM_KEY = "conv1_7x7_s2.weight"


def _dag_module_names() -> dict[str, str]:
    """dag module name -> our module path."""
    names = {"conv1_7x7_s2": "stages.0.0", "conv1_7x7_s2_bn": "stages.0.1"}
    for stage, n_blocks in enumerate(BLOCKS_PER_STAGE):
        for block in range(n_blocks):
            ours = f"stages.0.4.{block}" if stage == 0 else f"stages.{stage}.{block}"
            for part, suffix in _BLOCK_PARTS.items():
                if part.startswith("downsample") and block > 0:
                    continue
                names[f"conv{stage + 2}_{block + 1}_{suffix}"] = f"{ours}.{part}"
    return names


DAG_MODULES = _dag_module_names()
_OURS_TO_DAG = {ours: dag for dag, ours in DAG_MODULES.items()}


class _Conv53Block(nn.Module):
    """The dag's conv5_3: a bottleneck with dropout on the 3×3 and the 1×1-increase outputs, before their BN."""

    def __init__(self, block: nn.Module, dropout: float) -> None:
        super().__init__()
        self.conv1, self.bn1 = block.conv1, block.bn1
        self.conv2 = block.conv2
        self.drop2 = nn.Dropout(dropout)
        self.bn2 = block.bn2
        self.conv3 = block.conv3
        self.drop3 = nn.Dropout(dropout)
        self.bn3 = block.bn3
        self.relu = block.relu

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.drop2(self.conv2(out))))
        out = self.bn3(self.drop3(self.conv3(out)))
        return self.relu(out + x)


class FerPlusResNet50(Backbone):
    """Caffe-style ResNet-50 with conv5_3 dropout; random init or a local dag-layout state dict."""

    def __init__(self, pretrained: str | None = None, dropout: float = 0.5) -> None:
        import torchvision

        if names_torchvision_weights(pretrained):
            raise FermixError(
                "torchvision's ResNet-50 is a different network from resnet50_ferplus; "
                "set backbone.pretrained=PATH to a resnet50_ferplus_dag state dict (docs/models/ferplus.md)"
            )
        if not isinstance(dropout, (int, float)) or not 0.0 <= float(dropout) < 1.0:
            raise FermixError(f"backbone.dropout must be a probability in [0, 1), not `{dropout}`")
        net = torchvision.models.resnet50(weights=None)
        net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        for layer in (net.layer2, net.layer3, net.layer4):
            first = layer[0]
            first.conv1.stride = (2, 2)
            first.conv2.stride = (1, 1)
        net.layer4[2] = _Conv53Block(net.layer4[2], float(dropout))
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        stages = [stem, net.layer2, net.layer3, net.layer4]
        super().__init__(stages, [_stage_channels(s) for s in stages])
        self.arch = "resnet50_ferplus_dag"
        if pretrained:
            load_dag_weights(self, pretrained)


def _dag_prefix(state: Mapping[str, Tensor], source: str) -> str:
    prefixes = sorted({k[: -len(_STEM_KEY)] for k in state if k.endswith(_STEM_KEY)})
    prefixes = [p for p in prefixes if p == "" or p.endswith(".")]
    if not prefixes:
        raise FermixError(f"{source} holds no resnet50_ferplus_dag weights (no key ends in `{_STEM_KEY}`)")
    if len(prefixes) > 1:
        raise FermixError(f"{source} holds several dag networks (prefixes {', '.join(map(repr, prefixes))})")
    return prefixes[0]


def convert_dag_state_dict(state: Mapping[str, Tensor], source: str = "the state dict") -> dict[str, Tensor]:
    """A `resnet50_ferplus_dag` state dict (optionally under a prefix such as `backbone.model.`) in our layout.

    The dag's FER+ `classifier.*` (also the multitask heads, `classifier.<task>.*`) and every key
    outside the prefix are dropped. A key under the prefix that the dag does not have means another
    network (senet50_ferplus_dag shares most names) and is refused rather than half-loaded.
    """
    prefix = _dag_prefix(state, source)
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name, _, param = key[len(prefix) :].rpartition(".")
        if name == "classifier" or name.startswith("classifier."):
            continue
        if name not in DAG_MODULES:
            unknown.append(key)
            continue
        out[f"{DAG_MODULES[name]}.{param}"] = value
    if unknown:
        raise FermixError(
            f"{source} has {len(unknown)} keys that resnet50_ferplus_dag does not have (first: {unknown[0]}); "
            "is it another network?"
        )
    return out


def load_dag_weights(model: FerPlusResNet50, path: str) -> None:
    """Load a local dag-layout state dict into `model` (weights_only), with one-sentence errors."""
    file = Path(path).expanduser()
    state = read_state_dict(file)
    converted = convert_dag_state_dict(state, source=str(file))
    expected = model.state_dict()
    extra = [k for k in converted if k not in expected]
    if extra:
        raise FermixError(f"{file} has weights resnet50_ferplus does not have (first: {_dag_key(extra[0])})")
    wrong = [k for k, v in converted.items() if v.shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise FermixError(
            f"{file} has {len(wrong)} weights of the wrong shape for resnet50_ferplus "
            f"(first: {_dag_key(k)} is {tuple(converted[k].shape)}, expected {tuple(expected[k].shape)})"
        )
    # MatConvNet-era files predate num_batches_tracked; BatchNorm reads it only when momentum is None (not here).
    missing = [k for k in expected if k not in converted and not k.endswith("num_batches_tracked")]
    if missing:
        raise FermixError(f"{file} lacks {len(missing)} resnet50_ferplus weights (first: {_dag_key(missing[0])})")
    model.load_state_dict(converted, strict=False)


def _dag_key(key: str) -> str:
    """Our state-dict key under its dag name, for messages the user can look up in the file."""
    module, _, param = key.rpartition(".")
    return f"{_OURS_TO_DAG.get(module, module)}.{param}"


def resnet50_ferplus(pretrained: str | None = None, dropout: float = 0.5) -> Backbone:
    return FerPlusResNet50(pretrained, dropout)
