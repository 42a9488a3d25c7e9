import math

import pytest
import torch
import torch.nn.functional as F

from fermix.methods.dmue.losses import (
    assemble,
    aux_loss,
    insert_zero,
    ramp_down,
    ramp_up,
    remap_labels,
    soft_labels,
    soft_loss,
    sp_loss,
)


@pytest.mark.parametrize(
    ("fn", "epoch", "expected"),
    [
        (ramp_up, 0, 0.006738),
        (ramp_up, 3, 0.2865),
        (ramp_up, 6, 1.0),
        (ramp_up, 20, 1.0),
        (ramp_down, 5, 1.0),
        (ramp_down, 12, 0.7788),
        (ramp_down, 36, 0.4994),
    ],
)
def test_ramps_match_the_spec_values_for_alpha_6(fn, epoch, expected):
    assert fn(epoch, 6) == pytest.approx(expected, abs=1e-4)


def test_ramp_table_of_the_spec_for_alpha_6():
    table = {
        0: (0.0067, 1),
        2: (0.108, 1),
        4: (0.574, 1),
        5: (0.870, 1),
        6: (1, 1),
        10: (1, 0.852),
        20: (1, 0.613),
        35: (1, 0.503),
    }
    for epoch, (up, down) in table.items():
        assert ramp_up(epoch, 6) == pytest.approx(up, abs=1e-3)
        assert ramp_down(epoch, 6) == pytest.approx(down, abs=1e-3)


def test_remapped_labels_skip_the_branch_class():
    y = torch.tensor([0, 1, 2, 3, 4])
    assert remap_labels(y[y != 2], 2).tolist() == [0, 1, 2, 3]


def test_soft_label_has_zero_at_the_label_sums_to_one_and_is_the_insert_zero_of_softmax_a_over_t():
    torch.manual_seed(0)
    a, y = torch.randn(6, 4), torch.tensor([0, 4, 2, 1, 3, 4])
    d = soft_labels(a, y, temperature=1.2)
    assert d.shape == (6, 5)
    assert torch.all(d[torch.arange(6), y] == 0)
    assert torch.allclose(d.sum(1), torch.ones(6), atol=1e-6)
    q = torch.softmax(a / 1.2, dim=1)
    for i, c in enumerate(y.tolist()):
        expected = torch.cat([q[i, :c], torch.zeros(1), q[i, c:]])
        assert torch.allclose(d[i], expected)


def test_temperature_identity_p_to_the_1_over_t_renormalised_is_softmax_a_over_t():
    torch.manual_seed(1)
    a = torch.randn(5, 7)
    p = torch.softmax(a, dim=1) ** (1 / 1.2)
    assert torch.allclose(p / p.sum(1, keepdim=True), torch.softmax(a / 1.2, dim=1), atol=1e-6)


def test_t_above_one_flattens_the_distribution():
    a = torch.tensor([[2.0, 1.0, 0.0]])
    assert torch.softmax(a / 1.2, 1).max() < torch.softmax(a, 1).max()


def test_soft_labels_are_detached():
    a = torch.randn(3, 2, requires_grad=True)
    assert not soft_labels(a, torch.tensor([0, 1, 2]), 1.2).requires_grad


def test_insert_zero_keeps_lower_entries_and_shifts_the_rest_up():
    q = torch.tensor([[0.1, 0.2, 0.7]])
    assert torch.equal(insert_zero(q, torch.tensor([1])), torch.tensor([[0.1, 0.0, 0.2, 0.7]]))


def test_soft_loss_masks_only_the_label_entry_does_not_renormalise_and_averages_over_b_times_c():
    torch.manual_seed(2)
    z, y = torch.randn(3, 4), torch.tensor([2, 0, 3])
    d = torch.softmax(torch.randn(3, 4), 1)
    p = torch.softmax(z, 1)
    total = 0.0
    for i in range(3):
        for j in range(4):
            pij = 0.0 if j == y[i] else float(p[i, j])
            total += (pij - float(d[i, j])) ** 2
    assert float(soft_loss(z, y, d)) == pytest.approx(total / 12, rel=1e-6)


def test_aux_loss_is_the_sum_of_per_branch_means_divided_by_c():
    torch.manual_seed(3)
    logits = [torch.randn(5, 2), torch.randn(3, 2), torch.randn(4, 2)]
    targets = [torch.randint(0, 2, (5,)), torch.randint(0, 2, (3,)), torch.randint(0, 2, (4,))]
    expected = sum(F.cross_entropy(a, t) for a, t in zip(logits, targets, strict=True)) / 3
    assert torch.allclose(aux_loss(logits, targets), expected)


def _sp_by_hand(aux, target, subsets):
    total = 0.0
    for a, idx in zip(aux, subsets, strict=True):
        n = len(idx)
        g_aux = [[float(a[i] @ a[j]) for j in range(n)] for i in range(n)]
        g_t = [[float(target[idx[i]] @ target[idx[j]]) for j in range(n)] for i in range(n)]
        err = 0.0
        for i in range(n):
            na, nt = math.sqrt(sum(v * v for v in g_aux[i])), math.sqrt(sum(v * v for v in g_t[i]))
            err += sum((g_aux[i][j] / na - g_t[i][j] / nt) ** 2 for j in range(n))
        total += err / n**2
    return total / len(aux)


def test_sp_loss_cuts_the_target_gram_to_each_subset_and_normalises_rows():
    torch.manual_seed(4)
    target = torch.randn(6, 5)
    subsets = [torch.tensor([1, 2, 4, 5]), torch.tensor([0, 3, 5])]
    aux = [torch.randn(4, 5), torch.randn(3, 5)]
    assert float(sp_loss(aux, target, subsets)) == pytest.approx(_sp_by_hand(aux, target, subsets), rel=1e-5)


def test_sp_loss_is_zero_for_identical_features_and_invariant_to_their_global_scale():
    torch.manual_seed(5)
    target = torch.randn(6, 5)
    subsets = [torch.tensor([0, 2, 3]), torch.tensor([1, 4, 5])]
    same = [target[idx] for idx in subsets]
    assert float(sp_loss(same, target, subsets)) == pytest.approx(0.0, abs=1e-12)
    aux = [torch.randn(3, 5), torch.randn(3, 5)]
    base = sp_loss(aux, target, subsets)
    assert torch.allclose(sp_loss([3.0 * a for a in aux], 0.5 * target, subsets), base, atol=1e-7)
    assert float(base) > 0


def test_sp_loss_under_float16_autocast_equals_float32_even_for_large_features_without_a_neck():
    """ResNet-50-IBN runs without a BN-neck: 2048-d post-ReLU features whose squared norms exceed float16's range."""
    torch.manual_seed(6)
    target = torch.rand(8, 2048) * 10
    subsets = [torch.tensor([0, 1, 2, 3, 4]), torch.tensor([3, 4, 5, 6, 7])]
    aux = [torch.randn(5, 3), torch.randn(5, 3)]
    reference = sp_loss(aux, target, subsets)
    with torch.autocast("cpu", dtype=torch.float16):
        got = sp_loss(aux, target, subsets)
    assert torch.isfinite(got) and torch.allclose(got, reference, rtol=1e-6)


def test_total_loss_assembly_weights_each_term():
    parts = {"ce": torch.tensor(2.0), "soft": torch.tensor(3.0), "sp": torch.tensor(0.01), "aux": torch.tensor(5.0)}
    up, down = ramp_up(3, 6), ramp_down(12, 6)
    terms = assemble(**parts, up=up, down=down, soft_weight=0.5, sp_weight=1000.0)
    expected = up * 2.0 + up * (0.5 * 3.0 + 1000.0 * 0.01) + down * 5.0
    assert float(sum(terms.values())) == pytest.approx(expected)
    assert float(terms["sp"]) == pytest.approx(up * 1000.0 * 0.01)
