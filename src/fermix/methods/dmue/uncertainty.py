"""Pairwise uncertainty estimation (spec §1.3): how well a sample's features agree with its label,
judged by its mean cosine similarity to every class in the batch.

Computed in float32 even under mixed precision: early in training the class means of the cosine
similarities differ by less than float16 resolves, so the min-max denominator rounds to 0 (NaN)
and bfloat16 flattens every row to 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-12  # min-max denominator (the original divides by max − min unguarded)


def class_mean_similarity(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """m (B×C): m[i, k] = mean over the batch's class-k samples j of cos(f_i, f_j), self included.

    Every class must be in the batch (the batch-validity rule guarantees it)."""
    unit = F.normalize(features, dim=1, eps=EPS)
    sim = unit @ unit.t()
    onehot = F.one_hot(labels, num_classes).to(sim.dtype)
    return (sim @ onehot) / onehot.sum(0, keepdim=True)


def min_max(m: Tensor) -> Tensor:
    """Each row scaled to [0, 1]: its smallest entry becomes 0, its largest 1 (up to EPS)."""
    low = m.min(dim=1, keepdim=True).values
    high = m.max(dim=1, keepdim=True).values
    return (m - low) / (high - low + EPS)


class PairwiseUncertainty(nn.Module):
    """s = sigmoid(MLP([m̂_i, onehot(y_i)])) ∈ (0, 1), B×1; the MLP is Linear(2C→C), PReLU,
    Linear(C→1) with PyTorch's default initialisation (the original's `project_w`)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mlp = nn.Sequential(nn.Linear(2 * num_classes, num_classes), nn.PReLU(), nn.Linear(num_classes, 1))

    def forward(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(s, m̂) from the raw pooled target features (before dropout and BN-neck), in float32 or wider."""
        with torch.autocast(device_type=features.device.type, enabled=False):
            features = features.to(torch.promote_types(features.dtype, torch.float32))
            m_hat = min_max(class_mean_similarity(features, labels, self.num_classes))
            onehot = F.one_hot(labels, self.num_classes).to(m_hat.dtype)
            score = torch.sigmoid(self.mlp(torch.cat([m_hat, onehot], dim=1)))
        return score, m_hat
