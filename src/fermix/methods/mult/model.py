"""`mult`: the plain fused MulT, the baseline CausalMER is judged against (same backbone, seed and protocol)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from fermix.data.info import DataInfo
from fermix.methods.base import Batch, ExtraCheckpoint, Method, MethodConfig
from fermix.methods.mult.missing_modality import MissingModality
from fermix.methods.mult.task import MultimodalTask, modality_inputs, split_twin, task_of, with_twin
from fermix.models.fused import build_fused


@dataclass
class MulTMethodConfig(MethodConfig):
    mult: dict[str, Any] = field(default_factory=dict)  # MulTConfig options (models/mult.py)
    fused: str = "mult"  # the fused model: mult (MulT) | mlp (time-averaged MLP, spec §6.2's stand-in; models/fused.py)
    fused_hidden: int = 128  # fused=mlp: units per hidden layer
    fused_depth: int = 2  # fused=mlp: hidden layers
    iemocap_head: str = "pairs"  # IEMOCAP shape: pairs (4 binary tasks, the original) | softmax (one 4-way choice)
    mosei_task: str = "cls"  # cls (7 classes) | regression (the score, L1)
    mosei_binary: str = "standard"  # MOSEI Acc2 / F1: standard | causalmer | mult (metrics.multimodal.mosei_metrics)


class MulTMethod(Method):
    name = "mult"
    Config = MulTMethodConfig
    requires = frozenset({"text", "audio", "vision", "expr"})
    tasks = ("multimodal",)
    evaluation_protocols = (MissingModality,)  # fermix test ... eval.remove=[t, av] | all
    validation_uses_evaluation_metrics = True  # avg_acc: IEMOCAP's mean of 4 accuracies, MOSEI's Acc7
    validation_loss = True  # val/loss drives ReduceLROnPlateau, as the original
    # The original keeps the best-validation-loss model next to the best-avg-acc one: checkpoints/best_loss.ckpt.
    extra_checkpoints = (ExtraCheckpoint("best_loss", "val/loss", "min"),)

    def __init__(self, config: MulTMethodConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        super().__init__(config, data_info, backbone)
        self.task: MultimodalTask = task_of(
            data_info, self.name, config.mosei_task, config.mosei_binary, config.iemocap_head
        )
        self.mult = build_fused(config.fused, data_info.extras["modalities"], self.task.out_dim, config.mult,
                                config.fused_hidden, config.fused_depth)  # fmt: skip

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return self.mult(*modality_inputs(batch))

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        logits, _ = self(batch)
        return {self.task.loss_name: self.task.loss(logits, batch)}

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        logits, hidden = self(batch)
        out = {"logits": logits, "logits_m": logits, "hidden": hidden, **self.task.prediction_outputs(logits)}
        return with_twin(batch, out)

    def evaluation_metrics(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, float]:
        """The task's metrics; on a split with a validation twin (synthetic_mm), also twin_<metric> of the twin."""
        return split_twin(lambda o, t: self.task.metrics(o["logits"], t), outputs, targets)
