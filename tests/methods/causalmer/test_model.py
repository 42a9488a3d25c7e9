"""The CausalMER method on random tensors (spec §6.1 items 1, 3-7): shapes, init behaviour, gradient routing,
the MOSEI-regression quirk, parameter groups and the options."""

import pytest
import torch

from fermix.engine.optim import build_optimizer
from fermix.errors import FermixError
from fermix.methods.causalmer.fusion import counterfactual_outputs
from fermix.methods.causalmer.losses import kl_loss
from fermix.registry import METHODS
from tests.methods.mult.test_model import batch
from tests.methods.mult.test_task import iemocap_info, mosei_info

CPU = {"mult": {"nlevels": 1, "mem_layers": 1}, "text_branch": "mlp", "audio_branch": "mlp", "vision_branch": "mlp"}


def build(info=None, **options):
    cls = METHODS.get("causalmer")
    return cls(cls.make_config({**CPU, **options}), info or iemocap_info(), {})


def network_parameters(method):
    return [p for n, p in method.named_parameters() if not n.startswith("constants.")]


def test_shapes_of_every_output_and_of_the_pairwise_ce_view():
    method = build(text_branch="transformer", audio_branch="resnet18", vision_branch="resnet18").eval()
    b = batch(3)
    assert (b["text"].shape, b["audio"].shape, b["vision"].shape) == ((3, 20, 300), (3, 20, 74), (3, 20, 35))
    out = method(b)
    for key in ("logits_tie", "logits_te", "logits_m", "logits_t", "logits_a", "logits_v", "z_te", "z_nde"):
        assert out[key].shape == (3, 8), key
    assert out["hidden"].shape == (3, 240)
    view, labels = method.task.views(out["logits_te"], b)
    assert view.shape == (12, 2) and labels.shape == (12,)
    predicted = method.predict(b)
    assert set(predicted) == {"logits", "logits_te", "logits_m", "logits_t", "logits_a", "logits_v", "hidden"}
    assert torch.equal(predicted["logits"], out["logits_tie"])
    mosei = build(mosei_info()).eval().predict(batch(3, task="mosei7"))
    assert mosei["logits"].shape == (3, 7) and torch.equal(mosei["expr_logits"], mosei["logits"])


def test_at_init_with_mask_fusion_tie_is_z_all_bit_for_bit():
    method = build(audio_branch="resnet18", vision_branch="resnet18").eval()  # the released branches
    out = method(batch())
    for k in ("t", "a", "v"):
        assert torch.equal(out[f"z_nde_{k}"], torch.zeros(4, 8))
    assert torch.equal(out["logits_tie"], out["logits_te"])
    expected = out["logits_m"] * torch.sigmoid(out["logits_t"] + out["logits_a"] + out["logits_v"])
    assert torch.equal(out["logits_te"], expected)


def test_with_branch_outputs_zeroed_mask_tie_is_half_the_backbone():
    method = build().eval()
    for branch in method.branches.values():
        torch.nn.init.zeros_(branch.head.weight)
        torch.nn.init.zeros_(branch.head.bias)
    out = method(batch())
    assert torch.allclose(out["logits_tie"], out["logits_m"] / 2)


def test_kl_trains_only_the_constants_and_cls_never_touches_them():
    method = build().train()
    b = batch(6)
    torch.manual_seed(0)
    out = method(b)
    constants = list(method.constants.values())
    kl = kl_loss(out)
    grads = torch.autograd.grad(kl, network_parameters(method) + constants, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads[: -len(constants)])
    assert all(g is not None and g.abs() > 0 for g in grads[-len(constants) :])  # ∂/∂c_k of c_k σ(z_k + 2c_k) ≠ 0
    terms = method.losses(out, b)
    cls_grads = torch.autograd.grad(terms["cls"], constants, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in cls_grads)
    cls = sum(method.task.loss(out[k], b) for k in ("logits_te", "logits_t", "logits_a", "logits_v"))
    assert torch.allclose(terms["cls"], 0.1 * cls) and torch.allclose(terms["kl"], 1.0 * kl)
    # TIE is not in the loss: the loss gradient w.r.t. the TIE-only path (detached constants) is nothing
    total_grads = torch.autograd.grad(terms["cls"] + terms["kl"], constants, retain_graph=True)
    for total, only_kl in zip(total_grads, grads[-len(constants) :], strict=True):
        assert torch.allclose(total, only_kl)


def test_mosei_regression_warns_and_its_kl_is_zero_so_the_constants_never_move():
    info = mosei_info()
    with pytest.warns(UserWarning, match="L_kl is identically 0"):
        method = build(info, mosei_task="regression", constant_init=0.25)
    method.train()
    b = batch(4, task="mosei7")
    terms = method.training_step(b)
    assert terms["kl"].item() == 0.0
    optimizer = build_optimizer({"_target_": "torch.optim.Adam", "lr": 2e-3}, method.param_groups())
    (terms["cls"] + terms["kl"]).backward()
    optimizer.step()
    assert all(c.item() == 0.25 for c in method.constants.values())


def test_cls_mosei_constants_do_move():
    method = build(mosei_info()).train()
    optimizer = build_optimizer({"_target_": "torch.optim.Adam", "lr": 2e-3}, method.param_groups())
    terms = method.training_step(batch(4, task="mosei7"))
    (terms["cls"] + terms["kl"]).backward()
    optimizer.step()
    assert all(c.item() != 0.0 for c in method.constants.values())


def test_parameter_groups_carry_the_originals_learning_rates_and_cover_every_parameter_once():
    method = build()
    groups = {g["name"]: g for g in method.param_groups()}
    assert {k: g["lr"] for k, g in groups.items()} == {
        "mult": 2e-3, "text": 1e-6, "audio": 2e-3, "vision": 2e-3, "constants": 2e-3,
    }  # fmt: skip
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(method.parameters()))
    assert len(groups["constants"]["params"]) == 3
    tuned = build(lr={"text": 2e-3})
    assert {g["name"]: g["lr"] for g in tuned.param_groups()}["text"] == 2e-3


def test_shared_constant_uses_one_c_everywhere():
    method = build(shared_constant=True, constant_init=0.5).eval()
    assert list(method.constants) == ["constant"]
    c_t, c_a, c_v, c_ref = method.constant_values()
    assert c_t is c_a is c_v is c_ref
    out = method(batch())
    redo = counterfactual_outputs("mask", out["logits_m"], out["logits_t"], out["logits_a"], out["logits_v"],
                                  *(torch.tensor(0.5),) * 4)  # fmt: skip
    assert torch.allclose(out["logits_tie"], redo["logits_tie"])


def test_evaluation_reports_tie_metrics_and_the_te_and_backbone_ablation():
    method = build().eval()
    b = batch(8)
    values = method.evaluation_metrics(method.predict(b), {"expr": b["expr"]})
    assert {"avg_acc", "acc_happy", "f1_sad", "te_avg_acc", "m_avg_acc", "top1_acc", "m_top1_acc"} <= set(values)
    assert {"t_avg_acc", "a_avg_acc", "v_avg_acc", "v_top1_acc"} <= set(values)  # each branch alone
    assert values["c_t"] == values["c_a"] == values["c_v"] == 0.0  # the constants at their init


def test_bad_options_are_refused_in_one_sentence():
    with pytest.raises(FermixError, match="fusion=lm"):
        build(fusion="lm")
    with pytest.raises(FermixError, match="kl_per_group=3 does not divide the 8"):
        build(kl_per_group=3)
    with pytest.raises(FermixError, match="names group 'backbone'"):
        build(lr={"backbone": 1e-3})
    with pytest.raises(FermixError, match="audio_branch must be one of resnet18, mlp"):
        build(audio_branch="albert")
