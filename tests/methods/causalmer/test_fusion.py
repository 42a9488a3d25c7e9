"""Fusion and counterfactual quantities (spec §1.3, §1.4; §6.1 items 2-4), on random logits."""

import pytest
import torch

from fermix.errors import FermixError
from fermix.methods.causalmer.fusion import EPS, FUSIONS, check_fusion, counterfactual_outputs, fuse


def _logits(n: int = 5, d: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g) * 2 for _ in range(4)]


def _c(*values: float) -> list[torch.Tensor]:
    return [torch.tensor(v, requires_grad=True) for v in values]


def test_each_fusion_is_the_formula_of_the_original():
    z_m, z_t, z_a, z_v = _logits()
    s = torch.sigmoid
    assert torch.allclose(fuse("sum", z_m, z_t, z_a, z_v), torch.log(s(z_m + z_t + z_a + z_v) + EPS))
    p = s(z_m) * s(z_t) * s(z_a) * s(z_v)
    assert torch.allclose(fuse("hm", z_m, z_t, z_a, z_v), torch.log(p + EPS) - torch.log1p(p))
    assert torch.allclose(fuse("mask", z_m, z_t, z_a, z_v), z_m * s(z_t + z_a + z_v))
    tanh = z_m + torch.tanh(z_t) + torch.tanh(z_a) + torch.tanh(z_v)
    assert torch.allclose(fuse("tanh", z_m, z_t, z_a, z_v), tanh)


@pytest.mark.parametrize("mode", FUSIONS)
def test_tie_equals_te_minus_the_three_natural_direct_effects(mode):
    out = counterfactual_outputs(mode, *_logits(), *_c(0.3, -0.7, 1.1), torch.tensor(0.3 - 0.7 + 1.1))
    te_minus_nde = out["z_te"] - out["z_nde_t"] - out["z_nde_a"] - out["z_nde_v"]
    assert torch.allclose(out["logits_tie"], te_minus_nde, atol=1e-6)
    assert torch.allclose(out["z_nde"], out["z_nde_t"] + out["z_nde_a"] + out["z_nde_v"])


def test_worked_forms_of_the_counterfactuals_with_distinct_constants():
    z_m, z_t, z_a, z_v = _logits()
    c_t, c_a, c_v = 0.4, -0.2, 0.9
    c = c_t + c_a + c_v
    out = counterfactual_outputs("mask", z_m, z_t, z_a, z_v, *_c(c_t, c_a, c_v), torch.tensor(c))
    s = torch.sigmoid
    # mask: Z_k = c_k·σ(z_k + 2c_k), Z_0 = c·σ(3c) — the NDE numerators use c_k, the baseline the sum c
    z_0 = c * s(torch.tensor(3 * c))
    assert torch.allclose(out["z_nde_t"], c_t * s(z_t + 2 * c_t) - z_0, atol=1e-6)
    assert torch.allclose(out["z_nde_v"], c_v * s(z_v + 2 * c_v) - z_0, atol=1e-6)
    expected = z_m * s(z_t + z_a + z_v) - c_t * s(z_t + 2 * c_t) - c_a * s(z_a + 2 * c_a) - c_v * s(z_v + 2 * c_v)
    assert torch.allclose(out["logits_tie"], expected + 2 * z_0, atol=1e-6)


def test_at_init_in_mask_mode_every_counterfactual_is_zero_and_tie_is_z_all_bit_for_bit():
    z_m, z_t, z_a, z_v = _logits()
    out = counterfactual_outputs("mask", z_m, z_t, z_a, z_v, *_c(0.0, 0.0, 0.0), torch.tensor(0.0))
    for k in ("t", "a", "v"):
        assert torch.equal(out[f"z_nde_{k}"], torch.zeros_like(z_m))
    assert torch.equal(out["logits_tie"], out["logits_te"])
    assert torch.equal(out["logits_te"], z_m * torch.sigmoid(z_t + z_a + z_v))


def test_with_zeroed_branches_mask_tie_is_half_z_m():
    z_m, *_ = _logits()
    zero = torch.zeros_like(z_m)
    out = counterfactual_outputs("mask", z_m, zero, zero, zero, *_c(0.0, 0.0, 0.0), torch.tensor(0.0))
    assert torch.allclose(out["logits_tie"], z_m / 2)


@pytest.mark.parametrize("c", [0.0, 0.35, -0.8])
def test_with_zeroed_branches_sum_tie_is_a_class_independent_shift_of_log_sigmoid_z_m(c):
    z_m, *_ = _logits()
    zero = torch.zeros_like(z_m)
    out = counterfactual_outputs("sum", z_m, zero, zero, zero, *_c(c, c, c), torch.tensor(3 * c))
    s = torch.sigmoid
    shift = -3 * torch.log(s(torch.tensor(3 * c)) + EPS) + 2 * torch.log(s(torch.tensor(12 * c)) + EPS)
    assert torch.allclose(out["logits_tie"], torch.log(s(z_m) + EPS) + shift, atol=1e-5)
    pairs = out["logits_tie"].view(-1, 4, 2).argmax(-1)
    assert torch.equal(pairs, z_m.view(-1, 4, 2).argmax(-1))  # per IEMOCAP emotion pair
    assert torch.equal(out["logits_tie"].argmax(1), z_m.argmax(1))


def test_prediction_detaches_the_constants_and_loss_terms_detach_the_logits():
    z = [t.requires_grad_() for t in _logits()]
    cs = _c(0.2, 0.1, -0.3)
    c_ref = cs[0] + cs[1] + cs[2]
    out = counterfactual_outputs("sum", *z, *cs, c_ref)
    grads = torch.autograd.grad(out["logits_tie"].sum(), [*z, *cs], allow_unused=True)
    assert all(g is not None for g in grads[:4]) and all(g is None for g in grads[4:])
    loss_terms = out["z_te"].sum() + out["z_nde"].sum()
    grads = torch.autograd.grad(loss_terms, [*z, *cs], allow_unused=True)
    assert all(g is None for g in grads[:4]) and all(g is not None for g in grads[4:])


def test_lm_and_unknown_fusions_are_refused():
    with pytest.raises(FermixError, match="fusion=lm is not implemented"):
        check_fusion("lm")
    with pytest.raises(FermixError, match="not `product`"):
        check_fusion("product")
