"""Write samples in the MixBasic layout that `dataset=mixbasic` reads (methods/iern.md §4).

    <out>/{CKPlus,MMI,OuluCASIA}/images/<stem>.png    faces resized to size×size (256 as published)
    <out>/emotion_labels.pkl                          {"ckplus_<stem>": "Anger", ...}, capitalised as published
    <out>/{train,test}_ids_<bias><fold>.csv           "MixBasic/<Source>/images/<stem>.png" lines, sorted,
                                                      no header, no newline after the last line

Sources come from each sample's `domain`: the names CKPlus / MMI / OuluCASIA (also ckplus, ck+,
oulu_casia, ...) are used as they are; any other values (indices, style names) are sorted and
mapped onto CKPlus, MMI, OuluCASIA in that order, so at most three distinct domains are allowed.
A stem is the sample id ("/" -> "_"), prefixed with `<subject>_` when the sample has a subject, so
the adapter reads the subject back from the file name as it does for S005_... or P001_... .

Fold files, by `folds`:
  "split" (default): one fold named `fold` (e.g. "bias100v1") from the samples' own `split`;
      train and val samples go to the train list (MixBasic has no validation list), test to test.
  "latin_square": the published design built from domain × class, ignoring `split`: all 12 CSVs
      (bias100 and bias90, v1..v3). In fold v<k> source d withholds the class pair
      PAIRS[(d + k - 1) % 3] from training and the test list is exactly the withheld cells;
      bias90 moves round(`bias90_fraction` × groups) groups (at least one, when a cell has two or
      more) of every withheld cell into training, a group being a video, else a subject, else one
      sample. So every bias100 train list is a subset of its bias90 list.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fermix.data.datasets.mixbasic import (
    SOURCES,
    fold_csv_name,
    label_key,
    normalise_bias,
    normalise_fold,
)
from fermix.data.label_spaces import get_label_space, map_label
from fermix.data.writers import WriterSample
from fermix.data.writers.images import write_png
from fermix.errors import FermixError
from fermix.utils.io import atomic_write_bytes, atomic_write_text

CLASS_NAMES: tuple[str, ...] = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")  # pkl spelling
PAIRS: tuple[tuple[str, str], ...] = (("Anger", "Happiness"), ("Disgust", "Sadness"), ("Fear", "Surprise"))
FOLDS = ("v1", "v2", "v3")
BIASES = ("bias100", "bias90")

_SOURCE_ALIASES = {
    "ckplus": "CKPlus",
    "ck+": "CKPlus",
    "ck": "CKPlus",
    "mmi": "MMI",
    "oulucasia": "OuluCASIA",
    "oulu_casia": "OuluCASIA",
    "oulu-casia": "OuluCASIA",
    "oulu": "OuluCASIA",
}


def write_mixbasic(
    samples: Iterable[WriterSample],
    out: Path,
    *,
    folds: str = "split",
    fold: str = "bias100v1",
    size: int | None = 256,
    bias90_fraction: float = 0.1,
    seed: int = 0,
    **_: object,
) -> Path:
    """Write the faces, emotion_labels.pkl and fold CSVs under `out` (the MixBasic root); returns `out`."""
    if folds not in ("split", "latin_square"):
        raise FermixError(f"folds={folds!r} is not a MixBasic fold mode; use `split` or `latin_square`.")
    if folds == "latin_square" and not 0.0 <= bias90_fraction < 1.0:
        raise FermixError(f"bias90_fraction={bias90_fraction} is not a fraction in [0, 1).")
    bias_fold = _parse_fold(fold) if folds == "split" else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # The source of a domain value is known only once every value has been seen, so faces are written
    # to a staging folder first and moved into <Source>/images/ at the end (no image is kept in memory).
    staging = out / ".mixbasic-staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        written = _write_images(samples, out, staging, size, check_split=bias_fold is not None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    labels = {r["key"]: r["label"] for r in sorted(written, key=lambda r: r["key"])}
    atomic_write_bytes(out / "emotion_labels.pkl", pickle.dumps(labels, protocol=4))
    if bias_fold is not None:
        lists = _split_lists(written, *bias_fold)
    else:
        lists = _latin_square_lists(written, bias90_fraction, seed)
    for name, lines in lists.items():
        atomic_write_text(out / name, "\n".join(sorted(lines)))
    return out


def _write_images(
    samples: Iterable[WriterSample], out: Path, staging: Path, size: int | None, check_split: bool
) -> list[dict[str, Any]]:
    """Faces into <Source>/images/; one record (line, key, label, source, split, group) per sample."""
    space = get_label_space("mixbasic6")
    staged: list[dict[str, Any]] = []
    for i, s in enumerate(samples):
        record = {
            "staged": staging / f"{i}.png",
            "domain": _domain_key(s.get("domain", "")),
            "label": _class_name(space, s),
            "stem": _stem(s),
            "split": _train_or_test(s) if check_split else None,
            "group": str(s.get("video") or s.get("subject") or s["sample_id"]),
        }
        write_png(record["staged"], _resized(s["image"], size))
        staged.append(record)
    if not staged:
        raise FermixError("no samples to write; a MixBasic root needs at least one image.")
    source_of = _source_map([r["domain"] for r in staged])
    keys = [label_key(source_of[r["domain"]], r["stem"]) for r in staged]
    if len(set(keys)) < len(keys):
        dupe = next(k for k in keys if keys.count(k) > 1)
        raise FermixError(f"two samples would both get the MixBasic key {dupe}; sample ids must differ.")
    written = []
    for r, key in zip(staged, keys, strict=True):
        source = source_of[r["domain"]]
        target = out / source / "images" / f"{r['stem']}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(r["staged"], target)
        written.append(r | {"source": source, "key": key, "line": f"MixBasic/{source}/images/{r['stem']}.png"})
    return written


# -------------------------------------------------------------------- samples -> files


def _domain_key(value: Any) -> tuple[int, Any]:
    """Sort key that orders numbers numerically and keeps them apart from names."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (0, int(value))
    return (1, "" if value is None else str(value))


def _source_map(domains: list[tuple[int, Any]]) -> dict[tuple[int, Any], str]:
    keys = sorted(set(domains))
    if all(k[0] == 1 and k[1].lower() in _SOURCE_ALIASES for k in keys):
        return {k: _SOURCE_ALIASES[k[1].lower()] for k in keys}
    if len(keys) > len(SOURCES):
        shown = ", ".join(str(k[1]) for k in keys)
        raise FermixError(
            f"MixBasic has {len(SOURCES)} sources ({', '.join(SOURCES)}) but the samples have "
            f"{len(keys)} domains ({shown})."
        )
    return {k: SOURCES[i] for i, k in enumerate(keys)}


def _class_name(space: Any, sample: WriterSample) -> str:
    expr = sample.get("expr")
    try:
        if expr is None:
            raise FermixError("unlabelled")
        return CLASS_NAMES[map_label(space, str(expr))]
    except FermixError:
        raise FermixError(
            f"sample {sample['sample_id']} has label {expr}, which is not one of MixBasic's six classes "
            f"({', '.join(CLASS_NAMES)})."
        ) from None


def _stem(sample: WriterSample) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", str(sample["sample_id"]).replace("/", "_"))
    subject = re.sub(r"[^A-Za-z0-9]", "", str(sample.get("subject") or ""))
    if subject and not stem.startswith(f"{subject}_"):
        stem = f"{subject}_{stem}"
    return stem


def _resized(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or image.shape[:2] == (size, size):
        return image
    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


# -------------------------------------------------------------------- fold lists


def _parse_fold(fold: str) -> tuple[str, str]:
    match = re.fullmatch(r"(bias\d+)(v\d+)", str(fold).strip().lower())
    if not match:
        raise FermixError(f"fold={fold!r} is not a MixBasic fold name like bias100v1.")
    return normalise_bias(match.group(1)), normalise_fold(match.group(2))


def _train_or_test(sample: WriterSample) -> str:
    """MixBasic lists only train and test: val samples join train (the datamodule carves val again)."""
    split = str(sample.get("split") or "").strip().lower()
    if split not in ("train", "val", "test"):
        raise FermixError(
            f"sample {sample['sample_id']} has split {sample.get('split')!r}; folds=split needs train, val or test."
        )
    return "test" if split == "test" else "train"


def _split_lists(written: list[dict[str, Any]], bias: str, fold: str) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {fold_csv_name(s, bias, fold): [] for s in ("train", "test")}
    for r in written:
        lists[fold_csv_name(r["split"], bias, fold)].append(r["line"])
    return lists


def withheld(source: str, fold: str) -> tuple[str, str]:
    """The class pair source `source` withholds from training in Latin-square fold `fold` (iern.md §4)."""
    k = FOLDS.index(fold) + 1
    return PAIRS[(SOURCES.index(source) + k - 1) % len(PAIRS)]


def _latin_square_lists(written: list[dict[str, Any]], fraction: float, seed: int) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for k, fold in enumerate(FOLDS):
        held = [r for r in written if r["label"] in withheld(r["source"], fold)]
        kept = [r["line"] for r in written if r["label"] not in withheld(r["source"], fold)]
        moved = _moved_groups(held, fraction, seed, k)
        lists[fold_csv_name("train", "bias100", fold)] = kept
        lists[fold_csv_name("test", "bias100", fold)] = [r["line"] for r in held]
        lists[fold_csv_name("train", "bias90", fold)] = kept + [r["line"] for r in held if r["line"] in moved]
        lists[fold_csv_name("test", "bias90", fold)] = [r["line"] for r in held if r["line"] not in moved]
    return lists


def _moved_groups(held: list[dict[str, Any]], fraction: float, seed: int, fold_index: int) -> set[str]:
    """Lines of the withheld rows that bias90 moves to training: whole groups, per (source, class) cell."""
    moved: set[str] = set()
    cells = sorted({(r["source"], r["label"]) for r in held})
    for source, label in cells:
        rows = [r for r in held if (r["source"], r["label"]) == (source, label)]
        groups = sorted({r["group"] for r in rows})
        n = round(fraction * len(groups))
        n = max(n, 1) if len(groups) >= 2 and fraction > 0 else n
        n = min(n, len(groups) - 1)
        if n <= 0:
            continue
        rng = np.random.default_rng([seed, fold_index, SOURCES.index(source), CLASS_NAMES.index(label)])
        picked = {groups[i] for i in rng.choice(len(groups), size=n, replace=False)}
        moved.update(r["line"] for r in rows if r["group"] in picked)
    return moved
