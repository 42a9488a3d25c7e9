import pytest
import torch

from fermix.methods.dmue import DMUETarget
from tests.methods.dmue.conftest import build


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_exported_model_has_only_the_target_path():
    model = build()
    exported = model.export()
    assert isinstance(exported, DMUETarget)
    keys = exported.state_dict().keys()
    assert not any(k.startswith(("branches", "classifiers", "ue")) for k in keys)
    assert len(exported.backbone.stages) == 4
    assert _count(exported) == _count(model.trunk) + _count(model.branches[4]) + _count(model.neck) + 4 * 64


def test_exported_logits_equal_the_target_branch_in_eval_mode_and_top1_is_identical():
    torch.manual_seed(0)
    model = build()
    labels = torch.arange(4).repeat(4)
    for _ in range(3):  # move BN statistics and weights away from their initial values
        terms = model.training_step({"image": torch.randn(16, 3, 32, 32), "expr": labels})
        sum(v for v in terms.values() if v.requires_grad).backward()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= 0.1 * p.grad.sign()
                    p.grad = None
    exported = model.export()
    model.eval()
    image = torch.randn(32, 3, 32, 32)
    with torch.no_grad():
        expected = model.predict({"image": image})["expr_logits"]
        got = exported(image)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert torch.allclose(exported.predict({"image": image})["expr_logits"], got)


def test_export_is_a_copy():
    model = build()
    exported = model.export()
    with torch.no_grad():
        model.classifiers[4].weight.add_(1.0)
    assert not torch.equal(exported.classifier.weight, model.classifiers[4].weight)


def test_export_keeps_a_separate_target_neck_and_gem_pooling():
    torch.manual_seed(1)
    model = build(shared_bnneck=False, pooling="gem").eval()
    image = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.export()(image), model.predict({"image": image})["expr_logits"], atol=1e-5)


@pytest.mark.parametrize(("num_classes", "training_m"), [(8, 78.3), (7, 69.9)])
def test_full_size_resnet18_parameter_counts_match_the_spec(num_classes, training_m):
    model = build(num_classes=num_classes, backbone={"name": "resnet18"}, image_size=224)
    assert _count(model.branches[0]) / 1e6 == pytest.approx(8.39, abs=0.01)
    assert _count(model.trunk) / 1e6 == pytest.approx(2.78, abs=0.01)
    assert _count(model) / 1e6 == pytest.approx(training_m, abs=0.1)
    assert _count(model.export()) / 1e6 == pytest.approx(11.2, abs=0.05)
