"""fermix's `mult` against the original MulT (yaohungt/Multimodal-Transformer), float64, from golden numbers
written by benchmarks/parity/mult.py: initial weights, eval outputs, three training steps (loss, gradient
norms, parameters), and the IEMOCAP-aligned parameter counts."""

from __future__ import annotations

import pytest
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace, get_label_space
from fermix.methods.mult.model import MulTMethod
from fermix.models.mult import MulT, MulTConfig
from tests.parity.golden import assert_close, load

# The original MulT at the script's sizes: d 30 and kernel 1 hard-coded, num_heads honoured, dropout off.
ORIGINAL_MULT = {
    "d_model": 30, "kernels": {"text": 1, "audio": 1, "vision": 1}, "nlevels": 1, "mem_layers": 3, "num_heads": 5,
    "force_heads": False, "attn_mask": True, "attn_dropout": 0.0, "attn_dropout_a": 0.0, "attn_dropout_v": 0.0,
    "relu_dropout": 0.0, "res_dropout": 0.0, "embed_dropout": 0.0, "out_dropout": 0.0,
}  # fmt: skip
SEED, LR, CLIP, STEPS = 1111, 1e-3, 0.8, 3
MOSEI7 = LabelSpace("mosei7", ("-3", "-2", "-1", "0", "1", "2", "3"))
CASES = ("iemocap_aligned", "mosei_unaligned")


def data_info(gold: dict) -> DataInfo:
    shapes = {m: list(gold[f"input_{m}"].shape[1:]) for m in ("text", "audio", "vision")}
    if "input_expr" in gold:
        keys = frozenset({"text", "audio", "vision", "expr"})
        return DataInfo(get_label_space("iemocap4"), keys, extras={"task": "iemocap4", "modalities": shapes})
    keys = frozenset({"text", "audio", "vision", "expr", "score"})
    return DataInfo(MOSEI7, keys, extras={"task": "mosei7", "modalities": shapes})


def build(gold: dict) -> MulTMethod:
    info = data_info(gold)
    mosei_task = "regression" if "input_score" in gold else "cls"
    torch.manual_seed(SEED)  # fermix's MulT creates its tensors in the original's order
    config = MulTMethod.make_config({"mult": ORIGINAL_MULT, "mosei_task": mosei_task})
    return MulTMethod(config, info, {}).double()


def batch(gold: dict) -> dict:
    return {k.removeprefix("input_"): v for k, v in gold.items() if k.startswith("input_")}


def checksums(method: MulTMethod, names: list[str]) -> torch.Tensor:
    params = dict(method.mult.named_parameters())
    rows = []
    for name in names:
        flat = params[name].detach().reshape(-1)
        rows.append(torch.stack([flat.sum(), (flat * flat).sum(), flat[0], flat[-1]]))
    return torch.stack(rows)


def group_of(name: str) -> str:
    return {"proj": "proj", "crossmodal": "crossmodal", "memory": "memory"}.get(name.split(".")[0], "head")


@pytest.mark.parametrize("case", CASES)
def test_seeded_initial_weights_equal_the_originals(case):
    gold = load("mult", case)
    method = build(gold)
    assert sorted(gold["init_checksums_names"]) == sorted(n for n, _ in method.mult.named_parameters())
    # Same RNG stream, same init functions: bit-identical (atol 0).
    assert_close("initial weights", checksums(method, gold["init_checksums_names"]), gold["init_checksums"], 0.0)


@pytest.mark.parametrize("case", CASES)
def test_eval_outputs_equal_the_originals(case):
    gold = load("mult", case)
    method = build(gold).eval()
    with torch.no_grad():
        out = method.predict(batch(gold))
    # float64 except the attention softmax, which both run in float32: 1e-6.
    assert_close("logits", out["logits"], gold["eval_logits"], atol=1e-6)
    assert_close("last_hs", out["hidden"], gold["eval_last_hs"], atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_three_training_steps_follow_the_originals_losses_gradients_and_weights(case):
    gold = load("mult", case)
    method = build(gold).train()
    b = batch(gold)
    names = gold["init_checksums_names"]
    params = dict(method.mult.named_parameters())
    (group,) = method.param_groups()  # one group, as the original's Adam(model.parameters())
    optimizer = torch.optim.Adam(group["params"], lr=LR)
    for step in range(STEPS):
        optimizer.zero_grad()
        terms = method.training_step(b)
        loss = sum(terms.values())
        loss.backward()
        norms = dict.fromkeys(gold["groups"], 0.0)
        for name in names:
            norms[group_of(name)] += float(params[name].grad.pow(2).sum())
        total = torch.nn.utils.clip_grad_norm_(method.parameters(), CLIP)
        optimizer.step()
        # 1e-6 absolute on losses and norms of order 1 (float32 attention softmax on both sides).
        assert_close(f"loss step {step}", loss, gold["loss"][step], atol=1e-6)
        assert_close(f"grad norm step {step}", total, gold["grad_norm_total"][step], atol=1e-6)
        got = torch.tensor([norms[g] ** 0.5 for g in gold["groups"]], dtype=torch.float64)
        assert_close(f"group grad norms step {step}", got, gold["grad_norm_groups"][step], atol=1e-6)
    # Parameters after three Adam steps (lr 1e-3): per-tensor sums / squares / end values within 1e-6.
    assert_close("final parameters", checksums(method, names), gold["final_checksums"], atol=1e-6)
    method.eval()
    with torch.no_grad():
        assert_close("final logits", method.predict(b)["logits"], gold["final_eval_logits"], atol=1e-6)


def test_parameter_counts_of_the_iemocap_aligned_models():
    counts = load("mult", "counts")
    original = MulTConfig.from_mapping({**ORIGINAL_MULT, "nlevels": 5, "num_heads": 10})
    dims = {"text": 300, "audio": 74, "vision": 35}
    assert sum(p.numel() for p in MulT(dims, 8, original).parameters()) == counts["mult_iemocap_aligned_params"]
    # fermix's default MulT is CausalMER's variant (d 40, kernels 3/5/3); its count is the original CausalMER
    # MULTModel's, recorded by benchmarks/parity/causalmer.py (tests/parity/test_causalmer.py checks it too).
    assert sum(p.numel() for p in MulT(dims, 8).parameters()) == 1_932_768


def test_mosei_binary_mult_reproduces_the_originals_printed_mosei_metrics():
    from fermix.metrics.multimodal import mosei_metrics

    gold = load("mult", "mosei_eval")
    ours = mosei_metrics(gold["preds"], gold["truths"], binary="mult")
    keys = {"MAE": "mae", "Correlation Coefficient": "corr", "mult_acc_7": "acc7", "mult_acc_5": "acc5"}
    for exclude, pair in ((False, "has0"), (True, "non0")):
        names, values = gold[f"printed_names_exclude_zero_{exclude}"], gold[f"printed_exclude_zero_{exclude}"]
        printed = dict(zip(names, values.tolist(), strict=True))
        expected = {**{ours_key: printed[name] for name, ours_key in keys.items()},
                    f"acc2_{pair}": printed["Accuracy"], f"f1_{pair}": printed["F1 score"]}  # fmt: skip
        for key, value in expected.items():
            # numpy float64 printed with full precision; the same sums in another order: 1e-12.
            assert abs(ours[key] - value) < 1e-12, (exclude, key, ours[key], value)
