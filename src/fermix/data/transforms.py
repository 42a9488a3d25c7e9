"""Image transforms (torchvision v2): a train pipeline with augmentation, a deterministic eval one.

Faces reaching this stage are already aligned crops, so both pipelines resize to a square
`resize`×`resize` first, then crop `image_size` (random in training, centre at evaluation), as
the published recipes do (e.g. 256 -> 224). The same settings are written into the checkpoint
as its preprocessing spec, so `fermix test` rebuilds exactly the eval pipeline.

Training augmentation comes either from the simple keys of `data.augment` (random_crop, hflip,
rotation, color_jitter) or, when `data.augment.ops` is a list, from that ordered list of ops, each
named by `_target_` (augment_ops.py), so a paper's recipe can be written in YAML
(docs/augmentation.md). Every op accepts landmarks passed alongside as `tv_tensors.KeyPoints`
(geometric ops move them, the others pass them through) and draws its randomness from torch's RNG
only, which the dataset seeds per sample for exact resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torchvision.transforms import v2

from fermix.data.augment_ops import build_ops
from fermix.data.image_ops import RandomRotation, interpolation, normalize_ops


def preprocessing_spec(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of the data config that define what the network sees (stored in checkpoints)."""
    size = int(data_cfg["image_size"])
    return {
        "image_size": size,
        "resize": int(data_cfg.get("resize") or size),
        "mean": [float(m) for m in data_cfg["mean"]],
        "std": [float(s) for s in data_cfg["std"]],
        "interpolation": str(data_cfg.get("interpolation", "bilinear")),
    }


def build_transform(data_cfg: Mapping[str, Any], train: bool) -> v2.Compose:
    """uint8 H×W×3 array (or C×H×W tensor) -> normalised float C×H×W tensor."""
    spec = preprocessing_spec(data_cfg)
    interp = interpolation(spec["interpolation"], "data.interpolation")
    ops: list[Any] = [
        v2.ToImage(),
        v2.Resize((spec["resize"], spec["resize"]), interpolation=interp, antialias=True),
    ]
    aug = data_cfg.get("augment") or {}
    if train and aug.get("ops") is not None:
        return v2.Compose(ops + build_ops(aug["ops"], spec))
    if train:
        if aug.get("random_crop", True) and spec["resize"] > spec["image_size"]:
            ops.append(v2.RandomCrop(spec["image_size"]))
        else:
            ops.append(v2.CenterCrop(spec["image_size"]))
        if aug.get("hflip", 0.0):
            ops.append(v2.RandomHorizontalFlip(float(aug["hflip"])))
        if aug.get("rotation", 0):
            ops.append(RandomRotation(float(aug["rotation"]), interpolation=interp))
        jitter = float(aug.get("color_jitter", 0.0) or 0.0)
        if jitter:
            ops.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    else:
        ops.append(v2.CenterCrop(spec["image_size"]))
    return v2.Compose(ops + normalize_ops(spec))
