"""IERN's loss terms (spec §2). MSE and CE are means over every element, as in the original."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def center_loss(features: Tensor, labels: Tensor, centers: Tensor) -> Tensor:
    """mean_i ‖flatten(f_i) − center_{label_i}‖²: a squared distance, not halved (λ is applied by the caller)."""
    diff = features.flatten(1) - centers[labels]
    return diff.pow(2).sum(dim=1).mean()


def confusion_loss(logits: Tensor) -> Tensor:
    """MSE between the softmax and the uniform distribution: 0 exactly when the discriminator cannot tell."""
    probs = logits.softmax(dim=-1)
    return F.mse_loss(probs, probs.new_full(probs.shape, 1.0 / probs.shape[-1]))
