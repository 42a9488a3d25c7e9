"""The fused model behind mult and CausalMER's z_m (fermix/models/fused.py): MulT or the time-averaged MLP."""

import pytest
import torch

from fermix.errors import FermixError
from fermix.models.fused import TimeAveragedMLP, build_fused
from fermix.models.mult import MulT

SHAPES = {"text": [20, 300], "audio": [20, 74], "vision": [20, 35]}


def inputs(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.randn(batch, length, dim) for length, dim in SHAPES.values())


def test_build_fused_gives_mult_by_default_options_and_mlp_by_name():
    assert isinstance(build_fused("mult", SHAPES, 8, {"nlevels": 1}), MulT)
    mlp = build_fused("mlp", SHAPES, 8, hidden=16, depth=3)
    assert isinstance(mlp, TimeAveragedMLP)
    logits, hidden = mlp(*inputs())
    assert logits.shape == (3, 8) and hidden.shape == (3, 16)


def test_mlp_sees_only_time_averages():
    torch.manual_seed(0)
    mlp = build_fused("mlp", SHAPES, 4).eval()
    text, audio, vision = inputs(2)
    shuffled = text[:, torch.randperm(text.shape[1])]  # same average, other order
    assert torch.allclose(mlp(text, audio, vision)[0], mlp(shuffled, audio, vision)[0], atol=1e-5)


def test_mlp_learns_an_interaction_of_two_modalities():
    """y = (code_text + code_audio) mod 4, neither modality informative alone: what the synthetic_mm gate needs."""
    torch.manual_seed(0)
    n, k = 512, 4
    u, v = torch.randint(0, k, (n,)), torch.randint(0, k, (n,))
    y = (u + v) % k
    text = torch.nn.functional.one_hot(u, k).float()[:, None].repeat(1, 5, 1)
    audio = torch.nn.functional.one_hot(v, k).float()[:, None].repeat(1, 5, 1)
    vision = torch.zeros(n, 5, 2)
    mlp = TimeAveragedMLP({"text": k, "audio": k, "vision": 2}, k, hidden=64)
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(mlp(text, audio, vision)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mlp.eval()
    assert (mlp(text, audio, vision)[0].argmax(1) == y).float().mean() > 0.95


def test_unknown_fused_model_is_one_sentence():
    with pytest.raises(FermixError, match=r"method\.fused must be one of mult, mlp"):
        build_fused("lstm", SHAPES, 8)
    with pytest.raises(FermixError, match="no vision shape"):
        build_fused("mlp", {"text": [20, 300], "audio": [20, 74]}, 8)
