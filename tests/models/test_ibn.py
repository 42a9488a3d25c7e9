import pytest
import torch
import torchvision

from fermix.errors import FermixError
from fermix.models.backbones import Backbone, build_backbone
from fermix.models.ibn import IBN


def _blocks(net, stage):
    layer = net.stages[0][4] if stage == 0 else net.stages[stage]
    return list(layer)


def test_stages_follow_the_resnet50_layout_with_2048_features():
    net = build_backbone({"name": "resnet50_ibn"}).eval()
    assert isinstance(net, Backbone) and net.channels == [256, 512, 1024, 2048]
    with torch.no_grad():
        maps = net.forward_stages(torch.randn(2, 3, 64, 64))
    assert [m.shape[1:] for m in maps] == [(256, 16, 16), (512, 8, 8), (1024, 4, 4), (2048, 2, 2)]


def test_bn1_of_every_block_in_layer1_to_3_is_ibn_with_half_the_channels_instance_normalised():
    net = build_backbone({"name": "resnet50_ibn"})
    for stage in range(3):
        for block in _blocks(net, stage):
            assert isinstance(block.bn1, IBN)
            assert block.bn1.half == block.conv1.out_channels // 2
            assert block.bn1.IN.affine
            assert block.bn1.IN.num_features + block.bn1.BN.num_features == block.conv1.out_channels
            assert not isinstance(block.bn2, IBN) and not isinstance(block.bn3, IBN)
    assert not any(isinstance(m, IBN) for m in net.stages[3].modules())  # no IBN in layer4
    stem = net.stages[0]
    assert isinstance(stem[2], torch.nn.ReLU) and stem[3].kernel_size == 3  # the standard stem


def test_parameter_count_equals_resnet50_without_its_classifier():
    ours = sum(p.numel() for p in build_backbone({"name": "resnet50_ibn"}).parameters())
    ref = torchvision.models.resnet50()
    assert ours == sum(p.numel() for p in ref.parameters()) - sum(p.numel() for p in ref.fc.parameters())


def test_ibn_normalises_each_image_on_its_first_half_and_the_batch_on_the_rest():
    torch.manual_seed(0)
    ibn = IBN(8).train()
    x = torch.randn(4, 8, 5, 5) * torch.arange(1, 5).view(4, 1, 1, 1) + 3.0
    y = ibn(x)
    first, rest = y[:, :4], y[:, 4:]
    assert torch.allclose(first.mean(dim=(2, 3)), torch.zeros(4, 4), atol=1e-5)  # per image, per channel
    assert torch.allclose(rest.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5)  # per channel over the batch
    assert not torch.allclose(rest.mean(dim=(2, 3)), torch.zeros(4, 4), atol=1e-2)


def test_a_state_dict_in_the_ibn_net_key_layout_loads(tmp_path):
    torch.manual_seed(1)
    source = build_backbone({"name": "resnet50_ibn"})
    names = {"stages.0.0.": "conv1.", "stages.0.1.": "bn1.", "stages.0.4.": "layer1.", "stages.1.": "layer2.",
             "stages.2.": "layer3.", "stages.3.": "layer4."}
    state = {}
    for key, value in source.state_dict().items():
        for ours, theirs in names.items():
            if key.startswith(ours):
                state[theirs + key[len(ours):]] = torch.randn_like(value.float()).to(value.dtype)
    assert "layer1.0.bn1.IN.weight" in state and "layer3.5.bn1.BN.running_mean" in state
    state["fc.weight"] = torch.randn(1000, 2048)
    path = tmp_path / "resnet50_ibn_a.pth"
    torch.save(state, path)
    net = build_backbone({"name": "resnet50_ibn", "pretrained": str(path)})
    assert torch.equal(net.stages[0][4][0].bn1.IN.weight, state["layer1.0.bn1.IN.weight"])
    assert torch.equal(net.stages[3][2].conv3.weight, state["layer4.2.conv3.weight"])


def test_there_are_no_torchvision_weights_to_ask_for():
    with pytest.raises(FermixError, match="no ResNet-50-IBN-a weights"):
        build_backbone({"name": "resnet50_ibn", "pretrained": "torchvision"})


def test_last_stride_one_keeps_layer3_resolution():
    net = build_backbone({"name": "resnet50_ibn", "last_stride": 1}).eval()
    with torch.no_grad():
        maps = net.forward_stages(torch.randn(1, 3, 64, 64))
    assert maps[-1].shape[-2:] == maps[-2].shape[-2:]
