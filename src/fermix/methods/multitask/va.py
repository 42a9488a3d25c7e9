"""Valence/arousal as 2×20-bin classification (spec §1 "Decoding").

Two different grids, reproduced as the original has them: the training target of the cross-
entropy is the 0.1-wide bin `digitize(y, linspace(−1, 1, 21)) − 1` (clipped to 19), while the
read-out is the softmax expectation over the 20 points `linspace(−1, 1, 20)`. The decode points
are therefore not the bin centres (they differ by up to 0.05).

Both grids are numpy's float64 `linspace`, as in the original: a label that sits exactly on an
edge then lands in the original's bin whatever the label dtype (edges built in float32, or with
torch's float64 linspace, which differs from numpy's in the last bit, move such labels one bin).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def bin_edges(bins: int = 20) -> Tensor:
    """The float64 edges np.linspace(−1, 1, bins + 1) of the cross-entropy target bins."""
    return torch.from_numpy(np.linspace(-1.0, 1.0, bins + 1))


def target_bins(values: Tensor, bins: int = 20) -> Tensor:
    """Bin index of each value in [−1, 1]: edges linspace(−1, 1, bins+1), 1.0 falls into the last bin.

    The value is compared in float64 (exact for a float32 label) against the float64 edges, as
    the original's np.digitize(float32 label, float64 edges) does."""
    edges = bin_edges(bins).to(values.device)
    # np.digitize(y, edges) counts edges <= y; bucketize(right=True) does the same.
    index = torch.bucketize(values.detach().to(torch.float64).contiguous(), edges, right=True) - 1
    return index.clamp(0, bins - 1)


def decode_points(bins: int = 20, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """The read-out points np.linspace(−1, 1, bins), rounded to `dtype` (the original's loss casts them to float32)."""
    return torch.from_numpy(np.linspace(-1.0, 1.0, bins)).to(device=device, dtype=dtype or torch.get_default_dtype())


def expectation(logits: Tensor) -> Tensor:
    """Softmax expectation over the decode points: (..., bins) -> (...)."""
    points = decode_points(logits.shape[-1], logits.device, logits.dtype)
    return (logits.softmax(-1) * points).sum(-1)


def split_va(logits: Tensor, bins: int = 20) -> tuple[Tensor, Tensor]:
    """The VA head's (B, 2·bins) logits -> valence bins [:bins], arousal bins [bins:]."""
    return logits[..., :bins], logits[..., bins : 2 * bins]


def decode_va(logits: Tensor, bins: int = 20) -> Tensor:
    """(B, 2·bins) -> (B, 2) continuous (valence, arousal)."""
    v, a = split_va(logits, bins)
    return torch.stack([expectation(v), expectation(a)], dim=-1)
