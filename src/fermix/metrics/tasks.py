"""Which metrics score which label task: one table the engine reads instead of naming tasks itself.

Each row ties a predict output (`au_logits`, `va`) to the batch's label of the same task and gives
the two ways it is scored: a streaming torchmetrics `Metric` for per-epoch validation (DDP-safe sums)
and the exact split-level function the evaluation after training uses. Expression accuracy is not a
row: every method is scored on it, by fermix.metrics.expression. A new label task adds a row here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn
from torchmetrics import Metric

from fermix.metrics.abaw import AUMetrics, VAMetrics, au_scores, va_scores

if TYPE_CHECKING:
    from fermix.data.info import DataInfo


@dataclass(frozen=True)
class TaskMetric:
    """How one label task is scored: `output` of `predict` against the batch's `label`."""

    task: str  # the method's `tasks` entry that asks for it
    output: str  # the predict output key
    label: str  # the batch / targets key
    streaming: Callable[[DataInfo], Metric | None]  # None: the dataset cannot score it (no AU names)
    exact: Callable[[Tensor, Tensor], dict[str, float]]


def _au_streaming(info: DataInfo) -> Metric | None:
    names = info.extras.get("au_names") or []
    return AUMetrics(len(names)) if names else None


TASK_METRICS: tuple[TaskMetric, ...] = (
    TaskMetric("au", "au_logits", "au", _au_streaming, lambda logits, t: au_scores(logits.sigmoid(), t)),
    TaskMetric("va", "va", "va", lambda info: VAMetrics(), va_scores),
)


class StreamingTaskMetrics(nn.Module):
    """The validation metrics of the tasks a method predicts (a module, so they follow the device)."""

    def __init__(self, tasks: frozenset[str] | set[str], info: DataInfo) -> None:
        super().__init__()
        self.rows = {row.task: row for row in TASK_METRICS if row.task in tasks}
        built = {task: row.streaming(info) for task, row in self.rows.items()}
        self.metrics = nn.ModuleDict({task: metric for task, metric in built.items() if metric is not None})

    def _active(self) -> Iterator[tuple[TaskMetric, Metric]]:
        for task, metric in self.metrics.items():
            yield self.rows[task], metric

    def update(self, outputs: dict[str, Tensor], batch: dict[str, object]) -> None:
        for row, metric in self._active():
            if row.output in outputs and row.label in batch:
                metric.update(outputs[row.output].float(), batch[row.label])

    def compute_and_reset(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for _, metric in self._active():
            values.update({k: float(v) for k, v in metric.compute().items()})
            metric.reset()
        return values


def exact_task_metrics(outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, float]:
    """Every task metric the outputs and targets of a split allow (evaluation after training)."""
    scalars: dict[str, float] = {}
    for row in TASK_METRICS:
        if row.output in outputs and row.label in targets:
            scalars.update(row.exact(outputs[row.output], targets[row.label]))
    return {k: float(v) for k, v in scalars.items()}
