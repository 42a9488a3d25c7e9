"""Unimodal branches (spec §1.2): the original ResNet-18 branch, the offline text encoder, the ALBERT refusals."""

import sys

import pytest
import torch

from fermix.errors import FermixError
from fermix.methods.causalmer.branches import AlbertTextBranch, ResNetBranch, build_branch


def test_resnet_branch_reads_the_sequence_as_a_one_channel_image_with_the_spec_parameter_count():
    branch = ResNetBranch(8).eval()
    assert sum(p.numel() for p in branch.parameters()) == 11_174_344
    assert branch.net.conv1.in_channels == 1 and branch.net.conv1.kernel_size == (7, 7)
    assert branch(torch.randn(2, 20, 74)).shape == (2, 8)


@pytest.mark.parametrize("kind", ["transformer", "mlp"])
def test_offline_text_branches_map_a_sequence_to_logits(kind):
    branch = build_branch(kind, "text", [20, 300], 7, {"text_width": 32, "text_layers": 1, "text_heads": 4})
    assert branch.eval()(torch.randn(3, 20, 300)).shape == (3, 7)


def test_the_transformer_text_branch_sees_zero_padding_as_tokens():
    branch = build_branch("transformer", "text", [6, 10], 2, {"text_width": 16, "text_layers": 1}).eval()
    x = torch.randn(1, 6, 10)
    x[:, 4:] = 0.0
    shorter = branch(x[:, :4])  # no attention mask in the original, so the padded steps change the mean
    assert not torch.allclose(branch(x), shorter)


def test_albert_with_missing_weights_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(FermixError, match=r"reads local weights and .*albert-base-v2 does not exist"):
        AlbertTextBranch(300, 8, str(tmp_path / "albert-base-v2"))


def test_albert_without_transformers_is_refused_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    (tmp_path / "albert").mkdir()
    with pytest.raises(FermixError, match="needs the `transformers` package"):
        AlbertTextBranch(300, 8, str(tmp_path / "albert"))


def test_branch_names_are_checked_per_modality():
    with pytest.raises(FermixError, match="text_branch must be one of transformer, albert, mlp"):
        build_branch("resnet18", "text", [20, 300], 8, {})


def test_albert_branch_loads_a_local_albert_base_v2_folder_with_its_masked_lm_prefix(tmp_path):
    transformers = pytest.importorskip("transformers")  # optional: fermix does not depend on it
    from fermix.methods.causalmer.branches import ALBERT_BASE_V2

    saved = transformers.AlbertForMaskedLM(transformers.AlbertConfig(**ALBERT_BASE_V2))
    saved.save_pretrained(str(tmp_path / "albert-base-v2"))  # keys carry the `albert.` prefix
    branch = AlbertTextBranch(300, 8, str(tmp_path / "albert-base-v2")).eval()
    expected = saved.albert.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in branch.model.state_dict().items() if "position_ids" not in k)
    assert branch(torch.randn(2, 20, 300)).shape == (2, 8)
