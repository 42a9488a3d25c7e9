"""Toy methods that make engine properties observable (registered by the tests that use them)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fermix.methods.base import Method, MethodConfig


@dataclass
class ToyConfig(MethodConfig):
    pass


class EpochOracle(Method):
    """Right on `val/` samples only in epoch 1 and on `test/` samples only in epoch 2: a model
    selected on validation must be the epoch-1 one; selection on test would pick epoch 2."""

    name = "oracle"
    Config = ToyConfig

    def __init__(self, config, data_info, backbone) -> None:
        super().__init__(config, data_info, backbone)
        self.w = nn.Parameter(torch.zeros(1))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))

    def on_train_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self.epoch.fill_(epoch)

    def training_step(self, batch):
        return {"toy": ((self.w - 1) ** 2).sum() + 0 * batch["image"].mean()}

    def predict(self, batch):
        c = self.data_info.num_classes
        epoch = int(self.epoch)
        perfect_prefix = {1: "val/", 2: "test/"}.get(epoch, "-")
        right = torch.tensor([s.startswith(perfect_prefix) for s in batch["sample_id"]], device=batch["expr"].device)
        labels = torch.where(right, batch["expr"], (batch["expr"] + 1) % c)
        return {"expr_logits": F.one_hot(labels, c).float() + 0 * self.w}


class ThreeOptimizers(Method):
    """Three parameter groups stepped by three optimizers in a fixed order (IERN's pattern)."""

    name = "three_opt"
    Config = ToyConfig
    automatic_optimization = False

    def __init__(self, config, data_info, backbone) -> None:
        super().__init__(config, data_info, backbone)
        dim = 3 * data_info.image_size * data_info.image_size
        self.parts = nn.ModuleList([nn.Linear(dim, 16), nn.Linear(16, 16), nn.Linear(16, data_info.num_classes)])
        self.max_grad_norm_seen = 0.0
        self.order: list[int] = []

    def configure_optimizers(self, factory):
        pairs = [factory([{"params": p.parameters(), "name": f"part{i}"}]) for i, p in enumerate(self.parts)]
        for opt, _ in pairs:
            opt.register_step_pre_hook(self._record)
        return pairs

    def _record(self, optimizer, args, kwargs) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        self.max_grad_norm_seen = max(self.max_grad_norm_seen, float(norm))

    def _logits(self, image):
        x = image.flatten(1)
        for part in self.parts[:-1]:
            x = torch.relu(part(x))
        return self.parts[-1](x)

    def manual_step(self, batch, opt):
        losses = {}
        for i in range(3):
            opt.zero_grad(i)
            loss = F.cross_entropy(self._logits(batch["image"]), batch["expr"]) * 100.0
            opt.backward(loss)
            opt.step(i)
            self.order.append(i)
            losses[f"step{i}"] = loss.detach()
        return losses

    def predict(self, batch):
        return {"expr_logits": self._logits(batch["image"])}


class PixelLinear(Method):
    """A linear classifier on the flattened pixels, trained with cross-entropy; subclasses choose what
    `predict` returns."""

    Config = ToyConfig

    def __init__(self, config, data_info, backbone) -> None:
        super().__init__(config, data_info, backbone)
        self.head = nn.Linear(3 * data_info.image_size**2, data_info.num_classes)

    def training_step(self, batch):
        return {"ce": F.cross_entropy(self.logits(batch), batch["expr"])}

    def logits(self, batch):
        return self.head(batch["image"].flatten(1))

