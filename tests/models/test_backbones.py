import pytest
import torch
import torchvision

from fermix.errors import FermixError
from fermix.models.backbones import Backbone, build_backbone


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        ("small_cnn", [32, 64, 128, 256]),
        ("resnet18", [64, 128, 256, 512]),
        ("resnet34", [64, 128, 256, 512]),
        ("resnet50", [256, 512, 1024, 2048]),
    ],
)
def test_backbone_stages_report_their_channels_and_stride(name, channels):
    net = build_backbone({"name": name}).eval()
    assert isinstance(net, Backbone) and net.channels == channels
    x = torch.randn(2, 3, 64, 64)
    stages = net.forward_stages(x)
    assert [s.shape[1] for s in stages] == channels
    assert torch.equal(stages[-1], net(x))
    assert stages[-1].shape[-1] == (4 if name == "small_cnn" else 2)  # total stride 16 / 32


def test_last_stride_one_keeps_layer3_resolution():
    x = torch.randn(1, 3, 64, 64)
    for arch in ("resnet18", "resnet50"):
        maps = build_backbone({"name": arch, "last_stride": 1}).eval().forward_stages(x)
        assert maps[-1].shape[-2:] == maps[-2].shape[-2:]


def test_resnet_trunk_equals_torchvision_features():
    """The staged trunk computes exactly torchvision's ResNet up to its pooling."""
    torch.manual_seed(0)
    ours = build_backbone({"name": "resnet18"}).eval()
    ref = torchvision.models.resnet18().eval()
    ref.load_state_dict({k: v for k, v in _torchvision_layout(ours).items()}, strict=False)
    x = torch.randn(2, 3, 64, 64)
    expected = torch.nn.Sequential(*list(ref.children())[:-2])(x)
    assert torch.allclose(ours(x), expected, atol=1e-6)


def _torchvision_layout(backbone):
    names = {"stages.0.0.": "conv1.", "stages.0.1.": "bn1.", "stages.0.4.": "layer1.", "stages.1.": "layer2.",
             "stages.2.": "layer3.", "stages.3.": "layer4."}
    out = {}
    for key, value in backbone.state_dict().items():
        for ours, theirs in names.items():
            if key.startswith(ours):
                out[theirs + key[len(ours):]] = value
    return out


def test_local_pretrained_file_in_torchvision_layout_is_loaded(tmp_path):
    torch.manual_seed(1)
    ref = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)
    net = build_backbone({"name": "resnet18", "pretrained": str(path)})
    assert torch.equal(net.stages[3][1].conv2.weight, ref.layer4[1].conv2.weight)


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(FermixError, match="does not exist"):
        build_backbone({"name": "resnet18", "pretrained": str(tmp_path / "nope.pth")})


def test_pretrained_file_of_another_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "small.pth"
    torch.save(build_backbone({"name": "small_cnn"}).state_dict(), path)
    with pytest.raises(FermixError, match="lacks"):
        build_backbone({"name": "resnet18", "pretrained": str(path)})


def test_copy_stage_is_independent():
    net = build_backbone({"name": "small_cnn", "width": 8})
    copy = net.copy_stage(3)
    with torch.no_grad():
        copy[0][0].weight.add_(1.0)
    assert not torch.equal(copy[0][0].weight, net.stages[3][0][0].weight)
