"""Spec §8.1-§8.3: masking, the student loss's structure, the CCC of the loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fermix.methods.multitask.losses import (
    LossWeights,
    ccc_loss_value,
    kd_au,
    kd_kl,
    student_loss,
    teacher_loss,
)

W = LossWeights()


def _logits(n: int, seed: int, grad: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {
        "expr": torch.randn(n, 7, generator=g),
        "au": torch.randn(n, 8, generator=g),
        "va": torch.randn(n, 40, generator=g),
    }
    return {k: v.requires_grad_(grad) for k, v in out.items()}


def _targets(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "expr": torch.randint(0, 7, (n,), generator=g),
        "au": torch.randint(0, 2, (n, 8), generator=g).float(),
        "va": torch.rand(n, 2, generator=g) * 2 - 1,
    }


def test_teacher_puts_each_task_loss_on_its_own_group_with_the_task_weights() -> None:
    groups = {t: _logits(4, i) for i, t in enumerate(("expr", "au", "va"))}
    targets = _targets(4, 9)
    terms = teacher_loss(groups, targets, W)
    assert torch.isclose(terms["expr"], F.cross_entropy(groups["expr"]["expr"], targets["expr"]))
    assert torch.isclose(terms["au"], 8 * F.binary_cross_entropy_with_logits(groups["au"]["au"], targets["au"]))
    assert set(terms) == {"expr", "au", "v", "a"}


def test_an_empty_group_gives_exactly_zero_not_nan() -> None:
    groups = {t: _logits(0, 0, grad=True) for t in ("expr", "au", "va")}
    targets = {k: v[:0] for k, v in _targets(3, 0).items()}
    terms = teacher_loss(groups, targets, W)
    assert all(float(v.detach()) == 0.0 for v in terms.values())
    student = student_loss(groups, groups, targets, lambda_teacher=0.4, temperature=1.5, w=W)
    assert all(float(v.detach()) == 0.0 for v in student.values())


def test_va_ccc_term_is_zero_with_fewer_than_two_labelled_samples() -> None:
    va = _logits(1, 3)["va"]
    terms = teacher_loss({"va": {"va": va}}, {"va": torch.tensor([[0.3, -0.2]])}, W)
    from fermix.methods.multitask.va import split_va, target_bins

    v, a = split_va(va)
    assert torch.isclose(terms["v"], F.cross_entropy(v, target_bins(torch.tensor([0.3]))))
    assert torch.isclose(terms["a"], F.cross_entropy(a, target_bins(torch.tensor([-0.2]))))


def test_ccc_of_the_loss_uses_the_unbiased_std() -> None:
    x = torch.tensor([0.1, 0.5, -0.3, 0.8], dtype=torch.float64)
    y = torch.tensor([0.0, 0.4, -0.1, 0.5], dtype=torch.float64)
    rho = torch.corrcoef(torch.stack([x, y]))[0, 1]
    expected = 2 * rho * x.std() * y.std() / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    assert torch.isclose(ccc_loss_value(x, y), expected)
    assert torch.isclose(ccc_loss_value(x, x), torch.tensor(1.0, dtype=torch.float64))


def test_kl_distillation_has_no_t_squared_factor() -> None:
    s = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 2.0, 0.5]], dtype=torch.float64)
    p = torch.softmax(t / 1.5, -1)
    q = torch.softmax(s / 1.5, -1)
    hand = float((p * (p.log() - q.log())).sum())
    assert math.isclose(float(kd_kl(s, t, 1.5)), hand, rel_tol=1e-12)


def _student(lambda_teacher: float, targets: dict[str, torch.Tensor] | None = None, grad: bool = False):
    s = {t: _logits(5, i, grad) for i, t in enumerate(("expr", "au", "va"))}
    te = {t: _logits(5, 10 + i) for i, t in enumerate(("expr", "au", "va"))}
    targets = targets or _targets(5, 1)
    return s, te, student_loss(s, te, targets, lambda_teacher=lambda_teacher, temperature=1.5, w=W)


def test_with_lambda_teacher_one_the_student_ignores_ground_truth() -> None:
    _, _, a = _student(1.0, _targets(5, 1))
    _, _, b = _student(1.0, _targets(5, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_with_lambda_teacher_zero_the_labelled_head_sees_ground_truth_only_and_total_is_divided_by_three() -> None:
    targets = _targets(5, 1)
    s, te, terms = _student(0.0, targets)
    expected_expr = (
        F.cross_entropy(s["expr"]["expr"], targets["expr"])
        + kd_kl(s["au"]["expr"], te["au"]["expr"], 1.5)
        + kd_kl(s["va"]["expr"], te["va"]["expr"], 1.5)
    ) / 3
    assert torch.isclose(terms["kd_expr"], expected_expr)
    expected_au = (
        kd_au(s["expr"]["au"], te["expr"]["au"])
        + F.binary_cross_entropy_with_logits(s["au"]["au"], targets["au"])
        + kd_au(s["va"]["au"], te["va"]["au"])
    ) / 3
    assert torch.isclose(terms["kd_au"], expected_au)


def test_a_student_equal_to_its_teacher_gets_zero_distillation_gradient() -> None:
    teacher = {t: _logits(6, i) for i, t in enumerate(("expr", "au", "va"))}
    student = {t: {k: v.clone().requires_grad_(True) for k, v in g.items()} for t, g in teacher.items()}
    terms = student_loss(student, teacher, _targets(6, 0), lambda_teacher=1.0, temperature=1.5, w=W)
    sum(terms.values()).backward()
    for group in student.values():
        for logits in group.values():
            assert logits.grad.abs().max() < 1e-7
    # The soft-BCE value is the teacher's mean binary entropy, not 0.
    p = torch.sigmoid(teacher["expr"]["au"])
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).mean()
    assert torch.isclose(kd_au(student["expr"]["au"].detach(), teacher["expr"]["au"]), entropy, atol=1e-6)
    assert float(kd_kl(student["expr"]["expr"].detach(), teacher["expr"]["expr"], 1.5)) < 1e-7
