"""The mixbasic adapter on fixtures written by hand in the published layout (methods/iern.md §4)."""

from __future__ import annotations

import os
import pickle
import runpy
from pathlib import Path

import cv2
import numpy as np
import pytest

from fermix.data.datasets.mixbasic import MixBasicDataset
from fermix.data.datasets.mixbasic_audit import audit_folds
from fermix.data.writers.mixbasic import write_mixbasic
from fermix.errors import FermixError
from tests.conftest import assert_one_sentence_error
from tests.engine.runner import quick_overrides, run_train_in_process

# Real-looking names: CK+ <Subj>_<Seq>_<frame>, MMI <S###>_<seq>_<frame>, Oulu <P###>_<Emotion>_<frame>.
LABELS = {
    "CKPlus/images/S005_001_00000009.png": "Disgust",
    "CKPlus/images/S010_006_00000013.png": "Happiness",
    "MMI/images/S001_100_040.png": "Anger",
    "MMI/images/S002_101_041.png": "Surprise",
    "OuluCASIA/images/P001_Anger_014.png": "Anger",
    "OuluCASIA/images/P002_Fear_017.png": "Fear",
    "OuluCASIA/images/P003_Sadness_012.png": "Sadness",
}
TRAIN = [
    "CKPlus/images/S005_001_00000009.png",
    "MMI/images/S001_100_040.png",
    "OuluCASIA/images/P001_Anger_014.png",
    "OuluCASIA/images/P003_Sadness_012.png",
]
TEST = ["CKPlus/images/S010_006_00000013.png", "MMI/images/S002_101_041.png", "OuluCASIA/images/P002_Fear_017.png"]


def _key(rel: str) -> str:
    source, _, name = rel.split("/")
    return f"{source.lower()}_{Path(name).stem}"


def _csv_text(rels: list[str]) -> str:
    """As published: `MixBasic/`-prefixed paths, no header, no newline after the last line."""
    return "\n".join(f"MixBasic/{rel}" for rel in rels)


def _make_root(root: Path, labels: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    for rel in LABELS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / rel), rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    pkl = labels if labels is not None else {_key(rel): label for rel, label in LABELS.items()}
    (root / "emotion_labels.pkl").write_bytes(pickle.dumps(pkl, protocol=4))
    (root / "train_ids_bias100v1.csv").write_text(_csv_text(TRAIN))
    (root / "test_ids_bias100v1.csv").write_text(_csv_text(TEST))
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    return _make_root(tmp_path / "MixBasic")


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


# ---------------------------------------------------------------- reading


def test_labels_map_into_mixbasic6_by_name(root):
    ds = MixBasicDataset({"root": str(root)})
    assert ds.label_space.classes == ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    expr = dict(zip(ds.records()["sample_id"], ds.records()["expr"], strict=True))
    assert expr["CKPlus/images/S010_006_00000013.png"] == 3  # "Happiness" -> index 3
    assert expr["CKPlus/images/S005_001_00000009.png"] == 1  # Disgust
    assert expr["MMI/images/S002_101_041.png"] == 5  # Surprise
    assert expr["OuluCASIA/images/P003_Sadness_012.png"] == 4  # Sadness


def test_domain_is_the_source_folder_index(root):
    ds = MixBasicDataset({"root": str(root)})
    assert ds.domain_names == ("CKPlus", "MMI", "OuluCASIA") and ds.num_domains == 3
    assert "domain" in ds.keys
    rec = ds.records()
    for sid, domain, source in zip(rec["sample_id"], rec["domain"], rec["source"], strict=True):
        assert domain == ("CKPlus", "MMI", "OuluCASIA").index(sid.split("/")[0])
        assert source == sid.split("/")[0]


def test_train_and_test_rows_come_from_the_fold_csvs(root):
    rec = MixBasicDataset({"root": str(root)}).records()
    assert sorted(rec.loc[rec["split"] == "train", "sample_id"]) == sorted(TRAIN)
    assert sorted(rec.loc[rec["split"] == "test", "sample_id"]) == sorted(TEST)
    assert "val" not in set(rec["split"])
    assert list(rec["sample_id"]) == sorted(rec["sample_id"])
    assert rec.loc[0, "path"] == str((root / rec.loc[0, "sample_id"]).absolute())


def test_subject_comes_from_the_file_name(root):
    rec = MixBasicDataset({"root": str(root)}).records()
    subjects = dict(zip(rec["sample_id"], rec["subject"], strict=True))
    assert subjects["CKPlus/images/S005_001_00000009.png"] == "S005"
    assert subjects["MMI/images/S002_101_041.png"] == "S002"
    assert subjects["OuluCASIA/images/P001_Anger_014.png"] == "P001"


def test_load_returns_every_declared_key(root):
    ds = MixBasicDataset({"root": str(root)})
    row = ds.records().iloc[-1]
    sample = ds.load(row)
    assert set(sample) == ds.keys
    assert sample["image"].shape == (12, 12, 3) and sample["image"].dtype == np.uint8
    assert sample["domain"] == 2 and isinstance(sample["domain"], int)
    assert sample["subject"] == row["subject"] and sample["expr"] == row["expr"]


def test_csv_blank_lines_other_extensions_and_crlf_are_skipped_and_the_first_component_dropped(root):
    text = "\r\n".join(["", "Other/CKPlus/images/S005_001_00000009.png", "  ", "MixBasic/notes.txt",
                        "MixBasic/OuluCASIA/images/P001_Anger_014.png", ""])
    (root / "train_ids_bias100v1.csv").write_text(text)
    rec = MixBasicDataset({"root": str(root)}).records()
    assert sorted(rec.loc[rec["split"] == "train", "sample_id"]) == [
        "CKPlus/images/S005_001_00000009.png",
        "OuluCASIA/images/P001_Anger_014.png",
    ]


def test_fold_and_bias_choose_the_csv_files(root):
    (root / "train_ids_bias90v2.csv").write_text(_csv_text([*TRAIN, TEST[0]]))
    (root / "test_ids_bias90v2.csv").write_text(_csv_text(TEST[1:]))
    rec = MixBasicDataset({"root": str(root), "fold": "v2", "bias": "bias90"}).records()
    assert (rec["split"] == "train").sum() == len(TRAIN) + 1


def test_the_folder_holding_mixbasic_is_accepted_as_root(root):
    assert len(MixBasicDataset({"root": str(root.parent)})) == len(LABELS)


# ---------------------------------------------------------------- validation errors


def test_a_missing_image_listed_in_a_csv_is_counted_in_one_sentence(root):
    (root / TRAIN[0]).unlink()
    (root / TRAIN[2]).unlink()
    with pytest.raises(Exception, match=r"mixbasic: 2 images listed in train_ids_bias100v1\.csv are missing") as err:
        MixBasicDataset({"root": str(root)})
    _one_sentence(str(err.value))
    assert TRAIN[0] in str(err.value)


def test_a_pkl_key_missing_is_one_sentence(root):
    labels = {_key(rel): label for rel, label in LABELS.items() if rel != TEST[1]}
    _make_root(root, labels)
    with pytest.raises(Exception, match=r"1 image listed in test_ids_bias100v1\.csv has no key") as err:
        MixBasicDataset({"root": str(root)})
    _one_sentence(str(err.value))
    assert _key(TEST[1]) in str(err.value)


@pytest.mark.parametrize("bad", ["Contempt", "Neutral", 3, None])
def test_a_label_outside_the_six_names_is_one_sentence(root, bad):
    labels = {_key(rel): label for rel, label in LABELS.items()}
    labels[_key(TRAIN[1])] = bad
    _make_root(root, labels)
    with pytest.raises(Exception, match="outside the six MixBasic classes") as err:
        MixBasicDataset({"root": str(root)})
    _one_sentence(str(err.value))
    assert f"`{bad}` for {_key(TRAIN[1])}" in str(err.value)


def test_labels_are_matched_case_insensitively(root):
    labels = {_key(rel): label.upper() for rel, label in LABELS.items()}
    _make_root(root, labels)
    rec = MixBasicDataset({"root": str(root)}).records()
    assert rec.loc[rec["sample_id"] == TEST[0], "expr"].item() == 3


def test_a_malicious_emotion_labels_pkl_is_refused_and_never_runs(root, tmp_path):
    marker = tmp_path / "pwned"
    (root / "emotion_labels.pkl").write_bytes(f"cos\nsystem\n(Vtouch {marker}\ntR.".encode())
    with pytest.raises(Exception, match=r"refers to `os\.system`") as err:
        MixBasicDataset({"root": str(root)})
    _one_sentence(str(err.value))
    assert not marker.exists()


def test_a_pkl_that_is_not_a_dict_is_one_sentence(root):
    (root / "emotion_labels.pkl").write_bytes(pickle.dumps(["Anger", "Fear"]))
    with pytest.raises(Exception, match="holds a list, not a dict"):
        MixBasicDataset({"root": str(root)})


def test_a_missing_fold_names_the_folds_present(root):
    with pytest.raises(Exception, match=r"train_ids_bias100v3\.csv is not in .*folds present: bias100v1"):
        MixBasicDataset({"root": str(root), "fold": "v3"})


@pytest.mark.parametrize(("key", "value"), [("fold", "first"), ("bias", "high")])
def test_a_malformed_fold_or_bias_is_one_sentence(root, key, value):
    with pytest.raises(Exception, match=f"dataset.{key}={value} is not"):
        MixBasicDataset({"root": str(root), key: value})


def test_an_unknown_source_folder_names_the_line(root):
    (root / "train_ids_bias100v1.csv").write_text(_csv_text(TRAIN) + "\nMixBasic/JAFFE/images/KA.AN1.39.png")
    with pytest.raises(Exception, match=r"line 5 of train_ids_bias100v1\.csv is in source folder `JAFFE`"):
        MixBasicDataset({"root": str(root)})


def test_an_image_in_both_train_and_test_is_refused(root):
    (root / "test_ids_bias100v1.csv").write_text(_csv_text([*TEST, TRAIN[0]]))
    with pytest.raises(Exception, match="listed more than once in both"):
        MixBasicDataset({"root": str(root)})


def test_a_root_without_the_label_pkl_is_one_sentence(tmp_path):
    with pytest.raises(Exception, match=r"has no emotion_labels\.pkl"):
        MixBasicDataset({"root": str(tmp_path)})


def test_a_missing_image_is_one_fermix_error_line_from_the_cli(root, tmp_path, fermix_main):
    (root / TEST[2]).unlink()
    result = fermix_main(["train", "dataset=mixbasic", f"dataset.root={root}", "trainer.accelerator=cpu"], tmp_path)
    assert_one_sentence_error(result, "mixbasic: 1 image listed in test_ids_bias100v1.csv is missing")


# ---------------------------------------------------------------- end to end


def _cells(per_cell: int = 3):
    rng = np.random.default_rng(1)
    for d, source in enumerate(("CKPlus", "MMI", "OuluCASIA")):
        for c, label in enumerate(("anger", "disgust", "fear", "happy", "sad", "surprise")):
            for i in range(per_cell):
                image = np.full((16, 16, 3), 40 * c, dtype=np.uint8) + rng.integers(0, 20, (16, 16, 3), dtype=np.uint8)
                yield {"image": image, "sample_id": f"{label}_{i}", "expr": label, "domain": source,
                       "subject": f"S{d}{i:02d}", "split": "test" if (c + d) % 3 == 0 and i == 0 else "train"}


def test_fermix_train_runs_on_a_mixbasic_root(tmp_path):
    root = write_mixbasic(_cells(), tmp_path / "MixBasic", folds="latin_square", size=32)
    overrides = quick_overrides(root, "method=erm", "dataset=mixbasic", "trainer.max_epochs=1", "dataset.fold=v2")
    summary = run_train_in_process(overrides, tmp_path / "run")
    assert summary["dataset"] == "mixbasic" and summary["epochs_trained"] == 1
    sizes = summary["split_sizes"]
    assert sizes["test"] == 18 and sizes["train"] + sizes["val"] == 36  # 6 withheld cells × 3 are the test list
    assert 0.0 <= summary["metrics"]["test"]["acc"] <= 1.0


# ---------------------------------------------------------------- fold audit (iern.md §7 test 9)

AUDIT_CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise")  # canonical names, as samples carry them
OULU_NAMES = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")  # Oulu file names carry these
# iern.md §4, written out independently of the adapter's constants.
LATIN_SQUARE = {
    "v1": {"CKPlus": ("anger", "happiness"), "MMI": ("disgust", "sadness"), "OuluCASIA": ("fear", "surprise")},
    "v2": {"CKPlus": ("disgust", "sadness"), "MMI": ("fear", "surprise"), "OuluCASIA": ("anger", "happiness")},
    "v3": {"CKPlus": ("fear", "surprise"), "MMI": ("anger", "happiness"), "OuluCASIA": ("disgust", "sadness")},
}


def _audit_samples(subjects: int = 3, frames: int = 2):
    """Every (source, class) cell: `subjects` sequences of `frames` frames, named like the published files."""
    image = np.full((8, 8, 3), 90, dtype=np.uint8)
    for d, source in enumerate(("CKPlus", "MMI", "OuluCASIA")):
        for c, label in enumerate(AUDIT_CLASSES):
            for s in range(subjects):
                for f in range(frames):
                    if source == "OuluCASIA":  # P001_Anger_000
                        sid, subject = f"{OULU_NAMES[c]}_{f:03d}", f"P{s:03d}"
                    else:  # S001_102_001
                        sid, subject = f"{c}{s:02d}_{f:03d}", f"S{d}{s:02d}"
                    yield {"image": image, "sample_id": sid, "expr": label, "domain": source, "subject": subject,
                           "video": f"{source}{c}{s}"}


@pytest.fixture
def folds_root(tmp_path) -> Path:
    """All 12 fold CSVs of the published design, written by the writer: 108 images, 6 per cell."""
    return write_mixbasic(_audit_samples(), tmp_path / "MixBasic", folds="latin_square", size=None)


def _read_lines(root: Path, name: str) -> list[str]:
    return (root / name).read_text().split("\n")


def _write_lines(root: Path, name: str, lines: list[str]) -> None:
    (root / name).write_text("\n".join(sorted(lines)))


def _move(root: Path, source_csv: str, target_csv: str, pick) -> list[str]:
    """Move the lines `pick(line)` selects from one CSV to another; returns them."""
    lines = _read_lines(root, source_csv)
    moved = [line for line in lines if pick(line)]
    assert moved, f"nothing picked in {source_csv}"
    _write_lines(root, source_csv, [line for line in lines if line not in moved])
    _write_lines(root, target_csv, _read_lines(root, target_csv) + moved)
    return moved


def _labels(root: Path) -> dict:
    return pickle.loads((root / "emotion_labels.pkl").read_bytes())


def _cell_of(root: Path, line: str) -> tuple[str, str]:
    _, source, _, name = line.split("/")
    return source, _labels(root)[f"{source.lower()}_{Path(name).stem}"]


def test_the_audit_passes_on_a_latin_square_fixture_and_reports_its_folds(folds_root):
    audit = audit_folds(folds_root)
    assert audit.images == 108 and not audit.real
    assert [f.name for f in audit.folds] == [f"{b}{v}" for b in ("bias100", "bias90") for v in ("v1", "v2", "v3")]
    for f in audit.folds:
        assert sum(f.counts["train"].values()) + sum(f.counts["test"].values()) == 108
        if f.bias == "bias100":
            assert f.withheld == LATIN_SQUARE[f.fold]
            assert f.counts["test"] == {"CKPlus": 12, "MMI": 12, "OuluCASIA": 12}  # two cells × 6 images
        else:  # one sequence (2 images) of every withheld cell moved into training
            assert f.counts["test"] == {"CKPlus": 8, "MMI": 8, "OuluCASIA": 8}
    assert "all checks passed" in audit.summary()
    assert audit.to_dict()["folds"][0]["withheld"]["CKPlus"] == ["anger", "happiness"]


def test_the_audit_can_be_limited_to_some_folds(folds_root):
    for name in ("train_ids_bias90v1.csv", "test_ids_bias90v1.csv"):
        (folds_root / name).unlink()
    audit = audit_folds(folds_root, biases=("bias100", "90"), folds=("2", "v3"))
    assert [f.name for f in audit.folds] == ["bias100v2", "bias100v3", "bias90v2", "bias90v3"]


def test_audit_a_test_path_also_in_train_is_one_sentence(folds_root):
    line = _read_lines(folds_root, "train_ids_bias100v2.csv")[0]
    _write_lines(folds_root, "test_ids_bias100v2.csv", [*_read_lines(folds_root, "test_ids_bias100v2.csv"), line])
    with pytest.raises(FermixError, match=r"listed more than once in both train_ids_bias100v2\.csv and test_") as e:
        audit_folds(folds_root)
    _one_sentence(str(e.value))
    assert line.split("/", 1)[1] in str(e.value)


def test_audit_a_missing_image_is_one_sentence(folds_root):
    line = _read_lines(folds_root, "test_ids_bias90v3.csv")[0]
    (folds_root / line.split("/", 1)[1]).unlink()
    with pytest.raises(FermixError, match=r"1 image listed in .*is missing from") as e:
        audit_folds(folds_root)
    _one_sentence(str(e.value))


def test_audit_a_key_absent_from_the_pkl_is_one_sentence(folds_root):
    labels = _labels(folds_root)
    key = sorted(labels)[5]
    del labels[key]
    (folds_root / "emotion_labels.pkl").write_bytes(pickle.dumps(labels, protocol=4))
    with pytest.raises(FermixError, match=f"has no key in emotion_labels.pkl, e.g. {key}") as e:
        audit_folds(folds_root)
    _one_sentence(str(e.value))


def test_audit_a_swapped_withheld_cell_is_one_sentence(folds_root):
    # v1: CK+ should withhold Anger and Happiness; train on Happiness and withhold Fear instead.
    _move(folds_root, "test_ids_bias100v1.csv", "train_ids_bias100v1.csv",
          lambda line: _cell_of(folds_root, line) == ("CKPlus", "Happiness"))
    _move(folds_root, "train_ids_bias100v1.csv", "test_ids_bias100v1.csv",
          lambda line: _cell_of(folds_root, line) == ("CKPlus", "Fear"))
    assert MixBasicDataset({"root": str(folds_root)}).records().shape[0] == 108  # the adapter alone accepts it
    with pytest.raises(FermixError) as e:
        audit_folds(folds_root)
    assert str(e.value) == (
        "mixbasic: fold v1 (bias100) withholds anger and fear of CKPlus from training, but the Latin square "
        "of iern.md §4 withholds anger and happiness."
    )


def test_audit_a_trained_cell_in_a_bias100_test_list_is_one_sentence(folds_root):
    lines = _read_lines(folds_root, "train_ids_bias100v3.csv")
    mmi_fear = [line for line in lines if _cell_of(folds_root, line) == ("MMI", "Fear")]
    _move(folds_root, "train_ids_bias100v3.csv", "test_ids_bias100v3.csv", lambda line: line == mmi_fear[0])
    with pytest.raises(FermixError, match=r"test_ids_bias100v3\.csv holds MMI fear images, a cell that fold v3 also"):
        audit_folds(folds_root)


def test_audit_a_bias100_train_row_absent_from_bias90_is_one_sentence(folds_root):
    first = _read_lines(folds_root, "train_ids_bias100v3.csv")[0]
    _move(folds_root, "train_ids_bias90v3.csv", "test_ids_bias90v3.csv", lambda line: line == first)
    with pytest.raises(FermixError) as e:
        audit_folds(folds_root)
    assert str(e.value) == (
        f"mixbasic: 1 image of train_ids_bias100v3.csv is not in train_ids_bias90v3.csv, "
        f"e.g. {first.split('/', 1)[1]}; every bias100 training list must be a subset of its bias90 list."
    )


def test_audit_a_fold_that_splits_another_image_set_is_one_sentence(folds_root):
    lines = _read_lines(folds_root, "test_ids_bias90v2.csv")
    _write_lines(folds_root, "test_ids_bias90v2.csv", lines[1:])
    with pytest.raises(FermixError, match=r"bias90v2 together hold 107 images, not the 108 of bias100v1 \(lacks") as e:
        audit_folds(folds_root)
    _one_sentence(str(e.value))


def test_audit_an_oulu_label_that_contradicts_its_file_name_is_one_sentence(folds_root):
    labels = _labels(folds_root)
    key = "oulucasia_P001_Anger_001"
    assert labels[key] == "Anger"
    labels[key] = "Fear"
    (folds_root / "emotion_labels.pkl").write_bytes(pickle.dumps(labels, protocol=4))
    with pytest.raises(FermixError, match=r"OuluCASIA/images/P001_Anger_001\.png is named Anger but .* labels it fear"):
        audit_folds(folds_root)


def test_check_mixbasic_script_prints_the_summary_or_one_error_line(folds_root, capsys):
    script = runpy.run_path(str(Path(__file__).parents[3] / "scripts" / "check_mixbasic.py"))
    assert script["main"]([str(folds_root), "--fold", "v1"]) == 0
    assert "bias100v1" in capsys.readouterr().out
    (folds_root / "train_ids_bias90v1.csv").unlink()
    assert script["main"]([str(folds_root)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fermix: error: mixbasic: fold file train_ids_bias90v1.csv")


# The published design at full size: per-class sequence counts chosen so that the writer's Latin
# square (3 frames per sequence, bias90 = round(10%) of each withheld cell's sequences) reproduces
# every figure of the iern.md §4 table. CK+'s are the standard CK+ label counts.
CK_SEQUENCES = {"anger": 45, "disgust": 59, "fear": 25, "happy": 69, "sad": 28, "surprise": 83}  # 309
MMI_SEQUENCES = {"anger": 34, "disgust": 32, "fear": 35, "happy": 41, "sad": 32, "surprise": 34}  # 208
PUBLISHED = {  # iern.md §4, written out again: (bias, fold) -> (train CK, MMI, Oulu, test CK, MMI, Oulu)
    ("bias100", "v1"): (585, 432, 960, 342, 192, 480),
    ("bias100", "v2"): (666, 417, 960, 261, 207, 480),
    ("bias100", "v3"): (603, 399, 960, 324, 225, 480),
    ("bias90", "v1"): (618, 450, 1008, 309, 174, 432),
    ("bias90", "v2"): (693, 438, 1008, 234, 186, 432),
    ("bias90", "v3"): (633, 420, 1008, 294, 204, 432),
}


def _published_size_samples():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    for source, sequences in (("CKPlus", CK_SEQUENCES), ("MMI", MMI_SEQUENCES)):
        for label, n in sequences.items():
            for i in range(n):
                for f in range(3):
                    yield {"image": image, "sample_id": f"{label}_{i:03d}_{f}", "expr": label, "domain": source,
                           "subject": f"S{i:03d}", "video": f"{label}{i}"}
    for c, label in enumerate(AUDIT_CLASSES):
        for p in range(80):  # 80 subjects × last 3 frames
            for f in range(3):
                yield {"image": image, "sample_id": f"{OULU_NAMES[c]}_{f:03d}", "expr": label,
                       "domain": "OuluCASIA", "subject": f"P{p:03d}"}


@pytest.fixture(scope="module")
def published_root(tmp_path_factory) -> Path:
    """2991 images in the published fold design (files are empty: the audit never decodes an image)."""

    def touch(path, image):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("fermix.data.writers.mixbasic.write_png", touch)
        out = tmp_path_factory.mktemp("published") / "MixBasic"
        return write_mixbasic(_published_size_samples(), out, folds="latin_square", size=None)


SOURCES_ORDER = ("CKPlus", "MMI", "OuluCASIA")


def _assert_published_counts(audit) -> None:
    assert audit.images == 2991 and audit.real
    for f in audit.folds:
        got = tuple(f.counts["train"][s] for s in SOURCES_ORDER) + tuple(f.counts["test"][s] for s in SOURCES_ORDER)
        assert got == PUBLISHED[(f.bias, f.fold)], f.name
        if f.bias == "bias100":
            assert f.withheld == LATIN_SQUARE[f.fold]


def test_the_audit_checks_the_published_counts_when_a_root_has_2991_images(published_root):
    _assert_published_counts(audit_folds(published_root))
    # The same 2991 images split differently: one CK+ anger image moved from test to train in bias90 v1.
    csv_train, csv_test = published_root / "train_ids_bias90v1.csv", published_root / "test_ids_bias90v1.csv"
    saved = csv_train.read_text(), csv_test.read_text()
    try:
        _move(published_root, "test_ids_bias90v1.csv", "train_ids_bias90v1.csv",
              lambda line: line == next(x for x in saved[1].split("\n") if x.startswith("MixBasic/CKPlus/")))
        with pytest.raises(FermixError) as e:
            audit_folds(published_root)
        assert str(e.value) == (
            "mixbasic: train_ids_bias90v1.csv lists 619 CKPlus images, but the published split (iern.md §4) has 618."
        )
    finally:
        csv_train.write_text(saved[0])
        csv_test.write_text(saved[1])


@pytest.mark.skipif(not os.environ.get("FERMIX_MIXBASIC_ROOT"), reason="set FERMIX_MIXBASIC_ROOT to the real MixBasic")
def test_the_real_mixbasic_passes_the_audit_with_the_published_counts():
    _assert_published_counts(audit_folds(os.environ["FERMIX_MIXBASIC_ROOT"]))
