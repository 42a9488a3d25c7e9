import torch
import torch.nn.functional as F

from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from fermix.methods.erm import ERM, ERMConfig


def _erm(**kw) -> ERM:
    info = DataInfo(label_space=get_label_space("basic7"), keys=frozenset({"image", "expr"}), image_size=32)
    return ERM(ERMConfig(**kw), info, {"name": "small_cnn", "width": 8})


def test_loss_is_cross_entropy_over_labelled_samples_only():
    torch.manual_seed(0)
    method = _erm().eval()
    image = torch.randn(3, 3, 32, 32)
    expr = torch.tensor([1, -1, 6])
    ce = method.training_step({"image": image, "expr": expr})["ce"]
    logits = method.predict({"image": image})["expr_logits"]
    expected = F.cross_entropy(logits[[0, 2]], expr[[0, 2]])
    assert torch.allclose(ce, expected, atol=1e-6)


def test_head_width_follows_the_label_space():
    method = _erm()
    assert method.classifier.out_features == 7
    assert method.classifier.in_features == method.backbone.out_channels


def test_label_smoothing_is_applied():
    torch.manual_seed(0)
    plain, smooth = _erm().eval(), _erm(label_smoothing=0.2).eval()
    smooth.load_state_dict(plain.state_dict())
    batch = {"image": torch.randn(2, 3, 32, 32), "expr": torch.tensor([0, 1])}
    assert not torch.allclose(plain.training_step(batch)["ce"], smooth.training_step(batch)["ce"])
