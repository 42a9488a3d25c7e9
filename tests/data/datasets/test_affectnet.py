"""The affectnet adapter on fixtures written by its writer in the published layout (au_align §6, dmue §4.1)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fermix.data.datasets.affectnet import AffectNetDataset
from fermix.data.label_spaces import LABEL_SPACES
from fermix.data.writers.affectnet import write_affectnet
from fermix.errors import FermixError
from tests.conftest import assert_one_sentence_error
from tests.engine.runner import quick_overrides, run_train_in_process

BASIC8 = LABEL_SPACES["basic8"].classes
LISTS = "Manually_Annotated_file_lists"


def _samples(per_class: int = 2, test_per_class: int = 1, size: int = 20, classes=BASIC8):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        for i in range(per_class + test_per_class):
            image = np.full((size, size + 4, 3), 30 * c, dtype=np.uint8) + rng.integers(
                0, 20, (size, size + 4, 3), dtype=np.uint8
            )
            yield {
                "image": image,
                "sample_id": f"{name}_{i}",
                "split": "train" if i < per_class else "test",
                "expr": name,
                "landmarks": rng.uniform(0, size, (68, 2)).astype(np.float32),
                "va": np.array([0.1 * c - 0.3, -0.05 * i], dtype=np.float32),
            }


@pytest.fixture
def root(tmp_path) -> Path:
    return write_affectnet(_samples(), tmp_path / "AffectNet")


def _csv(root: Path, name: str = "training.csv") -> pd.DataFrame:
    return pd.read_csv(root / LISTS / name, dtype=str, keep_default_na=False)


def _rewrite(root: Path, table: pd.DataFrame, name: str = "training.csv", header: bool = True) -> None:
    table.to_csv(root / LISTS / name, index=False, header=header)


def _row(ds: AffectNetDataset, rel: str) -> pd.Series:
    """The record of the CSV path `rel` (sample ids are the paths without their suffix)."""
    rec = ds.records()
    return rec[rec["sample_id"] == rel.removesuffix(".jpg")].iloc[0]


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


# ---------------------------------------------------------------- reading


def test_the_writer_writes_the_published_columns_and_folders(root):
    table = _csv(root)
    assert list(table.columns) == [
        "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
        "facial_landmarks", "expression", "valence", "arousal",
    ]  # fmt: skip
    assert all((root / "Manually_Annotated_Images" / p).is_file() for p in table["subDirectory_filePath"])
    assert len(table["facial_landmarks"].iloc[0].split(";")) == 136


def test_codes_map_by_name_into_basic7(root):
    ds = AffectNetDataset({"root": str(root)})
    assert ds.label_space.name == "basic7"
    rec = ds.records()
    classes = ds.label_space.classes
    for native, expr in zip(rec["native_label"], rec["expr"], strict=True):
        assert classes[expr] == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")[native]
    surprise = rec[rec["native_label"] == 3]
    assert len(surprise) == 3 and set(surprise["expr"]) == {classes.index("surprise")}  # AffectNet 3 = surprise
    assert set(rec[rec["native_label"] == 6]["expr"]) == {classes.index("anger")}


def test_seven_classes_drop_contempt_and_eight_keep_it(root, caplog):
    with caplog.at_level(logging.INFO, logger="fermix"):
        seven = AffectNetDataset({"root": str(root), "classes": 7})
    assert 7 not in set(seven.records()["native_label"]) and len(seven) == 7 * 3
    assert "3 Contempt rows" in caplog.text
    eight = AffectNetDataset({"root": str(root), "classes": 8})
    assert eight.label_space.name == "basic8" and len(eight) == 8 * 3
    assert set(eight.records().query("native_label == 7")["expr"]) == {BASIC8.index("contempt")}


def test_non_emotion_codes_are_dropped_and_counted_once(root, caplog):
    table = _csv(root)
    table.loc[[0, 1, 2], "expression"] = ["8", "9", "10"]
    table.loc[[0, 1, 2], ["valence", "arousal"]] = "-2"
    _rewrite(root, table)
    with caplog.at_level(logging.INFO, logger="fermix"):
        ds = AffectNetDataset({"root": str(root), "classes": 8})
    assert len(ds) == 8 * 3 - 3
    assert not set(table["subDirectory_filePath"][:3].str.removesuffix(".jpg")) & set(ds.records()["sample_id"])
    lines = [r.getMessage() for r in caplog.records if "None/Uncertain/No-Face" in r.getMessage()]
    assert len(lines) == 1 and "dropped 3 rows" in lines[0]


def test_training_is_train_and_the_validation_list_is_test_by_default(root):
    rec = AffectNetDataset({"root": str(root)}).records()
    assert (rec["split"] == "train").sum() == 14 and (rec["split"] == "test").sum() == 7
    as_val = AffectNetDataset({"root": str(root), "validation_split": "val"}).records()
    assert (as_val["split"] == "val").sum() == 7 and "test" not in set(as_val["split"])


def test_a_csv_without_header_reads_the_same(root):
    before = AffectNetDataset({"root": str(root)}).records()
    _rewrite(root, _csv(root, "validation.csv"), "validation.csv", header=False)
    after = AffectNetDataset({"root": str(root)}).records()
    pd.testing.assert_frame_equal(before, after)


def test_valence_minus_two_is_nan_and_in_range_values_are_kept(root):
    table = _csv(root)
    table.loc[0, ["valence", "arousal"]] = ["-2", "-2"]
    _rewrite(root, table)
    ds = AffectNetDataset({"root": str(root), "classes": 8})
    missing = ds.load(_row(ds, table["subDirectory_filePath"][0]))["va"]
    assert missing.dtype == np.float32 and np.isnan(missing).all()
    kept = _row(ds, table["subDirectory_filePath"][1])
    assert (kept["valence"], kept["arousal"]) == pytest.approx((float(table["valence"][1]), float(table["arousal"][1])))


def test_crop_box_gives_back_the_face_and_its_landmarks_in_crop_pixels(tmp_path):
    samples = list(_samples(per_class=1, test_per_class=1, size=24))
    root = write_affectnet(samples, tmp_path / "an", pad=0.5)
    ds = AffectNetDataset({"root": str(root), "classes": 8})
    assert "landmarks" in ds.keys
    by_id = {s["sample_id"]: s for s in samples}
    for _, row in ds.records().iterrows():
        sample = ds.load(row)
        assert set(sample) == ds.keys
        original = by_id[Path(row["sample_id"]).name]
        assert sample["image"].shape == original["image"].shape  # the 50% grey border is cut away
        assert np.abs(sample["image"].astype(int) - original["image"].astype(int)).mean() < 6  # JPEG only
        np.testing.assert_allclose(sample["landmarks"], original["landmarks"], atol=0.006)


def test_crop_none_keeps_the_photograph_and_supplies_no_landmarks(root):
    ds = AffectNetDataset({"root": str(root), "crop": "none"})
    assert "landmarks" not in ds.keys
    sample = ds.load(ds.records().iloc[0])
    assert set(sample) == ds.keys
    assert sample["image"].shape == (28, 34, 3)  # 20×24 face + 20% border on each side


def test_a_row_without_landmarks_gives_nan_landmarks(root):
    table = _csv(root)
    table.loc[0, "facial_landmarks"] = ""
    _rewrite(root, table)
    ds = AffectNetDataset({"root": str(root), "classes": 8})
    assert np.isnan(ds.load(_row(ds, table["subDirectory_filePath"][0]))["landmarks"]).all()


def test_raw_items_carry_the_csv_face_box_and_basic_labels(root):
    items = AffectNetDataset.raw_items({"root": str(root), "classes": 8})
    assert len(items) == 8 * 3
    item = next(i for i in items if i.native_label == "3")
    assert item.label == "surprise" and item.source == "AffectNet" and item.split in ("train", "test")
    assert item.box == (5.0, 4.0, 29.0, 24.0)  # face_x=round(0.2·24), face_y=round(0.2·20), +24, +20
    assert item.path.is_file() and not item.sample_id.endswith(".jpg")
    assert AffectNetDataset.raw_label_space({"classes": 8}).name == "basic8"
    assert all(i.box is None for i in AffectNetDataset.raw_items({"root": str(root), "crop": "none"}))


# ---------------------------------------------------------------- bad input: one sentence each


@pytest.mark.parametrize("bad", ["11", "-1", "x", "2.5"])
def test_an_expression_code_outside_0_to_10_names_its_line(root, bad):
    table = _csv(root)
    table.loc[2, "expression"] = bad
    _rewrite(root, table)
    message = rf"expression `{bad}` on line 4 of .*training.csv is not an AffectNet code"
    with pytest.raises(FermixError, match=message) as e:
        AffectNetDataset({"root": str(root)})
    _one_sentence(str(e.value))


def test_a_valence_outside_the_range_names_its_line(root):
    table = _csv(root)
    table.loc[0, "valence"] = "1.5"
    _rewrite(root, table)
    with pytest.raises(FermixError, match=r"valence 1.5 on line 2 of .*training.csv is outside \[-1, 1\]") as e:
        AffectNetDataset({"root": str(root)})
    _one_sentence(str(e.value))


def test_a_missing_csv_is_one_sentence(root):
    (root / LISTS / "validation.csv").unlink()
    with pytest.raises(FermixError, match=r"validation.csv not found") as e:
        AffectNetDataset({"root": str(root)})
    _one_sentence(str(e.value))


def test_a_root_without_the_lists_names_the_expected_place(tmp_path):
    (tmp_path / "Manually_Annotated_Images").mkdir()
    with pytest.raises(FermixError, match=r"training.csv not found in .*Manually_Annotated_file_lists") as e:
        AffectNetDataset({"root": str(tmp_path)})
    _one_sentence(str(e.value))


def test_a_missing_image_is_one_sentence_and_skip_counts_it(root, caplog):
    first = _csv(root)["subDirectory_filePath"][0]
    (root / "Manually_Annotated_Images" / first).unlink()
    with pytest.raises(FermixError, match=r"1 image\(s\) listed in the AffectNet CSVs are missing") as e:
        AffectNetDataset({"root": str(root)})
    _one_sentence(str(e.value))
    with caplog.at_level(logging.INFO, logger="fermix"):
        ds = AffectNetDataset({"root": str(root), "classes": 8, "on_missing_image": "skip"})
    assert len(ds) == 8 * 3 - 1 and "skipped 1 listed images" in caplog.text


def test_a_face_box_outside_the_photograph_is_one_sentence(root):
    table = _csv(root)
    table.loc[0, ["face_x", "face_y"]] = ["500", "500"]
    _rewrite(root, table)
    ds = AffectNetDataset({"root": str(root), "classes": 8})
    with pytest.raises(FermixError, match=r"lies outside its 34x28 pixels.*dataset.crop=none") as e:
        ds.load(_row(ds, table["subDirectory_filePath"][0]))
    _one_sentence(str(e.value))


@pytest.mark.parametrize(("key", "value"), [("classes", 6), ("crop", "face"), ("validation_split", "train")])
def test_a_bad_option_is_one_sentence(root, key, value):
    with pytest.raises(FermixError, match=f"dataset.{key}={value}") as e:
        AffectNetDataset({"root": str(root), key: value})
    _one_sentence(str(e.value))


def test_a_missing_csv_is_one_fermix_error_line_from_the_cli(root, tmp_path, fermix_main):
    (root / LISTS / "training.csv").unlink()
    result = fermix_main(["train", "dataset=affectnet", f"dataset.root={root}", "trainer.accelerator=cpu"], tmp_path)
    assert_one_sentence_error(result, "training.csv not found")


# ---------------------------------------------------------------- end to end


def test_fermix_train_runs_on_an_affectnet_root(tmp_path):
    root = write_affectnet(_samples(per_class=3, test_per_class=1, size=24), tmp_path / "AffectNet")
    overrides = quick_overrides(root, "method=erm", "dataset=affectnet", "trainer.max_epochs=1")
    summary = run_train_in_process(overrides, tmp_path / "run")
    assert summary["dataset"] == "affectnet" and summary["epochs_trained"] == 1
    sizes = summary["split_sizes"]
    assert sizes["test"] == 7 and sizes["train"] + sizes["val"] == 21 and sizes["val"] > 0  # contempt dropped
    assert 0.0 <= summary["metrics"]["test"]["acc"] <= 1.0
