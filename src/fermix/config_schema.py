"""Typed schemas of the configs, registered in Hydra's ConfigStore, so Hydra itself refuses a bad value.

The YAML files under configs/ keep the defaults and their comments; each names its schema first in its
defaults list (`train_schema`, `/schema/trainer/default@_here_`, `/schema/method/<name>@method`), and
composition then checks every key and type. Closed choices are Enums (str-valued, so code compares them
with plain strings); open ones (`trainer.devices`: 2, "auto", [0, 1]) are `Any`. A method's schema is its
own `Config` dataclass plus `name` — its options are written once, in the method's folder; a dataset
adapter's is its `Config` (fermix.data.datasets.base.DatasetConfig), named `/schema/dataset/<adapter>@_here_`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore


class Progress(StrEnum):
    auto = "auto"
    rich = "rich"
    plain = "plain"
    none = "none"


class SplitBy(StrEnum):
    sample = "sample"
    subject = "subject"


class BadImages(StrEnum):
    fail = "fail"
    skip = "skip"


class Mode(StrEnum):
    min = "min"
    max = "max"


@dataclass
class AugmentSchema:
    random_crop: bool = True
    hflip: float = 0.5
    rotation: float = 0.0
    color_jitter: float = 0.0
    ops: list[Any] | None = None


@dataclass
class DataSchema:
    batch_size: int = 64
    num_workers: int = 2
    image_size: int = 64
    resize: int = 72
    interpolation: str = "bilinear"
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    augment: AugmentSchema = field(default_factory=AugmentSchema)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    split_by: SplitBy = SplitBy.sample
    drop_last: bool = False
    bad_images: BadImages = BadImages.fail
    windows: Any | None = None  # a sequence method's frame windows (fermix.data.windows)


@dataclass
class ComputeSchema:
    threads: int | None = None
    channels_last: Any = "auto"  # true | false | auto
    compile: Any = False  # false | true | a torch.compile mode


@dataclass
class CheckpointSchema:
    monitor: str | None = "val/acc"
    mode: Mode = Mode.max
    extra: list[Any] = field(default_factory=list)


@dataclass
class EarlyStoppingSchema:
    patience: int | None = None
    min_delta: float = 0.0


@dataclass
class PathsSchema:
    runs_dir: str = "runs"
    data_dir: str = "datasets"
    pretrained_dir: str = "pretrained_models"


@dataclass
class TrainerSchema:
    """Lightning Trainer keyword arguments (`+trainer.<any>=` adds one); defaults are Lightning's."""

    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_epochs: int | None = 10
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1
    deterministic: Any = False
    benchmark: bool | None = False
    log_every_n_steps: int = 10
    num_sanity_val_steps: int = 2
    check_val_every_n_epoch: int | None = 1
    overfit_batches: float = 0.0  # the keys below are Lightning's defaults, here because debug/ configs set them
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None


@dataclass
class BackboneSchema:
    name: str = "???"
    pretrained: str | None = None  # null | a torchvision weights name | a PATH


@dataclass
class SmallCNNSchema(BackboneSchema):
    width: int = 32


@dataclass
class ResNetSchema(BackboneSchema):
    last_stride: int = 2


@dataclass
class FerPlusSchema(BackboneSchema):
    dropout: float = 0.5


BACKBONE_SCHEMAS = {"small_cnn": SmallCNNSchema, "resnet50_ferplus": FerPlusSchema}  # the others: ResNetSchema


class Interval(StrEnum):
    epoch = "epoch"
    step = "step"


class TableMode(StrEnum):
    lr = "lr"
    scale = "scale"


@dataclass
class PartialSchema:
    """A leaf object built by `_target_` (fermix.utils.targets); the engine supplies the rest."""

    _target_: str | None = None
    _partial_: bool = True


@dataclass
class AdamSchema(PartialSchema):
    lr: float = 1.0e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0


@dataclass
class SGDSchema(PartialSchema):
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5.0e-4


@dataclass
class NoSchedSchema:
    _target_: str | None = None


@dataclass
class SchedSchema(PartialSchema):
    interval: Interval = Interval.epoch  # Lightning's: step per epoch or per optimizer step


@dataclass
class CosineSchema(SchedSchema):
    t_max: int | None = None
    eta_min: float = 0.0


@dataclass
class StepSchema(SchedSchema):
    step_size: int = 10
    gamma: float = 0.1


@dataclass
class MultiStepSchema(SchedSchema):
    milestones: list[int] = field(default_factory=lambda: [30, 60])
    gamma: float = 0.1


@dataclass
class WarmupLinearSchema(SchedSchema):
    warmup_epochs: int = 5
    hold_epochs: int = 15
    decay_epochs: int = 140


@dataclass
class PlateauSchema(PartialSchema):
    monitor: str = "val/acc"
    mode: Mode = Mode.max
    factor: float = 0.1
    patience: int = 10


@dataclass
class TableSchema(PartialSchema):
    mode: TableMode = TableMode.lr
    groups: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggerSchema:
    tensorboard: bool = True
    csv: bool = True
    figures: bool = True
    sample_images: int = 16
    targets: dict[str, Any] = field(default_factory=dict)


LEAF_SCHEMAS = {
    "optim": {"adam": AdamSchema, "adamw": AdamSchema, "sgd": SGDSchema},
    "sched": {"none": NoSchedSchema, "cosine": CosineSchema, "step": StepSchema, "multistep": MultiStepSchema,
              "warmup_linear": WarmupLinearSchema, "plateau": PlateauSchema, "table": TableSchema},
    "logger": {"default": LoggerSchema},
}  # fmt: skip


@dataclass
class TrainSchema:
    seed: int = 42
    resume: str | None = None
    progress: Progress = Progress.auto
    data: DataSchema = field(default_factory=DataSchema)
    compute: ComputeSchema = field(default_factory=ComputeSchema)
    checkpoint: CheckpointSchema = field(default_factory=CheckpointSchema)
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    callbacks: dict[str, Any] = field(default_factory=dict)  # Lightning callbacks by `_target_`, by name
    # config groups: each option's YAML names its own schema (or, for now, has none)
    paths: Any = None
    optim: Any = None
    sched: Any = None
    method: Any = None
    backbone: Any = None
    dataset: Any = None
    trainer: Any = None
    logger: Any = None


def method_schema(cls: type) -> type:
    """A method's `Config` dataclass with the `name` its YAML carries."""
    return make_dataclass(f"{cls.__name__}Schema", [("name", str, field(default=cls.name))], bases=(cls.Config,))


def dataset_schema(cls: type) -> Any:
    """A dataset adapter's `Config` with its `name`, as the node its YAML files compose onto. The Config is
    frozen (options are read, not changed); the stored node is writable so the YAML and overrides can set it."""
    from omegaconf import OmegaConf

    node = OmegaConf.structured(cls.Config(name=cls.name))
    OmegaConf.set_readonly(node, False)
    return node


def register(config_dir: Path | None = None) -> None:
    """Store every schema (idempotent); called before any composition. A registered method without a
    YAML file in `config_dir` (a plugin, a test's toy method) becomes a `method=<name>` option as its schema."""
    from fermix.registry import BACKBONES, DATASETS, METHODS

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    store.store(group="schema/trainer", name="default", node=TrainerSchema)
    store.store(group="schema/paths", name="default", node=PathsSchema)
    for group, schemas in LEAF_SCHEMAS.items():
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)
    for name in BACKBONES.names():
        store.store(group="schema/backbone", name=name, node=BACKBONE_SCHEMAS.get(name, ResNetSchema)(name=name))
    for name in DATASETS.names():
        store.store(group="schema/dataset", name=name, node=dataset_schema(DATASETS.get(name)))
    for name in METHODS.names():
        store.store(group="schema/method", name=name, node=method_schema(METHODS.get(name)))
        if config_dir is not None and not (config_dir / "method" / f"{name}.yaml").is_file():
            store.store(group="method", name=name, node=method_schema(METHODS.get(name)))


# --- ranges a type cannot say (checked on the composed job before it starts) -----------------------------------
RANGES: dict[str, tuple[Any, str]] = {
    "data.batch_size": (lambda v: v >= 1, "at least 1"),
    "data.num_workers": (lambda v: v >= 0, "0 or more (0 = load in the training process)"),
    "data.image_size": (lambda v: v >= 1, "at least 1"),
    "data.resize": (lambda v: v >= 1, "at least 1"),
    "data.augment.hflip": (lambda v: 0 <= v <= 1, "a probability between 0 and 1"),
    "data.val_fraction": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "data.test_fraction": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "trainer.max_epochs": (lambda v: v >= 1, "at least 1 (or null)"),
    "optim.lr": (lambda v: v > 0, "positive"),
}


def check_ranges(cfg: Any) -> Any:
    """Refuse, in one sentence, a value its type admits but no run can use; return `cfg`."""
    from omegaconf import OmegaConf

    from fermix.errors import FermixError

    for key, (ok, words) in RANGES.items():
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        if isinstance(value, int | float) and not isinstance(value, bool) and not ok(value):
            raise FermixError(f"{key}={value} must be {words}")
    size, resize = (
        OmegaConf.select(cfg, f"data.{k}", throw_on_resolution_failure=False) for k in ("image_size", "resize")
    )
    if isinstance(size, int) and isinstance(resize, int) and size > resize:
        raise FermixError(
            f"data.image_size={size} is larger than data.resize={resize}: the crop would be "
            f"{100 * (1 - resize**2 / size**2):.0f}% black padding; set data.resize to at least {size}"
        )
    return cfg


# --- how a refused value reads (Hydra's composition, Method.make_config and the dataset adapters share it) ------
_KINDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "valid bool": "true or false"}
_KINDS["ListConfig"] = "a list such as [a, b]"


def value_sentence(key: str, got: Any, message: str, default: str = "") -> str:
    """OmegaConf's refusal of a value (its ValidationError message) as one sentence; `default` ends it."""
    if "is not Optional" in message or "Incompatible value 'None'" in message:
        return f"{key} cannot be null{default}"
    if "expected one of" in message:
        choices = message.split("[")[1].split("]")[0]
        if key.endswith("]"):  # one item of a list
            held = message.split("'")[1]
            return f"{key.partition('[')[0]}={got} holds `{held}`, which is not one of {choices}{default}"
        return f"{key}={got} is not one of {choices}{default}"
    kind = next((words for name, words in _KINDS.items() if name in message), "a mapping such as {key: value}")
    return f"{key} must be {kind}{default}, got `{got}`"


def option_text(value: Any) -> str:
    """A default as the YAML writes it: true, null, `word`, [a, b] (a config node is read as its plain value)."""
    from omegaconf import OmegaConf

    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if isinstance(value, list | tuple):
        return f"[{', '.join(str(v) for v in value)}]"
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    return f"`{value}`" if isinstance(value, str) else str(value)
