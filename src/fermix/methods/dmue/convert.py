"""The key layouts of DMUE's published weights, mapped to fermix's (spec §1.4, §3.3).

Three layouts exist (keys may carry DataParallel's `module.` prefix; files may wrap the dict in
`{"state_dict": ...}`):
- `msceleb`: the MS-Celeb pretraining checkpoint (`mv_epoch_17.pt`): `feat_net.{conv1,bn1,
  layer1..layer4}.*` plus the MV-Softmax `loss_layer.*` (dropped). Its layer4 initialises every
  one of DMUE's C+1 layer4 copies.
- `dmue`: a multi-branch training snapshot (the released AffectNet model): `base.{conv1,bn1,
  layer1..3}.*`, `base.layer4_<k>.*` (k = 0..C), `bottleneck.*` (the BN-neck),
  `classifiers.<k>.weight`, `project_w.{0,1,2}.*` (the uncertainty MLP).
- `dmue_target`: the output of the authors' convert_weights.py, for inference: `base.layer4.*`,
  `bottleneck.*`, `classifiers.0.weight`.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from fermix.errors import FermixError
from fermix.models import weights

State = dict[str, Tensor]

# The original ResNet names -> fermix's stage layout (stage 0 = conv1, bn1, relu, maxpool, layer1).
_TRUNK = {"conv1.": "0.0.", "bn1.": "0.1.", "layer1.": "0.4.", "layer2.": "1.", "layer3.": "2."}


def read_state_dict(path: str | Path) -> State:
    """A checkpoint file's tensors, unwrapped from `state_dict` and stripped of `module.`."""
    return weights.read_state_dict(path, what="DMUE weights file")


def layout(state: State) -> str:
    """Which published layout `state` is in: msceleb, dmue, dmue_target, or unknown."""
    if any(k.startswith("feat_net.") for k in state):
        return "msceleb"
    if any(k.startswith("base.layer4_") for k in state):
        return "dmue"
    if any(k.startswith("base.layer4.") for k in state):
        return "dmue_target"
    return "unknown"


def _trunk_key(rest: str, prefix: str) -> str | None:
    for old, new in _TRUNK.items():
        if rest.startswith(old):
            return prefix + new + rest[len(old) :]
    return None


def msceleb_to_backbone(state: State) -> State:
    """`feat_net.*` -> a fermix ResNet Backbone's `stages.*` (layer4 -> stages.3); loss_layer/fc dropped."""
    out: State = {}
    for key, value in state.items():
        if not key.startswith("feat_net."):
            continue  # loss_layer.* (the MV-Softmax head)
        rest = key.removeprefix("feat_net.")
        if rest.startswith("layer4."):
            out["stages.3." + rest.removeprefix("layer4.")] = value
        elif (new := _trunk_key(rest, "stages.")) is not None:
            out[new] = value
    return out


def dmue_to_method(state: State) -> State:
    """A multi-branch snapshot -> the `dmue` method's state dict (trunk, branches, neck, classifiers, ue)."""
    out: State = {}
    for key, value in state.items():
        if key.startswith("base.layer4_"):
            branch, _, rest = key.removeprefix("base.layer4_").partition(".")
            out[f"branches.{int(branch)}.{rest}"] = value
        elif key.startswith("base."):
            new = _trunk_key(key.removeprefix("base."), "trunk.")
            if new is None:
                raise FermixError(f"unexpected key {key} in a DMUE snapshot")
            out[new] = value
        elif key.startswith("bottleneck."):
            out["neck." + key.removeprefix("bottleneck.")] = value
        elif key.startswith("classifiers."):
            out[key] = value
        elif key.startswith("project_w."):
            out["ue.mlp." + key.removeprefix("project_w.")] = value
        else:
            raise FermixError(f"unexpected key {key} in a DMUE snapshot")
    return out


def target_to_export(state: State) -> State:
    """convert_weights.py's target-only weights -> the exported model's state dict."""
    out: State = {}
    for key, value in state.items():
        if key.startswith("base.layer4."):
            out["backbone.stages.3." + key.removeprefix("base.layer4.")] = value
        elif key.startswith("base."):
            new = _trunk_key(key.removeprefix("base."), "backbone.stages.")
            if new is None:
                raise FermixError(f"unexpected key {key} in DMUE target weights")
            out[new] = value
        elif key.startswith("bottleneck."):
            out["neck." + key.removeprefix("bottleneck.")] = value
        elif key == "classifiers.0.weight":
            out["classifier.weight"] = value
        else:
            raise FermixError(f"unexpected key {key} in DMUE target weights")
    return out
