"""Closed-form CAMs of the GAP + linear head equal the torch-cam formulas run with autograd (spec §3.4)."""

from __future__ import annotations

import pytest
import torch

from fermix.methods.au_align import AUAlign, AUAlignConfig
from fermix.methods.au_align.cams import class_activation_maps, minmax_normalise
from tests.methods.au_align.faces import info


def _reference(method: AUAlign, image: torch.Tensor, classes: torch.Tensor, kind: str) -> torch.Tensor:
    """torch-cam as vendored in the original (dlib/cams): hook the last stage, back-propagate the
    class score (pre-softmax), weight the activations, ReLU for the gradient family, normalise."""
    out = []
    for i in range(len(image)):
        logits, _, feats = method.features(image[i : i + 1], {method.num_layers})
        acts = feats[method.num_layers]
        acts.retain_grad()
        logits[0, classes[i]].backward()
        a, g = acts.detach()[0], acts.grad[0]
        if kind == "cam":
            weights, relu = method.classifier.weight[classes[i]].detach()[:, None, None], False
        elif kind == "gradcam":
            weights, relu = g.flatten(1).mean(-1)[:, None, None], True
        elif kind == "gradcampp":
            alpha = g.pow(2)  # the original's `alpha[mask].div_(denom[mask])` divides a copy: alpha stays g²
            weights, relu = (alpha * torch.relu(g)).flatten(1).sum(-1)[:, None, None], True
        else:  # layercam
            weights, relu = torch.relu(g), True
        cam = (weights * a).sum(0)
        if relu:
            cam = torch.relu(cam)
        cam = cam - cam.min()
        out.append(torch.nan_to_num(cam / cam.max(), nan=0.0))
        method.zero_grad()
    return torch.stack(out)[:, None]


@pytest.mark.parametrize("kind", ["cam", "gradcam", "gradcampp", "layercam"])
def test_closed_form_equals_autograd_torch_cam(kind):
    torch.manual_seed(0)
    method = AUAlign(AUAlignConfig(), info(32), {"name": "small_cnn", "width": 8}).eval()
    image = torch.randn(3, 3, 32, 32)
    classes = torch.tensor([0, 3, 6])
    with torch.no_grad():
        _, _, feats = method.features(image, {method.num_layers})
        fast = class_activation_maps(feats[method.num_layers], method.classifier.weight, classes, kind)
    torch.testing.assert_close(fast, _reference(method, image, classes, kind), atol=1e-5, rtol=1e-4)
    assert float(fast.amax()) == pytest.approx(1.0) and float(fast.amin()) == pytest.approx(0.0)


def test_predict_returns_the_true_class_cams_and_the_guess_when_unlabelled():
    torch.manual_seed(1)
    method = AUAlign(AUAlignConfig(eval_metrics=False), info(32), {"name": "small_cnn", "width": 8}).eval()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = method.predict({"image": image, "expr": torch.tensor([5, -1])})
        _, _, feats = method.features(image, {5})
        guess = out["expr_logits"].argmax(1)
        expected = class_activation_maps(feats[5], method.classifier.weight, torch.tensor([5, int(guess[1])]), "cam")
    torch.testing.assert_close(out["cam"], expected)
    assert out["gradcam"].shape == out["cam"].shape == (2, 1, 8, 8)  # 32 px with the last two strides removed


def test_a_constant_map_normalises_to_zero_not_nan():
    assert torch.equal(minmax_normalise(torch.full((1, 1, 4, 4), 3.0)), torch.zeros(1, 1, 4, 4))
