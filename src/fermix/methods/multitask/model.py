"""Multitask AU / expression / valence-arousal from incomplete labels, teacher → students (spec §0-§5).

One network = backbone + three heads (EXPR, AU, VA as 2×20 bins). Training runs as stages: a
teacher on ground truth only, then `n_students` freshly initialised students, each distilled from
the frozen teacher (eval mode, no grad). All members live in one module, so one checkpoint holds
the ensemble; `predict` is the ensemble (students, optionally + teacher) unless a stage is
training, when it is the member being trained (validation selects each member's best epoch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from fermix.data.info import DataInfo
from fermix.errors import FermixError
from fermix.methods.base import Batch, Method, MethodConfig, Stage, TrainSource
from fermix.methods.multitask.losses import TASKS, LossWeights, student_loss, teacher_loss
from fermix.methods.multitask.va import decode_va
from fermix.models.backbones import build_backbone

BATCH_KEY = {"expr": "expr", "au": "au", "va": "va"}


@dataclass
class MultitaskConfig(MethodConfig):
    head_hidden: int = 128  # the 128-d "feature" of each head
    va_bins: int = 20
    lambda_expr: float = 1.0
    lambda_au: float = 8.0
    lambda_v: float = 1.0
    lambda_a: float = 1.0
    lambda_ccc: float = 1.0
    lambda_teacher: float = 0.4  # λ_T: weight of distillation on the head that has ground truth
    temperature: float = 1.5
    n_students: int = 5
    teacher_epochs: int = 8
    student_epochs: int = 3
    teacher_weights: str = "last"  # last (the original distils from the final epoch) | best (the val-selected one)
    teacher_ckpt: str | None = None  # a multitask checkpoint whose teacher (member 0) the students distil from
    batching: str = "per_task"  # per_task (one forward per task sub-batch, the original) | masked (one mixed batch)
    balance: bool = True  # the samplers of spec §3 (--force_balance); false = plain shuffle per task
    mlros_weight: str = "code"  # code (w = c_i/N, the original) | intended (w = (1 + c_i)/N)
    seed_students: bool = True  # [fix] each student seeded (seed + k); the original sets no seed
    threshold_search: str = "pr_breakeven"  # pr_breakeven (the original) | max_f1 | none (0.5)
    threshold_members: str = "last"  # last (the original's indentation bug) | mean (the intent)
    ensemble: str = "students"  # students | all (students + teacher)
    stages: str = "all"  # all | teacher (stop after the teacher)
    train_tasks: tuple[str, ...] = TASKS  # tasks whose labels train (a subset = single-task baselines)


def _head(features: int, hidden: int, n_out: int) -> nn.Sequential:
    """BN1d → Linear → ReLU → BN1d (the 128-d feature) → Linear."""
    return nn.Sequential(
        nn.BatchNorm1d(features),
        nn.Linear(features, hidden),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(hidden),
        nn.Linear(hidden, n_out),
    )


class MultitaskNet(nn.Module):
    """Backbone + one head per task, in the original's order [EXPR, AU, VA]."""

    def __init__(self, backbone: Mapping[str, Any], sizes: Mapping[str, int], hidden: int) -> None:
        super().__init__()
        self.backbone = build_backbone(dict(backbone))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.heads = nn.ModuleDict({t: _head(self.backbone.out_channels, hidden, sizes[t]) for t in TASKS})

    def forward(self, image: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """-> ({task: logits}, {task: 128-d feature}) — the feature feeds the CNN-RNN variant."""
        x = self.pool(self.backbone(image)).flatten(1)
        outputs, features = {}, {}
        for task, head in self.heads.items():
            feat = head[:4](x)
            features[task] = feat
            outputs[task] = head[4](feat)
        return outputs, features


class Multitask(Method):
    name = "multitask"
    Config = MultitaskConfig
    requires = frozenset({"image"})
    tasks = ("expr", "au", "va")
    output_meanings: ClassVar[dict[str, str]] = {
        "expr_logits": "log of the ensemble's mean expression probability per class (softmax gives it back)"
    }

    def __init__(self, config: MultitaskConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        super().__init__(config, data_info, backbone)
        _check(config)
        au_names = list(data_info.extras.get("au_names") or [])
        if not au_names:
            raise FermixError("method multitask needs a dataset with action-unit labels (`au`); this one has none")
        self.backbone_cfg = dict(backbone)
        self.sizes = {"expr": data_info.num_classes, "au": len(au_names), "va": 2 * config.va_bins}
        self.weights = LossWeights(
            expr=config.lambda_expr, au=config.lambda_au, v=config.lambda_v, a=config.lambda_a,
            lambda_ccc=config.lambda_ccc, bins=config.va_bins,
        )  # fmt: skip
        n_members = 1 if config.stages == "teacher" else 1 + config.n_students
        self.members = nn.ModuleList([self._make_member() for _ in range(n_members)])
        self.register_buffer("au_thresholds", torch.full((len(au_names),), 0.5))
        self.active: int | None = None  # the member a stage trains; None = inference (the ensemble)
        self._teacher_loaded = False  # teacher_ckpt read into member 0 (once per process)

    def _make_member(self) -> MultitaskNet:
        return MultitaskNet(self.backbone_cfg, self.sizes, self.config.head_hidden)

    @property
    def member_names(self) -> list[str]:
        return ["teacher"] + [f"student{k}" for k in range(len(self.members) - 1)]

    # --- stages -----------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        """Teacher, then the students. With `teacher_ckpt` the teacher is loaded, not trained."""
        stages = []
        if not self.config.teacher_ckpt:
            teacher = Stage("teacher", self.config.teacher_epochs, epochs_key="method.teacher_epochs")
            stages.append(replace(teacher, next_from=self.config.teacher_weights))
        if self.config.stages == "all":
            offset = 1 if self.config.seed_students else 0
            stages += [
                Stage(
                    name, self.config.student_epochs, seed_offset=(k + 1) * offset, epochs_key="method.student_epochs"
                )
                for k, name in enumerate(self.member_names[1:])
            ]
        return stages

    def begin_stage(self, stage: Stage) -> None:
        """Re-create the stage's member (fresh heads; backbone from its initial weights) and freeze the rest."""
        index = self.member_names.index(stage.name)
        if index > 0 and self.config.teacher_ckpt and not self._teacher_loaded:
            # into the existing member: no random init, so the students' seeds give the same students
            # as in the run the teacher came from
            self.members[0].load_state_dict(load_teacher(self.config.teacher_ckpt, self))
            self._teacher_loaded = True
        self.members[index] = self._make_member()
        self.active = index
        for k, member in enumerate(self.members):
            member.requires_grad_(k == index)
        self.train(self.training)

    def end_stages(self) -> None:
        self.active = None
        self.members.requires_grad_(False)

    def train(self, mode: bool = True) -> Multitask:
        """Only the member being trained follows `mode`: the teacher distils in eval mode (BN running
        statistics, no dropout) and finished members stay as they were selected."""
        super().train(mode)
        if self.active is not None:
            for k, member in enumerate(self.members):
                if k != self.active:
                    member.eval()
        return self

    def param_groups(self) -> list[dict[str, Any]]:
        if self.active is None:
            raise RuntimeError("multitask trains one member per stage; begin_stage was not called")
        return [{"params": list(self.members[self.active].parameters()), "name": self.member_names[self.active]}]

    # --- data ------------------------------------------------------------------------------
    def train_sources(self, labels: Mapping[str, Any], seed: int) -> dict[str, TrainSource]:
        from fermix.data.samplers import ClassBalancedSampler
        from fermix.methods.multitask.samplers import MLROSSampler, SubsetShuffleSampler, VAHistogramSampler

        present = {t: _labelled(t, labels) for t in self.config.train_tasks if t in labels}
        present = {t: rows for t, rows in present.items() if len(rows)}
        if not present:
            raise FermixError("the training split has no expression, AU or VA label to train multitask on")
        if self.config.batching == "masked":
            rows = np.unique(np.concatenate(list(present.values())))
            return {"mixed": TrainSource(SubsetShuffleSampler(rows.tolist(), seed), batch_scale=len(present))}
        sources = {}
        for task, rows in present.items():
            if not self.config.balance:
                sampler = SubsetShuffleSampler(rows.tolist(), seed + TASKS.index(task))
            elif task == "expr":
                sampler = ClassBalancedSampler(labels["expr"].tolist(), seed)
            elif task == "au":
                sampler = MLROSSampler(labels["au"], seed + 1, weight=self.config.mlros_weight)
            else:
                sampler = VAHistogramSampler(labels["va"], seed + 2)
            sources[task] = TrainSource(sampler)
        return sources

    # --- training ---------------------------------------------------------------------------
    def _groups(self, batch: Batch, net: MultitaskNet) -> tuple[dict[str, dict[str, Tensor]], dict[str, Tensor], dict]:
        """Forward the batch and cut it into task groups: {task: head outputs on the task's rows}.

        per_task: batch = {task: sub-batch}, one forward pass each (BN sees single-task batches, as
        in the original). masked: batch = {"mixed": batch}, one pass, groups = rows labelled for
        the task. Also returns each group's targets and the rows (to run the teacher on).
        """
        groups: dict[str, dict[str, Tensor]] = {}
        targets: dict[str, Tensor] = {}
        images: dict[str, Tensor] = {}
        if "mixed" in batch:
            mixed = batch["mixed"]
            outputs, _ = net(mixed["image"])
            for task in TASKS:
                if task not in mixed:
                    continue
                rows = _label_mask(task, mixed[task])
                groups[task] = {k: v[rows] for k, v in outputs.items()}
                targets[task] = mixed[task][rows]
                images[task] = mixed["image"][rows]
        else:
            for task, sub in batch.items():
                outputs, _ = net(sub["image"])
                groups[task] = outputs
                targets[task] = sub[task]
                images[task] = sub["image"]
        return groups, targets, images

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        if self.active is None:
            raise RuntimeError("multitask trains one member per stage; begin_stage was not called")
        net = self.members[self.active]
        groups, targets, images = self._groups(batch, net)
        if self.active == 0:
            return teacher_loss(groups, targets, self.weights)
        teacher = self.members[0]
        with torch.no_grad():
            taught = {task: teacher(images[task])[0] for task in groups}
        return student_loss(
            groups, taught, targets,
            lambda_teacher=self.config.lambda_teacher, temperature=self.config.temperature, w=self.weights,
        )  # fmt: skip

    # --- inference ----------------------------------------------------------------------------
    def _member_outputs(self, member: MultitaskNet, image: Tensor) -> dict[str, Tensor]:
        outputs, _ = member(image)
        return {
            "expr_prob": outputs["expr"].softmax(-1),
            "au_prob": outputs["au"].sigmoid(),
            "va": decode_va(outputs["va"], self.config.va_bins),
            "raw": outputs,
        }

    def ensemble_indices(self) -> list[int]:
        students = list(range(1, len(self.members)))
        if not students:  # a teacher-only run predicts with its teacher
            return [0]
        return ([0] if self.config.ensemble == "all" else []) + students

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        image = batch["image"]
        if self.active is not None:  # validation inside a stage: the member being trained
            out = self._member_outputs(self.members[self.active], image)
            raw = out["raw"]
            return {"expr_logits": raw["expr"], "au_logits": raw["au"], "va": out["va"], "va_logits": raw["va"]}
        per_member = [self._member_outputs(m, image) for m in self.members]
        chosen = [per_member[k] for k in self.ensemble_indices()]
        expr_prob = torch.stack([o["expr_prob"] for o in chosen]).mean(0)  # mean of softmax, then argmax
        au_prob = torch.stack([o["au_prob"] for o in chosen]).mean(0)  # mean of σ, then the thresholds
        va = torch.stack([o["va"] for o in chosen]).mean(0)  # per-member expectation, then the mean
        return {
            "expr_logits": expr_prob.clamp_min(1e-12).log(),
            "au_logits": torch.logit(au_prob, eps=1e-6),
            "au_pred": (au_prob > self.au_thresholds).float(),
            "va": va,
            "members_expr_prob": torch.stack([o["expr_prob"] for o in per_member], 1),
            "members_au_prob": torch.stack([o["au_prob"] for o in per_member], 1),
            "members_va": torch.stack([o["va"] for o in per_member], 1),
        }

    # --- evaluation ----------------------------------------------------------------------------
    def derived_metrics(self, values: Mapping[str, float]) -> dict[str, float]:
        """`select` = AU score (thr 0.5) + EXPR score + CCC_V + CCC_A, the original's checkpoint rule."""
        out: dict[str, float] = {}
        if "acc" in values and "macro_f1" in values:
            out["expr_score"] = 0.67 * values["macro_f1"] + 0.33 * values["acc"]
        trained = self.config.train_tasks
        parts = [
            values.get("au_score") if "au" in trained else None,
            out.get("expr_score") if "expr" in trained else None,
            values.get("ccc_v") if "va" in trained else None,
            values.get("ccc_a") if "va" in trained else None,
        ]
        out["select"] = float(sum(p for p in parts if p is not None and np.isfinite(p)))
        return out

    def evaluation_metrics(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, float]:
        """ABAW scores of every member, the mean single student and the ensemble, all at AU threshold 0.5
        (comparable), plus the ensemble's AU scores at the thresholds tuned on validation (`*_tuned`)."""
        from fermix.metrics.abaw import au_scores, expr_scores, va_scores

        if "members_expr_prob" not in outputs:  # evaluated inside a stage
            return {}

        def scores(expr_prob: Tensor, au_prob: Tensor, va: Tensor, thresholds: Any = 0.5) -> dict[str, float]:
            s: dict[str, float] = {}
            if "expr" in targets:
                s.update(expr_scores(expr_prob, targets["expr"]))
            if "au" in targets:
                s.update(au_scores(au_prob, targets["au"], thresholds))
            if "va" in targets:
                s.update(va_scores(va, targets["va"]))
            return {k: float(v) for k, v in s.items() if k in HEADLINE}

        out: dict[str, float] = {}
        per_student = []
        for k, name in enumerate(self.member_names):
            s = scores(
                outputs["members_expr_prob"][:, k], outputs["members_au_prob"][:, k], outputs["members_va"][:, k]
            )
            out.update({f"{name}/{key}": v for key, v in s.items()})
            if k > 0:
                per_student.append(s)
        if per_student:
            for key in per_student[0]:
                out[f"students_mean/{key}"] = float(np.mean([s[key] for s in per_student]))
        ens_au = outputs["au_logits"].sigmoid()
        ens = scores(outputs["expr_logits"].exp(), ens_au, outputs["va"])
        out.update({f"ensemble/{key}": v for key, v in ens.items()})
        if "au" in targets:
            tuned = au_scores(ens_au, targets["au"], self.au_thresholds)
            out.update({f"ensemble/{k}_tuned": float(tuned[k]) for k in ("au_score", "au_f1", "au_acc")})
        return out

    def calibrate(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> bool:
        """Per-AU thresholds on the validation split (spec §5), from the ensemble members' σ."""
        from fermix.metrics.abaw import average_thresholds, search_thresholds

        if self.config.threshold_search == "none" or "au" not in targets or "members_au_prob" not in outputs:
            return False
        found = [
            search_thresholds(outputs["members_au_prob"][:, k], targets["au"], method=self.config.threshold_search)
            for k in self.ensemble_indices()
        ]
        chosen = found[-1] if self.config.threshold_members == "last" else average_thresholds(found)
        self.au_thresholds.copy_(torch.as_tensor(np.asarray(chosen), dtype=self.au_thresholds.dtype))
        return True


HEADLINE = ("au_score", "au_f1", "au_acc", "expr_score", "expr_f1", "expr_acc", "ccc_v", "ccc_a", "va_score")


def _labelled(task: str, labels: Mapping[str, Any]) -> np.ndarray:
    """Row indices with ground truth for `task` (−1 / NaN = none)."""
    values = np.asarray(labels[task])
    if task == "expr":
        return np.flatnonzero(values >= 0)
    return np.flatnonzero(~np.isnan(values).any(axis=1))


def _label_mask(task: str, values: Tensor) -> Tensor:
    if task == "expr":
        return values >= 0
    return ~values.isnan().any(dim=1)


def _check(config: MultitaskConfig) -> None:
    choices = {
        "batching": ("per_task", "masked"),
        "mlros_weight": ("code", "intended"),
        "threshold_search": ("pr_breakeven", "max_f1", "none"),
        "threshold_members": ("last", "mean"),
        "ensemble": ("students", "all"),
        "stages": ("all", "teacher"),
        "teacher_weights": ("last", "best"),
    }
    for key, allowed in choices.items():
        value = getattr(config, key)
        if value not in allowed:
            raise FermixError(f"method.{key}={value} is not one of {', '.join(allowed)}")
    if config.n_students < 1 and config.stages == "all":
        raise FermixError("method.n_students must be at least 1 (or method.stages=teacher)")
    if config.teacher_ckpt and config.stages == "teacher":
        raise FermixError("method.teacher_ckpt skips the teacher stage, so method.stages=teacher has nothing to train")
    unknown = [t for t in config.train_tasks if t not in TASKS]
    if unknown or not config.train_tasks:
        raise FermixError(f"method.train_tasks={list(config.train_tasks)} must be a non-empty subset of {list(TASKS)}")


def load_teacher(path: str, method: Multitask) -> dict[str, Tensor]:
    """The teacher (member 0) of a fermix checkpoint of this method, checked against `method`'s run.

    Read with weights_only=True through the engine's loader; a checkpoint of another method, label
    space, AU list, backbone or head size ends in one sentence.
    """
    from fermix.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)  # one sentence for a missing, corrupt or non-fermix file
    meta = ckpt["fermix"]
    kind = meta.get("method") or meta.get("config", {}).get("method", {}).get("name")
    if kind != method.name:
        raise FermixError(f"method.teacher_ckpt {path} is a {kind} checkpoint, not a {method.name} one")
    if meta.get("label_space") != method.data_info.label_space.to_dict():
        raise FermixError(f"the teacher in {path} was trained on other expression classes than this dataset's")
    trained_aus = list(meta.get("data_info", {}).get("extras", {}).get("au_names") or [])
    if trained_aus != list(method.data_info.extras.get("au_names") or []):
        raise FermixError(f"the teacher in {path} was trained on other action units than this dataset's")
    trained = meta.get("config", {})
    trained_backbone = trained.get("backbone", {}).get("name")
    if trained_backbone != method.backbone_cfg.get("name"):
        raise FermixError(
            f"the teacher in {path} has backbone={trained_backbone}; train the students with the same one"
        )
    state = {k.removeprefix("method.members.0."): v for k, v in ckpt["state_dict"].items()
             if k.startswith("method.members.0.")}  # fmt: skip
    expected = method.members[0].state_dict()
    if state.keys() != expected.keys() or any(v.shape != expected[k].shape for k, v in state.items()):
        raise FermixError(
            f"the teacher in {path} does not fit this run's network (it was trained with backbone "
            f"{trained.get('backbone')} and head_hidden {trained.get('method', {}).get('head_hidden')}, va_bins "
            f"{trained.get('method', {}).get('va_bins')})"
        )
    return state
