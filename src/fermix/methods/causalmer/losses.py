"""CausalMER's loss L = α·L_cls + β·L_kl, exactly as the original's `calculate_loss` (spec §1.5).

    L_cls = CE(Z_all, y) + CE(z_t, y) + CE(z_a, y) + CE(z_v, y)          (the task's criterion, unit weights)
    L_kl  = H(te, nde) + [H(nde_t, nde_a) + H(nde_a, nde_v) + H(nde_v, nde_t)] / 3
            + H(te, nde_t) + H(te, nde_a) + H(te, nde_v)

H(p, q) = mean over rows of Σ_classes −softmax(p)·log softmax(q): a cross-entropy, not a KL, and p is not
detached (CF-VQA detaches p_te: `detach_p_te=True`). te and nde come from detached logits, so L_kl reaches
only the constants. The original softmaxes over all out_dim logits at once — for IEMOCAP across the four
emotion pairs; `group=2` softmaxes each pair instead (the corrected option `kl_per_group`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def soft_cross_entropy(p_logits: Tensor, q_logits: Tensor, group: int | None = None, detach_p: bool = False) -> Tensor:
    """H(p, q); with `group`, the logits are split into consecutive groups of that size (one softmax each)."""
    if group:
        p_logits, q_logits = p_logits.reshape(-1, group), q_logits.reshape(-1, group)
    p = F.softmax(p_logits.detach() if detach_p else p_logits, dim=-1)
    return -(p * F.log_softmax(q_logits, dim=-1)).sum(dim=-1).mean()


def kl_loss(out: dict[str, Tensor], group: int | None = None, detach_p_te: bool = False) -> Tensor:
    """L_kl from `z_te`, `z_nde`, `z_nde_t`, `z_nde_a`, `z_nde_v` (fusion.counterfactual_outputs)."""
    te, nde, t, a, v = (out[k] for k in ("z_te", "z_nde", "z_nde_t", "z_nde_a", "z_nde_v"))

    def h(p: Tensor, q: Tensor, detach: bool = False) -> Tensor:
        return soft_cross_entropy(p, q, group, detach)

    pairwise = (h(t, a) + h(a, v) + h(v, t)) / 3
    return h(te, nde, detach_p_te) + pairwise + (h(te, t, detach_p_te) + h(te, a, detach_p_te) + h(te, v, detach_p_te))
