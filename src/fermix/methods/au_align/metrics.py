"""ATT-COS and CAM-COS (spec §5.1): cosine between a saliency map and the true-class AU map.

Per sample, at the network input's resolution (the original's 224): the layer attention is
upsampled bilinearly (align_corners=True, antialias), clamped to its own [min, max] and shifted
by −min if that is negative; a normalised CAM is upsampled bilinearly (align_corners=False, as
torch-cam's reshape) and clamped to [0, 1]. A NaN cosine (an all-zero map) counts as 0. Samples
without a valid AU map (neutral, failed landmarks) get NaN here and are left out of the split
metric, which averages per class first and then over classes (macro), so it is not the
per-sample mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from fermix.methods.au_align.attention import COSINE_EPS, resize_clamped


def _cosine(saliency: Tensor, maps: Tensor, valid: Tensor) -> Tensor:
    cos = F.cosine_similarity(saliency.flatten(1), maps.float().flatten(1), dim=1, eps=COSINE_EPS)
    cos = torch.nan_to_num(cos, nan=0.0, posinf=1.0, neginf=0.0)
    return torch.where(valid, cos, torch.full_like(cos, math.nan))


def attention_cosine(attention: Tensor, maps: Tensor, valid: Tensor) -> Tensor:
    """Per-sample ATT-COS (NaN where the map is invalid)."""
    lo = attention.float().flatten(1).amin(1).view(-1, 1, 1, 1)
    att = resize_clamped(attention.float(), maps.shape[-2:], align_corners=True)
    att = att - torch.clamp(lo, max=0.0)  # shift by −min when the attention has negative values
    return _cosine(att, maps, valid)


def cam_cosine(cam: Tensor, maps: Tensor, valid: Tensor) -> Tensor:
    """Per-sample CAM-COS of a min-max normalised CAM (NaN where the map is invalid)."""
    size = tuple(maps.shape[-2:])
    up = cam.float() if tuple(cam.shape[-2:]) == size else F.interpolate(
        cam.float(), size=size, mode="bilinear", align_corners=False
    )
    return _cosine(up.clamp(0.0, 1.0), maps, valid)


def per_class_cosine(cosines: Tensor, targets: Tensor, num_classes: int) -> dict[int, float]:
    """Mean cosine of each class over its samples with a valid map (classes without one are absent)."""
    out = {}
    ok = ~torch.isnan(cosines) & (targets >= 0)
    for c in range(num_classes):
        mask = ok & (targets == c)
        if bool(mask.any()):
            out[c] = float(cosines[mask].double().mean())
    return out


def macro_cosine(cosines: Tensor, targets: Tensor, num_classes: int) -> float:
    """Unweighted mean over classes of the per-class means (neutral has no valid map, so it is out)."""
    per_class = per_class_cosine(cosines, targets, num_classes)
    return sum(per_class.values()) / len(per_class) if per_class else math.nan
