"""Layer attention and the alignment loss (spec §3.2-3.3, tests of §8.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fermix.methods.au_align.attention import alignment_loss, layer_attention, resize_clamped
from fermix.methods.au_align.heatmaps import MapSpec, batch_maps
from tests.methods.au_align.faces import BASIC7, FACE

LAM = 9.0
NON_NEUTRAL = [1, 2, 3, 4, 5, 6]


def _template_maps(labels, size=224):
    lm = torch.tensor(FACE * size / 224, dtype=torch.float32)[None].repeat(len(labels), 1, 1)
    return batch_maps(lm, torch.tensor(labels), BASIC7, (size, size), MapSpec())


def test_downsampling_is_torch_bilinear_antialias_clamped_to_the_maps_range():
    torch.manual_seed(0)
    a = torch.rand(3, 1, 224, 224) * torch.tensor([1.0, 2.0, 0.5]).view(3, 1, 1, 1)
    ref = F.interpolate(a, size=(28, 28), mode="bilinear", align_corners=True, antialias=True)
    lo, hi = a.flatten(1).amin(1).view(3, 1, 1, 1), a.flatten(1).amax(1).view(3, 1, 1, 1)
    torch.testing.assert_close(resize_clamped(a, (28, 28)), torch.maximum(torch.minimum(ref, hi), lo))


def test_loss_is_zero_when_the_attention_is_any_positive_multiple_of_the_downsampled_map():
    maps, valid = _template_maps(NON_NEUTRAL)
    target = resize_clamped(maps, (28, 28))
    for k in (0.01, 1.0, 37.0):
        assert float(LAM * alignment_loss([k * target], maps, valid)) == pytest.approx(0.0, abs=1e-6)


def test_constant_attention_costs_lambda_times_one_minus_mean_over_rms():
    maps, valid = _template_maps(NON_NEUTRAL)
    target = resize_clamped(maps, (28, 28)).flatten(1)
    cos = target.mean(1) / target.pow(2).mean(1).sqrt()
    loss = LAM * alignment_loss([torch.ones(6, 1, 28, 28)], maps, valid)
    assert float(loss) == pytest.approx(LAM * float((1 - cos).mean()), rel=1e-5)
    assert float(cos.min()) >= 0.40 and float(cos.max()) <= 0.53  # spec: 0.41-0.52 per class
    assert float(cos.mean()) == pytest.approx(0.45, abs=0.02)
    full = maps.flatten(1)
    assert float((full.mean(1) / full.pow(2).mean(1).sqrt()).mean()) == pytest.approx(0.45, abs=0.02)  # at 224


def test_loss_stays_within_0_and_lambda_for_non_negative_features():
    torch.manual_seed(1)
    maps, valid = _template_maps(NON_NEUTRAL)
    for _ in range(5):
        att = layer_attention(torch.relu(torch.randn(6, 16, 28, 28)) * torch.rand(6, 16, 1, 1))
        value = float(LAM * alignment_loss([att], maps, valid))
        assert 0.0 <= value <= LAM


def test_samples_without_a_map_do_not_change_the_value():
    torch.manual_seed(2)
    maps, valid = _template_maps([1, 0, 4, 0])
    att = torch.rand(4, 1, 28, 28)
    both = alignment_loss([att], maps, valid)
    only_valid = alignment_loss([att[[0, 2]]], maps[[0, 2]], valid[[0, 2]])
    assert float(both) == pytest.approx(float(only_valid), abs=1e-7)
    changed = att.clone()
    changed[[1, 3]] = torch.rand(2, 1, 28, 28) * 100
    assert float(alignment_loss([changed], maps, valid)) == pytest.approx(float(both), abs=1e-7)


def test_an_all_neutral_batch_gives_exactly_zero_and_a_zero_gradient():
    maps, valid = _template_maps([0, 0, 0])
    feats = torch.rand(3, 8, 28, 28, requires_grad=True)
    loss = LAM * alignment_loss([layer_attention(feats)], maps, valid)
    loss.backward()
    assert float(loss.detach()) == 0.0 and feats.grad is not None and float(feats.grad.abs().sum()) == 0.0


def test_random_avg_with_p_1_is_avg_bit_for_bit():
    feats = torch.randn(4, 32, 7, 7)
    assert torch.equal(layer_attention(feats, "random_avg", p=1.0), layer_attention(feats, "avg"))
    assert torch.equal(layer_attention(feats, "avg"), feats.mean(dim=1, keepdim=True))


def test_random_avg_below_1_is_stochastic_and_roughly_unbiased():
    torch.manual_seed(3)
    feats = torch.rand(2, 64, 5, 5)
    draws = torch.stack([layer_attention(feats, "random_avg", p=0.5) for _ in range(400)])
    assert not torch.equal(draws[0], draws[1])
    torch.testing.assert_close(draws.mean(0), layer_attention(feats), atol=0.01, rtol=0)
    tiny = torch.stack([layer_attention(feats[:, :1], "random_avg", p=0.05) for _ in range(50)])
    assert (tiny.flatten(1).abs().sum(1) == 0).any()  # no channel drawn -> T = 0


def test_avg_fixed_q_averages_the_leading_channels():
    feats = torch.randn(2, 10, 3, 3)
    torch.testing.assert_close(layer_attention(feats, "avg_fixed_q", q=0.25), feats[:, :3].mean(1, keepdim=True))


def test_gradient_on_each_channel_is_one_over_c_of_the_attention_gradient():
    torch.manual_seed(4)
    maps, valid = _template_maps([1, 3])
    feats = torch.rand(2, 12, 28, 28, requires_grad=True)
    att = layer_attention(feats)
    att.retain_grad()
    alignment_loss([att], maps, valid).backward()
    expected = att.grad.expand(-1, 12, -1, -1) / 12
    torch.testing.assert_close(feats.grad, expected)


def test_several_layers_give_the_mean_of_the_single_layer_losses():
    torch.manual_seed(5)
    maps, valid = _template_maps([1, 2, 0])
    a, b = torch.rand(3, 1, 28, 28), torch.rand(3, 1, 14, 14)
    multi = alignment_loss([a, b], maps, valid)
    single = (alignment_loss([a], maps, valid) + alignment_loss([b], maps, valid)) / 2
    assert float(multi) == pytest.approx(float(single), abs=1e-7)


def test_scale_to_heatmap_compares_at_the_maps_resolution():
    maps, valid = _template_maps([1, 5])
    exact = alignment_loss([maps.clone()], maps, valid, scale_to="heatmap")
    assert float(exact) == pytest.approx(0.0, abs=1e-6)
    coarse = resize_clamped(maps, (28, 28))
    assert float(alignment_loss([coarse], maps, valid, scale_to="heatmap")) > 0
    np.testing.assert_array_less(0, float(alignment_loss([torch.ones(2, 1, 28, 28)], maps, valid, "heatmap")))
