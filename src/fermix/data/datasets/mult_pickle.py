"""MulT's pre-processed multimodal pickles (`iemocap`, `mosei`; methods/causalmer.md §3).

One file holds all three splits:
    {"train" | "valid" | "test": {"text": (N, L_t, D_t), "audio": (N, L_a, D_a), "vision": (N, L_v, D_v),
                                  "labels": IEMOCAP (N, 4, 2) one-hot | MOSEI (N, 1, 1) sentiment in [-3, 3],
                                  "id": MOSEI/MOSI only, (N, 3) video id, start, end}}
stored as float64 and read through the restricted unpickler (never `pickle.load`). As in MulT, the
features are cast to float32 and audio == -inf (COVAREP's log of silence) becomes 0. The task is read
from the label array's shape, and sequence lengths and feature sizes from the feature arrays, never
from the dataset's name. The arrays are read once and kept in memory (MOSEI unaligned is 12 GB of
float64: the float64 copy of each array is released as soon as its float32 copy exists).

Samples: text / audio / vision float32 (L, D); `expr` = IEMOCAP int64 (4,) present/absent in the
order neutral, happy, sad, angry (argmax of each one-hot pair) | MOSEI class round(clip(y, -3, 3)) + 3;
`score` float32 (MOSEI); `sample_id` "<pickle split>/<row>". The records' `expr` is IEMOCAP's packed
code sum_e 2^e * y_e (only the data fingerprint reads it) or MOSEI's class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fermix.data.datasets.base import DatasetAdapter, FolderConfig
from fermix.data.datasets.common import dataset_root
from fermix.data.label_spaces import LabelSpace, get_label_space
from fermix.data.safe_pickle import restricted_load
from fermix.errors import FermixError

MODALITIES = ("text", "audio", "vision")
PICKLE_SPLITS = {"train": "train", "valid": "val", "test": "test"}  # pickle key -> fermix split
IEMOCAP_EMOTIONS = 4  # labels (N, 4, 2): neutral, happy, sad, angry x [absent, present]
IEMOCAP_TASK, MOSEI_TASK = "iemocap4", "mosei7"
# MOSEI's 7 sentiment classes, round(clip(y, -3, 3)) + 3 -> the class named by its integer score.
LABEL_SPACES: dict[str, LabelSpace] = {IEMOCAP_TASK: get_label_space("iemocap4"), MOSEI_TASK: get_label_space("mosei7")}
_BITS = 2 ** np.arange(IEMOCAP_EMOTIONS, dtype=np.int64)


def keys_for(task: str) -> frozenset[str]:
    """Batch keys a multimodal dataset of `task` supplies."""
    keys = {"text", "audio", "vision", "expr", "sample_id"}
    return frozenset(keys | {"score"} if task == MOSEI_TASK else keys)


def task_of(labels: np.ndarray, where: str) -> str:
    """`iemocap4` for (N, 4, 2) one-hot labels, `mosei7` for one sentiment score per sample."""
    if labels.ndim == 3 and labels.shape[1:] == (IEMOCAP_EMOTIONS, 2):
        return IEMOCAP_TASK
    if labels.ndim >= 1 and labels.size == labels.shape[0]:
        return MOSEI_TASK
    raise FermixError(
        f"{where}: labels have shape {tuple(labels.shape)}, neither IEMOCAP's (N, 4, 2) one-hot nor MOSEI's "
        f"(N, 1, 1) sentiment score."
    )


def mosei_class(score: np.ndarray) -> np.ndarray:
    """CausalMER's 7-class label round(clip(y, -3, 3)) + 3 (numpy rounds halves to even, as MulT's eval does)."""
    return (np.round(np.clip(score, -3.0, 3.0)) + 3).astype(np.int64)


class MultSplit:
    """One split's arrays in the form samples are served: float32 features, decoded labels."""

    def __init__(self, raw: Mapping[str, Any], where: str, release: bool = False) -> None:
        if not isinstance(raw, Mapping):
            raise FermixError(f"{where} is a {type(raw).__name__}, not a dict of text/audio/vision/labels arrays.")
        missing = [k for k in (*MODALITIES, "labels") if k not in raw]
        if missing:
            raise FermixError(
                f"{where} has no {', '.join(missing)} array (MulT's layout has text, audio, vision, labels)."
            )
        self.features: dict[str, np.ndarray] = {}
        for m in MODALITIES:
            source = raw[m]
            x = _features(source, f"{where}['{m}']")
            holes = np.isneginf(x) if m == "audio" else None
            if holes is not None and holes.any():  # MulT's fix for COVAREP's log(0)
                if np.may_share_memory(x, source):  # never edit the caller's array
                    x = x.copy()
                x[holes] = 0.0
            self.features[m] = x
            if release and isinstance(raw, dict):
                del raw[m]  # drop the float64 original now: peak memory stays near one copy of the file
            del source, holes
        labels = _array(raw["labels"], f"{where}['labels']")
        sizes = {m: a.shape[0] for m, a in self.features.items()} | {"labels": labels.shape[0] if labels.ndim else -1}
        if len(set(sizes.values())) != 1:
            detail = ", ".join(f"{k} {n}" for k, n in sizes.items())
            raise FermixError(f"{where} holds different numbers of samples per array ({detail}).")
        self.n = int(labels.shape[0])
        self.task = task_of(labels, f"{where}['labels']")
        if self.task == IEMOCAP_TASK:
            self.expr = np.ascontiguousarray(labels.argmax(-1), dtype=np.int64)  # (N, 4): present / absent
            self.score: np.ndarray | None = None
            self.code = self.expr @ _BITS
        else:
            self.score = np.asarray(labels, dtype=np.float32).reshape(self.n)
            self.expr = mosei_class(self.score)
            self.code = self.expr
        self.ids = _ids(raw.get("id"), self.n, f"{where}['id']")

    def shape(self, modality: str) -> list[int]:
        """[L, D] of one modality."""
        return [int(s) for s in self.features[modality].shape[1:]]


class MultArraysDataset(DatasetAdapter):
    """Adapter over in-memory MulT-layout splits; `iemocap`, `mosei` and `synthetic_mm` fill it."""

    name = "mult"
    expected_task: str | None = None  # the adapter's own task; None accepts either

    def _set_splits(self, raw: Mapping[str, Any], where: str, release: bool = False) -> None:
        """Validate and decode the three splits; `release` lets it empty `raw` as it goes (a freshly read file)."""
        if not isinstance(raw, Mapping):
            raise FermixError(f"{where} holds a {type(raw).__name__}, not MulT's dict of train/valid/test splits.")
        missing = [s for s in PICKLE_SPLITS if s not in raw]
        if missing:
            raise FermixError(
                f"{where} has no {', '.join(missing)} split; MulT's layout is a dict with keys train, valid and test."
            )
        self.splits: dict[str, MultSplit] = {}
        for part in PICKLE_SPLITS:
            self.splits[part] = MultSplit(raw[part], f"{where}['{part}']", release=release)
        tasks = {s.task for s in self.splits.values()}
        if len(tasks) != 1:
            raise FermixError(f"{where} mixes label layouts across splits ({', '.join(sorted(tasks))}).")
        self.task = tasks.pop()
        if self.expected_task is not None and self.task != self.expected_task:
            raise FermixError(
                f"{where} holds {self.task} labels, but dataset {self.name} expects {self.expected_task} "
                f"(IEMOCAP: (N, 4, 2) one-hot; MOSEI: (N, 1, 1) sentiment)."
            )
        train = self.splits["train"]
        for part, split in self.splits.items():
            for m in MODALITIES:
                if split.n and train.n and split.shape(m) != train.shape(m):
                    raise FermixError(
                        f"{where}: {m} is {split.shape(m)} (length, size) in {part} but {train.shape(m)} in train; "
                        f"every split must share one shape per modality."
                    )
        self.label_space = LABEL_SPACES[self.task]
        self.keys = keys_for(self.task)
        self.info_extras = {"task": self.task, "modalities": {m: train.shape(m) for m in MODALITIES}}

    def records(self) -> pd.DataFrame:
        """One row per sample: sample_id, split, expr, part (pickle split), row (index into its arrays)."""
        frames = []
        for part, split_name in PICKLE_SPLITS.items():
            s = self.splits[part]
            columns: dict[str, Any] = {
                "sample_id": pd.Series([f"{part}/{i:06d}" for i in range(s.n)], dtype=object),
                "path": "",
                "expr": s.code.astype(np.int64),
                "split": split_name,
                "subject": "",
                "source": self.name,
                "part": part,
                "row": np.arange(s.n, dtype=np.int64),
            }
            if s.score is not None:
                columns["score"] = s.score
            if s.ids is not None:
                columns["native_id"] = pd.Series(s.ids, dtype=object)
            columns.update(self._extra_columns(part))
            frames.append(pd.DataFrame(columns))
        return pd.concat(frames, ignore_index=True)

    def _extra_columns(self, part: str) -> dict[str, Any]:
        return {}

    def load(self, row: Mapping[str, Any]) -> dict[str, Any]:
        s = self.splits[str(row["part"])]
        i = int(row["row"])
        sample: dict[str, Any] = {m: s.features[m][i] for m in MODALITIES}
        sample["sample_id"] = str(row["sample_id"])
        if s.score is not None:
            sample["expr"] = int(s.expr[i])
            sample["score"] = np.float32(s.score[i])
        else:
            sample["expr"] = s.expr[i]
        return sample

    def __len__(self) -> int:
        return sum(s.n for s in self.splits.values())


@dataclass(frozen=True)
class MultPickleConfig(FolderConfig):
    """configs/dataset/iemocap.yaml and mosei.yaml."""

    aligned: bool = True  # true: <prefix>_data.pkl | false: <prefix>_data_noalign.pkl
    file: str | None = None  # another file name under root (overrides `aligned`)


class MultPickleDataset(MultArraysDataset):
    """A MulT pickle under `root`; `aligned` picks `<prefix>_data.pkl` or `<prefix>_data_noalign.pkl`."""

    Config = MultPickleConfig

    prefix = ""
    what = ""  # the data root's description for error messages

    @classmethod
    def file_name(cls, aligned: bool) -> str:
        """MulT's file name of the (un)aligned pickle."""
        return f"{cls.prefix}_data{'' if aligned else '_noalign'}.pkl"

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        options: MultPickleConfig = self.make_options(cfg)
        root = dataset_root(options.root, self.what, name=self.name)
        file = options.file or self.file_name(options.aligned)
        self.path = root / str(file)
        if not self.path.is_file():
            raise FermixError(
                f"{self.name}: {self.path} does not exist; dataset.root must hold MulT's {file} "
                f"(see datasets/{self.name}/README.md)."
            )
        self._set_splits(restricted_load(self.path), str(self.path), release=True)


class IEMOCAPDataset(MultPickleDataset):
    """IEMOCAP, MulT's 4 binary emotions (neutral, happy, sad, angry), GloVe / COVAREP / Facet features."""

    name = "iemocap"
    prefix = "iemocap"
    what = "IEMOCAP (the folder holding iemocap_data.pkl)"
    expected_task = IEMOCAP_TASK


class MOSEIDataset(MultPickleDataset):
    """CMU-MOSEI sentiment: the score in [-3, 3] and its 7-class rounding."""

    name = "mosei"
    prefix = "mosei_senti"
    what = "MOSEI (the folder holding mosei_senti_data.pkl)"
    expected_task = MOSEI_TASK


# -------------------------------------------------------------------- helpers


def _array(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise FermixError(f"{where} is a {type(value).__name__}, not a numpy array.")
    return value


def _features(value: Any, where: str) -> np.ndarray:
    """float32 (N, L, D), C-ordered (a copy when the stored array is float64, as MulT's files are)."""
    a = _array(value, where)
    if a.ndim != 3:
        raise FermixError(f"{where} has shape {tuple(a.shape)}; features must be (samples, steps, size).")
    if not np.issubdtype(a.dtype, np.number):
        raise FermixError(f"{where} has dtype {a.dtype}, not a number type.")
    return np.ascontiguousarray(a, dtype=np.float32)


def _ids(value: Any, n: int, where: str) -> list[str] | None:
    """MOSEI's (N, 3) video id / start / end as one "id/start/end" string per sample."""
    if value is None:
        return None
    a = np.asarray(value, dtype=object)
    if a.ndim == 0 or a.shape[0] != n:
        raise FermixError(f"{where} has shape {tuple(a.shape)}, not one entry per sample ({n}).")
    rows = a.reshape(n, -1)
    return ["/".join(_text(v) for v in r) for r in rows]


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, np.bytes_)) else str(v)
