import torch
import torch.nn.functional as F
from torch import nn

from fermix.methods.dmue.uncertainty import PairwiseUncertainty, class_mean_similarity, min_max


def _batch(seed=0, b=12, c=3, dim=8):
    g = torch.Generator().manual_seed(seed)
    features = torch.relu(torch.randn(b, dim, generator=g))  # post-ReLU, like pooled layer4 features
    labels = torch.arange(c).repeat(b // c)
    return features, labels


def test_score_has_shape_b_by_1_and_lies_strictly_between_0_and_1():
    torch.manual_seed(0)
    ue = PairwiseUncertainty(3)
    s, _ = ue(*_batch())
    assert s.shape == (12, 1)
    assert torch.all((s > 0) & (s < 1))


def test_class_means_include_the_diagonal_and_average_each_class_columns():
    features, labels = _batch(1)
    m = class_mean_similarity(features, labels, 3)
    unit = F.normalize(features, dim=1)
    for i in range(12):
        for k in range(3):
            cols = (labels == k).nonzero().squeeze(1)
            assert torch.allclose(m[i, k], (unit[i] @ unit[cols].t()).mean(), atol=1e-6)


def test_min_max_rows_span_exactly_0_to_1():
    m_hat = min_max(class_mean_similarity(*_batch(2), 3))
    assert torch.all(m_hat.min(1).values == 0)
    assert torch.allclose(m_hat.max(1).values, torch.ones(12), atol=1e-6)


def test_min_max_of_a_constant_row_is_finite():
    assert torch.isfinite(min_max(torch.ones(2, 3))).all()


def test_score_is_permutation_equivariant():
    torch.manual_seed(3)
    ue = PairwiseUncertainty(3)
    features, labels = _batch(3)
    perm = torch.randperm(12)
    s, _ = ue(features, labels)
    s_perm, _ = ue(features[perm], labels[perm])
    assert torch.allclose(s_perm, s[perm], atol=1e-6)


def test_identical_feature_label_pairs_get_equal_scores():
    torch.manual_seed(4)
    ue = PairwiseUncertainty(3)
    features, labels = _batch(4)
    features[5] = features[2]
    labels[5] = labels[2]
    s, _ = ue(features, labels)
    assert torch.equal(s[5], s[2])
    assert not torch.equal(s[5], s[3])


def test_score_depends_on_the_label_through_the_one_hot_input():
    torch.manual_seed(5)
    ue = PairwiseUncertainty(3)
    features, labels = _batch(5)
    other = labels.clone()
    other[0] = (labels[0] + 1) % 3
    assert not torch.allclose(ue(features, labels)[0][0], ue(features, other)[0][0])


def test_gradients_reach_the_mlp_and_the_features():
    torch.manual_seed(6)
    ue = PairwiseUncertainty(3)
    features, labels = _batch(6)
    features.requires_grad_(True)
    s, _ = ue(features, labels)
    s.sum().backward()
    assert features.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ue.parameters())


def test_mlp_is_2c_to_c_then_prelu_then_c_to_1():
    first, act, last = PairwiseUncertainty(5).mlp
    assert (first.in_features, first.out_features, last.in_features, last.out_features) == (10, 5, 5, 1)
    assert isinstance(act, nn.PReLU) and act.weight.numel() == 1


def test_score_stays_finite_and_exact_under_float16_autocast():
    """Nearly collinear features, as early in training: their class means differ by less than float16
    resolves, so a float16 min-max divides 0 by 0."""
    torch.manual_seed(7)
    ue = PairwiseUncertainty(4)
    features = torch.rand(1, 64) + 1.0 + 1e-2 * torch.rand(16, 64)
    labels = torch.arange(4).repeat(4)
    reference, m_reference = ue(features, labels)
    with torch.autocast("cpu", dtype=torch.float16):
        score, m_hat = ue(features, labels)
    assert torch.isfinite(score).all() and score.dtype == torch.float32
    assert torch.allclose(m_hat, m_reference) and torch.allclose(score, reference)
    assert torch.allclose(m_hat.max(1).values, torch.ones(16), atol=1e-6)
