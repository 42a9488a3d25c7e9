"""RAF-DB basic (methods/au_align.md §6, dmue.md §4.1): the label list and the aligned or original images.

Layout of the root (RAF-DB's `basic` folder):
    EmoLabel/list_patition_label.txt      "train_00001.jpg 5" per line; the name's prefix is the split
    Image/aligned/train_00001_aligned.jpg the official aligned 100×100 faces (`images: aligned`)
    Image/original/train_00001.jpg        the photographs (`images: original`, and `fermix preprocess`)
Labels 1..7 are RAF's own order and are mapped by name into `basic7`, so RAF's 1 (Surprise) is
basic7's index 3. There is no validation list: the datamodule carves one from train.
Face boxes: the official `Annotation/boundingbox/<stem>_boundingbox.txt` files are not read, because
their coordinate order is not documented with the data and public readers disagree (au_align.md §2.2
reads them row-first); `fermix preprocess` detects the face instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fermix.data.datasets.base import DatasetAdapter, FolderConfig
from fermix.data.datasets.common import dataset_root
from fermix.data.images import read_image
from fermix.data.label_spaces import get_label_space, map_label
from fermix.data.raw import RawItem
from fermix.errors import FermixError

LABEL_FILE = "EmoLabel/list_patition_label.txt"  # sic: RAF-DB's own spelling
# RAF-DB's native label order (its README): the number in the label file -> class name.
RAF_CLASSES: dict[int, str] = {
    1: "Surprise",
    2: "Fear",
    3: "Disgust",
    4: "Happiness",
    5: "Sadness",
    6: "Anger",
    7: "Neutral",
}
SPLIT_PREFIXES = {"train_": "train", "test_": "test"}


class Images(StrEnum):
    aligned = "aligned"  # Image/aligned/<name>_aligned.jpg, 100×100
    original = "original"  # Image/original/<name>.jpg


@dataclass(frozen=True)
class RAFDBConfig(FolderConfig):
    """configs/dataset/rafdb.yaml."""

    images: Images = Images.aligned


@dataclass(frozen=True)
class LabelLine:
    """One line of the label file."""

    name: str  # "train_00001.jpg"
    native: int  # 1..7
    split: str  # "train" | "test"
    line: int  # 1-based line number, for error messages

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def image_path(root: Path, name: str, mode: str) -> Path:
    """Where an image of the label file lives for `images: aligned|original`."""
    if mode == "aligned":
        return root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg"
    return root / "Image" / "original" / name


def read_label_file(root: Path) -> list[LabelLine]:
    """Parse list_patition_label.txt; any malformed line is a one-sentence error naming its number."""
    path = root / LABEL_FILE
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise FermixError(f"rafdb: cannot read {path}: {e}.") from e
    lines: list[LabelLine] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise FermixError(f"rafdb: line {number} of {LABEL_FILE} is `{raw.strip()}`, not `<image name> <label>`.")
        name, label = fields
        native = _native_label(label)
        if native is None:
            raise FermixError(
                f"rafdb: line {number} of {LABEL_FILE} gives label `{label}` for {name}; RAF-DB basic labels are 1..7."
            )
        split = next((s for prefix, s in SPLIT_PREFIXES.items() if name.startswith(prefix)), None)
        if split is None:
            raise FermixError(
                f"rafdb: line {number} of {LABEL_FILE} names {name}, which starts with neither train_ nor test_ "
                f"(the prefix is the split)."
            )
        if name in seen:
            raise FermixError(f"rafdb: line {number} of {LABEL_FILE} lists {name} a second time.")
        seen.add(name)
        lines.append(LabelLine(name, native, split, number))
    if not lines:
        raise FermixError(f"rafdb: {path} lists no images.")
    return lines


def class_name(native: int) -> str:
    """basic7 class name of a RAF-DB label (1 -> "surprise", 7 -> "neutral")."""
    space = get_label_space("basic7")
    return space.classes[map_label(space, RAF_CLASSES[native])]


class RAFDBDataset(DatasetAdapter):
    """RAF-DB basic expressions in the basic7 label space."""

    name = "rafdb"
    Config = RAFDBConfig
    keys: frozenset[str] = frozenset({"image", "expr", "sample_id", "subject"})
    label_space = get_label_space("basic7")

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        options: RAFDBConfig = self.make_options(cfg)
        self.root = resolve_root(options.root)
        self.images = options.images
        lines = read_label_file(self.root)
        paths = _existing_paths(self.root, lines, self.images)
        self._records = pd.DataFrame(
            {
                "sample_id": pd.Series([e.stem for e in lines], dtype=object),
                "path": pd.Series([str(p.absolute()) for p in paths], dtype=object),
                "expr": np.asarray([self.label_space.index(class_name(e.native)) for e in lines], dtype=np.int64),
                "split": pd.Series([e.split for e in lines], dtype=object),
                "subject": pd.Series([None] * len(lines), dtype=object),
                "source": pd.Series([self.name] * len(lines), dtype=object),
                "native_label": pd.Series([str(e.native) for e in lines], dtype=object),
            }
        ).sort_values("sample_id", kind="stable", ignore_index=True)

    preprocessable = True  # raw_items lists its photos for fermix preprocess

    @classmethod
    def raw_items(cls, cfg: Mapping[str, Any]) -> list[RawItem]:
        """The original photographs for `fermix preprocess` (box None: the detector finds the face)."""
        root = resolve_root(cls.make_options(cfg).root)
        lines = read_label_file(root)
        paths = _existing_paths(root, lines, "original")
        return [
            RawItem(
                path=path,
                sample_id=e.stem,
                label=class_name(e.native),
                native_label=str(e.native),
                split=e.split,
                source=cls.name,
            )
            for e, path in zip(lines, paths, strict=True)
        ]

    def records(self) -> pd.DataFrame:
        """One row per listed image: sample_id, path, expr, split, subject (none), source, native_label."""
        return self._records.copy()

    def load(self, row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
        return {
            "image": read_image(row["path"]),
            "expr": int(row["expr"]),
            "sample_id": str(row["sample_id"]),
            "subject": "",
        }

    def __len__(self) -> int:
        return len(self._records)


# -------------------------------------------------------------------- helpers


def resolve_root(value: Any) -> Path:
    """RAF-DB's `basic` folder, given it or the folder that holds it."""
    root = dataset_root(value, "RAF-DB/basic", name="rafdb")
    if not (root / LABEL_FILE).is_file() and (root / "basic" / LABEL_FILE).is_file():
        return root / "basic"
    if not (root / LABEL_FILE).is_file():
        raise FermixError(
            f"rafdb: {root} has no {LABEL_FILE}; dataset.root must be RAF-DB's basic folder "
            f"(see datasets/rafdb/README.md)."
        )
    return root


def _native_label(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value in RAF_CLASSES else None


def _existing_paths(root: Path, lines: list[LabelLine], mode: str) -> list[Path]:
    paths = [image_path(root, e.name, mode) for e in lines]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        folder = missing[0].parent
        many = len(missing) != 1
        raise FermixError(
            f"rafdb: {len(missing)} image{'s' if many else ''} listed in {LABEL_FILE} "
            f"{'are' if many else 'is'} missing from {folder}, e.g. {missing[0].name}."
        )
    return paths
