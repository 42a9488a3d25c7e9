"""Teacher and student losses (spec §2).

Both are written over *groups*: a group is the set of samples whose ground truth for one task
is known (a per-task sub-batch, or — with masked mixing — the rows of a mixed batch labelled for
that task). The teacher puts each task's GT loss on its own group; the student adds, on every
group, the distillation of every head. With disjoint groups of equal size this is the original's
"one mini-batch per task" arithmetic exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fermix.methods.multitask.va import decode_va, split_va, target_bins

TASKS = ("expr", "au", "va")  # the original's head order is [EXPR, AU, VA]


def ccc_loss_value(pred: Tensor, target: Tensor) -> Tensor:
    """Concordance over a mini-batch as the original's loss computes it: unbiased σ (torch.std).

    Deliberately different from the metric, which uses the population σ (spec §2).
    """
    pm, tm = pred.mean(), target.mean()
    ps, ts = pred.std(), target.std()
    rho = ((pred - pm) * (target - tm)).sum() / (
        torch.sqrt(((pred - pm) ** 2).sum()) * torch.sqrt(((target - tm) ** 2).sum()) + 1e-12
    )
    return 2 * rho * ps * ts / (ps**2 + ts**2 + (pm - tm) ** 2 + 1e-12)


def zero_like(reference: Tensor) -> Tensor:
    """An exact 0 that still belongs to the graph (a term with no labelled sample)."""
    return reference.sum() * 0.0


def expr_gt(logits: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(logits, target) if len(target) else zero_like(logits)


def au_gt(logits: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, target) if len(target) else zero_like(logits)


def va_gt(logits: Tensor, target: Tensor, bins: int, lambda_ccc: float) -> tuple[Tensor, Tensor]:
    """L_V, L_A = CE(bins) + λ_ccc·(1 − CCC_b(expectation, y)); CCC needs ≥ 2 samples (else 0)."""
    if len(target) == 0:
        return zero_like(logits), zero_like(logits)
    decoded = decode_va(logits, bins)
    out = []
    for d, part in enumerate(split_va(logits, bins)):
        ce = F.cross_entropy(part, target_bins(target[:, d], bins))
        ccc = 1 - ccc_loss_value(decoded[:, d], target[:, d]) if len(target) >= 2 else zero_like(logits)
        out.append(ce + lambda_ccc * ccc)
    return out[0], out[1]


def kd_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """KL(softmax(t/T) ‖ softmax(s/T)), batchmean, without the usual T² factor (the original)."""
    if len(student) == 0:
        return zero_like(student)
    return F.kl_div(
        F.log_softmax(student / temperature, -1), F.softmax(teacher / temperature, -1), reduction="batchmean"
    )


def kd_au(student: Tensor, teacher: Tensor) -> Tensor:
    """BCE-with-logits against the teacher's probabilities (soft targets, no temperature)."""
    if len(student) == 0:
        return zero_like(student)
    return F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher))


@dataclass(frozen=True)
class LossWeights:
    expr: float = 1.0
    au: float = 8.0
    v: float = 1.0
    a: float = 1.0
    lambda_ccc: float = 1.0
    bins: int = 20


def teacher_loss(
    outputs: Mapping[str, Mapping[str, Tensor]], targets: Mapping[str, Tensor], w: LossWeights
) -> dict[str, Tensor]:
    """L_T = λ_EXPR·CE + λ_AU·BCE + λ_V·L_V + λ_A·L_A, each on its own task's group.

    `outputs[task]` are the head logits on that task's group, `targets[task]` its labels; a task
    missing from `outputs` contributes nothing.
    """
    terms: dict[str, Tensor] = {}
    if "expr" in outputs:
        terms["expr"] = w.expr * expr_gt(outputs["expr"]["expr"], targets["expr"])
    if "au" in outputs:
        terms["au"] = w.au * au_gt(outputs["au"]["au"], targets["au"])
    if "va" in outputs:
        lv, la = va_gt(outputs["va"]["va"], targets["va"], w.bins, w.lambda_ccc)
        terms["v"], terms["a"] = w.v * lv, w.a * la
    return terms


def student_loss(
    student: Mapping[str, Mapping[str, Tensor]],
    teacher: Mapping[str, Mapping[str, Tensor]],
    targets: Mapping[str, Tensor],
    *,
    lambda_teacher: float,
    temperature: float,
    w: LossWeights,
) -> dict[str, Tensor]:
    """L_S = (1/3)·Σ_groups Σ_heads term; term = λ_T·D + (1−λ_T)·GT on the group's own head, D elsewhere.

    The task weights (λ_AU = 8, ...) are not used here, as in the original. Returned per head
    (summed over groups), already divided by 3, so the terms add up to L_S.
    """
    lt = lambda_teacher
    sums: dict[str, Tensor] = {}

    def add(name: str, value: Tensor) -> None:
        sums[name] = sums[name] + value if name in sums else value

    for group, s in student.items():
        t = teacher[group]
        d_expr = kd_kl(s["expr"], t["expr"], temperature)
        d_au = kd_au(s["au"], t["au"])
        (sv, sa), (tv, ta) = split_va(s["va"], w.bins), split_va(t["va"], w.bins)
        d_v, d_a = kd_kl(sv, tv, temperature), kd_kl(sa, ta, temperature)
        if group == "expr":
            d_expr = lt * d_expr + (1 - lt) * expr_gt(s["expr"], targets["expr"])
        elif group == "au":
            d_au = lt * d_au + (1 - lt) * au_gt(s["au"], targets["au"])
        elif group == "va":
            gv, ga = va_gt(s["va"], targets["va"], w.bins, w.lambda_ccc)
            d_v, d_a = lt * d_v + (1 - lt) * gv, lt * d_a + (1 - lt) * ga
        for name, value in (("kd_expr", d_expr), ("kd_au", d_au), ("kd_v", d_v), ("kd_a", d_a)):
            add(name, value)
    return {name: value / 3.0 for name, value in sums.items()}
