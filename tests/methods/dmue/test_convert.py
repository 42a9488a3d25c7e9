"""The authors' published key layouts (spec §1.4, §3.3), on state dicts written in those layouts."""

import pytest
import torch

from fermix.errors import FermixError
from fermix.methods.dmue import convert
from fermix.models.backbones import build_backbone
from tests.methods.dmue.conftest import build

R18 = {"name": "resnet18"}
_OURS_TO_THEIRS = {
    "stages.0.0.": "conv1.",
    "stages.0.1.": "bn1.",
    "stages.0.4.": "layer1.",
    "stages.1.": "layer2.",
    "stages.2.": "layer3.",
    "stages.3.": "layer4.",
}


def _resnet_layout(state):
    """A fermix ResNet backbone's state dict under the original ResNet names (conv1, layer1, ...)."""
    out = {}
    for key, value in state.items():
        for ours, theirs in _OURS_TO_THEIRS.items():
            if key.startswith(ours):
                out[theirs + key[len(ours) :]] = value
    return out


@pytest.fixture
def msceleb_file(tmp_path):
    """mv_epoch_17.pt's layout: {'state_dict': feat_net.* + loss_layer.*, 'epoch', 'batch_id'}."""
    torch.manual_seed(7)
    net = build_backbone(R18)
    for p in net.parameters():
        torch.nn.init.normal_(p)
    state = {f"feat_net.{k}": v for k, v in _resnet_layout(net.state_dict()).items()}
    state["loss_layer.weight"] = torch.randn(512, 10)
    path = tmp_path / "mv_epoch_17.pt"
    torch.save({"state_dict": state, "epoch": 17, "batch_id": 0}, path)
    return path, state


def test_msceleb_checkpoint_fills_the_trunk_and_every_layer4_copy_identically(msceleb_file):
    path, state = msceleb_file
    model = build(num_classes=3, backbone=R18, stem="msceleb", pretrained=str(path))
    assert torch.equal(model.trunk[0][0].weight, state["feat_net.conv1.weight"])
    assert torch.equal(model.trunk[2][1].bn2.running_var, state["feat_net.layer3.1.bn2.running_var"])
    for branch in model.branches:
        for key, value in branch.state_dict().items():
            assert torch.equal(value, state[f"feat_net.layer4.{key}"])
    assert convert.layout(convert.read_state_dict(path)) == "msceleb"
    assert not any("loss_layer" in k for k in convert.msceleb_to_backbone(state))


def test_a_checkpoint_of_another_architecture_is_a_clear_error(msceleb_file, tmp_path):
    _, state = msceleb_file
    del state["feat_net.layer2.0.conv1.weight"]
    broken = tmp_path / "broken.pt"
    torch.save({"state_dict": state}, broken)
    with pytest.raises(FermixError, match="lacks 1 backbone weights"):
        build(backbone=R18, pretrained=str(broken))


def _authors_snapshot(model):
    """A fermix DMUE state dict written the way the original's DataParallel snapshots are keyed."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("trunk."):
            rest = "stages." + key.removeprefix("trunk.")
            new = next(
                "base." + theirs + rest[len(ours) :]
                for ours, theirs in _OURS_TO_THEIRS.items()
                if rest.startswith(ours)
            )
        elif key.startswith("branches."):
            k, _, rest = key.removeprefix("branches.").partition(".")
            new = f"base.layer4_{k}.{rest}"
        elif key.startswith("neck."):
            new = "bottleneck." + key.removeprefix("neck.")
        elif key.startswith("ue.mlp."):
            new = "project_w." + key.removeprefix("ue.mlp.")
        else:
            new = key
        out["module." + new] = value.clone()
    return out


def test_a_multi_branch_snapshot_loads_into_the_method(tmp_path):
    torch.manual_seed(3)
    source = build(num_classes=3, backbone=R18)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    snapshot = _authors_snapshot(source)
    assert "module.base.layer4_3.1.conv2.weight" in snapshot and "module.project_w.1.weight" in snapshot
    path = tmp_path / "ep7_b3400_acc0.6285.pth"
    torch.save(snapshot, path)
    loaded = build(num_classes=3, backbone=R18, pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(FermixError, match="does not fit this model"):
        build(num_classes=4, backbone=R18, pretrained=str(path))


def test_target_only_weights_load_into_the_exported_model_and_reproduce_its_logits(tmp_path):
    torch.manual_seed(4)
    model = build(num_classes=3, backbone=R18).eval()
    snapshot = {k.removeprefix("module."): v for k, v in _authors_snapshot(model).items()}
    # convert_weights.py: keep base.* but layer4_C -> layer4, classifiers.C -> classifiers.0; drop the rest
    target = {}
    for key, value in snapshot.items():
        if key.startswith("base.layer4_3."):
            target["base.layer4." + key.removeprefix("base.layer4_3.")] = value
        elif key == "classifiers.3.weight":
            target["classifiers.0.weight"] = value
        elif not key.startswith(("base.layer4_", "classifiers.", "project_w.")):
            target[key] = value
    path = tmp_path / "AffectNet_res18_acc0.6285.pth"
    torch.save(target, path)
    state = convert.read_state_dict(path)
    assert convert.layout(state) == "dmue_target"
    fresh = build(num_classes=3, backbone=R18).export()
    fresh.load_authors_weights(state)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(fresh(image), model.predict({"image": image})["expr_logits"], atol=1e-5)
    with pytest.raises(FermixError, match="target-only weights load into the exported model"):
        build(num_classes=3, backbone=R18, pretrained=str(path))


def test_missing_or_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(FermixError, match="does not exist"):
        build(pretrained=str(tmp_path / "nope.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FermixError, match="is not a readable state dict"):
        build(pretrained=str(tmp_path / "junk.pt"))
