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


# --- what TIE amounts to under tanh and mask (docs/methods/causalmer.md, "What TIE amounts to per fusion") ----


def _wide_logits(n: int = 64, d: int = 8, seed: int = 3) -> list[torch.Tensor]:
    """float64 logits spread over ±12, so the sigmoids saturate and the mask bound is nearly reached."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g, dtype=torch.float64) * 6 for _ in range(4)]


@pytest.mark.parametrize(("c_t", "c_a", "c_v", "shared"), [(0.3, -0.7, 1.1, False), (0.5, 0.5, 0.5, True)])
def test_tanh_fusion_tie_is_mults_own_prediction_plus_one_number(c_t, c_a, c_v, shared):
    z_m, z_t, z_a, z_v = _wide_logits()
    cs = [torch.tensor(c, dtype=torch.float64, requires_grad=True) for c in (c_t, c_a, c_v)]
    c_ref = cs[0] if shared else cs[0] + cs[1] + cs[2]
    out = counterfactual_outputs("tanh", z_m, z_t, z_a, z_v, *cs, c_ref)
    # TIE − z_m = 2(c + 3 tanh c) − Σ_k (c_k + 2 tanh c_k): one number for every logit of every sample.
    shift = 2 * (c_ref + 3 * torch.tanh(c_ref)) - sum(c + 2 * torch.tanh(c) for c in cs)
    torch.testing.assert_close(out["logits_tie"] - z_m, shift.detach().expand_as(z_m), atol=1e-12, rtol=0)
    # So the prediction is MulT's alone: the same argmax per IEMOCAP pair and over all logits.
    assert torch.equal(out["logits_tie"].view(-1, 4, 2).argmax(-1), z_m.view(-1, 4, 2).argmax(-1))
    assert torch.equal(out["logits_tie"].argmax(-1), z_m.argmax(-1))
    # And L_kl gives the constants no gradient: every counterfactual moves a row by one number, which softmax ignores.
    from fermix.methods.causalmer.losses import kl_loss

    for group in (None, 2):
        grads = torch.autograd.grad(kl_loss(out, group), cs, allow_unused=True, retain_graph=True)
        assert all(g is None or abs(float(g)) < 1e-12 for g in grads), grads


@pytest.mark.parametrize(("c_t", "c_a", "c_v", "shared"), [(0.3, 0.2, 0.6, False), (0.4, -0.9, 0.2, False),
                                                           (-0.8, -0.8, -0.8, True)])  # fmt: skip
def test_mask_fusion_tie_stays_within_the_constants_of_te(c_t, c_a, c_v, shared):
    z_m, z_t, z_a, z_v = _wide_logits()
    cs = [torch.tensor(c, dtype=torch.float64) for c in (c_t, c_a, c_v)]
    c_ref = cs[0] if shared else cs[0] + cs[1] + cs[2]
    out = counterfactual_outputs("mask", z_m, z_t, z_a, z_v, *cs, c_ref)
    tie, z_all = out["logits_tie"], out["logits_te"]
    te = out["z_te"]  # TE = Z_all − Z_0 (= z_te: the same values, detached)
    budget = 3 * abs(float(cs[0])) if shared else sum(abs(float(c)) for c in cs)  # |c_t| + |c_a| + |c_v|
    # TIE = Z_all + 2c·σ(3c) − r with |r| < budget (r = Σ_k c_k σ(z_k + 2c_k)).
    offset = 2 * c_ref * torch.sigmoid(3 * c_ref)
    r = z_all + offset - tie
    assert r.abs().max() < budget
    assert r.abs().max() > 0.9 * budget or r.min() * r.max() < 0  # the bound is nearly reached (not vacuous)
    # TE differs from Z_all by one number (Z_0), so logit differences within a sample obey the same budget:
    for a, b in ((tie, te), (tie, z_all)):
        diffs = (a.unsqueeze(-1) - a.unsqueeze(-2)) - (b.unsqueeze(-1) - b.unsqueeze(-2))
        assert diffs.abs().max() < budget
    # hence TIE and TE pick the same logit wherever TE's margin exceeds the budget.
    top2 = te.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > budget
    assert clear.any() and torch.equal(tie[clear].argmax(-1), te[clear].argmax(-1))
