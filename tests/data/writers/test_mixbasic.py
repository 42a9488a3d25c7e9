"""write_mixbasic writes the published MixBasic layout (methods/iern.md §4), checked literally."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from fermix.data.datasets.mixbasic import MixBasicDataset
from fermix.data.writers.mixbasic import write_mixbasic
from fermix.errors import FermixError

CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise")  # canonical names, as samples carry them
PKL_NAMES = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
SOURCES = ("CKPlus", "MMI", "OuluCASIA")

# The Latin square of iern.md §4, written out: the class pair each source withholds per fold.
WITHHELD = {
    "v1": {"CKPlus": {"Anger", "Happiness"}, "MMI": {"Disgust", "Sadness"}, "OuluCASIA": {"Fear", "Surprise"}},
    "v2": {"CKPlus": {"Disgust", "Sadness"}, "MMI": {"Fear", "Surprise"}, "OuluCASIA": {"Anger", "Happiness"}},
    "v3": {"CKPlus": {"Fear", "Surprise"}, "MMI": {"Anger", "Happiness"}, "OuluCASIA": {"Disgust", "Sadness"}},
}


def _sample(sid: str, expr: str | None = "happy", domain: object = "CKPlus", split: str = "train",
            subject: str = "", size: int = 8, **extra) -> dict:
    image = np.full((size, size, 3), 100, dtype=np.uint8)
    return {"image": image, "sample_id": sid, "expr": expr, "domain": domain, "split": split, "subject": subject,
            **extra}


def _grid(subjects: int = 10, frames: int = 2):
    """Every (source, class) cell: `subjects` subjects × `frames` frames each."""
    for source in SOURCES:
        for label in CLASSES:
            for s in range(subjects):
                for f in range(frames):
                    yield _sample(f"{label}_{f}", label, source, subject=f"S{s:03d}")


def _lines(root: Path, name: str) -> list[str]:
    text = (root / name).read_text()
    return text.split("\n") if text else []


def _cell(root: Path, line: str) -> tuple[str, str]:
    labels = pickle.loads((root / "emotion_labels.pkl").read_bytes())
    _, source, _, name = line.split("/")
    return source, labels[f"{source.lower()}_{Path(name).stem}"]


# ---------------------------------------------------------------- the layout


def test_layout_pkl_and_csv_are_the_published_format(tmp_path):
    samples = [
        _sample("001_00000009", "disgust", "CKPlus", "train", subject="S005", size=40),
        _sample("100_040", "happy", "MMI", "test", subject="S001"),
        _sample("Anger_014", "anger", "OuluCASIA", "train", subject="P001"),
    ]
    root = write_mixbasic(samples, tmp_path / "MixBasic")
    assert root == tmp_path / "MixBasic"
    image = cv2.imread(str(root / "CKPlus/images/S005_001_00000009.png"))
    assert image.shape == (256, 256, 3)
    assert (root / "MMI/images/S001_100_040.png").is_file() and (root / "OuluCASIA/images/P001_Anger_014.png").is_file()
    labels = pickle.loads((root / "emotion_labels.pkl").read_bytes())
    assert labels == {
        "ckplus_S005_001_00000009": "Disgust",
        "mmi_S001_100_040": "Happiness",
        "oulucasia_P001_Anger_014": "Anger",
    }
    assert (root / "train_ids_bias100v1.csv").read_text() == (
        "MixBasic/CKPlus/images/S005_001_00000009.png\nMixBasic/OuluCASIA/images/P001_Anger_014.png"
    )  # sorted, no header, no newline after the last line
    assert (root / "test_ids_bias100v1.csv").read_text() == "MixBasic/MMI/images/S001_100_040.png"
    assert sorted(p.name for p in root.iterdir()) == [
        "CKPlus", "MMI", "OuluCASIA", "emotion_labels.pkl", "test_ids_bias100v1.csv", "train_ids_bias100v1.csv"
    ]


def test_size_none_keeps_the_image_size(tmp_path):
    root = write_mixbasic([_sample("a", size=24)], tmp_path / "mb", size=None)
    assert cv2.imread(str(root / "CKPlus/images/a.png")).shape == (24, 24, 3)


def test_the_adapter_reads_back_labels_domains_and_subjects(tmp_path):
    samples = [_sample(f"x{i}", CLASSES[i % 6], SOURCES[i % 3], "test" if i % 4 == 0 else "val", subject=f"P{i:03d}")
               for i in range(12)]
    rec = MixBasicDataset({"root": str(write_mixbasic(samples, tmp_path / "mb"))}).records().set_index("subject")
    for i in range(len(samples)):
        row = rec.loc[f"P{i:03d}"]
        assert row["expr"] == i % 6 and row["domain"] == i % 3
        assert row["split"] == ("test" if i % 4 == 0 else "train")  # val joins the train list


# ---------------------------------------------------------------- domains -> source folders


@pytest.mark.parametrize(
    ("domains", "expected"),
    [
        (["ck+", "MMI", "oulu_casia"], ["CKPlus", "MMI", "OuluCASIA"]),
        ([2, 0, 1], ["OuluCASIA", "CKPlus", "MMI"]),
        (["style_b", "style_a", "style_c"], ["MMI", "CKPlus", "OuluCASIA"]),
        (["", ""], ["CKPlus", "CKPlus"]),
    ],
)
def test_domains_map_onto_the_three_source_folders(tmp_path, domains, expected):
    samples = [_sample(f"s{i}", domain=d) for i, d in enumerate(domains)]
    root = write_mixbasic(samples, tmp_path / "mb")
    for i, source in enumerate(expected):
        assert (root / source / "images" / f"s{i}.png").is_file()


def test_more_than_three_domains_is_one_sentence(tmp_path):
    samples = [_sample(f"s{i}", domain=f"d{i}") for i in range(4)]
    with pytest.raises(FermixError, match=r"MixBasic has 3 sources .* but the samples have 4 domains"):
        write_mixbasic(samples, tmp_path / "mb")


# ---------------------------------------------------------------- refused input


@pytest.mark.parametrize("expr", ["neutral", "contempt", None])
def test_a_label_outside_the_six_classes_is_refused_and_leaves_no_staging(tmp_path, expr):
    with pytest.raises(FermixError, match=f"has label {expr}, which is not one of MixBasic's six classes"):
        write_mixbasic([_sample("ok"), _sample("bad", expr)], tmp_path / "mb")
    assert not (tmp_path / "mb" / ".mixbasic-staging").exists()


def test_split_mode_names_the_fold_and_refuses_a_bad_one(tmp_path):
    root = write_mixbasic([_sample("a"), _sample("b", split="test")], tmp_path / "mb", fold="bias90v2")
    assert _lines(root, "train_ids_bias90v2.csv") == ["MixBasic/CKPlus/images/a.png"]
    assert _lines(root, "test_ids_bias90v2.csv") == ["MixBasic/CKPlus/images/b.png"]
    with pytest.raises(FermixError, match="not a MixBasic fold name like bias100v1"):
        write_mixbasic([_sample("a")], tmp_path / "mb2", fold="v1")
    with pytest.raises(FermixError, match="has split 'holdout'"):
        write_mixbasic([_sample("a", split="holdout")], tmp_path / "mb3")


def test_two_samples_with_one_file_name_are_refused(tmp_path):
    with pytest.raises(FermixError, match="both get the MixBasic key ckplus_a"):
        write_mixbasic([_sample("a"), _sample("a")], tmp_path / "mb")


# ---------------------------------------------------------------- the Latin-square folds


@pytest.fixture(scope="module")
def square(tmp_path_factory) -> Path:
    return write_mixbasic(_grid(), tmp_path_factory.mktemp("square") / "MixBasic", folds="latin_square", size=None)


def test_latin_square_writes_all_twelve_fold_files(square):
    names = sorted(p.name for p in square.glob("*.csv"))
    assert names == sorted(f"{s}_ids_{b}{f}.csv" for s in ("train", "test") for b in ("bias100", "bias90")
                           for f in ("v1", "v2", "v3"))


@pytest.mark.parametrize("fold", ["v1", "v2", "v3"])
def test_bias100_test_lists_are_exactly_the_withheld_cells(square, fold):
    train, test = _lines(square, f"train_ids_bias100{fold}.csv"), _lines(square, f"test_ids_bias100{fold}.csv")
    every = {(s, n) for s in SOURCES for n in PKL_NAMES}
    withheld = {(s, n) for s, names in WITHHELD[fold].items() for n in names}
    assert {_cell(square, line) for line in test} == withheld
    assert {_cell(square, line) for line in train} == every - withheld
    assert not set(train) & set(test) and len(train) + len(test) == 3 * 6 * 10 * 2


@pytest.mark.parametrize("fold", ["v1", "v2", "v3"])
def test_bias90_moves_whole_groups_of_each_withheld_cell_into_train(square, fold):
    train100, test100 = _lines(square, f"train_ids_bias100{fold}.csv"), _lines(square, f"test_ids_bias100{fold}.csv")
    train90, test90 = _lines(square, f"train_ids_bias90{fold}.csv"), _lines(square, f"test_ids_bias90{fold}.csv")
    assert set(train100) < set(train90) and set(test90) < set(test100)
    assert set(train90) | set(test90) == set(train100) | set(test100) and not set(train90) & set(test90)
    moved = set(train90) - set(train100)
    for source, names in WITHHELD[fold].items():
        for name in names:
            cell = [line for line in moved if _cell(square, line) == (source, name)]
            subjects = {Path(line).name.split("_")[0] for line in cell}
            assert len(subjects) == 1 and len(cell) == 2  # 10% of 10 subjects, both frames of the subject


def test_the_adapter_reads_every_latin_square_fold(square):
    for fold in ("v1", "v2", "v3"):
        for bias in ("bias100", "bias90"):
            rec = MixBasicDataset({"root": str(square), "fold": fold, "bias": bias}).records()
            assert len(rec) == 3 * 6 * 10 * 2
