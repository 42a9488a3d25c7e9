"""L_kl as the original's caculate_kl_loss (spec §1.5; §6.1 item 7)."""

import torch

from fermix.methods.causalmer.fusion import counterfactual_outputs
from fermix.methods.causalmer.losses import kl_loss, soft_cross_entropy


def _h(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The original: −softmax(p)·log(softmax(q)), summed over dim 1, mean over the batch."""
    return (-(torch.softmax(p, -1) * torch.softmax(q, -1).log())).sum(1).mean()


def _outputs(seed: int = 0, c=(0.3, -0.2, 0.5)) -> tuple[dict, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    z = [torch.randn(6, 8, generator=g) for _ in range(4)]
    cs = [torch.tensor(v, requires_grad=True) for v in c]
    return counterfactual_outputs("mask", *z, *cs, cs[0] + cs[1] + cs[2]), cs


def test_kl_is_the_originals_seven_cross_entropies_over_all_eight_logits():
    out, _ = _outputs()
    te, nde, t, a, v = (out[k] for k in ("z_te", "z_nde", "z_nde_t", "z_nde_a", "z_nde_v"))
    expected = _h(te, nde) + (_h(t, a) + _h(a, v) + _h(v, t)) / 3 + (_h(te, t) + _h(te, a) + _h(te, v))
    assert torch.allclose(kl_loss(out), expected, atol=1e-6)


def test_per_pair_softmax_differs_from_the_faithful_joint_softmax():
    out, _ = _outputs()
    joint, pairs = kl_loss(out), kl_loss(out, group=2)
    assert not torch.allclose(joint, pairs, atol=1e-3)
    p, q = out["z_te"], out["z_nde"]
    per_pair = torch.stack([_h(p[:, 2 * e : 2 * e + 2], q[:, 2 * e : 2 * e + 2]) for e in range(4)]).mean()
    assert torch.allclose(soft_cross_entropy(p, q, group=2), per_pair, atol=1e-6)
    assert torch.allclose(soft_cross_entropy(p, q), _h(p, q), atol=1e-6)


def test_p_te_is_not_detached_unless_asked_and_the_value_is_the_same_either_way():
    out, cs = _outputs()
    faithful = torch.autograd.grad(kl_loss(out), cs, retain_graph=True)
    out2, cs2 = _outputs()
    detached = torch.autograd.grad(kl_loss(out2, detach_p_te=True), cs2)
    assert torch.allclose(kl_loss(out), kl_loss(out2, detach_p_te=True))
    assert not all(torch.allclose(a, b) for a, b in zip(faithful, detached, strict=True))
