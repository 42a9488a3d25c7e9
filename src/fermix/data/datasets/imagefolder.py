"""Bring-your-own-data adapter: one folder per class, train/val/test folders, or a CSV manifest.

Layouts, decided in this order:
  (c) `manifest` set, or `root/manifest.csv` present: a CSV with columns path,label[,split,subject]
      (optionally sample_id, source and the 136 landmark columns of fermix.data.manifest);
  (b) a split folder exists: root/{train,val,test}/<class>/... (any subset; a split folder
      without images is an error, not a split to carve);
  (a) otherwise: root/<class>/... (one pool; the datamodule carves val/test).
Class order comes from `classes`, else `label_space`, else the label space recorded in a
`preprocess.json` beside the manifest, else the sorted class names found, so it is always
written down, never left to the file system's listing order.

The folder layouts are also raw input for `fermix preprocess` (`raw_items`), and the folder that
`fermix preprocess` writes (manifest.csv + preprocess.json + images/) is read back as layout (c),
with `landmarks` among the keys when every row has them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from fermix.data.datasets.base import DatasetAdapter, FolderConfig
from fermix.data.datasets.common import dataset_root, is_hidden, visible_dirs
from fermix.data.images import IMAGE_EXTENSIONS, read_image
from fermix.data.label_spaces import LABEL_SPACES, LabelSpace, get_label_space, map_label
from fermix.data.manifest import has_landmark_columns, landmarks_from_row
from fermix.data.raw import RawItem
from fermix.data.splits import SPLIT_ALIASES, SPLITS, normalise_split
from fermix.errors import FermixError

AUTO_MANIFEST = "manifest.csv"  # picked up from the root when dataset.manifest is not set
PREPROCESS_REPORT = "preprocess.json"


@dataclass(frozen=True)
class _Entry:
    """One image found: its file, native label ("" = unlabelled) and what the layout tells about it."""

    path: Path
    label: str
    split: str | None = None
    subject: str | None = None
    sample_id: str | None = None  # from a manifest's sample_id column; else derived from the path
    source: str | None = None
    landmarks: np.ndarray | None = None
    line: int | None = None  # the manifest line (1 = header) the entry came from


@dataclass(frozen=True)
class ImageFolderConfig(FolderConfig):
    """configs/dataset/imagefolder.yaml."""

    manifest: str | None = None
    classes: list[str] | None = None
    label_space: str | None = None
    extensions: list[str] | None = None


class ImageFolderDataset(DatasetAdapter):
    """Images with expression labels from a folder tree or a CSV manifest."""

    name = "imagefolder"
    Config = ImageFolderConfig
    keys: frozenset[str] = frozenset({"image", "expr", "sample_id", "subject"})

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        options: ImageFolderConfig = self.make_options(cfg)
        self.root = dataset_root(options.root, "images")
        self.extensions = _extensions(options.extensions)
        named_space = options.label_space
        classes = options.classes
        if named_space and classes:
            raise FermixError("set either dataset.classes or dataset.label_space, not both.")
        self._space: LabelSpace | None = get_label_space(str(named_space)) if named_space else None
        self._classes = _class_list(classes) if classes else None

        manifest = options.manifest
        if not manifest and (self.root / AUTO_MANIFEST).is_file():
            manifest = AUTO_MANIFEST
        if manifest:
            self._manifest: Path | None = _manifest_path(self.root, str(manifest))
            entries = self._scan_manifest(self._manifest)
            if self._space is None and self._classes is None:
                self._space = _recorded_label_space(self._manifest.parent / PREPROCESS_REPORT)
        elif _split_folders(self.root):
            self._manifest = None
            entries = self._scan_split_folders()
        else:
            self._manifest = None
            entries = [_Entry(p, label) for p, label in self._scan_class_folders(self.root)]
        if not entries:
            where = f"manifest {self._manifest}" if self._manifest else f"{self.root}"
            raise FermixError(
                f"no images found in {where}; expected one sub-folder per class holding "
                f"{'/'.join(e.lstrip('.') for e in self.extensions)} files, or set dataset.manifest=<csv>."
            )
        self.label_space = self._decide_label_space(entries)
        self._entries = entries
        self._records = self._build_records(entries)
        if all(e.landmarks is not None for e in entries):
            self.keys = self.keys | {"landmarks"}

    preprocessable = True  # raw_items lists its photos for fermix preprocess

    @classmethod
    def raw_items(cls, cfg: Mapping[str, Any]) -> list[RawItem]:
        """The images as raw photos for `fermix preprocess`: class = folder name (or manifest label),
        split from split folders, sample_id = the path below root without its suffix."""
        ds = cls(cfg)
        return ds._raw_items()

    # ---------------------------------------------------------------- public API

    def records(self) -> pd.DataFrame:
        """One row per image: sample_id, path, expr, split, subject, source (a copy; safe to modify)."""
        return self._records.copy()

    def load(self, row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
        """Read one sample as a dict in the project-wide key vocabulary."""
        subject = row["subject"]
        sample = {
            "image": read_image(row["path"]),
            "expr": int(row["expr"]),
            "sample_id": str(row["sample_id"]),
            "subject": "" if _missing(subject) else str(subject),
        }
        if "landmarks" in self.keys:
            sample["landmarks"] = np.array(row["landmarks"], dtype=np.float32).reshape(68, 2)
        return sample

    def __len__(self) -> int:
        return len(self._records)

    # ---------------------------------------------------------------- scanning

    def _scan_class_folders(self, folder: Path) -> list[tuple[Path, str]]:
        """(path, class folder name) for every image under folder/<class>/ (recursively)."""
        found: list[tuple[Path, str]] = []
        for class_dir in visible_dirs(folder):
            images = sorted(p for p in _walk_files(class_dir) if p.suffix.lower() in self.extensions)
            if not images:
                raise FermixError(
                    f"class folder {class_dir} has no images; remove it or add images, "
                    f"since an empty class cannot be trained."
                )
            found.extend((p, class_dir.name) for p in images)
        return found

    def _scan_split_folders(self) -> list[_Entry]:
        entries: list[_Entry] = []
        seen: dict[str, Path] = {}
        for split, split_dir in _split_folders(self.root):
            if split in seen:
                raise FermixError(f"both {seen[split]} and {split_dir} hold the {split} split; keep one.")
            seen[split] = split_dir
            found = self._scan_class_folders(split_dir)
            if not found:
                fix = "" if split == "train" else f", or remove it to carve {split} from train (data.{split}_fraction)"
                raise FermixError(
                    f"split {split} of dataset imagefolder has no samples: {split_dir} holds no class folders; "
                    f"add one sub-folder of images per class{fix}."
                )
            entries.extend(_Entry(p, label, split) for p, label in found)
        return entries

    def _scan_manifest(self, manifest: Path) -> list[_Entry]:
        try:
            table = pd.read_csv(manifest, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise FermixError(f"cannot read manifest {manifest}: {e}") from e
        table.columns = [str(c).strip().lower() for c in table.columns]
        missing = [c for c in ("path", "label") if c not in table.columns]
        if missing:
            raise FermixError(
                f"manifest {manifest} lacks column(s) {', '.join(missing)}; "
                f"it needs path,label and optionally split,subject."
            )
        entries: list[_Entry] = []
        absent: list[Path] = []
        with_landmarks = has_landmark_columns(table.columns)
        for line, rec in enumerate(table.to_dict("records"), start=2):
            rel = str(rec["path"]).strip()
            if not rel:
                raise FermixError(f"line {line} of manifest {manifest} has an empty path.")
            path = Path(rel) if os.path.isabs(rel) else self.root / rel
            if not path.is_file():
                absent.append(path)
                continue
            try:
                split = normalise_split(rec.get("split"))
            except FermixError as e:
                raise FermixError(f"manifest {manifest}: {e}") from None
            subject = str(rec.get("subject") or "").strip() or None
            try:
                landmarks = landmarks_from_row(rec) if with_landmarks else None
            except ValueError:
                raise FermixError(f"manifest {manifest} has a non-numeric landmark value for {rel}.") from None
            entries.append(
                _Entry(
                    path,
                    str(rec["label"]).strip(),
                    split,
                    subject,
                    sample_id=str(rec.get("sample_id") or "").strip() or None,
                    source=str(rec.get("source") or "").strip() or None,
                    landmarks=landmarks,
                    line=line,
                )
            )
        if absent:
            first = absent[0]
            raise FermixError(f"manifest {manifest} lists {len(absent)} missing file(s), e.g. {first}.")
        return entries

    # ---------------------------------------------------------------- labels and records

    def _decide_label_space(self, entries: list[_Entry]) -> LabelSpace:
        if self._space is not None:
            return self._space
        if self._classes is not None:
            return LabelSpace("imagefolder", tuple(self._classes))
        # Case-insensitive sort and de-duplication: "Sad" and "sad" are one class (lookup ignores case).
        labels: list[str] = []
        for label in sorted({e.label for e in entries if e.label}, key=lambda x: (x.casefold(), x)):
            if not labels or labels[-1].casefold() != label.casefold():
                labels.append(label)
        if self._manifest is not None and any(_as_int(x) is not None for x in labels):
            raise FermixError(
                f"manifest {self._manifest} has integer labels; name the classes in index order with "
                f"dataset.classes=[...] or pick dataset.label_space."
            )
        return LabelSpace("imagefolder", tuple(labels))

    def _label_index(self, entry: _Entry) -> int:
        space = self.label_space
        text, path = str(entry.label).strip(), entry.path
        lowered = [c.lower() for c in space.classes]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if self._space is not None:
            try:
                return map_label(space, text)
            except FermixError:
                pass
        number = _as_int(text)
        if self._manifest is not None and number is not None:
            if 0 <= number < space.num_classes:
                return number
            raise FermixError(
                f"label {number} on line {entry.line} of manifest {self._manifest} ({path.name}) is out of range "
                f"for {space.num_classes} classes ({', '.join(space.classes)}); labels count from 0."
            )
        if self._manifest is not None:
            where = f"label `{text}` on line {entry.line} of manifest {self._manifest} ({path.name})"
        else:
            where = f"class folder {next((p for p in path.parents if p.name == text), path.parent)}"
        known = ", ".join(space.classes)
        raise FermixError(f"{where} is not a class of `{space.name}`; known classes: {known}.")

    def _expr(self, entry: _Entry, index_of: dict[str, int]) -> int:
        """Class index of an entry; -1 for an unlabelled manifest row (empty label)."""
        if not entry.label and self._manifest is not None:
            return -1
        if entry.label not in index_of:
            index_of[entry.label] = self._label_index(entry)
        return index_of[entry.label]

    def _build_records(self, entries: list[_Entry]) -> pd.DataFrame:
        index_of: dict[str, int] = {}
        columns: dict[str, Any] = {
            "sample_id": pd.Series([e.sample_id or _sample_id(self.root, e.path) for e in entries], dtype=object),
            "path": pd.Series([str(e.path.absolute()) for e in entries], dtype=object),
            "expr": np.array([self._expr(e, index_of) for e in entries], dtype=np.int64),
            "split": pd.Series([e.split for e in entries], dtype=object),
            "subject": pd.Series([e.subject for e in entries], dtype=object),
            "source": pd.Series([e.source or self.name for e in entries], dtype=object),
        }
        if entries and all(e.landmarks is not None for e in entries):
            columns["landmarks"] = pd.Series([e.landmarks for e in entries], dtype=object)
        df = pd.DataFrame(columns)
        dupes = df["sample_id"][df["sample_id"].duplicated()]
        if len(dupes):
            where = self._manifest or self.root
            raise FermixError(f"image {dupes.iloc[0]} is listed more than once in {where}.")
        return df.sort_values("sample_id", kind="stable").reset_index(drop=True)

    def _raw_items(self) -> list[RawItem]:
        index_of: dict[str, int] = {}
        items = []
        for entry in self._entries:
            expr = self._expr(entry, index_of)
            rel = PurePosixPath(_sample_id(self.root, entry.path).lstrip("/"))
            items.append(
                RawItem(
                    path=entry.path.absolute(),
                    sample_id=rel.with_suffix("").as_posix() if rel.suffix else rel.as_posix(),
                    label=self.label_space.classes[expr] if expr >= 0 else None,
                    native_label=entry.label or None,
                    split=entry.split,
                    subject=entry.subject,
                    source=entry.source or self.name,
                )
            )
        seen: dict[str, Path] = {}
        for item in items:
            if item.sample_id in seen:
                raise FermixError(
                    f"{seen[item.sample_id]} and {item.path} would both be sample {item.sample_id}; "
                    f"rename one, since preprocessed faces are named by path without suffix."
                )
            seen[item.sample_id] = item.path
        return sorted(items, key=lambda it: it.sample_id)


# -------------------------------------------------------------------- helpers




def _split_folders(root: Path) -> list[tuple[str, Path]]:
    """(split, folder) for root's train/val/test folders (and their aliases valid/validation)."""
    found = []
    for folder in visible_dirs(root):
        split = SPLIT_ALIASES.get(folder.name.lower(), folder.name.lower())
        if split in SPLITS:
            found.append((split, folder))
    return found


def _extensions(value: list[str] | None) -> tuple[str, ...]:
    if value is None:
        return IMAGE_EXTENSIONS
    exts = tuple("." + e.strip().lower().lstrip(".") for e in value)
    if not exts:
        raise FermixError("dataset.extensions is empty; list at least one image extension, e.g. [jpg, png].")
    return exts


def _class_list(value: list[str]) -> list[str]:
    names = [c.strip() for c in value]
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in lowered if lowered.count(n) > 1})
    if dupes:
        raise FermixError(f"dataset.classes lists {', '.join(dupes)} more than once.")
    return names


def _manifest_path(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise FermixError(f"manifest {path} does not exist (a relative path is read from dataset.root).")
    return path


def _walk_files(folder: Path) -> Iterable[Path]:
    """Files under folder, skipping hidden files and descending into no hidden folder."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(Path(d)))
        for f in filenames:
            if not is_hidden(Path(f)):
                yield Path(dirpath) / f


def _sample_id(root: Path, path: Path) -> str:
    """Path relative to root (posix), or the absolute posix path for files outside root."""
    try:
        return path.absolute().relative_to(root.absolute()).as_posix()
    except ValueError:
        return path.absolute().as_posix()


def _as_int(text: str) -> int | None:
    try:
        return int(str(text).strip())
    except ValueError:
        return None


def _recorded_label_space(report: Path) -> LabelSpace | None:
    """The label space a `fermix preprocess` run recorded in its preprocess.json, if there is one."""
    if not report.is_file():
        return None
    try:
        recorded = json.loads(report.read_text(encoding="utf-8")).get("label_space")
    except (OSError, ValueError, AttributeError) as e:
        raise FermixError(f"cannot read {report}: {e}; fix or delete it, or set dataset.label_space.") from e
    if not isinstance(recorded, Mapping) or not recorded.get("name"):
        return None
    name = str(recorded["name"])
    if name in LABEL_SPACES:
        return get_label_space(name)
    classes = recorded.get("classes")
    if not isinstance(classes, list) or not classes:
        raise FermixError(f"{report} records label space `{name}` without its classes; set dataset.classes=[...].")
    return LabelSpace(name, tuple(str(c) for c in classes))


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))
