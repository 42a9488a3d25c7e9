"""The cheaper IERN step (no backbone backward in the feature step, no g_r weight gradients in the
classification step) trains exactly as the step it replaced: same loss terms, parameters and buffers."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from fermix.engine.optim import build_optimizer
from fermix.methods.iern import IERN, IERNConfig
from fermix.methods.iern.losses import center_loss, confusion_loss
from fermix.methods.iern.model import CLS, DIS, FEAT


class Handle:
    def __init__(self, model: IERN) -> None:
        cfg = {"_target_": "torch.optim.Adam", "lr": 1e-2, "betas": [0.5, 0.999]}  # a large lr, so any difference shows
        self.opts = [opt for opt, _ in model.configure_optimizers(lambda g: (build_optimizer(cfg, g), None))]

    def optimizer(self, index: int):
        return self.opts[index]

    def zero_grad(self, index: int) -> None:
        self.opts[index].zero_grad()

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        loss.backward(**kwargs)

    def step(self, index: int) -> None:
        self.opts[index].step()


def previous_step(m: IERN, batch: dict[str, torch.Tensor], opt: Handle) -> dict[str, torch.Tensor]:
    """IERN.manual_step as it was before the cost fix (recompute_emotion=true)."""
    image, expr, domain = batch["image"], batch["expr"], batch["domain"]
    b = m.base(image)
    e, c = m.emo_gen(b), m.con_gen(b)
    reconstruction = m.fuser(e, c)
    m._set_discriminators_trainable(True)
    opt.zero_grad(DIS)
    dis_emo = F.cross_entropy(m.emo_dis(e.detach()), expr)
    dis_con = F.cross_entropy(m.con_dis(c.detach()), domain)
    opt.backward((dis_emo + dis_con) / 2)
    opt.step(DIS)
    m._set_discriminators_trainable(False)
    opt.zero_grad(FEAT)
    gen_emo, gen_con = confusion_loss(m.con_dis(e)), confusion_loss(m.emo_dis(c))
    lam = m.config.lambda_cnfnd
    cnfnd = lam * center_loss(c, domain, m.centers)
    recons = F.mse_loss(reconstruction, b)
    opt.backward((gen_emo + gen_con) / 2 + cnfnd + recons, retain_graph=True)
    m.centers.grad.mul_(1.0 / lam)
    opt.step(FEAT)
    m._set_discriminators_trainable(True)
    m.sync_dictionary()
    e = m.emo_gen(b)
    logits, _ = m.classify(e)
    opt.zero_grad(CLS)
    cls = F.cross_entropy(logits, expr)
    opt.backward(cls)
    opt.step(CLS)
    return {"cls": cls, "emo_dis": dis_emo, "con_dis": dis_con, "emo_gen": gen_emo, "con_gen": gen_con,
            "cnfnd": cnfnd, "recons": recons}  # fmt: skip


def _pair() -> tuple[IERN, IERN]:
    torch.manual_seed(0)
    info = DataInfo(get_label_space("mixbasic6"), frozenset({"image", "expr", "domain"}), 32, num_domains=3)
    model = IERN(IERNConfig(channels=16), info, {"name": "small_cnn", "width": 8}).train()
    return model, copy.deepcopy(model)


def _batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(6, 3, 32, 32, generator=g), "expr": torch.arange(6) % 6,
            "domain": torch.arange(6) % 3, "index": torch.arange(6)}  # fmt: skip


def test_three_steps_give_the_same_losses_parameters_and_buffers_as_the_previous_step():
    new, old = _pair()
    h_new, h_old = Handle(new), Handle(old)
    for seed in range(3):
        batch = _batch(seed)
        got, want = new.manual_step(batch, h_new), previous_step(old, batch, h_old)
        for name in want:
            torch.testing.assert_close(got[name], want[name].detach(), rtol=0, atol=0, msg=name)
    for (name, p), q in zip(new.named_parameters(), old.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    for (name, p), q in zip(new.named_buffers(), old.buffers(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_the_step_leaves_every_parameter_trainable():
    new, _ = _pair()
    new.manual_step(_batch(0), Handle(new))
    assert all(p.requires_grad for p in new.parameters())
