"""fermix's `causalmer` against the original CAUSALMER (sejong-rcv/CausalMER), float64, from golden numbers
written by benchmarks/parity/causalmer.py: initial weights, every forward quantity (TIE, TE, NDEs) for the
four fusions, three training steps (α·L_cls, β·L_kl, gradient norms per group, the constants' gradients,
parameters and BatchNorm buffers after the last step) and the IEMOCAP-aligned parameter counts."""

from __future__ import annotations

from functools import cache

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace, get_label_space
from fermix.methods.causalmer.branches import ResNetBranch
from fermix.methods.causalmer.model import CausalMER
from fermix.models.mult import MulT
from tests.parity.golden import assert_close, load

SEED, CLIP, STEPS = 0, 0.8, 3
LRS = {"mult": 2e-3, "text": 1e-6, "audio": 2e-3, "vision": 2e-3, "constants": 2e-3}
KERNELS = {"iemocap": {"text": 3, "audio": 5, "vision": 3}, "mosei": {"text": 1, "audio": 3, "vision": 3}}
MULT = {"d_model": 40, "nlevels": 1, "mem_layers": 3, "num_heads": 10, "force_heads": True, "attn_mask": True,
        "attn_dropout": 0.0, "attn_dropout_a": 0.0, "attn_dropout_v": 0.0, "relu_dropout": 0.0, "res_dropout": 0.0,
        "embed_dropout": 0.0, "out_dropout": 0.0}  # fmt: skip
MOSEI7 = LabelSpace("mosei7", ("-3", "-2", "-1", "0", "1", "2", "3"))
CASES = ("iemocap_sum", "iemocap_hm", "iemocap_mask", "iemocap_tanh", "mosei_mask")
# The original's ResNet-18 audio / vision branches in the mask cases; the script's MLP stand-ins elsewhere.
BRANCHES = {"iemocap_sum": "mlp", "iemocap_hm": "mlp", "iemocap_mask": "resnet18", "iemocap_tanh": "mlp",
            "mosei_mask": "resnet18"}  # fmt: skip
# Forward quantities: golden name -> fermix output key.
FORWARD = {"logits_causal_mer": "logits_tie", "logits_te": "logits_te", "logits_m": "logits_m", "logits_t": "logits_t",
           "logits_a": "logits_a", "logits_v": "logits_v", "z_te": "z_te", "z_nde": "z_nde", "z_nde_t": "z_nde_t",
           "z_nde_a": "z_nde_a", "z_nde_v": "z_nde_v", "mult_last_hs": "hidden"}  # fmt: skip


def build(case: str, gold: dict) -> CausalMER:
    dataset, fusion = case.split("_")
    shapes = {m: list(gold[f"input_{m}"].shape[1:]) for m in ("text", "audio", "vision")}
    keys = frozenset({"text", "audio", "vision", "expr"})
    label_space = get_label_space("iemocap4") if dataset == "iemocap" else MOSEI7
    task = "iemocap4" if dataset == "iemocap" else "mosei7"
    info = DataInfo(label_space, keys, extras={"task": task, "modalities": shapes})
    config = CausalMER.make_config({
        "fusion": fusion, "alpha": 0.1, "beta": 1.0, "constant_init": 0.1, "text_branch": "mlp",
        "branch_hidden": 16, "audio_branch": BRANCHES[case], "vision_branch": BRANCHES[case], "text_weights": None,
        "lr": LRS, "mult": {**MULT, "kernels": KERNELS[dataset]},
    })  # fmt: skip
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the script builds the original under float64 default dtype
    try:
        torch.manual_seed(SEED)  # fermix creates its tensors in the original's order
        return CausalMER(config, info, {})
    finally:
        torch.set_default_dtype(previous)


def checksums(tensors: dict[str, torch.Tensor], names: list[str], ends: bool = True) -> torch.Tensor:
    rows = []
    for name in names:
        flat = tensors[name].detach().double().reshape(-1)
        rows.append(torch.stack([flat.sum(), (flat * flat).sum()] + ([flat[0], flat[-1]] if ends else [])))
    return torch.stack(rows)


@cache
def run(case: str) -> dict:
    """fermix's CausalMER on the case's inputs: initial weights, three training steps, the final state."""
    gold, names = load("causalmer", case), load("causalmer", "counts")
    kind = BRANCHES[case]
    method = build(case, gold)
    b = {k.removeprefix("input_"): v for k, v in gold.items() if k.startswith("input_")}
    params = dict(method.named_parameters())
    rec: dict = {"param_names": sorted(params), "init": checksums(params, names[f"{kind}_param_names"])}
    groups = method.param_groups()
    optimizer = torch.optim.Adam([{"params": g["params"], "lr": g["lr"]} for g in groups])
    owner = {id(p): g["name"] for g in groups for p in g["params"]}
    constants = [method.constants[f"constant_{k}"] for k in "tav"]
    rows: dict[str, list] = {k: [] for k in ("ce_te", "ce_t", "ce_a", "ce_v", "cls", "kl", "total", "norms",
                                             "constant_grads", "total_norm")}  # fmt: skip
    method.train()
    for step in range(STEPS):
        optimizer.zero_grad()
        out = method(b)  # fermix's forward: MulT, branches, counterfactual_outputs
        if step == 0:
            rec["forward"] = {key: out[key].detach().clone() for key in FORWARD.values()}
        terms = method.losses(out, b)  # what training_step returns
        for name, key in zip(("ce_te", "ce_t", "ce_a", "ce_v"), ("logits_te", "logits_t", "logits_a", "logits_v"),
                             strict=True):  # fmt: skip
            rows[name].append(method.task.loss(out[key], b).detach())
        loss = terms["cls"] + terms["kl"]
        rows["cls"].append(terms["cls"].detach())
        rows["kl"].append(terms["kl"].detach())
        rows["total"].append(loss.detach())
        loss.backward()
        norms = dict.fromkeys(gold["groups"], 0.0)
        for p in method.parameters():
            if p.grad is not None:
                norms[owner[id(p)]] += float(p.grad.pow(2).sum())
        rows["norms"].append(torch.tensor([norms[g] ** 0.5 for g in gold["groups"]], dtype=torch.float64))
        rows["constant_grads"].append(torch.stack([c.grad for c in constants]).detach().clone())
        rows["total_norm"].append(torch.nn.utils.clip_grad_norm_(method.parameters(), CLIP).detach())
        optimizer.step()
    rec.update({k: torch.stack(v) for k, v in rows.items()})
    state = method.state_dict()
    rec["state_names"] = sorted(state)
    rec["final"] = checksums(state, names[f"{kind}_state_names"], ends=False)
    method.eval()
    with torch.no_grad():
        out = method.predict(b)
    rec["final_tie"], rec["final_te"] = out["logits"], out["logits_te"]
    return rec


@pytest.mark.parametrize("case", CASES)
def test_seeded_initial_weights_equal_the_originals(case):
    gold, names, rec = load("causalmer", case), load("causalmer", "counts"), run(case)
    assert rec["param_names"] == sorted(names[f"{BRANCHES[case]}_param_names"])
    # Same RNG stream and init functions: bit-identical (atol 0).
    assert_close("initial weights", rec["init"], gold["init_checksums"], 0.0)


@pytest.mark.parametrize("case", CASES)
def test_tie_te_and_nde_of_the_first_step_equal_the_originals(case):
    gold, rec = load("causalmer", case), run(case)
    for ref, key in FORWARD.items():
        # float64, but MulT's attention softmax runs in float32 on both sides: 1e-6.
        assert_close(f"{key} (original {ref})", rec["forward"][key], gold[f"step0_{ref}"], atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_every_loss_term_of_three_steps_equals_the_originals(case):
    gold, rec = load("causalmer", case), run(case)
    for name in ("ce_te", "ce_t", "ce_a", "ce_v", "cls", "kl", "total"):
        # Loss terms of order 0.1-10 (cls = α·L_cls, kl = β·L_kl): 1e-6 absolute.
        assert_close(f"loss {name}", rec[name], gold[f"loss_{name}"], atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_gradients_of_three_steps_equal_the_originals(case):
    gold, rec = load("causalmer", case), run(case)
    # Per-group norms reach ~200 at the first step: 1e-6 relative (+1e-9 absolute).
    assert_close("group grad norms", rec["norms"], gold["grad_norm_groups"], atol=1e-9, rtol=1e-6)
    assert_close("total grad norm before clipping", rec["total_norm"], gold["grad_norm_total"], atol=1e-9, rtol=1e-6)
    # The constants are trained by L_kl alone: their gradients, 1e-9 absolute.
    assert_close("constant grads", rec["constant_grads"], gold["constant_grads"], atol=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_parameters_after_three_steps_and_the_final_prediction_equal_the_originals(case):
    gold, names, rec = load("causalmer", case), load("causalmer", "counts"), run(case)
    assert rec["state_names"] == sorted(names[f"{BRANCHES[case]}_state_names"])
    # Parameters and BatchNorm buffers: per-tensor sums and sums of squares within 1e-6 relative.
    assert_close("final state", rec["final"], gold["final_checksums"], atol=1e-8, rtol=1e-6)
    assert_close("final eval TIE", rec["final_tie"], gold["final_eval_tie"], atol=1e-6)
    assert_close("final eval TE", rec["final_te"], gold["final_eval_te"], atol=1e-6)


def test_parameter_counts_of_the_iemocap_aligned_mult_and_a_resnet_branch():
    counts = load("causalmer", "counts")
    dims = {"text": 300, "audio": 74, "vision": 35}
    assert sum(p.numel() for p in MulT(dims, 8).parameters()) == counts["mult_iemocap_aligned_params"] == 1_932_768
    assert sum(p.numel() for p in ResNetBranch(8).parameters()) == counts["resnet_branch_params"] == 11_174_344


def test_mosei_binary_causalmer_reproduces_the_originals_printed_mosei_metrics():
    from fermix.metrics.multimodal import mosei_cls_scores, mosei_metrics

    gold = load("causalmer", "mosei_eval")
    printed = dict(zip(gold["printed_names"], gold["printed"].tolist(), strict=True))
    scores = mosei_cls_scores(gold["logits"])
    ours = mosei_metrics(scores, gold["truths"], binary="causalmer")
    expected = {"acc7": printed["mult_acc_7"], "acc2_non0": printed["acc2 (pos/neg)"],
                "f1_non0": printed["F1 score (pos/neg)"], "acc2_has0": printed["acc2 (neg/non-neg)"],
                "f1_has0": printed["F1 score (neg/non-neg)"]}  # fmt: skip
    for key, value in expected.items():
        assert abs(ours[key] - value) < 1e-12, (key, ours[key], value)  # printed float64: 1e-12
    standard = mosei_metrics(scores, gold["truths"])
    assert standard["acc2_non0"] != ours["acc2_non0"] and standard["f1_has0"] != ours["f1_has0"]  # the option matters
