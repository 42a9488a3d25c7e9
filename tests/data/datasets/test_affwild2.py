"""The affwild2 adapter on fixtures written by its writer in the ABAW 2020 layout (multitask spec §4)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from fermix.data.action_units import AFFWILD2_AUS
from fermix.data.datasets.affwild2 import AffWild2Dataset
from fermix.data.label_spaces import LABEL_SPACES
from fermix.data.writers.affwild2 import write_affwild2
from fermix.errors import FermixError
from tests.engine.runner import quick_overrides, run_train_in_process

BASIC7 = LABEL_SPACES["basic7"].classes
ANN = "annotations"
AU_ON = np.array([1, 0, 1, 0, 1, 0, 0, 1], dtype=np.float32)


def _frame(video: str, frame: int, split: str = "train", expr=None, au=None, va=None, size: int = 16) -> dict:
    rng = np.random.default_rng(frame)
    return {
        "image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
        "sample_id": f"{video}_{frame}",
        "split": split,
        "video": video,
        "frame": frame,
        "expr": expr,
        "au": au,
        "au_names": AFFWILD2_AUS if au is not None else None,
        "va": None if va is None else np.array(va, dtype=np.float32),
    }


def _fixture() -> list[dict]:
    """Two train videos (one a `_right` face) and one validation video, with partial labels."""
    return [
        _frame("v1", 1, expr="happy", au=AU_ON, va=(0.5, -0.25)),
        _frame("v1", 2, expr="anger", au=np.where(np.arange(8) == 3, np.nan, AU_ON), va=(np.nan, np.nan)),
        _frame("v1", 3, expr=None, au=AU_ON, va=(-0.75, 1.0)),
        _frame("v1", 4, expr="surprise", au=None, va=None),
        _frame("v2_right", 1, expr="sad", va=(0.0, 0.0)),
        _frame("v2_right", 2, expr=None, va=None),  # no label in any task: dropped
        _frame("v3", 1, split="val", expr="neutral", au=1 - AU_ON, va=(0.1, 0.2)),
        _frame("v3", 2, split="val", expr="fear", au=AU_ON, va=(0.3, 0.4)),
    ]


@pytest.fixture
def root(tmp_path) -> Path:
    return write_affwild2(_fixture(), tmp_path / "AffWild2")


def _txt(root: Path, task: str, video: str, set_name: str = "Training_Set") -> Path:
    return root / ANN / f"{task}_Set" / set_name / f"{video}.txt"


def _records(root: Path, **cfg):
    ds = AffWild2Dataset({"root": str(root), **cfg})
    return ds, ds.records().set_index("sample_id")


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


# ---------------------------------------------------------------- the published files


def test_the_writer_writes_headers_and_the_published_missing_values(root):
    au = _txt(root, "AU", "v1").read_text().splitlines()
    assert au[0] == "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25"
    assert au[2] == "1,0,1,-1,1,0,0,1" and au[4] == "-1,-1,-1,-1,-1,-1,-1,-1"
    expr = _txt(root, "EXPR", "v1").read_text().splitlines()
    assert expr == ["Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise", "4", "1", "-1", "6"]
    va = _txt(root, "VA", "v1").read_text().splitlines()
    assert va[0] == "valence,arousal" and va[2] == "-5,-5" and va[4] == "-5,-5"
    assert not _txt(root, "AU", "v2_right").exists()  # a video without AU labels has no AU file
    assert (root / "cropped_aligned" / "v2_right" / "00002.jpg").is_file()


def test_samples_without_video_keys_become_videos_by_subject_numbered_in_order(tmp_path):
    frames = [_frame("x", 1, expr=e) | {"video": None, "frame": None, "subject": s} for s, e in
              [("anna", "happy"), ("ben", "sad"), ("anna", "fear")]]  # fmt: skip
    root = write_affwild2(frames, tmp_path / "aw")
    assert _txt(root, "EXPR", "anna").read_text().splitlines()[1:] == ["4", "3"]
    assert _txt(root, "EXPR", "ben").read_text().splitlines()[1:] == ["5"]
    assert sorted(p.name for p in (root / "cropped_aligned" / "anna").iterdir()) == ["00001.jpg", "00002.jpg"]


# ---------------------------------------------------------------- reading


def test_expr_maps_by_header_name_into_basic7(root):
    _, rec = _records(root)
    assert BASIC7[rec.loc["train/v1/00001", "expr"]] == "happy"  # ABAW 4 = Happiness
    assert BASIC7[rec.loc["train/v1/00002", "expr"]] == "anger"  # ABAW 1 = Anger
    assert BASIC7[rec.loc["val/v3/00001", "expr"]] == "neutral"
    assert BASIC7[rec.loc["val/v3/00002", "expr"]] == "fear"  # ABAW 3 = Fear


def test_a_reordered_header_is_read_by_name(root):
    _txt(root, "EXPR", "v1").write_text("Happiness,Neutral,Anger,Disgust,Fear,Sadness,Surprise\n0\n2\n-1\n6\n")
    path = _txt(root, "AU", "v1")
    lines = path.read_text().splitlines()
    rows = [line.split(",") for line in lines]
    path.write_text("\n".join(",".join(r[::-1]) for r in rows) + "\n")  # AU25 ... AU1
    _txt(root, "VA", "v1").write_text("arousal,valence\n-0.25,0.5\n-5,-5\n1,-0.75\n-5,-5\n")
    _, rec = _records(root)
    assert BASIC7[rec.loc["train/v1/00001", "expr"]] == "happy" and BASIC7[rec.loc["train/v1/00002", "expr"]] == "anger"
    np.testing.assert_array_equal(rec.loc["train/v1/00001", list(AFFWILD2_AUS)].to_numpy(float), AU_ON)
    assert tuple(rec.loc["train/v1/00001", ["valence", "arousal"]]) == (0.5, -0.25)


def test_missing_values_become_minus_one_and_nan_for_the_whole_task(root):
    ds, rec = _records(root)
    assert rec.loc["train/v1/00003", "expr"] == -1  # EXPR -1
    assert rec.loc["train/v1/00002", list(AFFWILD2_AUS)].isna().all()  # one AU -1 discards the frame's AUs
    assert rec.loc["train/v1/00002", ["valence", "arousal"]].isna().all()  # VA -5
    sample = ds.load(rec.loc["train/v1/00002"].to_dict() | {"sample_id": "train/v1/00002"})
    assert sample["au"].dtype == np.float32 and np.isnan(sample["au"]).all()
    assert np.isnan(sample["va"]).all() and sample["expr"] == BASIC7.index("anger")


def test_tasks_are_joined_per_frame_and_a_task_without_a_file_is_missing(root):
    ds, rec = _records(root)
    assert ds.keys == {"image", "sample_id", "subject", "expr", "au", "va"}
    row = rec.loc["train/v1/00001"]
    assert BASIC7[row["expr"]] == "happy" and row["valence"] == 0.5
    np.testing.assert_array_equal(row[list(AFFWILD2_AUS)].to_numpy(float), AU_ON)
    right = rec.loc["train/v2_right/00001"]  # EXPR and VA files, no AU file
    assert BASIC7[right["expr"]] == "sad" and right[list(AFFWILD2_AUS)].isna().all()
    assert rec.loc["train/v1/00004", list(AFFWILD2_AUS)].isna().all()  # written as a -1 line: no AU label
    assert "train/v2_right/00002" not in rec.index  # no label in any task


def test_the_chosen_tasks_decide_keys_columns_and_frames(root):
    ds, rec = _records(root, tasks=["va"])
    assert ds.keys == {"image", "sample_id", "subject", "va"}
    assert "AU1" not in rec.columns and set(rec["expr"]) == {-1}
    assert set(rec.index) == {
        "train/v1/00001", "train/v1/00003", "train/v2_right/00001", "val/v3/00001", "val/v3/00002",
    }  # fmt: skip
    sample = ds.load(rec.reset_index().iloc[0])
    assert set(sample) == ds.keys and sample["image"].shape == (16, 16, 3)


def test_splits_subjects_and_ids(root):
    _, rec = _records(root)
    assert set(rec.loc[rec["split"] == "val", "video"]) == {"v3"} and set(rec["split"]) == {"train", "val"}
    assert rec.loc["train/v2_right/00001", "subject"] == "v2_right" and rec.loc["train/v1/00004", "frame"] == 4
    _, as_test = _records(root, validation_split="test")
    assert set(as_test.loc[as_test["video"] == "v3", "split"]) == {"test"}


def test_a_frame_without_an_image_is_dropped_and_counted(root, caplog):
    (root / "cropped_aligned" / "v1" / "00003.jpg").unlink()
    with caplog.at_level(logging.INFO, logger="fermix"):
        _, rec = _records(root)
    assert "train/v1/00003" not in rec.index and "train/v1/00004" in rec.index
    assert "dropped 1 frames without a face image" in caplog.text
    assert "1 frames with no valid EXPR/AU/VA label" in caplog.text


def test_frames_past_the_images_of_a_longer_annotation_file_are_dropped(root):
    path = _txt(root, "VA", "v3", "Validation_Set")
    path.write_text(path.read_text() + "0.5,0.5\n")  # frame 3 has a label but no image
    _, rec = _records(root)
    assert "val/v3/00003" not in rec.index


def test_later_abaw_folder_names_are_accepted(root):
    for old, new in (("EXPR_Set", "EXPR_Classification_Challenge"), ("AU_Set", "AU_Detection_Challenge")):
        (root / ANN / old).rename(root / ANN / new)
    (root / ANN / "VA_Set" / "Training_Set").rename(root / ANN / "VA_Set" / "Train_Set")
    _, rec = _records(root)
    assert len(rec) == 7


# ---------------------------------------------------------------- bad input: one sentence each


@pytest.mark.parametrize(
    ("task", "text", "message"),
    [
        ("EXPR", "7", r"label 7 on line 3 of .*v1.txt is out of range: EXPR labels are 0..6 \(-1 = missing\)"),
        ("EXPR", "-2", r"label -2 on line 3 .* out of range"),
        ("AU", "1,0,2,0,1,0,0,1", r"value 2 on line 3 of .*v1.txt is not 0, 1 or -1 \(missing\)"),
        ("VA", "1.5,0", r"value 1.5 on line 3 of .*v1.txt is not in \[-1, 1\] or -5 \(missing\)"),
        ("VA", "0.1", r"line 3 of .*v1.txt has 1 values; this file needs 2 per line"),
        ("VA", "0.1,abc", r"value `abc` on line 3 of .*v1.txt is not a number"),
    ],
)
def test_a_value_out_of_range_names_its_line(root, task, text, message):
    path = _txt(root, task, "v1")
    lines = path.read_text().splitlines()
    lines[2] = text
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FermixError, match=message) as e:
        AffWild2Dataset({"root": str(root)})
    _one_sentence(str(e.value))


@pytest.mark.parametrize(
    ("task", "header", "message"),
    [
        ("AU", "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU26", r"a AU file starts with `AU1,AU2"),
        ("EXPR", "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Other", r"fermix reads the 7 classes"),
    ],
)
def test_a_foreign_header_is_one_sentence(root, task, header, message):
    path = _txt(root, task, "v1")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([header, *lines[1:]]) + "\n")
    with pytest.raises(FermixError, match=message) as e:
        AffWild2Dataset({"root": str(root)})
    _one_sentence(str(e.value))


def test_a_chosen_task_without_annotations_is_one_sentence(root):
    for path in (root / ANN / "AU_Set").rglob("*.txt"):
        path.unlink()
    with pytest.raises(FermixError, match=r"AU_Set holds no annotation files") as e:
        AffWild2Dataset({"root": str(root)})
    _one_sentence(str(e.value))
    assert len(AffWild2Dataset({"root": str(root), "tasks": ["expr", "va"]})) == 7


def test_a_root_without_frames_is_one_sentence(root):
    for path in (root / "cropped_aligned").rglob("*.jpg"):
        path.unlink()
    with pytest.raises(FermixError, match=r"no Aff-Wild2 frame under .* has both a label and an image") as e:
        AffWild2Dataset({"root": str(root)})
    _one_sentence(str(e.value))


@pytest.mark.parametrize(("key", "value"), [("tasks", ["expr", "emotion"]), ("validation_split", "train")])
def test_a_bad_option_is_one_sentence(root, key, value):
    with pytest.raises(FermixError, match=f"dataset.{key}=") as e:
        AffWild2Dataset({"root": str(root), key: value})
    _one_sentence(str(e.value))


# ---------------------------------------------------------------- end to end


def test_fermix_train_runs_on_an_affwild2_root_with_all_three_tasks(tmp_path):
    frames = [
        _frame(f"vid{v}", f, split="val" if v == 0 else "train", expr=BASIC7[(v + f) % 7],
               au=AU_ON if f % 2 else None, va=(0.1 * (f % 5), -0.1) if f % 3 else None, size=24)
        for v in range(3) for f in range(1, 8)
    ]  # fmt: skip
    root = write_affwild2(frames, tmp_path / "AffWild2")
    summary = run_train_in_process(
        quick_overrides(root, "method=erm", "dataset=affwild2", "trainer.max_epochs=1"), tmp_path / "run"
    )
    assert summary["split_sizes"] == {"train": 14, "val": 7, "test": 0} and summary["epochs_trained"] == 1
