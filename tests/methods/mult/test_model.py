"""The plain fused MulT method: outputs, criterion and metrics per task."""

import torch

from fermix.registry import METHODS
from tests.methods.mult.test_task import iemocap_info, mosei_info

SMALL = {"nlevels": 1, "mem_layers": 1}


def batch(n: int = 4, task: str = "iemocap4") -> dict:
    g = torch.Generator().manual_seed(n)
    out = {"text": torch.randn(n, 20, 300, generator=g), "audio": torch.randn(n, 20, 74, generator=g),
           "vision": torch.randn(n, 20, 35, generator=g), "sample_id": [str(i) for i in range(n)]}  # fmt: skip
    if task == "iemocap4":
        out["expr"] = torch.randint(0, 2, (n, 4), generator=g)
    else:
        out["score"] = torch.rand(n, generator=g) * 6 - 3
        out["expr"] = out["score"].round().long() + 3
    return out


def build(info, **options):
    cls = METHODS.get("mult")
    return cls(cls.make_config({"mult": SMALL, **options}), info, {})


def test_iemocap_outputs_logits_and_hidden_but_no_expr_logits():
    method = build(iemocap_info()).eval()
    out = method.predict(batch())
    assert out["logits"].shape == (4, 8) and out["hidden"].shape == (4, 240)
    assert torch.equal(out["logits"], out["logits_m"]) and "expr_logits" not in out
    values = method.evaluation_metrics(out, {"expr": batch()["expr"]})
    assert {"avg_acc", "acc_neutral", "f1_angry"} <= set(values)


def test_training_step_is_the_tasks_criterion_and_trains_every_parameter():
    method = build(iemocap_info()).train()
    b = batch()
    torch.manual_seed(0)
    terms = method.training_step(b)
    assert set(terms) == {"ce"}
    torch.manual_seed(0)
    logits, _ = method(b)
    assert torch.allclose(terms["ce"], method.task.loss(logits, b))
    terms["ce"].backward()
    assert all(p.grad is not None for p in method.parameters() if p.requires_grad)


def test_mosei_cls_gives_expr_logits_and_regression_one_score():
    cls = build(mosei_info()).eval()
    out = cls.predict(batch(task="mosei7"))
    assert out["expr_logits"].shape == (4, 7)
    reg = build(mosei_info(), mosei_task="regression").eval()
    b = batch(task="mosei7")
    out = reg.predict(b)
    assert out["logits"].shape == (4, 1) and "expr_logits" not in out
    assert set(reg.training_step(b)) == {"l1"}
    assert {"acc7", "mae", "corr", "avg_acc"} <= set(reg.evaluation_metrics(out, {"score": b["score"]}))
