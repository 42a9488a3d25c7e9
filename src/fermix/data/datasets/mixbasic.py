"""MixBasic (IERN, methods/iern.md §4): CK+, MMI and Oulu-CASIA aligned faces, one confounder id per source.

Layout of the root (the `MixBasic` folder):
    {CKPlus,MMI,OuluCASIA}/images/*.png           aligned 256×256 faces
    emotion_labels.pkl                             {"<source folder lowercased>_<image stem>": "Anger", ...}
    {train,test}_ids_bias{100,90}v{1,2,3}.csv      no header; one path per line, e.g.
                                                   MixBasic/CKPlus/images/S005_001_00000009.png
A CSV path's first component is dropped and the rest joined with the root; its third component from
the end names the source, which is the sample's `domain`. The fold's train CSV gives the train rows,
its test CSV the test rows; there is no validation list (the datamodule carves one from train).
The original loader finds a missing image or label only when it reaches it, mid-training (iern.md
§6.3), so every path and key of the fold is checked here, before anything trains.
`fermix.data.datasets.mixbasic_audit.audit_folds` checks the whole fold design of a root (all 12
CSVs: one image set, the Latin square of withheld cells, bias100 ⊂ bias90, the published counts;
iern.md §7 test 9);
scripts/check_mixbasic.py runs it from the shell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fermix.data.datasets.base import DatasetAdapter, FolderConfig
from fermix.data.datasets.common import dataset_root
from fermix.data.images import IMAGE_EXTENSIONS, read_image
from fermix.data.label_spaces import get_label_space, map_label
from fermix.data.safe_pickle import restricted_load
from fermix.errors import FermixError

SOURCES: tuple[str, ...] = ("CKPlus", "MMI", "OuluCASIA")  # confounder index order (iern.md §4)
LABELS_FILE = "emotion_labels.pkl"
SPLIT_FILES = ("train", "test")
_EXAMPLES = 3  # how many offending entries an error message names

# Subject ids lead the published file names: CK+ S005_001_..., MMI S001_100_..., Oulu P001_Anger_...
_SUBJECT = re.compile(r"^([A-Za-z]+\d+)_")


def fold_csv_name(split: str, bias: str, fold: str) -> str:
    """`train_ids_bias100v1.csv` and its siblings."""
    return f"{split}_ids_{bias}{fold}.csv"


def label_key(source: str, stem: str) -> str:
    """The emotion_labels.pkl key of an image: `ckplus_S005_001_00000009`."""
    return f"{source.lower()}_{stem}"


def subject_of(stem: str) -> str | None:
    """Subject id from a published file name (S005, P001), or None when the name does not start with one."""
    match = _SUBJECT.match(stem)
    return match.group(1) if match else None


def normalise_fold(value: Any) -> str:
    """`v1`, `V1`, `1` or 1 -> `v1`."""
    text = str(value).strip().lower()
    text = text if text.startswith("v") else f"v{text}"
    if not re.fullmatch(r"v\d+", text):
        raise FermixError(f"dataset.fold={value} is not a MixBasic fold name; use v1, v2 or v3.")
    return text


def normalise_bias(value: Any) -> str:
    """`bias100`, `100` or 100 -> `bias100`."""
    text = str(value).strip().lower()
    text = text if text.startswith("bias") else f"bias{text}"
    if not re.fullmatch(r"bias\d+", text):
        raise FermixError(f"dataset.bias={value} is not a MixBasic bias setting; use bias100 or bias90.")
    return text


class Fold(StrEnum):
    """Which Latin-square fold (each source withholds a different class pair)."""

    v1 = "v1"
    v2 = "v2"
    v3 = "v3"


class Bias(StrEnum):
    bias100 = "bias100"  # withheld cells only in test
    bias90 = "bias90"  # about 10% of each withheld cell in train


@dataclass(frozen=True)
class MixBasicConfig(FolderConfig):
    """configs/dataset/mixbasic.yaml."""

    fold: Fold = Fold.v1
    bias: Bias = Bias.bias100


class MixBasicDataset(DatasetAdapter):
    """The images of one MixBasic fold, with the source dataset as IERN's confounder (`domain`)."""

    name = "mixbasic"
    Config = MixBasicConfig
    keys: frozenset[str] = frozenset({"image", "expr", "domain", "sample_id", "subject"})
    # Cross-validation folds (fermix.report.pooled): runs that differ only in dataset.fold (and seed) are pooled
    # after a multirun and by `fermix report`, as IERN reports MixBasic; runs of different biases never are.
    fold_option = "fold"
    fold_settings = ("bias",)
    domain_names: tuple[str, ...] = SOURCES
    num_domains = len(SOURCES)
    label_space = get_label_space("mixbasic6")

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        options: MixBasicConfig = self.make_options(cfg)
        self.root = dataset_dir(options.root)
        self.fold, self.bias = options.fold.value, options.bias.value
        self.csv_names = {split: fold_csv_name(split, self.bias, self.fold) for split in SPLIT_FILES}
        listed = {split: self._read_fold_csv(self.root / name) for split, name in self.csv_names.items()}
        labels = _read_labels(self.root / LABELS_FILE)
        self._records = self._build_records(listed, labels)

    # ---------------------------------------------------------------- public API

    def records(self) -> pd.DataFrame:
        """One row per listed image: sample_id, path, expr, split, subject, source (= source folder), domain."""
        return self._records.copy()

    def load(self, row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
        subject = row["subject"]
        return {
            "image": read_image(row["path"]),
            "expr": int(row["expr"]),
            "domain": int(row["domain"]),
            "sample_id": str(row["sample_id"]),
            "subject": "" if not isinstance(subject, str) else subject,
        }

    def __len__(self) -> int:
        return len(self._records)

    # ---------------------------------------------------------------- reading

    def _read_fold_csv(self, csv: Path) -> list[tuple[str, int]]:
        """(path relative to root, line number) per image line, sorted as the original loader sorts them."""
        if not csv.is_file():
            present = sorted(p.name[len("train_ids_") : -len(".csv")] for p in self.root.glob("train_ids_*.csv"))
            folds = ", ".join(present) if present else "none"
            raise FermixError(
                f"mixbasic: fold file {csv.name} is not in {self.root} (folds present: {folds}); "
                f"set dataset.fold and dataset.bias to one of them."
            )
        try:
            lines = csv.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise FermixError(f"mixbasic: cannot read {csv}: {e}.") from e
        found: list[tuple[str, int]] = []
        for number, line in enumerate(lines, start=1):
            text = line.strip().replace("\\", "/")
            if not text or Path(text).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            parts = [p for p in text.split("/") if p]
            if len(parts) < 4:
                raise FermixError(
                    f"mixbasic: line {number} of {csv.name} is `{text}`, not a path like "
                    f"MixBasic/CKPlus/images/S005_001_00000009.png."
                )
            found.append(("/".join(parts[1:]), number))
        return sorted(found)

    def _build_records(self, listed: dict[str, list[tuple[str, int]]], labels: dict[Any, Any]) -> pd.DataFrame:
        rows = []
        for split, entries in listed.items():
            csv = self.csv_names[split]
            for rel, number in entries:
                parts = rel.split("/")
                source = parts[-3]
                if source not in SOURCES:
                    raise FermixError(
                        f"mixbasic: line {number} of {csv} is in source folder `{source}`, "
                        f"not one of {', '.join(SOURCES)}."
                    )
                stem = Path(parts[-1]).stem
                rows.append(
                    {
                        "sample_id": rel,
                        "path": str((self.root / rel).absolute()),
                        "split": split,
                        "subject": subject_of(stem),
                        "source": source,
                        "domain": SOURCES.index(source),
                        "key": label_key(source, stem),
                        "csv": csv,
                    }
                )
        if not rows:
            names = " and ".join(self.csv_names.values())
            raise FermixError(f"mixbasic: {names} in {self.root} list no images.")
        self._check_unique(rows)
        self._check_files(rows)
        expr = self._label_indices(rows, labels)
        df = pd.DataFrame(
            {
                "sample_id": pd.Series([r["sample_id"] for r in rows], dtype=object),
                "path": pd.Series([r["path"] for r in rows], dtype=object),
                "expr": np.asarray(expr, dtype=np.int64),
                "split": pd.Series([r["split"] for r in rows], dtype=object),
                "subject": pd.Series([r["subject"] for r in rows], dtype=object),
                "source": pd.Series([r["source"] for r in rows], dtype=object),
                "domain": np.asarray([r["domain"] for r in rows], dtype=np.int64),
            }
        )
        return df.sort_values("sample_id", kind="stable").reset_index(drop=True)

    # ---------------------------------------------------------------- validation (iern.md §6.3, §7.9)

    def _check_unique(self, rows: list[dict[str, Any]]) -> None:
        seen: dict[str, str] = {}
        for r in rows:
            if r["sample_id"] in seen:
                where = r["csv"] if seen[r["sample_id"]] == r["csv"] else f"both {seen[r['sample_id']]} and {r['csv']}"
                raise FermixError(
                    f"mixbasic: {r['sample_id']} is listed more than once in {where}; "
                    f"a fold's train and test lists must be disjoint and free of repeats."
                )
            seen[r["sample_id"]] = r["csv"]

    def _check_files(self, rows: list[dict[str, Any]]) -> None:
        missing = [r for r in rows if not Path(r["path"]).is_file()]
        if missing:
            raise FermixError(
                f"mixbasic: {count_text(len(missing), 'image')} listed in {_csvs(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing from {self.root}, "
                f"e.g. {examples(r['sample_id'] for r in missing)}."
            )

    def _label_indices(self, rows: list[dict[str, Any]], labels: dict[Any, Any]) -> list[int]:
        unlabelled = [r for r in rows if r["key"] not in labels]
        if unlabelled:
            raise FermixError(
                f"mixbasic: {count_text(len(unlabelled), 'image')} listed in {_csvs(unlabelled)} "
                f"{'has' if len(unlabelled) == 1 else 'have'} no key in {LABELS_FILE}, "
                f"e.g. {examples(r['key'] for r in unlabelled)}."
            )
        indices = [_class_index(labels[r["key"]]) for r in rows]
        bad = [r for r, i in zip(rows, indices, strict=True) if i is None]
        if bad:
            first = bad[0]["key"]
            value = str(labels[first])[:40]
            raise FermixError(
                f"mixbasic: {LABELS_FILE} gives {count_text(len(bad), 'listed image')} a label outside the six "
                f"MixBasic classes ({', '.join(self.label_space.classes)}), e.g. `{value}` for {first}."
            )
        return [int(i) for i in indices if i is not None]


# -------------------------------------------------------------------- helpers


def dataset_dir(value: Any) -> Path:
    root = dataset_root(value, "MixBasic", name="mixbasic")
    if not (root / LABELS_FILE).is_file() and (root / "MixBasic" / LABELS_FILE).is_file():
        return root / "MixBasic"  # the folder that holds MixBasic/ works too
    if not (root / LABELS_FILE).is_file():
        raise FermixError(
            f"mixbasic: {root} has no {LABELS_FILE}; dataset.root must be the MixBasic folder "
            f"(see datasets/mixbasic/README.md)."
        )
    return root


def _read_labels(path: Path) -> dict[Any, Any]:
    labels = restricted_load(path)
    if not isinstance(labels, dict):
        raise FermixError(
            f"mixbasic: {path} holds a {type(labels).__name__}, not a dict of image key -> emotion name."
        )
    return labels


def _class_index(value: Any) -> int | None:
    """Index in mixbasic6 of a pkl value ("Anger" ... "Surprise", any case), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return map_label(MixBasicDataset.label_space, value)
    except FermixError:
        return None


def count_text(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _csvs(rows: list[dict[str, Any]]) -> str:
    return " and ".join(dict.fromkeys(r["csv"] for r in rows))


def examples(items: Any) -> str:
    return ", ".join(list(items)[:_EXAMPLES])
