"""DMUE's losses, latent-distribution soft labels and ramps (spec §2).

Each function is the spec's formula on plain tensors, so the faithfulness tests can check it
against a hand computation without building a network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def ramp_up(epoch: int, alpha: float) -> float:
    """exp(−5(1 − e/α)²) up to α, then 1: the target-branch losses start near 0 (utils/ramp.py)."""
    if alpha <= 0 or epoch >= alpha:
        return 1.0
    return math.exp(-5.0 * (1.0 - epoch / alpha) ** 2)


def ramp_down(epoch: int, alpha: float) -> float:
    """1 before α, then exp(−(1 − α/e)²): the auxiliary loss decays towards e⁻¹ but never stops."""
    if epoch < alpha or epoch <= 0:
        return 1.0
    return math.exp(-((1.0 - alpha / epoch) ** 2))


def remap_labels(labels: Tensor, k: int) -> Tensor:
    """Labels ≠ k in the (C−1)-way space of auxiliary branch k: y − [y > k]."""
    return labels - (labels > k).long()


def insert_zero(q: Tensor, labels: Tensor) -> Tensor:
    """B×(C−1) -> B×C with a 0 at each row's label; entries at or above it shift up by one."""
    b, c1 = q.shape
    cols = torch.arange(c1, device=q.device).expand(b, c1)
    cols = cols + (cols >= labels[:, None]).long()
    return q.new_zeros(b, c1 + 1).scatter(1, cols, q)


def soft_labels(latent_logits: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """The latent distribution d (B×C): softmax(a/T) of the label's own auxiliary branch, detached,
    with a 0 inserted at the label. T > 1 flattens it (the original calls this "sharpening")."""
    q = torch.softmax(latent_logits.detach() / temperature, dim=1)
    return insert_zero(q, labels)


def soft_loss(target_logits: Tensor, labels: Tensor, soft: Tensor) -> Tensor:
    """Mean over B·C of (p_masked − d)², p = softmax of the unscaled target logits with the label
    entry zeroed and not renormalised (SoftLoss)."""
    p = torch.softmax(target_logits, dim=1)
    mask = torch.ones_like(p).scatter(1, labels[:, None], 0.0)
    return ((p * mask - soft) ** 2).mean()


def aux_loss(aux_logits: Sequence[Tensor], aux_targets: Sequence[Tensor]) -> Tensor:
    """Σ_k CE(branch k on its own subset I_k) / C."""
    terms = [F.cross_entropy(logits, target) for logits, target in zip(aux_logits, aux_targets, strict=True)]
    return torch.stack(terms).sum() / len(terms)


def sp_loss(aux: Sequence[Tensor], target_features: Tensor, subsets: Sequence[Tensor]) -> Tensor:
    """Similarity-preserving KD (Tung & Mori): per branch k, the row-normalised Gram matrix of its
    outputs on I_k (DMUE passes the auxiliary logits) against the target Gram matrix cut to I_k's
    rows and columns; MSE averaged over |I_k|² entries, then over the branches. Nothing detached.
    Float32 under mixed precision too: γ = 1000 multiplies the float16 rounding of the Gram matrices."""
    with torch.autocast(device_type=target_features.device.type, enabled=False):
        wide = torch.promote_types(target_features.dtype, torch.float32)
        target = target_features.to(wide)
        gram_t = target @ target.t()
        terms = []
        for feats, idx in zip(aux, subsets, strict=True):
            feats = feats.to(wide)
            g_aux = F.normalize(feats @ feats.t(), p=2, dim=1)
            g_main = F.normalize(gram_t[idx][:, idx], p=2, dim=1)
            terms.append(F.mse_loss(g_aux, g_main))
        return torch.stack(terms).mean()


def assemble(
    ce: Tensor, soft: Tensor, sp: Tensor, aux: Tensor, *, up: float, down: float, soft_weight: float, sp_weight: float
) -> dict[str, Tensor]:
    """The weighted terms whose sum is L = r_up·CE + r_up·(w·soft + γ·sp) + r_down·aux (train.py)."""
    return {"ce": up * ce, "soft": up * soft_weight * soft, "sp": up * sp_weight * sp, "aux": down * aux}
