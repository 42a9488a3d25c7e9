"""The method contract (DESIGN §3).

A method is an `nn.Module` that owns its networks, losses and prediction logic — and nothing
else. The engine (fermix.engine) owns devices, DDP, AMP, logging, checkpoint files and progress;
a method never calls `.cuda()`, never writes files and never logs. What the engine asks:

- `requires`: batch keys the method reads; the datamodule checks the dataset supplies them.
- `tasks`: what it predicts (`expr`, `au`, `va`, `multimodal`).
- `__init__(config, data_info, backbone)`: build the networks, sized from `data_info` (the
  dataset's label space), never from a hard-coded class count. This is the spec's `build`.
- `training_step(batch) -> {name: loss}` for automatic optimisation: named loss terms, already
  weighted. The engine sums the terms that carry gradient, logs each as `train/<name>` and
  back-propagates. Terms without gradient (diagnostics) are logged, not summed.
- or, with `automatic_optimization = False`, `manual_step(batch, opt)` where `opt` is the
  engine's `ManualOptimization` handle (backward / step / zero_grad that respect AMP, DDP and
  clipping). IERN steps three optimizers per batch this way.
- `param_groups()`: several learning rates (each group may carry `lr_scale` or `lr`, and a
  `name` for the LR log), or `configure_optimizers(factory)` for several optimizers.
- `predict(batch) -> dict` with the standard keys (`expr_logits`, `au_logits`, `va`, and
  optionally `attention`, `uncertainty`, `features`). Every metric is computed from this dict.
- optional: `train_sampler(dataset)`, `on_train_epoch_start(epoch, max_epochs)` (ramps),
  `export()` (the inference-only module).
- optional, for incomplete labels: `train_sources(labels, seed)` names several training
  sources (one sampler each, e.g. one per task); the engine loads a batch from every source per
  step, hands `training_step` a `{source: batch}` dict and ends the epoch at the shortest one.
- optional, for staged training (teacher → students): `stages()` lists the stages; the engine
  runs one fit per stage (own optimizer, epochs, seed, best-epoch selection), starts each
  stage from the weights the previous one names (`Stage.next_from`: its best or last epoch) and
  calls `begin_stage(stage)` before each and `end_stages()` after the last. One checkpoint holds all.
- optional evaluation hooks, called by the engine's exact evaluation (engine/evaluate.py) and
  never during training: `evaluation_metrics(outputs, targets)` for split-level metrics the
  method defines (reported next to accuracy and stored in summary.json), and
  `evaluation_figures(batch)` for pictures of a few samples (written next to the confusion
  matrix). A method returns numbers and figures; the engine writes the files.
  `derived_metrics(values)` adds numbers computed from the engine's split metrics (e.g. a
  checkpoint-selection sum); `calibrate(outputs, targets)` fits post-hoc state (decision
  thresholds) on the validation split after training; the engine saves it in the checkpoint.
- optional, a sample unit other than one image: `dataset_wrapper` names a `DatasetWrapper` class
  (multitask_rnn: windows of frames, switched on by its own config key) that wraps each split's
  per-frame dataset; export and predict refuse checkpoints whose wrapper is on, in its words.
- optional, a paper's own evaluation protocol: `evaluation_protocols` lists `fermix.protocols.EvalProtocol`
  classes that `fermix test` offers for this method's checkpoints, each switched on by its own override
  (CausalMER's missing-modality test: `eval.remove=...`). Dataset adapters declare theirs the same way.

State that inference needs lives in parameters or registered buffers, so it travels in the
checkpoint's state dict.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

from torch import Tensor, nn

from fermix.errors import FermixError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from torch.optim import Optimizer
    from torch.utils.data import Dataset, Sampler

    from fermix.data.info import DataInfo
    from fermix.protocols import EvalProtocol

Batch = dict[str, Any]


class DatasetWrapper(ABC):
    """A method's own sample unit: wraps a split's per-frame dataset into what its model reads.

    Declared by `Method.dataset_wrapper` and switched on by the wrapper's own config key, so the
    engine wraps splits without knowing what the unit is (fermix.data.windows.FrameWindows).
    `key` names that config key: a method that does not declare the wrapper refuses a run that sets it.
    """

    key: ClassVar[str] = ""
    by_key: ClassVar[dict[str, type[DatasetWrapper]]] = {}  # every wrapper class defined, by its key

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.key:
            DatasetWrapper.by_key[cls.key] = cls

    @classmethod
    @abstractmethod
    def from_config(cls, config: Mapping[str, Any]) -> DatasetWrapper | None:
        """The wrapper a run's whole config asks for; None when its key is unset (one sample per image)."""

    @abstractmethod
    def wrap(
        self, frames: Dataset, records: pd.DataFrame, labels: Mapping[str, np.ndarray], split: str, seed: int
    ) -> Dataset:
        """The split's samples; the wrapped dataset may carry its own `collate_fn`."""

    @abstractmethod
    def task_labels(self, wrapped: Dataset, labels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One row of labels per wrapped sample, for per-task training sources."""

    @abstractmethod
    def describe(self) -> str:
        """What the model reads instead of one image, with the key that set it (used in refusals)."""


@dataclass
class MethodConfig:
    """Base of every method's config dataclass; the fields mirror configs/method/<name>.yaml."""


@dataclass(frozen=True)
class Stage:
    """One fit of a staged method: its name (a folder under checkpoints/), epochs and seed offset.

    `next_from`: which of this stage's weights the following stages start from, `best` (the epoch
    validation selected) or `last` (the final epoch). `epochs_key`: the config key that sets
    `max_epochs` (named when a user sets trainer.max_epochs, which stages do not read).
    """

    name: str
    max_epochs: int
    seed_offset: int = 0
    next_from: str = "best"
    epochs_key: str = ""


class ExtraCheckpoint(NamedTuple):
    """A checkpoint the engine keeps next to best.ckpt and last.ckpt, selected on its own validation
    metric: `checkpoints/<filename>.ckpt` holds the epoch where `monitor` was best (`mode` min / max)."""

    filename: str
    monitor: str
    mode: str = "min"


class TrainSource(NamedTuple):
    """One training source: its sampler (yielding dataset indices) and its batch size as a multiple
    of `data.batch_size`."""

    sampler: Sampler
    batch_scale: int = 1


class ManualOptimization(Protocol):
    """What a manually optimised method may do with its optimizers (provided by the engine)."""

    def optimizer(self, index: int) -> Optimizer: ...
    def backward(self, loss: Tensor, **kwargs: Any) -> None: ...
    def step(self, index: int) -> None: ...
    def zero_grad(self, index: int) -> None: ...


# A factory the engine hands to `configure_optimizers`: builds one optimizer of the configured
# kind (optim/*.yaml) over the given parameter groups, and its scheduler (sched/*.yaml).
OptimizerFactory = Callable[[Iterable[dict[str, Any]]], "tuple[Optimizer, Any]"]


class Method(nn.Module):
    name: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    requires: ClassVar[frozenset[str]] = frozenset({"image", "expr"})
    tasks: ClassVar[tuple[str, ...]] = ("expr",)
    automatic_optimization: ClassVar[bool] = True
    # Config options naming weight files read at build time (e.g. `pretrained`); `fermix test`
    # sets them to None, since the checkpoint's state dict replaces what they would load.
    weight_files: ClassVar[tuple[str, ...]] = ()
    # True: validation also calls `evaluation_metrics` on the epoch's predictions (methods whose
    # selection metric is their own, e.g. IEMOCAP's average accuracy over four binary tasks).
    validation_uses_evaluation_metrics: ClassVar[bool] = False
    # True: validation also logs `val/loss`, the training loss on validation batches (for
    # ReduceLROnPlateau / selection on the loss, as CausalMER does). Automatic optimisation only.
    validation_loss: ClassVar[bool] = False
    # Checkpoints kept in addition to best.ckpt (checkpoint.monitor) and last.ckpt, each selected on its own
    # validation metric, e.g. CausalMER's best validation loss next to its best avg-acc (engine/callbacks.py).
    extra_checkpoints: ClassVar[tuple[ExtraCheckpoint, ...]] = ()
    # Under DDP, whether a step may leave some trainable parameters without gradient (each of several
    # optimizers' backward passes reaches only its own networks): the engine then runs DDP with
    # find_unused_parameters. None = True exactly for manually optimised methods.
    ddp_find_unused_parameters: ClassVar[bool | None] = None
    # What an output means where it is not the usual (fermix.json of `fermix export`), e.g. log-probabilities
    # of an ensemble in `expr_logits`.
    output_meanings: ClassVar[dict[str, str]] = {}
    # Extra evaluations `fermix test` offers for this method (fermix.protocols), each with its own override.
    evaluation_protocols: ClassVar[tuple[type[EvalProtocol], ...]] = ()
    # The sample unit when it is not one image (see DatasetWrapper); None = one sample per image.
    dataset_wrapper: ClassVar[type[DatasetWrapper] | None] = None

    def __init__(self, config: MethodConfig, data_info: DataInfo, backbone: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.data_info = data_info

    @classmethod
    def sample_wrapper(cls, config: Mapping[str, Any]) -> DatasetWrapper | None:
        """The dataset wrapper a run's config switches on for this method (None: single images); a key of
        another wrapper that the run sets is refused, since this method would not read it."""
        for key, owner in DatasetWrapper.by_key.items():
            value: Any = config
            for part in key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is not None and owner is not cls.dataset_wrapper:
                raise FermixError(f"{key} is read by methods that declare {owner.__name__}; method {cls.name} does not")
        return cls.dataset_wrapper.from_config(config) if cls.dataset_wrapper is not None else None

    @classmethod
    def make_config(cls, values: Mapping[str, Any]) -> MethodConfig:
        """The typed config from the YAML mapping (`name` dropped), checked against the `Config` dataclass
        (the method's schema, fermix.config_schema): an unknown key or a wrongly typed value is one sentence."""
        from omegaconf import OmegaConf
        from omegaconf.errors import ValidationError

        from fermix.config_schema import value_sentence

        values = {k: v for k, v in dict(values).items() if k != "name"}
        known = {f.name for f in fields(cls.Config)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FermixError(
                f"method {cls.name} has no option {unknown[0]!r}; its options: {', '.join(sorted(known))}"
            )
        try:
            return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls.Config), values))
        except ValidationError as exc:
            key = str(exc.full_key)
            raise FermixError(value_sentence(f"method.{key}", values.get(key), str(exc.msg))) from None

    # --- training -------------------------------------------------------------------------
    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        raise TypeError(f"method {self.name} implements neither training_step nor manual_step")

    def manual_step(self, batch: Batch, opt: ManualOptimization) -> dict[str, Tensor]:
        raise TypeError(f"method {self.name} sets automatic_optimization=False without manual_step")

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "name": "all"}]

    def configure_optimizers(self, factory: OptimizerFactory) -> list[tuple[Optimizer, Any]] | None:
        """Return [(optimizer, scheduler or None), ...] to use several optimizers; None = one from param_groups."""
        return None

    def unclipped_parameters(self) -> list[nn.Parameter]:
        """Parameters the engine's gradient clipping (trainer.gradient_clip_val) must not see: their
        gradient is scaled on purpose (IERN's centers, ×1/λ) and would otherwise shrink every other
        gradient of their optimizer. They are stepped as they are; default: none."""
        return []

    def train_sampler(self, dataset: Dataset) -> Sampler | None:
        return None

    def on_train_epoch_start(self, epoch: int, max_epochs: int) -> None:
        """Hook for schedules the method owns (ramps); default: nothing to do."""

    def train_sources(self, labels: Mapping[str, Any], seed: int) -> dict[str, TrainSource] | None:
        """Several training sources instead of one loader; `labels` are the train split's label
        arrays (`expr` (N,), `au` (N, A), `va` (N, 2); −1 / NaN = unlabelled). None = one loader."""
        return None

    # --- staged training (optional) ----------------------------------------------------------
    def stages(self) -> list[Stage]:
        """The fits to run one after the other; empty = one ordinary fit of `trainer.max_epochs`."""
        return []

    def begin_stage(self, stage: Stage) -> None:
        """Prepare the stage's fit (which parameters train, which are frozen). Called after seeding."""

    def end_stages(self) -> None:
        """All stages are done (or a staged checkpoint was loaded for evaluation)."""

    # --- inference ------------------------------------------------------------------------
    def predict(self, batch: Batch) -> dict[str, Tensor]:
        raise TypeError(f"method {self.name} does not implement predict")

    def export(self) -> nn.Module:
        """The inference-only module; by default the whole method (it has no training-only parts)."""
        return self

    # --- evaluation hooks (optional) --------------------------------------------------------
    # How many samples of each class the engine hands to `evaluation_figures` (0 = no figures).
    figure_samples_per_class: ClassVar[int] = 0

    def evaluation_metrics(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, float]:
        """Split-level metrics beyond the engine's; default: none.

        `outputs` are the split's `predict` outputs concatenated in split order (CPU, float), so
        per-sample values a method puts in its predict dict (e.g. an interpretability score) can
        be aggregated here; `targets` are the split's labels that the batches carry: `expr` in
        the model's label space (−1 = none), `au` (N, A) and `va` (N, 2) with NaN = none.
        Names must not clash with the engine's metrics (acc, macro_f1, au_score, ...).
        """
        return {}

    def derived_metrics(self, values: Mapping[str, float]) -> dict[str, float]:
        """Numbers computed from the engine's metrics of a split (validation and evaluation alike)."""
        return {}

    def calibrate(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> bool:
        """Fit post-hoc state on the validation split's predictions; True if state changed."""
        return False

    def evaluation_figures(self, batch: Batch) -> dict[str, Any]:
        """Pictures of a few evaluation samples: {name: matplotlib Figure or H×W×3 uint8 array}.

        The batch holds up to `figure_samples_per_class` samples of each class (collated, on the
        method's device, labels in the model's label space); the method is in eval mode under
        `torch.no_grad()`, so it may re-enable gradients (Grad-CAM by autograd) on these few
        samples. The engine writes each as `<name>_<split>.png`. Default: none.
        """
        return {}
