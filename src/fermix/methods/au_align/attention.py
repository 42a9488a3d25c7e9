"""Layer attention and the alignment loss (spec §3.2-3.3).

T_l is the channel mean of layer l's feature map, with no ReLU, abs or normalisation. The target map
A is brought to T's resolution (bilinear, align_corners=True, antialias, then clamped to A's own
range), and the loss is λ·mean over aligned layers of mean over valid samples of (1 − cos(T, Â)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from fermix.errors import FermixError

ATTENTION_KINDS = ("avg", "random_avg", "avg_fixed_q")
SCALE_TO = ("attention", "heatmap")
COSINE_EPS = 1e-8  # torch.nn.CosineSimilarity's default, as the original


def layer_attention(features: Tensor, kind: str = "avg", p: float = 1.0, q: float = 1.0) -> Tensor:
    """B×1×h×w attention of a B×C×h×w feature map.

    `random_avg` keeps each channel with probability p, drawn per sample and per call, and takes
    the mean of the kept channels (0 if none is drawn). With p = 1 every channel is kept, so it is
    `avg` exactly. `avg_fixed_q` averages the first ⌈q·C⌉ channels.
    """
    if kind == "avg" or (kind == "random_avg" and p >= 1.0):
        return features.mean(dim=1, keepdim=True)
    if kind == "random_avg":
        b, c = features.shape[:2]
        keep = (torch.rand(b, c, 1, 1, device=features.device) < p).to(features.dtype)
        return (features * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp(min=1.0)
    if kind == "avg_fixed_q":
        k = max(1, math.ceil(q * features.shape[1]))
        return features[:, :k].mean(dim=1, keepdim=True)
    raise FermixError(f"unknown attention type `{kind}`; choose one of: {', '.join(ATTENTION_KINDS)}.")


def _per_sample_range(x: Tensor) -> tuple[Tensor, Tensor]:
    flat = x.flatten(1)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return flat.amin(1).view(shape), flat.amax(1).view(shape)


def resize_clamped(x: Tensor, size: Sequence[int], align_corners: bool = True) -> Tensor:
    """Bilinear resize (antialiased when shrinking) clamped to each sample's original [min, max]."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    lo, hi = _per_sample_range(x)
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners, antialias=True)
    return torch.maximum(torch.minimum(out, hi), lo)


def alignment_cosines(attention: Tensor, maps: Tensor, scale_to: str = "attention") -> Tensor:
    """Per-sample cos(T, A) at the attention's resolution (`attention`) or the map's (`heatmap`)."""
    attention = attention.float()  # cosines in float32, also under AMP
    if scale_to == "attention":
        target = resize_clamped(maps.float(), attention.shape[-2:])
        source = attention
    elif scale_to == "heatmap":
        target = maps.float()
        source = resize_clamped(attention, maps.shape[-2:])
    else:
        raise FermixError(f"unknown scale_to `{scale_to}`; choose one of: {', '.join(SCALE_TO)}.")
    return F.cosine_similarity(source.flatten(1), target.flatten(1), dim=1, eps=COSINE_EPS)


def alignment_loss(attentions: Sequence[Tensor], maps: Tensor, valid: Tensor, scale_to: str = "attention") -> Tensor:
    """R = mean over layers of mean over valid samples of (1 − cos); exactly 0, with zero gradient,
    when no sample of the batch has a valid map."""
    if not bool(valid.any()):
        return sum(a.sum() for a in attentions) * 0.0
    terms = [(1.0 - alignment_cosines(a[valid], maps[valid], scale_to)).mean() for a in attentions]
    return torch.stack(terms).mean()
