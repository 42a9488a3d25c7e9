"""MulT as CausalMER built it (spec causalmer.md §2.2, §6.1 item 8): size, heads, mask, positions, dropouts."""

import math

import pytest
import torch

from fermix.errors import FermixError
from fermix.models.mult import (
    MulT,
    MulTConfig,
    TransformerEncoder,
    future_mask,
    sinusoidal_positions,
)

IEMOCAP = {"text": [20, 300], "audio": [20, 74], "vision": [20, 35]}


def _inputs(b: int = 2, lengths=(20, 20, 20), dims=(300, 74, 35), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, n, d, generator=g) for n, d in zip(lengths, dims, strict=True)]


def test_iemocap_aligned_mult_has_the_published_parameter_count():
    model = MulT.from_modalities(IEMOCAP, out_dim=8)
    assert sum(p.numel() for p in model.parameters()) == 1_932_768
    # 6 crossmodal (5 layers, d 40) + 3 memories (max(5, 3) = 5 layers, d 80)
    assert [len(model.crossmodal[k].layers) for k in model.crossmodal] == [5] * 6
    assert [len(model.memory[k].layers) for k in model.memory] == [5] * 3


def test_memory_depth_is_max_of_nlevels_and_mem_layers():
    model = MulT.from_modalities(IEMOCAP, 8, MulTConfig(nlevels=1, mem_layers=3))
    assert len(model.crossmodal["text_with_audio"].layers) == 1
    assert len(model.memory["text"].layers) == 3


def test_heads_are_ten_whatever_num_heads_says_unless_the_fix_is_on():
    forced = MulT.from_modalities(IEMOCAP, 8, MulTConfig(num_heads=5))
    heads = {m.num_heads for m in forced.modules() if hasattr(m, "in_proj_weight")}
    assert heads == {10}
    assert {m.head_dim for m in forced.modules() if hasattr(m, "in_proj_weight")} == {4, 8}  # d 40 and 80
    free = MulT.from_modalities(IEMOCAP, 8, MulTConfig(num_heads=5, force_heads=False))
    assert {m.num_heads for m in free.modules() if hasattr(m, "in_proj_weight")} == {5}


def test_aligned_lengths_after_the_convolutions_are_18_16_18():
    model = MulT.from_modalities(IEMOCAP, 8).eval()
    projected = model.project(*_inputs())
    assert {k: tuple(v.shape) for k, v in projected.items()} == {
        "text": (2, 18, 40), "audio": (2, 16, 40), "vision": (2, 18, 40),
    }  # fmt: skip
    mosei = MulT.from_modalities({"text": [50, 300], "audio": [50, 74], "vision": [50, 35]}, 7,
                                 MulTConfig(kernels={"text": 1, "audio": 3, "vision": 3}))  # fmt: skip
    shapes = mosei.project(*_inputs(lengths=(50, 50, 50)))
    assert [v.shape[1] for v in shapes.values()] == [50, 48, 48]


def test_forward_returns_logits_and_the_240d_last_states():
    model = MulT.from_modalities(IEMOCAP, 8).eval()
    x = _inputs(3)
    logits, last_hs = model(*x)
    assert logits.shape == (3, 8) and last_hs.shape == (3, 240)
    again, _ = model(*x)
    assert torch.equal(logits, again)  # eval mode: no dropout


@pytest.mark.parametrize(("lq", "lk"), [(18, 16), (16, 18), (5, 5), (3, 7)])
def test_future_mask_has_the_shape_and_offset_of_the_original(lq, lk):
    mask = future_mask(lq, lk)
    assert mask.shape == (lq, lk)
    offset = 1 + abs(lk - lq)
    for i in range(lq):
        for j in range(lk):
            assert (mask[i, j] == float("-inf")) == (j >= i + offset), (i, j)
            assert mask[i, j] in (0.0, float("-inf"))


def test_the_causal_mask_hides_later_steps_from_earlier_queries():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 40)
    changed = x.clone()
    changed[:, -1] = torch.randn(2, 40)  # (a constant shift would vanish in the LayerNorms)
    masked = TransformerEncoder(40, 10, 2, 0.0, 0.0, 0.0, 0.0, attn_mask=True).eval()
    assert torch.allclose(masked(x)[:, :-1], masked(changed)[:, :-1], atol=1e-6)
    open_net = TransformerEncoder(40, 10, 2, 0.0, 0.0, 0.0, 0.0, attn_mask=False).eval()
    open_net.load_state_dict(masked.state_dict())
    assert not torch.allclose(open_net(x)[:, :-1], open_net(changed)[:, :-1], atol=1e-4)


def test_positions_are_fairseq_sinusoids_from_one_with_zero_for_padding_steps():
    x = torch.randn(1, 4, 6)
    x[0, 2, 0] = 0.0  # first channel exactly 0: a padding step
    pos = sinusoidal_positions(x)[0]
    half = 3
    freqs = [math.exp(-i * math.log(10000) / (half - 1)) for i in range(half)]
    for t in (0, 1, 3):
        expected = [math.sin((t + 1) * f) for f in freqs] + [math.cos((t + 1) * f) for f in freqs]
        assert torch.allclose(pos[t], torch.tensor(expected), atol=1e-6)
    assert torch.equal(pos[2], torch.zeros(6))


def test_attention_dropout_follows_the_source_modality_as_in_the_original():
    cfg = MulTConfig(attn_dropout=0.2, attn_dropout_a=0.3, attn_dropout_v=0.4)
    model = MulT.from_modalities(IEMOCAP, 8, cfg)

    def dropout(net):
        return {layer.self_attn.attn_dropout for layer in net.layers}

    expected = {"text_with_audio": 0.3, "text_with_vision": 0.4, "audio_with_text": 0.2,
                "audio_with_vision": 0.4, "vision_with_text": 0.2, "vision_with_audio": 0.3}  # fmt: skip
    for name, p in expected.items():
        assert dropout(model.crossmodal[name]) == {p}, name
    for m in ("text", "audio", "vision"):
        assert dropout(model.memory[m]) == {0.2}


def test_sequences_shorter_than_a_kernel_and_unknown_options_are_refused():
    with pytest.raises(FermixError, match="audio sequences of length 4 are shorter"):
        MulT.from_modalities({"text": [20, 300], "audio": [4, 74], "vision": [20, 35]}, 8)
    with pytest.raises(FermixError, match="no option 'depth'"):
        MulTConfig.from_mapping({"depth": 3})
    assert MulTConfig.from_mapping({"kernels": {"text": 1}}).kernels == {"text": 1, "audio": 5, "vision": 3}
