"""AffectNet (Mollahosseini et al., 2017): the manually annotated set as published.

Layout under `root` (datasets/affectnet/README.md):
  Manually_Annotated_file_lists/{training,validation}.csv   (or both CSVs directly in root)
  Manually_Annotated_Images/<subDirectory_filePath>          (or Manually_Annotated/Manually_Annotated_Images/)
CSV columns: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks
("x;y;x;y;..." 68 points), expression, valence, arousal; the header line is optional (copies of
validation.csv without one exist). Images are the web photographs; the face box and the landmarks
are in their pixel coordinates.

Protocol (au_align §6, dmue §4.1): training.csv trains and the official validation set is the
test set. Both originals also select checkpoints on it; fermix carves validation from train
instead (`data.val_fraction`), unless `validation_split: val`.
"""

from __future__ import annotations

import logging
import os
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
from fermix.data.label_spaces import LabelSpace, get_label_space, map_label
from fermix.data.raw import RawItem
from fermix.errors import FermixError

log = logging.getLogger("fermix")

# AffectNet's expression codes, in code order (label order is data: this is the published table).
EXPRESSION_CODES: tuple[str, ...] = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt", "None", "Uncertain", "No-Face",
)  # fmt: skip
NON_EMOTION_CODES = frozenset({8, 9, 10})
CONTEMPT_CODE = 7
MISSING_VA = -2.0  # AffectNet's valence/arousal for rows without an emotion
COLUMNS: tuple[str, ...] = (
    "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
    "facial_landmarks", "expression", "valence", "arousal",
)  # fmt: skip
LIST_FILES = {"training.csv": "train", "validation.csv": "validation"}
_CSV_DIRS = ("Manually_Annotated_file_lists", ".")
_IMAGE_DIRS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")
SOURCE = "AffectNet"


class ValidationSplit(StrEnum):
    test = "test"  # the official validation set is the test set (the papers' protocol)
    val = "val"  # select on it; then there is no test split


class Crop(StrEnum):
    box = "box"  # cut the CSV's face box from each photograph
    none = "none"  # the images are face crops already


class OnMissingImage(StrEnum):
    error = "error"
    skip = "skip"


@dataclass(frozen=True)
class AffectNetConfig(FolderConfig):
    """configs/dataset/affectnet.yaml."""

    classes: Any = 7  # 7 | 8: an int or its digit as a word, checked by _label_space
    validation_split: ValidationSplit = ValidationSplit.test
    crop: Crop = Crop.box
    landmarks: bool = True
    on_missing_image: OnMissingImage = OnMissingImage.error
    csv_dir: str | None = None
    images_dir: str | None = None


class AffectNetDataset(DatasetAdapter):
    """AffectNet's manually annotated images with 7 or 8 expression classes and valence/arousal."""

    name = "affectnet"
    Config = AffectNetConfig

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        options = _Options.from_cfg(cfg)
        self.label_space: LabelSpace = options.label_space
        self.crop = options.crop
        table = _read_lists(options)
        table = _drop_missing_images(table, options)
        if not len(table):
            raise FermixError(f"AffectNet lists under {options.root} hold no usable rows.")
        self._landmarks: np.ndarray | None = None
        if options.crop == "box" and options.landmarks:
            self._landmarks = _parse_landmarks(table)
            table = table.assign(lm_index=np.arange(len(table)))
        self.keys: frozenset[str] = frozenset(
            {"image", "expr", "va", "sample_id", "subject"} | ({"landmarks"} if self._landmarks is not None else set())
        )
        self._records = _build_records(table, self.label_space)

    def records(self) -> pd.DataFrame:
        """One row per image: the standard columns plus native_label, valence, arousal and the face box."""
        return self._records.copy()

    def load(self, row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
        """The image (cropped to its face box when `crop: box`), label, valence/arousal and landmarks."""
        image = read_image(row["path"])
        sample: dict[str, Any] = {
            "expr": int(row["expr"]),
            "va": np.array([row["valence"], row["arousal"]], dtype=np.float32),
            "sample_id": str(row["sample_id"]),
            "subject": "",
        }
        origin = (0, 0)
        if self.crop == "box":
            image, origin = _crop_to_box(image, row)
        sample["image"] = image
        if self._landmarks is not None:
            # Same pixel frame as the box, so moving the origin maps them into the crop exactly.
            sample["landmarks"] = self._landmarks[int(row["lm_index"])] - np.array(origin, dtype=np.float32)
        return sample

    def __len__(self) -> int:
        return len(self._records)

    @classmethod
    def raw_label_space(cls, cfg: Mapping[str, Any]) -> LabelSpace:
        """The space `raw_items` labels live in (recorded by `fermix preprocess`): basic7 or basic8."""
        return _label_space(cls.make_options(cfg).classes)

    preprocessable = True  # raw_items lists its photos for fermix preprocess

    @classmethod
    def raw_items(cls, cfg: Mapping[str, Any]) -> list[RawItem]:
        """Every usable image for `fermix preprocess`, with the CSV's face box (unless `crop: none`)."""
        options = _Options.from_cfg(cfg)
        table = _drop_missing_images(_read_lists(options), options)
        items = []
        for rec in table.to_dict("records"):
            box = None
            if options.crop == "box":
                x, y, w, h = (float(rec[c]) for c in ("face_x", "face_y", "face_width", "face_height"))
                box = (x, y, x + w, y + h) if w > 0 and h > 0 else None
            items.append(
                RawItem(
                    path=Path(rec["path"]),
                    sample_id=rec["sample_id"],
                    label=options.label_space.classes[map_label(options.label_space, EXPRESSION_CODES[rec["code"]])],
                    native_label=str(rec["code"]),
                    split=rec["split"],
                    subject=None,
                    source=SOURCE,
                    box=box,
                )
            )
        return items


# -------------------------------------------------------------------- options


@dataclass(frozen=True)
class _Options:
    """The dataset config, validated once (shared by training and `raw_items`)."""

    root: Path
    label_space: LabelSpace
    keep_contempt: bool
    validation_split: ValidationSplit
    crop: Crop
    landmarks: bool
    on_missing_image: OnMissingImage
    csv_dir: Path
    images_dir: Path

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> _Options:
        o: AffectNetConfig = AffectNetDataset.make_options(cfg)
        root = dataset_root(o.root, "AffectNet")
        space = _label_space(o.classes)
        return cls(
            root=root,
            label_space=space,
            keep_contempt="contempt" in space.classes,
            validation_split=o.validation_split,
            crop=o.crop,
            landmarks=o.landmarks,
            on_missing_image=o.on_missing_image,
            csv_dir=_pick_dir(root, o.csv_dir, _CSV_DIRS, "training.csv", "csv_dir"),
            images_dir=_pick_dir(root, o.images_dir, _IMAGE_DIRS, None, "images_dir"),
        )


def _label_space(classes: Any) -> LabelSpace:
    """classes 7 -> basic7 (contempt dropped), 8 -> basic8."""
    classes = str(classes).strip()
    if classes not in ("7", "8"):
        raise FermixError(f"dataset.classes={classes} is not supported for AffectNet; use 7 or 8.")
    return get_label_space("basic7" if classes == "7" else "basic8")




def _pick_dir(root: Path, value: Any, candidates: tuple[str, ...], marker: str | None, key: str) -> Path:
    """An explicit folder (relative to root), else the first published location that exists."""
    if value:
        path = Path(str(value)).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_dir():
            raise FermixError(f"dataset.{key}={value} is not a directory (a relative path is read from root).")
        return path
    for c in candidates:
        path = root / c
        if path.is_dir() and (marker is None or (path / marker).is_file()):
            return path
    if marker is not None:
        raise FermixError(
            f"AffectNet list {marker} not found in {root / candidates[0]} or {root}; "
            f"see datasets/affectnet/README.md for the expected layout."
        )
    raise FermixError(
        f"AffectNet image folder not found: expected {root / candidates[0]} or {root / candidates[1]} "
        f"(or set dataset.images_dir)."
    )


# -------------------------------------------------------------------- reading the lists


def _read_lists(o: _Options) -> pd.DataFrame:
    """Both CSVs as one table of usable rows: sample_id, path, split, code, valence, arousal, box, landmarks."""
    parts = []
    counts = {"non_emotion": 0, "contempt": 0}
    for fname, which in LIST_FILES.items():
        path = o.csv_dir / fname
        if not path.is_file():
            raise FermixError(f"AffectNet list {path} not found; both training.csv and validation.csv are needed.")
        table = _read_csv(path)
        codes = _codes(table, path)
        keep = ~np.isin(codes, list(NON_EMOTION_CODES))
        counts["non_emotion"] += int((~keep).sum())
        if not o.keep_contempt:
            counts["contempt"] += int((keep & (codes == CONTEMPT_CODE)).sum())
            keep &= codes != CONTEMPT_CODE
        table = table[keep].copy()
        table["code"] = codes[keep]
        table["split"] = "train" if which == "train" else o.validation_split.value
        parts.append(table)
    table = pd.concat(parts, ignore_index=True)
    if counts["non_emotion"] or counts["contempt"]:
        log.info(
            "affectnet: dropped %d rows labelled None/Uncertain/No-Face (codes 8-10)%s",
            counts["non_emotion"],
            f" and {counts['contempt']} Contempt rows (classes=7)" if counts["contempt"] else "",
        )
    rel = table["subDirectory_filePath"].str.strip().str.replace("\\", "/", regex=False)
    if (rel == "").any():
        raise FermixError(f"{table.loc[rel == '', '_file'].iloc[0]} has a row with an empty subDirectory_filePath.")
    table["sample_id"] = [r.rsplit(".", 1)[0] if "." in r.rsplit("/", 1)[-1] else r for r in rel]
    base = o.images_dir.absolute().as_posix()
    table["path"] = [f"{base}/{r}" for r in rel]  # string joins: Path objects cost seconds on 400k rows
    dupes = table["sample_id"][table["sample_id"].duplicated()]
    if len(dupes):
        raise FermixError(f"AffectNet image {dupes.iloc[0]} is listed more than once in {o.csv_dir}.")
    for col in ("face_x", "face_y", "face_width", "face_height"):
        table[col] = _numbers(table, col)
    table["valence"] = _va(table, "valence")
    table["arousal"] = _va(table, "arousal")
    return table.reset_index(drop=True)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline()
        has_header = first.split(",", 1)[0].strip().lower() == COLUMNS[0].lower()
        table = pd.read_csv(
            path,
            header=0 if has_header else None,
            names=None if has_header else list(COLUMNS),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            skipinitialspace=True,
        )
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        raise FermixError(f"cannot read AffectNet list {path}: {e}") from e
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise FermixError(f"AffectNet list {path} lacks column(s) {', '.join(missing)}.")
    table["_file"] = str(path)
    table["_line"] = np.arange(len(table)) + (2 if has_header else 1)
    return table


def _codes(table: pd.DataFrame, path: Path) -> np.ndarray:
    """Expression codes as ints; anything but an integer 0..10 is a user error naming the line."""
    values = pd.to_numeric(table["expression"].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) | (values != np.round(values)) | (values < 0) | (values > len(EXPRESSION_CODES) - 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FermixError(
            f"expression `{table['expression'].iloc[i]}` on line {table['_line'].iloc[i]} of {path} is not an "
            f"AffectNet code (0..10)."
        )
    return values.astype(np.int64)


def _numbers(table: pd.DataFrame, col: str) -> np.ndarray:
    values = pd.to_numeric(table[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f"line {table['_line'].iloc[i]} of {table['_file'].iloc[i]}"
        raise FermixError(f"{col} `{table[col].iloc[i]}` on {where} is not a number.")
    return values


def _va(table: pd.DataFrame, col: str) -> np.ndarray:
    """Valence/arousal in [-1, 1]; AffectNet's -2 (no value) becomes NaN; anything else is an error."""
    values = _numbers(table, col)
    missing = np.isclose(values, MISSING_VA)
    bad = ~missing & ((values < -1.0 - 1e-6) | (values > 1.0 + 1e-6))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FermixError(
            f"{col} {values[i]} on line {table['_line'].iloc[i]} of {table['_file'].iloc[i]} is outside [-1, 1] "
            f"(-2 = no value)."
        )
    return np.where(missing, np.nan, np.clip(values, -1.0, 1.0)).astype(np.float32)


def _drop_missing_images(table: pd.DataFrame, o: _Options) -> pd.DataFrame:
    present = np.fromiter((os.path.isfile(p) for p in table["path"]), bool, count=len(table))
    if present.all():
        return table
    missing = table.loc[~present, "path"]
    if o.on_missing_image == "error":
        raise FermixError(
            f"{len(missing)} image(s) listed in the AffectNet CSVs are missing, e.g. {missing.iloc[0]}; "
            f"restore them or set dataset.on_missing_image=skip."
        )
    log.info("affectnet: skipped %d listed images that are missing (e.g. %s)", len(missing), missing.iloc[0])
    return table[present].reset_index(drop=True)


def _parse_landmarks(table: pd.DataFrame) -> np.ndarray:
    """N×68×2 float32 from the "x;y;x;y..." strings; NaN where a row has none."""
    out = np.full((len(table), 68, 2), np.nan, dtype=np.float32)
    for i, text in enumerate(table["facial_landmarks"]):
        text = text.strip().strip(";")
        if not text:
            continue
        try:
            values = np.array(text.split(";"), dtype=np.float32)
        except ValueError:
            values = np.empty(0, dtype=np.float32)
        if values.size != 136:
            raise FermixError(
                f"facial_landmarks on line {table['_line'].iloc[i]} of {table['_file'].iloc[i]} is not 68 `x;y` pairs."
            )
        out[i] = values.reshape(68, 2)
    return out


def _build_records(table: pd.DataFrame, space: LabelSpace) -> pd.DataFrame:
    index_of = {
        code: map_label(space, name)
        for code, name in enumerate(EXPRESSION_CODES)
        if code not in NON_EMOTION_CODES and (code != CONTEMPT_CODE or "contempt" in space.classes)
    }
    n = len(table)
    df = pd.DataFrame(
        {
            "sample_id": pd.Series(table["sample_id"].to_numpy(), dtype=object),
            "path": pd.Series(table["path"].to_numpy(), dtype=object),
            "expr": np.array([index_of[int(c)] for c in table["code"]], dtype=np.int64),
            "split": pd.Series(table["split"].to_numpy(), dtype=object),
            "subject": pd.Series([None] * n, dtype=object),
            "source": pd.Series([SOURCE] * n, dtype=object),
            "native_label": table["code"].to_numpy(dtype=np.int64),
            "valence": table["valence"].to_numpy(dtype=np.float32),
            "arousal": table["arousal"].to_numpy(dtype=np.float32),
            "face_x": table["face_x"].to_numpy(),
            "face_y": table["face_y"].to_numpy(),
            "face_width": table["face_width"].to_numpy(),
            "face_height": table["face_height"].to_numpy(),
            "lm_index": (table["lm_index"] if "lm_index" in table else pd.Series(-1, index=table.index)).to_numpy(
                dtype=np.int64
            ),
        }
    )
    return df.sort_values("sample_id", kind="stable").reset_index(drop=True)


def _crop_to_box(image: np.ndarray, row: Mapping[str, Any]) -> tuple[np.ndarray, tuple[int, int]]:
    """The face region of a photograph, the box clipped to the image; returns the crop and its origin."""
    h, w = image.shape[:2]
    x, y = float(row["face_x"]), float(row["face_y"])
    x0, y0 = max(round(x), 0), max(round(y), 0)
    x1 = min(round(x + float(row["face_width"])), w)
    y1 = min(round(y + float(row["face_height"])), h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise FermixError(
            f"the face box of AffectNet image {row['sample_id']} lies outside its {w}x{h} pixels; "
            f"if your images are already face crops, set dataset.crop=none."
        )
    return image[y0:y1, x0:x1], (x0, y0)
