"""`causalmer`: MulT plus three unimodal branches and learned "no input" constants; the prediction is the
total indirect effect TIE = TE − NDE_T − NDE_A − NDE_V (Kim, Hong, Choi, Appl. Sci. 2024; spec §1).

The backbone (z_m), the branches (z_t, z_a, z_v) and Z_all are trained by the task's criterion (α·L_cls);
the constants by the KL term alone (β·L_kl); TIE never enters the loss. docs/methods/causalmer.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from fermix.data.info import DataInfo
from fermix.errors import FermixError
from fermix.methods.base import Batch, ExtraCheckpoint, Method, MethodConfig
from fermix.methods.causalmer.branches import build_branch
from fermix.methods.causalmer.fusion import check_fusion, counterfactual_outputs
from fermix.methods.causalmer.losses import kl_loss
from fermix.methods.mult.missing_modality import MissingModality
from fermix.methods.mult.task import MultimodalTask, modality_inputs, split_twin, task_of, with_twin
from fermix.models.fused import build_fused
from fermix.models.mult import MODALITIES

# The original's per-group learning rates (main.sh): m_lr, t_lr, a_lr, v_lr, c_{t,a,v}_lr.
DEFAULT_LR = {"mult": 2e-3, "text": 1e-6, "audio": 2e-3, "vision": 2e-3, "constants": 2e-3}


@dataclass
class CausalMERConfig(MethodConfig):
    fusion: str = "mask"  # mask (the released run) | sum (the paper's Sec. 4.3) | hm | tanh
    alpha: float = 0.1  # weight of L_cls (all four cross-entropies)
    beta: float = 1.0  # weight of L_kl
    constant_init: float = 0.0
    shared_constant: bool = False  # true: one c everywhere (CF-VQA); false: c_t, c_a, c_v and Z_0 on their sum
    kl_per_group: int | None = None  # null: softmax over all logits (faithful); 2: per IEMOCAP emotion pair
    kl_detach_p_te: bool = False  # true: CF-VQA's stop-gradient on p_te
    mosei_task: str = "cls"  # cls | regression (L_kl ≡ 0 then: warned)
    mosei_binary: str = "standard"  # MOSEI Acc2 / F1: standard | causalmer | mult (metrics.multimodal.mosei_metrics)
    text_branch: str = "transformer"  # transformer (small, offline) | albert (local weights) | mlp
    text_weights: str | None = None  # albert-base-v2 folder or state-dict file (text_branch=albert)
    audio_branch: str = "resnet18"  # resnet18 (the original) | mlp
    vision_branch: str = "resnet18"  # resnet18 (the original) | mlp
    branch_hidden: int = 64  # mlp branches
    text_width: int = 128  # transformer text branch
    text_layers: int = 2
    text_heads: int = 4
    lr: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LR))
    mult: dict[str, Any] = field(default_factory=dict)  # MulTConfig options (models/mult.py)
    fused: str = "mult"  # z_m's model: mult (MulT) | mlp (time-averaged MLP, the spec's §6.2 stand-in; models/fused.py)
    fused_hidden: int = 128  # fused=mlp: units per hidden layer
    fused_depth: int = 2  # fused=mlp: hidden layers
    iemocap_head: str = "pairs"  # IEMOCAP shape: pairs (4 binary tasks, the original) | softmax (one 4-way choice)


class CausalMER(Method):
    name = "causalmer"
    Config = CausalMERConfig
    requires = frozenset({"text", "audio", "vision", "expr"})
    tasks = ("multimodal",)
    evaluation_protocols = (MissingModality,)  # fermix test ... eval.remove=[t, av] | all
    weight_files: ClassVar[tuple[str, ...]] = ("text_weights",)
    validation_uses_evaluation_metrics = True
    validation_loss = True  # the original schedules ReduceLROnPlateau on the validation L
    # The original keeps the best-validation-loss model next to the best-avg-acc one: checkpoints/best_loss.ckpt.
    extra_checkpoints = (ExtraCheckpoint("best_loss", "val/loss", "min"),)

    def __init__(self, config: CausalMERConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        super().__init__(config, data_info, backbone)
        self.fusion = check_fusion(config.fusion)
        unknown = sorted(set(config.lr) - set(DEFAULT_LR))
        if unknown:
            raise FermixError(f"method.lr names group {unknown[0]!r}; the groups are {', '.join(DEFAULT_LR)}")
        self.task: MultimodalTask = task_of(
            data_info, self.name, config.mosei_task, config.mosei_binary, config.iemocap_head
        )
        out_dim = self.task.out_dim
        if config.kl_per_group and out_dim % int(config.kl_per_group):
            raise FermixError(f"kl_per_group={config.kl_per_group} does not divide the {out_dim} output logits")
        if self.task.regression:
            warnings.warn(
                "causalmer with mosei_task=regression: softmax over one logit is 1, so L_kl is identically 0 and "
                "the constants never train (spec §1.5); mosei_task=cls is the setting that debiases",
                stacklevel=2,
            )
        shapes = data_info.extras["modalities"]
        self.mult = build_fused(config.fused, shapes, out_dim, config.mult, config.fused_hidden, config.fused_depth)
        options = {"hidden": config.branch_hidden, "text_width": config.text_width, "text_layers": config.text_layers,
                   "text_heads": config.text_heads, "text_weights": config.text_weights}  # fmt: skip
        kinds = {"text": config.text_branch, "audio": config.audio_branch, "vision": config.vision_branch}
        self.branches = nn.ModuleDict({m: build_branch(kinds[m], m, shapes[m], out_dim, options) for m in MODALITIES})
        names = ("constant",) if config.shared_constant else ("constant_t", "constant_a", "constant_v")
        self.constants = nn.ParameterDict({n: nn.Parameter(torch.tensor(float(config.constant_init))) for n in names})

    # --- the causal forward ------------------------------------------------------------------
    def constant_values(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(c_t, c_a, c_v, c_ref): the original's c_ref = c_t + c_a + c_v; with shared_constant all four are c."""
        if self.config.shared_constant:
            c = self.constants["constant"]
            return c, c, c, c
        c_t, c_a, c_v = (self.constants[f"constant_{k}"] for k in "tav")
        return c_t, c_a, c_v, c_t + c_a + c_v

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        text, audio, vision = modality_inputs(batch)
        z_m, hidden = self.mult(text, audio, vision)
        z = {m: self.branches[m](x) for m, x in zip(MODALITIES, (text, audio, vision), strict=True)}
        out = counterfactual_outputs(self.fusion, z_m, z["text"], z["audio"], z["vision"], *self.constant_values())
        return {**out, "logits_m": z_m, "logits_t": z["text"], "logits_a": z["audio"], "logits_v": z["vision"],
                "hidden": hidden}  # fmt: skip

    # --- training -----------------------------------------------------------------------------
    def losses(self, out: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        """{"cls": α·L_cls, "kl": β·L_kl} from a forward's outputs (spec §1.5)."""
        task = self.task
        cls = sum(task.loss(out[k], batch) for k in ("logits_te", "logits_t", "logits_a", "logits_v"))
        kl = kl_loss(out, self.config.kl_per_group, self.config.kl_detach_p_te)
        return {"cls": self.config.alpha * cls, "kl": self.config.beta * kl}

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        return self.losses(self(batch), batch)

    def param_groups(self) -> list[dict[str, Any]]:
        """The original's Adam groups: MulT, each branch, and the constants, each with its own LR."""
        lr = {**DEFAULT_LR, **self.config.lr}
        groups = [{"params": list(self.mult.parameters()), "lr": float(lr["mult"]), "name": "mult"}]
        for m in MODALITIES:
            groups.append({"params": list(self.branches[m].parameters()), "lr": float(lr[m]), "name": m})
        groups.append({"params": list(self.constants.parameters()), "lr": float(lr["constants"]), "name": "constants"})
        return groups

    def _prediction_metrics(self, outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, float]:
        values = self.task.metrics(outputs["logits"], targets)
        prefixes = (("te_", "logits_te"), ("m_", "logits_m"), ("t_", "logits_t"), ("a_", "logits_a"),
                    ("v_", "logits_v"))  # fmt: skip
        for prefix, key in prefixes:
            if key in outputs:
                values.update(self.task.metrics(outputs[key], targets, prefix=prefix))
        return values

    # --- inference ----------------------------------------------------------------------------
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        out = self(batch)
        tie = out["logits_tie"]
        branches = {k: out[k] for k in ("logits_t", "logits_a", "logits_v")}
        return with_twin(batch, {"logits": tie, "logits_te": out["logits_te"], "logits_m": out["logits_m"], **branches,
                                 "hidden": out["hidden"], **self.task.prediction_outputs(tie)})  # fmt: skip

    def evaluation_metrics(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, float]:
        """The task's metrics of the TIE prediction, plus avg_acc (and top1_acc) of Z_all (te_), of MulT alone
        (m_) and of each branch alone (t_, a_, v_), and the constants' current values (c_t, c_a, c_v or c).
        Validation logs these every epoch (val/...): how TIE, TE, the backbone, the branches and the constants
        move during training. On a split with a validation twin (synthetic_mm), twin_<metric> of the twin too."""
        values = split_twin(self._prediction_metrics, outputs, targets)
        for name, c in self.constants.items():
            values[name.replace("constant", "c")] = float(c.detach())
        return values
