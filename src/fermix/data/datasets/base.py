"""The dataset contract: what an adapter declares and provides, written once as a base class.

An adapter turns a dataset's published layout into records (one row per sample) and samples. The
datamodule, `fermix preprocess`, `fermix test` and the reports read only what this class declares;
`tests/data/datasets/test_contract.py` checks every registered dataset against it.

Required: `name`, `keys` (the batch keys a sample carries, DESIGN §1), `label_space`, `records()` and
`load(row)`. Everything else has a default an adapter overrides when it has something to say.

An adapter's options are its `Config` dataclass: the schema Hydra composes configs/dataset/<name>.yaml onto
(fermix.config_schema), and what `make_options` turns any mapping into (a composed config, a checkpoint's
stored plain dict, a test's dict), so the adapter reads typed values whichever way it was built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from fermix.errors import FermixError

if TYPE_CHECKING:
    from fermix.data.label_spaces import LabelSpace
    from fermix.data.raw import RawItem
    from fermix.protocols import EvalProtocol

C = TypeVar("C")
RECORD_COLUMNS = ("sample_id", "path")  # every adapter's records carry these; `split` and `subject` when known


@dataclass(frozen=True)
class DatasetConfig:
    """Base of every adapter's `Config`; the fields mirror configs/dataset/<name>.yaml. Frozen: options are
    read, never changed, after the config is checked."""

    name: str = ""  # the name runs are filed under (a preset's own, e.g. synthetic_bias)
    adapter: str | None = None  # a preset: the registered adapter that reads it (fermix.registry.dataset_adapter)


@dataclass(frozen=True)
class FolderConfig(DatasetConfig):
    """Options of a dataset read from files under one folder."""

    root: str | None = None  # the dataset's folder (checked by common.dataset_root)


class DatasetAdapter(ABC):
    """Base of every dataset adapter (registered in fermix.registry.DATASETS)."""

    name: ClassVar[str] = ""
    # The adapter's options (a frozen DatasetConfig subclass), registered as Hydra's schema/dataset/<name>.
    Config: ClassVar[type[DatasetConfig]] = DatasetConfig
    # The batch keys a sample carries (image, expr, au, va, landmarks, domain, text, ...). May be narrowed per
    # instance (e.g. `landmarks` only when the layout has them).
    keys: frozenset[str] = frozenset({"image", "expr", "sample_id"})
    label_space: LabelSpace  # class attribute, or set in __init__ when the options choose it
    # The action units of `au`, in column order (datasets with AU labels).
    au_names: tuple[str, ...] = ()
    # How many values `domain` takes (IERN's confounder: the source dataset or capture style); 1 = no domains.
    num_domains: int = 1
    # Extra evaluations `fermix test` offers on this dataset (fermix.protocols), e.g. challenge submission files.
    evaluation_protocols: ClassVar[tuple[type[EvalProtocol], ...]] = ()
    # Cross-validation folds (fermix.report.pooled): the option naming a run's fold, and options pooled runs share.
    fold_option: ClassVar[str | None] = None
    fold_settings: ClassVar[tuple[str, ...]] = ()
    # Whether `raw_items` lists raw photos for `fermix preprocess` (an adapter that implements it says True).
    preprocessable: ClassVar[bool] = False

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg

    @classmethod
    def make_options(cls, cfg: Mapping[str, Any]) -> Any:
        """The adapter's typed `Config` from a dataset config (see `options_of`)."""
        return options_of(cls.Config, cfg, cls.name)

    # What a method needs to size itself beyond the label space (a multimodal set's feature shapes); read-only here,
    # an adapter sets its own.
    info_extras: Mapping[str, Any] = MappingProxyType({})

    @abstractmethod
    def records(self) -> pd.DataFrame:
        """One row per sample: `sample_id`, `path` (or a key `load` understands), `split` and `subject` when the
        layout gives them, `expr` and any task columns; −1 / NaN = unlabelled."""

    @abstractmethod
    def load(self, row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
        """One sample: `image` (H×W×3 uint8) or the modality arrays, the labels of `keys`, `sample_id`."""

    def task_labels(self, records: pd.DataFrame) -> dict[str, np.ndarray] | None:
        """The records' label arrays without loading a sample (`expr` (N,), `au` (N, A), `va` (N, 2)); None = read
        them from the records' columns (`expr`, the AU names, `valence` / `arousal`)."""
        return None

    @classmethod
    def raw_items(cls, cfg: Mapping[str, Any]) -> list[RawItem]:
        """The raw photos `fermix preprocess` aligns; a dataset that lists none cannot be preprocessed."""
        raise FermixError(
            f"dataset {cls.name} cannot be preprocessed; it does not list raw photos (no raw_items), "
            f"so train on it directly or preprocess its images with dataset=imagefolder dataset.root=..."
        )

    @classmethod
    def raw_label_space(cls, cfg: Mapping[str, Any]) -> LabelSpace | None:
        """The label space of `raw_items`' labels; None = the class's `label_space`, the config's, or the labels'."""
        return None


def options_of(config: type[C], cfg: Mapping[str, Any], adapter: str) -> C:
    """`cfg` merged onto the `config` dataclass: typed values (StrEnums for closed choices, lists), checked.

    Composed configs were checked by Hydra already; a checkpoint's stored config or a test's dict arrives as
    plain values, so the same schema checks them here, an unknown key or a wrongly typed value in one sentence.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import ValidationError

    from fermix.config_schema import option_text, value_sentence

    values = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    declared = {f.name: f for f in fields(config)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in values if k not in declared)
    if unknown:
        raise FermixError(f"dataset {adapter} has no option {unknown[0]!r}; its options: {', '.join(declared)}.")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(config), values))  # type: ignore[return-value]
    except ValidationError as exc:
        key = str(exc.full_key).partition("[")[0]  # a refused list item names its list
        option, got = declared[key], values.get(key)
        default = option.default_factory() if option.default is MISSING else option.default  # type: ignore[misc]
        got = f"[{', '.join(map(str, got))}]" if isinstance(got, list | tuple) else got
        default_text = f" (its default is {option_text(default)})"
        where = f"dataset.{key}{str(exc.full_key)[len(key) :]}"  # with the index of a refused list item
        raise FermixError(value_sentence(where, got, str(exc.msg), default_text) + ".") from None
