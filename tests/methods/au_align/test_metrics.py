"""ATT-COS and CAM-COS as spec §5.1 defines them (tests of §8.2 "Metric")."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fermix.methods.au_align import AUAlign, AUAlignConfig
from fermix.methods.au_align.heatmaps import MapSpec, batch_maps
from fermix.methods.au_align.metrics import attention_cosine, cam_cosine, macro_cosine, per_class_cosine
from tests.methods.au_align.faces import BASIC7, FACE, info, landmarks_batch


def _maps(labels, size=224):
    lm = torch.tensor(FACE * size / 224, dtype=torch.float32)[None].repeat(len(labels), 1, 1)
    return batch_maps(lm, torch.tensor(labels), BASIC7, (size, size), MapSpec())


def test_att_cos_of_the_map_itself_is_one():
    maps, valid = _maps([1, 2, 3, 4, 5, 6])
    torch.testing.assert_close(attention_cosine(maps.clone(), maps, valid), torch.ones(6))


def test_attention_is_upsampled_with_align_corners_and_antialias_then_clamped():
    maps, valid = _maps([3])
    att = torch.rand(1, 1, 28, 28)
    up = F.interpolate(att, size=(224, 224), mode="bilinear", align_corners=True, antialias=True)
    up = up.clamp(float(att.min()), float(att.max()))
    expected = F.cosine_similarity(up.flatten(1), maps.flatten(1), dim=1)
    torch.testing.assert_close(attention_cosine(att, maps, valid), expected)


def test_negative_attention_is_shifted_by_its_minimum():
    maps, valid = _maps([1])
    torch.testing.assert_close(attention_cosine(maps - 0.5, maps, valid), torch.ones(1))


def test_cam_is_upsampled_without_align_corners_and_clamped_to_0_1():
    maps, valid = _maps([6])
    cam = torch.rand(1, 1, 28, 28) * 1.2  # values above 1 are clamped
    up = F.interpolate(cam, size=(224, 224), mode="bilinear", align_corners=False).clamp(0, 1)
    expected = F.cosine_similarity(up.flatten(1), maps.flatten(1), dim=1)
    torch.testing.assert_close(cam_cosine(cam, maps, valid), expected)


def test_invalid_maps_are_nan_and_an_all_zero_saliency_counts_as_zero():
    maps, valid = _maps([0, 1])
    cos = attention_cosine(torch.zeros(2, 1, 28, 28), maps, valid)
    assert math.isnan(float(cos[0])) and float(cos[1]) == 0.0


def test_split_metric_is_the_mean_of_per_class_means_not_the_per_sample_mean():
    targets = torch.tensor([0, 1, 1, 1, 2, 3])
    cosines = torch.tensor([math.nan, 0.9, 0.9, 0.9, 0.3, 0.6])
    assert per_class_cosine(cosines, targets, 7) == pytest.approx({1: 0.9, 2: 0.3, 3: 0.6})
    assert macro_cosine(cosines, targets, 7) == pytest.approx(0.6)  # per-sample mean would be 0.72
    assert math.isnan(macro_cosine(torch.tensor([math.nan]), torch.tensor([0]), 7))


def test_method_reports_the_macro_over_non_neutral_classes_from_its_predict_outputs():
    torch.manual_seed(0)
    method = AUAlign(AUAlignConfig(), info(32), {"name": "small_cnn", "width": 8}).eval()
    labels = [0, 1, 1, 4, 6]
    batch = {"image": torch.randn(5, 3, 32, 32), "expr": torch.tensor(labels), "landmarks": landmarks_batch(labels)}
    with torch.no_grad():
        out = method.predict(batch)
    assert set(method.metric_names()) == {"att_cos@5", "cam_cos", "gradcam_cos"} <= set(out)
    assert math.isnan(float(out["att_cos@5"][0]))  # neutral: no map
    metrics = method.evaluation_metrics(out, {"expr": batch["expr"]})
    per_sample = out["att_cos@5"]
    expected = (float(per_sample[1:3].mean()) + float(per_sample[3]) + float(per_sample[4])) / 3
    assert metrics["att_cos@5"] == pytest.approx(expected, rel=1e-6)
    assert 0.0 <= metrics["cam_cos"] <= 1.0
