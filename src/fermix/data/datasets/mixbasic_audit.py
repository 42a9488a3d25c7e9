"""MixBasic's fold design audited (iern.md §7 test 9): all 12 fold CSVs of a root hold one image set, the
Latin square of withheld (source, class) cells, bias100 ⊂ bias90 and, for the published dataset, the
published counts. `scripts/check_mixbasic.py` runs it from the shell; the adapter (mixbasic.py) checks
one fold's paths and labels when it loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fermix.data.datasets.mixbasic import (
    LABELS_FILE,
    SOURCES,
    SPLIT_FILES,
    MixBasicDataset,
    count_text,
    dataset_dir,
    examples,
    fold_csv_name,
    normalise_bias,
    normalise_fold,
)
from fermix.errors import FermixError

# The Latin square of iern.md §4: the class pair (mixbasic6 names) each source withholds from
# training in each bias100 fold; the bias100 test list holds exactly these cells.
WITHHELD: dict[str, dict[str, tuple[str, str]]] = {
    "v1": {"CKPlus": ("anger", "happiness"), "MMI": ("disgust", "sadness"), "OuluCASIA": ("fear", "surprise")},
    "v2": {"CKPlus": ("disgust", "sadness"), "MMI": ("fear", "surprise"), "OuluCASIA": ("anger", "happiness")},
    "v3": {"CKPlus": ("fear", "surprise"), "MMI": ("anger", "happiness"), "OuluCASIA": ("disgust", "sadness")},
}
REAL_IMAGES = 2991  # CK+ 927 + MMI 624 + Oulu-CASIA 1440: the published dataset (iern.md §4)
# iern.md §4 count table: (bias, fold) -> split -> images per source, in SOURCES order. Checked
# only when a root lists exactly REAL_IMAGES images, i.e. when it is the real dataset.
REAL_COUNTS: dict[tuple[str, str], dict[str, tuple[int, int, int]]] = {
    ("bias100", "v1"): {"train": (585, 432, 960), "test": (342, 192, 480)},
    ("bias100", "v2"): {"train": (666, 417, 960), "test": (261, 207, 480)},
    ("bias100", "v3"): {"train": (603, 399, 960), "test": (324, 225, 480)},
    ("bias90", "v1"): {"train": (618, 450, 1008), "test": (309, 174, 432)},
    ("bias90", "v2"): {"train": (693, 438, 1008), "test": (234, 186, 432)},
    ("bias90", "v3"): {"train": (633, 420, 1008), "test": (294, 204, 432)},
}


@dataclass(frozen=True)
class FoldAudit:
    """What one fold's two CSVs hold: images per split and source, and the withheld cells."""

    bias: str
    fold: str
    counts: dict[str, dict[str, int]]  # split -> source -> images
    withheld: dict[str, tuple[str, ...]]  # source -> classes in test and absent from train

    @property
    def name(self) -> str:
        return f"{self.bias}{self.fold}"


@dataclass(frozen=True)
class MixBasicAudit:
    """The outcome of `audit_folds`: every check passed for these folds."""

    root: Path
    images: int  # |train ∪ test|, the same in every fold
    real: bool  # the union has the published 2991 images, so the §4 count table was checked too
    folds: tuple[FoldAudit, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "images": self.images,
            "real": self.real,
            "folds": [
                {"bias": f.bias, "fold": f.fold, "counts": f.counts, "withheld": _plain(f.withheld)}
                for f in self.folds
            ],
        }

    def summary(self) -> str:
        """A few lines for a terminal: per fold, images per split and source, and the withheld cells."""
        scope = "the published count table matches" if self.real else "not the published size, counts not compared"
        lines = [f"mixbasic audit of {self.root}: {self.images} images in every fold ({scope}); all checks passed."]
        for f in self.folds:
            split_text = "; ".join(
                f"{split} {sum(c.values())} ({', '.join(f'{s} {n}' for s, n in c.items())})"
                for split, c in f.counts.items()
            )
            lines.append(f"  {f.name}: {split_text}")
            if f.bias == "bias100":
                held = "; ".join(f"{s} {'+'.join(c) or '-'}" for s, c in f.withheld.items())
                lines.append(f"    withheld from training: {held}")
        return "\n".join(lines)


def _plain(withheld: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    return {source: list(classes) for source, classes in withheld.items()}


def audit_folds(
    root: Any, biases: Sequence[str] = ("bias100", "bias90"), folds: Sequence[str] = ("v1", "v2", "v3")
) -> MixBasicAudit:
    """Check a MixBasic root's fold files as iern.md §7 test 9 asks; the first violation raises one sentence.

    The original loader meets a bad path or key mid-training and never checks the fold design at
    all; a wrongly regenerated CSV would silently change what "o.o.d." means.
    """
    root = dataset_dir(root)
    biases = [normalise_bias(b) for b in biases]
    folds = [normalise_fold(f) for f in folds]
    if not biases or not folds:
        raise FermixError("mixbasic: the audit needs at least one bias setting and one fold.")
    records: dict[tuple[str, str], pd.DataFrame] = {}
    reference: tuple[str, set[str]] | None = None
    for bias in biases:
        for fold in folds:
            # Paths on disk, keys and labels in the pkl, no repeats and train ∩ test = ∅: the adapter's checks.
            rec = MixBasicDataset({"root": str(root), "fold": fold, "bias": bias}).records()
            records[(bias, fold)] = rec
            union = set(rec["sample_id"])
            if reference is None:
                reference = (f"{bias}{fold}", union)
            else:
                _check_same_images(f"{bias}{fold}", union, *reference)
    assert reference is not None  # at least one fold was read
    images = len(reference[1])
    real = images == REAL_IMAGES
    audits = []
    for (bias, fold), rec in records.items():
        counts = {
            split: {s: int(((rec["split"] == split) & (rec["source"] == s)).sum()) for s in SOURCES}
            for split in SPLIT_FILES
        }
        if real and (bias, fold) in REAL_COUNTS:
            _check_counts(bias, fold, counts)
        _check_oulu_names(rec)
        withheld = _withheld(rec)
        if bias == "bias100":
            _check_latin_square(fold, rec, withheld)
        audits.append(FoldAudit(bias, fold, counts, withheld))
    if "bias100" in biases and "bias90" in biases:
        for fold in folds:
            _check_subset(fold, records[("bias100", fold)], records[("bias90", fold)])
    return MixBasicAudit(root=root, images=images, real=real, folds=tuple(audits))


def _check_same_images(name: str, union: set[str], ref_name: str, ref: set[str]) -> None:
    if union == ref:
        return
    missing, extra = sorted(ref - union), sorted(union - ref)
    what = f"lacks {examples(missing)}" if missing else f"adds {examples(extra)}"
    raise FermixError(
        f"mixbasic: the train and test lists of {name} together hold {len(union)} images, not the {len(ref)} "
        f"of {ref_name} ({what}); every fold must split the same image set."
    )


def _check_counts(bias: str, fold: str, counts: dict[str, dict[str, int]]) -> None:
    for split, expected in REAL_COUNTS[(bias, fold)].items():
        for source, want in zip(SOURCES, expected, strict=True):
            got = counts[split][source]
            if got != want:
                raise FermixError(
                    f"mixbasic: {fold_csv_name(split, bias, fold)} lists {got} {source} images, "
                    f"but the published split (iern.md §4) has {want}."
                )


def _check_oulu_names(rec: pd.DataFrame) -> None:
    """Oulu-CASIA file names carry the emotion (P001_Anger_014); the pkl label must agree with it."""
    classes = MixBasicDataset.label_space.classes
    for sid, expr in zip(rec["sample_id"], rec["expr"], strict=True):
        if not sid.startswith("OuluCASIA/"):
            continue
        fields = Path(sid).stem.split("_")
        named = fields[1].lower() if len(fields) > 2 else ""
        if named in classes and named != classes[expr]:
            raise FermixError(
                f"mixbasic: {sid} is named {fields[1]} but {LABELS_FILE} labels it {classes[expr]}."
            )


def _cells(rec: pd.DataFrame, split: str) -> set[tuple[str, str]]:
    classes = MixBasicDataset.label_space.classes
    part = rec[rec["split"] == split]
    return {(s, classes[e]) for s, e in zip(part["source"], part["expr"], strict=True)}


def _withheld(rec: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Per source, the classes present in test and absent from train, in label-space order."""
    held = _cells(rec, "test") - _cells(rec, "train")
    classes = MixBasicDataset.label_space.classes
    return {s: tuple(c for c in classes if (s, c) in held) for s in SOURCES}


def _check_latin_square(fold: str, rec: pd.DataFrame, withheld: dict[str, tuple[str, ...]]) -> None:
    test_csv = fold_csv_name("test", "bias100", fold)
    if fold not in WITHHELD:
        raise FermixError(f"mixbasic: the Latin square of iern.md §4 has folds v1, v2 and v3, not {fold}.")
    present = _cells(rec, "train") | _cells(rec, "test")
    for source in SOURCES:
        expected = tuple(c for c in WITHHELD[fold][source] if (source, c) in present)
        if withheld[source] != expected:
            found = " and ".join(withheld[source]) or "nothing"
            raise FermixError(
                f"mixbasic: fold {fold} (bias100) withholds {found} of {source} from training, but the Latin "
                f"square of iern.md §4 withholds {' and '.join(WITHHELD[fold][source])}."
            )
    for source, label in sorted(_cells(rec, "test")):
        if label not in withheld[source]:
            raise FermixError(
                f"mixbasic: {test_csv} holds {source} {label} images, a cell that fold {fold} also trains on; "
                f"a bias100 test list must hold only the withheld cells."
            )


def _check_subset(fold: str, bias100: pd.DataFrame, bias90: pd.DataFrame) -> None:
    train100 = set(bias100.loc[bias100["split"] == "train", "sample_id"])
    train90 = set(bias90.loc[bias90["split"] == "train", "sample_id"])
    absent = sorted(train100 - train90)
    if absent:
        raise FermixError(
            f"mixbasic: {count_text(len(absent), 'image')} of {fold_csv_name('train', 'bias100', fold)} "
            f"{'is' if len(absent) == 1 else 'are'} not in {fold_csv_name('train', 'bias90', fold)}, "
            f"e.g. {examples(absent)}; every bias100 training list must be a subset of its bias90 list."
        )
