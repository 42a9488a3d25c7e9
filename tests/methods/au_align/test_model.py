"""The au_align classifier: layers, large maps, head, loss terms, inference (spec §3.1, §3.3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace
from fermix.errors import FermixError
from fermix.methods.au_align import AUAlign, AUAlignConfig
from fermix.methods.au_align.attention import alignment_loss, layer_attention
from tests.methods.au_align.faces import info, landmarks_batch

SMALL = {"name": "small_cnn", "width": 8}


def _method(backbone=SMALL, image_size=32, **kw) -> AUAlign:
    return AUAlign(AUAlignConfig(**kw), info(image_size), backbone)


def _batch(labels, size=32):
    torch.manual_seed(len(labels))
    return {"image": torch.randn(len(labels), 3, size, size), "expr": torch.tensor(labels),
            "landmarks": landmarks_batch(labels, float(size))}  # fmt: skip


def test_resnet50_with_large_maps_has_the_papers_layer_shapes_at_224():
    method = _method({"name": "resnet50"}, image_size=224, layers=[1, 2, 3, 4, 5]).eval()
    with torch.no_grad():
        logits, pooled, feats = method.features(torch.randn(1, 3, 224, 224), {1, 2, 3, 4, 5})
    shapes = {k: tuple(v.shape[1:]) for k, v in feats.items()}
    assert shapes == {1: (64, 112, 112), 2: (256, 56, 56), 3: (512, 28, 28), 4: (1024, 28, 28), 5: (2048, 28, 28)}
    assert logits.shape == (1, 7) and pooled.shape == (1, 2048)


def test_without_large_maps_the_last_stage_keeps_its_stride():
    method = _method(large_maps=False).eval()
    _, _, feats = method.features(torch.randn(1, 3, 32, 32), {5})
    assert feats[5].shape[-1] == 2
    assert _method(large_maps_stages=1).features(torch.randn(1, 3, 32, 32), {5})[2][5].shape[-1] == 4


def test_head_is_gap_then_a_xavier_initialised_linear_layer_with_zero_bias():
    method = _method()
    assert torch.equal(method.classifier.bias, torch.zeros(7))
    bound = (6 / (method.classifier.in_features + method.classifier.out_features)) ** 0.5
    assert float(method.classifier.weight.detach().abs().max()) <= bound
    x = torch.randn(2, 3, 32, 32)
    _, pooled, feats = method.eval().features(x, {5})
    torch.testing.assert_close(pooled, feats[5].mean(dim=(2, 3)))


def test_training_step_is_ce_plus_lambda_times_the_alignment_of_the_chosen_layers():
    method = _method(lam=4.0, layers=[4, 5]).eval()  # eval: BN statistics fixed, so two passes agree
    batch = _batch([1, 0, 4, 6])
    terms = method.training_step(batch)
    logits, _, feats = method.features(batch["image"], {4, 5})
    maps, valid = method.target_maps(batch)
    assert valid.tolist() == [True, False, True, True]
    torch.testing.assert_close(terms["ce"], F.cross_entropy(logits, batch["expr"]))
    expected = 4.0 * alignment_loss([layer_attention(feats[4]), layer_attention(feats[5])], maps, valid)
    torch.testing.assert_close(terms["align"], expected)


def test_neutral_only_batch_trains_on_cross_entropy_alone():
    method = _method().train()
    terms = method.training_step(_batch([0, 0, 0]))
    assert float(terms["align"].detach()) == 0.0
    (terms["ce"] + terms["align"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())


def test_lambda_zero_draws_no_map_and_is_the_plain_classifier_loss():
    method = _method(lam=0.0)
    batch = _batch([1, 2])
    del batch["landmarks"]  # not even read
    assert set(method.training_step(batch)) == {"ce"}


def test_alignment_runs_from_start_epoch_to_end_epoch_inclusive():
    method = _method(start_epoch=2, end_epoch=3)
    seen = []
    for epoch in range(5):
        method.on_train_epoch_start(epoch, 5)
        seen.append("align" in method.training_step(_batch([1, 2])))
    assert seen == [False, False, True, True, False]


def test_inference_is_the_plain_classifier():
    method = _method().eval()
    batch = _batch([1, 4])
    with torch.no_grad():
        full = method.predict(batch)["expr_logits"]
        plain = method.predict({"image": batch["image"]})
        direct = method(batch["image"])
    torch.testing.assert_close(full, plain["expr_logits"])
    torch.testing.assert_close(full, direct)
    assert "att_cos@5" not in plain and plain["attention"].shape == (2, 1, 8, 8)


def test_classes_outside_the_codebook_get_cross_entropy_only():
    toy = DataInfo(LabelSpace("toy", ("a", "b")), frozenset({"image", "expr", "landmarks"}), 32)
    method = AUAlign(AUAlignConfig(), toy, SMALL)
    assert method.aligned_classes == ()
    assert float(method.training_step(_batch([0, 1]))["align"].detach()) == 0.0
    assert _method().aligned_classes == ("happy", "sad", "surprise", "fear", "disgust", "anger")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layers": [0]}, "0 is the input image"),
        ({"layers": [6]}, "from 1 to 5"),
        ({"eval_layers": []}, "eval_layers"),
        ({"attention": "max"}, "unknown attention `max`"),
        ({"scale_to": "both"}, "unknown scale_to"),
        ({"cams": ["scorecam"]}, "unknown CAM method `scorecam`"),
        ({"p": 0.0}, "p and q"),
        ({"lam": -1.0}, "λ"),
        ({"heatmap": "blob"}, "unknown heatmap type"),
        ({"map_zoom": 0.0}, "map_zoom must be positive"),
        ({"map_zoom": "big"}, "map_zoom must be a positive number or `auto`"),
        ({"large_maps_stages": 9}, "large_maps_stages"),
    ],
)
def test_bad_options_are_one_sentence_errors(options, message):
    with pytest.raises(FermixError, match=message):
        _method(**options)


def test_layer_1_needs_a_stem_that_exposes_its_first_convolution():
    method = _method(layers=[1], lam=1.0).eval()
    _, _, feats = method.features(torch.randn(1, 3, 32, 32), {1})
    assert feats[1].shape == (1, 8, 16, 16)  # small_cnn's first conv-BN-ReLU
