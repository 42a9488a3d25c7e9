"""The mixbasic adapter on fixtures written by hand in the published layout (methods/iern.md §4)."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from fermix.data.datasets.mixbasic import MixBasicDataset
from fermix.data.writers.mixbasic import write_mixbasic
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
    for cfg in ({"fold": "v2", "bias": "bias90"}, {"fold": 2, "bias": 90}):
        rec = MixBasicDataset({"root": str(root), **cfg}).records()
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
