"""The multimodal task a dataset poses, read from its DataInfo (never from its name): output size, the
criterion on the original's views, the extra prediction keys and the split-level metrics (spec §1.5, §4).

- `iemocap4`: four binary emotions. The network has 2 logits per emotion (out_dim 8, pair order as the
  label space); the criterion is cross-entropy over `logits.view(-1, 2)` against `labels.view(-1)`.
  With `iemocap_head=softmax` (an option, not the original) the network has one logit per emotion and
  the criterion is one K-way cross-entropy over the samples with exactly one emotion present (the others
  are ignored); its metrics read the K logits as K binary answers with only the argmax present.
- `mosei7`: sentiment. `cls` (default): 7 classes (round(score) + 3), 7-way cross-entropy, and the logits
  are also given as `expr_logits` so the engine's accuracy and confusion matrix work. `regression`: one
  output, L1 against the score (the original's `--mosei_task regression`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from fermix.data.info import DataInfo
from fermix.errors import FermixError

TASKS = ("iemocap4", "mosei7")
MOSEI_TASKS = ("cls", "regression")
IEMOCAP_HEADS = ("pairs", "softmax")
MOSEI_BINARY = ("standard", "causalmer", "mult")  # = fermix.metrics.multimodal.MOSEI_BINARY (no numpy import here)


@dataclass(frozen=True)
class MultimodalTask:
    kind: str  # iemocap4 | mosei7
    num_classes: int  # emotions (iemocap4) or sentiment classes (mosei7)
    regression: bool = False
    mosei_binary: str = "standard"  # MOSEI Acc2 / F1 definition (metrics.multimodal.mosei_metrics `binary`)
    iemocap_head: str = "pairs"  # pairs (K binary tasks, the original) | softmax (one K-way choice)

    @property
    def softmax(self) -> bool:
        return self.kind == "iemocap4" and self.iemocap_head == "softmax"

    @property
    def out_dim(self) -> int:
        if self.kind == "iemocap4":
            return self.num_classes if self.softmax else 2 * self.num_classes
        return 1 if self.regression else self.num_classes

    @property
    def loss_name(self) -> str:
        return "l1" if self.regression else "ce"

    def views(self, logits: Tensor, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """The (prediction, target) pair the criterion compares, shaped as the original reshapes them."""
        if self.softmax:
            return logits, single_label(batch["expr"])
        if self.kind == "iemocap4":
            return logits.reshape(-1, 2), batch["expr"].reshape(-1).long()
        if self.regression:
            return logits, batch["score"].reshape(-1, 1).to(logits.dtype)
        return logits, batch["expr"].reshape(-1).long()

    def loss(self, logits: Tensor, batch: dict[str, Any]) -> Tensor:
        prediction, target = self.views(logits, batch)
        if self.regression:
            return F.l1_loss(prediction, target)
        return F.cross_entropy(prediction, target, ignore_index=-1)

    def prediction_outputs(self, logits: Tensor) -> dict[str, Tensor]:
        """Extra predict keys: MOSEI-cls logits double as `expr_logits` (one 7-way classification)."""
        if self.kind == "mosei7" and not self.regression:
            return {"expr_logits": logits}
        return {}

    def metrics(self, logits: Tensor, targets: dict[str, Tensor], prefix: str = "") -> dict[str, float]:
        """Split metrics of one logit set (spec §4). `avg_acc` is the selection metric for both tasks:
        IEMOCAP's mean of the 4 accuracies, MOSEI's Acc7 (what the CausalMER code returns as avg_acc).
        With a prefix only `<prefix>avg_acc` (and IEMOCAP's `<prefix>top1_acc`) is returned (the
        backbone-vs-TE-vs-TIE ablation)."""
        from fermix.metrics.multimodal import iemocap_metrics, mosei_cls_scores, mosei_metrics

        if self.kind == "iemocap4":
            values = dict(iemocap_metrics(as_pairs(logits) if self.softmax else logits, targets["expr"]))
        else:
            scores = logits.reshape(-1) if self.regression else mosei_cls_scores(logits)
            truth = targets["score"] if "score" in targets else targets["expr"].float() - 3.0
            values = dict(mosei_metrics(scores, truth, binary=self.mosei_binary))
            values["avg_acc"] = values["acc7"]
        values = {k: float(v) for k, v in values.items()}
        if not prefix:
            return values
        return {f"{prefix}{k}": values[k] for k in ("avg_acc", "top1_acc") if k in values}


def single_label(labels: Tensor) -> Tensor:
    """(N, K) presence labels -> (N,) the present emotion, -1 (ignored by the criterion) unless exactly one is."""
    labels = torch.as_tensor(labels)
    return torch.where(labels.sum(dim=1) == 1, labels.argmax(dim=1), torch.full_like(labels[:, 0], -1)).long()


def as_pairs(logits: Tensor) -> Tensor:
    """(N, K) softmax logits -> (N, K, 2) [absent, present] pairs whose margin is positive only for the argmax:
    present − absent = z_k − max_{j≠k} z_j, so the K-way reading (top1) is the same argmax."""
    z = torch.as_tensor(logits).double()
    top2 = z.topk(2, dim=1).values
    others_max = torch.where(z >= top2[:, :1], top2[:, 1:2], top2[:, :1])
    return torch.stack([torch.zeros_like(z), z - others_max], dim=-1)


def task_of(
    data_info: DataInfo,
    method_name: str,
    mosei_task: str = "cls",
    mosei_binary: str = "standard",
    iemocap_head: str = "pairs",
) -> MultimodalTask:
    """The task from DataInfo.extras["task"]; refuses image datasets and unknown tasks in one sentence."""
    kind = data_info.extras.get("task")
    if kind is None or "modalities" not in data_info.extras:
        raise FermixError(
            f"method {method_name} needs a multimodal dataset (text, audio and vision sequences), "
            "e.g. dataset=iemocap, mosei or synthetic_mm"
        )
    if kind not in TASKS:
        raise FermixError(f"method {method_name} knows the tasks {', '.join(TASKS)}, not `{kind}`")
    if mosei_task not in MOSEI_TASKS:
        raise FermixError(f"mosei_task must be cls or regression, not `{mosei_task}`")
    if mosei_binary not in MOSEI_BINARY:
        raise FermixError(f"mosei_binary must be one of {', '.join(MOSEI_BINARY)}, not `{mosei_binary}`")
    if iemocap_head not in IEMOCAP_HEADS:
        raise FermixError(f"iemocap_head must be pairs or softmax, not `{iemocap_head}`")
    if iemocap_head == "softmax" and kind != "iemocap4":
        raise FermixError(f"iemocap_head=softmax is for the four IEMOCAP emotions; the {kind} task has its own head")
    regression = kind == "mosei7" and mosei_task == "regression"
    if regression and "score" not in data_info.keys:
        raise FermixError(f"method {method_name} with mosei_task=regression needs `score`, which the dataset lacks")
    return MultimodalTask(kind, data_info.num_classes, regression, mosei_binary, iemocap_head)


def with_twin(batch: dict[str, Any], outputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Pass a batch's `twin` flag (synthetic_mm's val_twin) through to the outputs, for `split_twin`."""
    if "twin" in batch:
        outputs["twin"] = torch.as_tensor(batch["twin"]).reshape(-1)
    return outputs


def split_twin(
    metrics: Callable[[dict[str, Tensor], dict[str, Tensor]], dict[str, float]],
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
) -> dict[str, float]:
    """`metrics` of the samples without the twin flag, and `twin_<name>` of those with it (a second validation
    variant in the same split: one training, two selections); just `metrics` when no sample carries the flag."""
    if "twin" not in outputs:
        return metrics(dict(outputs), dict(targets))
    twin = outputs["twin"].reshape(-1) > 0.5

    def part(mask: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        return {k: v[mask] for k, v in outputs.items() if k != "twin"}, {k: v[mask] for k, v in targets.items()}

    values = metrics(*part(~twin))
    if bool(twin.any()):
        values.update({f"twin_{k}": v for k, v in metrics(*part(twin)).items()})
    return values


def modality_inputs(batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """(text, audio, vision) as float tensors: float64 stays float64 (a float64 model, e.g. the parity tests),
    anything else becomes float32."""

    def as_float(x: Any) -> Tensor:
        x = torch.as_tensor(x)
        return x if x.dtype == torch.float64 else x.float()

    return tuple(as_float(batch[k]) for k in ("text", "audio", "vision"))  # type: ignore[return-value]
