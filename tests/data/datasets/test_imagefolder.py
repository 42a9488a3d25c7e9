from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fermix.data.datasets.imagefolder import ImageFolderDataset
from fermix.data.label_spaces import LABEL_SPACES
from fermix.errors import FermixError
from tests.helpers import write_image_folder


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- layout (a): root/<class>/


def test_class_folders_give_sorted_classes_and_one_pool(tmp_path):
    write_image_folder(tmp_path, classes=("surprise", "happy", "sad"), per_class=3)
    ds = ImageFolderDataset({"root": str(tmp_path)})
    assert ds.label_space.name == "imagefolder"
    assert ds.label_space.classes == ("happy", "sad", "surprise")
    rec = ds.records()
    assert list(rec.columns) == ["sample_id", "path", "expr", "split", "subject", "source"]
    assert len(rec) == len(ds) == 9
    assert rec["split"].isna().all() and rec["subject"].isna().all()
    assert set(rec["source"]) == {"imagefolder"}
    row = rec[rec["sample_id"] == "sad/sad_001.png"].iloc[0]
    assert row["expr"] == 1
    assert row["path"] == str((tmp_path / "sad" / "sad_001.png").absolute())


def test_records_are_sorted_by_sample_id_and_a_copy(tmp_path):
    write_image_folder(tmp_path, per_class=2)
    ds = ImageFolderDataset({"root": str(tmp_path)})
    rec = ds.records()
    assert list(rec["sample_id"]) == sorted(rec["sample_id"])
    rec.loc[0, "expr"] = 99
    assert ds.records().loc[0, "expr"] != 99


def test_load_returns_the_sample_dict(tmp_path):
    write_image_folder(tmp_path, per_class=2, size=20)
    ds = ImageFolderDataset({"root": str(tmp_path)})
    rec = ds.records()
    sample = ds.load(rec.iloc[3])
    assert set(sample) == ds.keys
    assert sample["image"].shape == (20, 20, 3) and sample["image"].dtype == np.uint8
    assert sample["expr"] == rec.iloc[3]["expr"]
    assert sample["sample_id"] == rec.iloc[3]["sample_id"]
    assert sample["subject"] == ""
    assert ds.load(rec.iloc[3].to_dict())["sample_id"] == sample["sample_id"]


def test_helper_classes_are_visibly_different(tmp_path):
    write_image_folder(tmp_path, per_class=4)
    ds = ImageFolderDataset({"root": str(tmp_path)})
    rec = ds.records()
    means = [
        np.mean([ds.load(r)["image"].reshape(-1, 3).mean(0) for _, r in rec[rec["expr"] == k].iterrows()], 0)
        for k in range(3)
    ]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(means[i] - means[j]).max() > 40


def test_non_image_and_hidden_files_are_ignored(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "sad"), per_class=2)
    (tmp_path / "happy" / "notes.txt").write_text("x")
    (tmp_path / "happy" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.png").write_bytes(b"junk")
    (tmp_path / "README.md").write_text("x")
    ds = ImageFolderDataset({"root": str(tmp_path)})
    assert ds.label_space.classes == ("happy", "sad")
    assert len(ds) == 4


def test_extensions_are_case_insensitive_and_configurable(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "sad"), per_class=2)
    (tmp_path / "happy" / "happy_000.png").rename(tmp_path / "happy" / "UPPER.PNG")
    assert len(ImageFolderDataset({"root": str(tmp_path)})) == 4
    write_image_folder(tmp_path, classes=("happy", "sad"), per_class=1, ext=".jpg", seed=1)
    assert len(ImageFolderDataset({"root": str(tmp_path), "extensions": ["jpg"]})) == 2


def test_classes_from_config_set_the_order(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "sad"), per_class=2)
    ds = ImageFolderDataset({"root": str(tmp_path), "classes": ["Sad", "Happy", "surprise"]})
    assert ds.label_space.classes == ("Sad", "Happy", "surprise")
    rec = ds.records()
    assert set(rec[rec["sample_id"].str.startswith("sad/")]["expr"]) == {0}
    assert set(rec[rec["sample_id"].str.startswith("happy/")]["expr"]) == {1}


def test_label_space_maps_folder_names_through_aliases(tmp_path):
    write_image_folder(tmp_path, classes=("Happiness", "angry", "neutral"), per_class=2)
    ds = ImageFolderDataset({"root": str(tmp_path), "label_space": "basic7"})
    assert ds.label_space == LABEL_SPACES["basic7"]
    rec = ds.records()
    expr = {sid.split("/")[0]: e for sid, e in zip(rec["sample_id"], rec["expr"], strict=True)}
    assert expr == {"Happiness": 1, "angry": 6, "neutral": 0}


def test_label_space_maps_basic_names_into_mixbasic_spelling(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "sad"), per_class=1)
    rec = ImageFolderDataset({"root": str(tmp_path), "label_space": "mixbasic6"}).records()
    assert list(rec["expr"]) == [3, 4]


def test_folder_not_in_label_space_raises_naming_it(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "bored"), per_class=1)
    with pytest.raises(FermixError, match=r"class folder .*bored is not a class of `basic7`"):
        ImageFolderDataset({"root": str(tmp_path), "label_space": "basic7"})


def test_folder_not_in_configured_classes_raises(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "sad"), per_class=1)
    with pytest.raises(FermixError, match=r"sad is not a class"):
        ImageFolderDataset({"root": str(tmp_path), "classes": ["happy"]})


# ---------------------------------------------------------------- layout (b): root/{train,val,test}/


def test_split_folders_give_explicit_splits(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "sad"), splits={"train": 3, "val": 2, "test": 1})
    rec = ImageFolderDataset({"root": str(tmp_path)}).records()
    assert rec["split"].value_counts().to_dict() == {"train": 6, "val": 4, "test": 2}
    assert rec[rec["split"] == "val"]["sample_id"].str.startswith("val/").all()


def test_split_folders_union_their_classes(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "sad"), splits=["train"], per_class=1)
    write_image_folder(tmp_path, classes=("surprise",), splits=["test"], per_class=1)
    ds = ImageFolderDataset({"root": str(tmp_path)})
    assert ds.label_space.classes == ("happy", "sad", "surprise")
    assert set(ds.records()["split"]) == {"train", "test"}


def test_validation_folder_is_read_as_val(tmp_path):
    write_image_folder(tmp_path, classes=("happy",), splits=["train", "validation"], per_class=1)
    rec = ImageFolderDataset({"root": str(tmp_path)}).records()
    assert sorted(rec["split"]) == ["train", "val"]


def test_split_folders_without_train_are_still_split_folders(tmp_path):
    """root/test/<class> alone is a test split (for fermix test), not a class called `test`."""
    write_image_folder(tmp_path, classes=("happy", "sad"), splits=["test"], per_class=1)
    ds = ImageFolderDataset({"root": str(tmp_path)})
    assert ds.label_space.classes == ("happy", "sad")
    assert set(ds.records()["split"]) == {"test"}


@pytest.mark.parametrize("split", ["val", "test", "train"])
def test_an_empty_split_folder_is_an_error_naming_it(tmp_path, split):
    write_image_folder(tmp_path, classes=("happy",), splits=[s for s in ("train", "val") if s != split], per_class=1)
    (tmp_path / split).mkdir()
    with pytest.raises(FermixError, match=rf"split {split} of dataset imagefolder has no samples: .*{split} holds no"):
        ImageFolderDataset({"root": str(tmp_path)})


# ---------------------------------------------------------------- layout (c): CSV manifest


def test_manifest_with_names_splits_and_subjects(tmp_path):
    write_image_folder(tmp_path / "img", classes=("happy", "sad"), per_class=2)
    _write_csv(
        tmp_path / "labels.csv",
        "path,label,split,subject\n"
        "img/happy/happy_000.png,happy,train,s1\n"
        "img/happy/happy_001.png,Sad,test,s2\n"
        "img/sad/sad_000.png,sad,,\n",
    )
    ds = ImageFolderDataset({"root": str(tmp_path), "manifest": "labels.csv"})
    assert ds.label_space.classes == ("happy", "Sad")  # sorted ignoring case; one class per spelling
    rec = ds.records()
    assert list(rec["sample_id"]) == [
        "img/happy/happy_000.png",
        "img/happy/happy_001.png",
        "img/sad/sad_000.png",
    ]
    assert list(rec["expr"]) == [0, 1, 1]
    assert list(rec["split"]) == ["train", "test", None]
    assert list(rec["subject"]) == ["s1", "s2", None]
    assert ds.load(rec.iloc[0])["subject"] == "s1"


def test_manifest_with_integer_labels_and_absolute_csv_path(tmp_path):
    write_image_folder(tmp_path, classes=("a",), per_class=2)
    csv = _write_csv(tmp_path / "m.csv", "path,label\na/a_000.png,2\na/a_001.png,0\n")
    ds = ImageFolderDataset({"root": str(tmp_path), "manifest": str(csv), "classes": ["x", "y", "z"]})
    assert list(ds.records()["expr"]) == [2, 0]


def test_manifest_integer_label_indexes_the_label_space(tmp_path):
    write_image_folder(tmp_path, classes=("a",), per_class=1)
    _write_csv(tmp_path / "m.csv", "path,label\na/a_000.png,6\n")
    ds = ImageFolderDataset({"root": str(tmp_path), "manifest": "m.csv", "label_space": "basic7"})
    assert list(ds.records()["expr"]) == [6]


# Each case: one image a/a_000.png on disk, a manifest, extra config, and what the error must name.
MANIFEST_ERRORS = {
    "integer_labels_without_classes": (
        "path,label\na/a_000.png,1\n", {}, r"m\.csv has integer labels; name the classes"),
    "integer_label_out_of_range": (
        "path,label\na/a_000.png,3\n", {"classes": ["x", "y", "z"]},
        r"label 3 on line 2 of manifest .*m\.csv \(a_000\.png\) is out of range for 3 classes"),
    "label_not_in_classes_names_it": (
        "path,label\na/a_000.png,bored\n", {"label_space": "basic7"},
        r"label `bored` on line 2 of manifest .*m\.csv \(a_000\.png\) is not a class"),
    "bad_label_names_its_own_line": (
        "path,label\na/a_000.png,x\na/a_001.png,w\n", {"classes": ["x", "y"]}, r"label `w` on line 3 of"),
    "listing_missing_files_names_one": (
        "path,label\na/a_000.png,a\na/gone.png,a\n", {}, r"lists 1 missing file\(s\), e\.g\. .*gone\.png"),
    "bad_split_value_names_the_csv": (
        "path,label,split\na/a_000.png,a,holdout\n", {}, r"m\.csv.*holdout"),
}


@pytest.mark.parametrize(("csv", "extra", "match"), MANIFEST_ERRORS.values(), ids=MANIFEST_ERRORS.keys())
def test_bad_manifest_raises(tmp_path, csv, extra, match):
    write_image_folder(tmp_path, classes=("a",), per_class=2)
    _write_csv(tmp_path / "m.csv", csv)
    with pytest.raises(FermixError, match=match):
        ImageFolderDataset({"root": str(tmp_path), "manifest": "m.csv", **extra})


def test_manifest_missing_columns_raise_naming_the_csv(tmp_path):
    _write_csv(tmp_path / "m.csv", "file,emotion\nx.png,happy\n")
    with pytest.raises(FermixError, match=r"manifest .*m\.csv lacks column\(s\) path, label"):
        ImageFolderDataset({"root": str(tmp_path), "manifest": "m.csv"})


def test_manifest_that_does_not_exist_raises_naming_it(tmp_path):
    with pytest.raises(FermixError, match=r"manifest .*nothere\.csv does not exist"):
        ImageFolderDataset({"root": str(tmp_path), "manifest": "nothere.csv"})


def test_empty_manifest_raises(tmp_path):
    _write_csv(tmp_path / "m.csv", "path,label\n")
    with pytest.raises(FermixError, match=r"no images found in manifest .*m\.csv"):
        ImageFolderDataset({"root": str(tmp_path), "manifest": "m.csv"})


# ---------------------------------------------------------------- bad input


def test_missing_root_raises_naming_it(tmp_path):
    with pytest.raises(FermixError, match=r"dataset root .*absent does not exist.*set dataset\.root="):
        ImageFolderDataset({"root": str(tmp_path / "absent")})


def test_root_that_is_a_file_raises(tmp_path):
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    with pytest.raises(FermixError, match=r"file\.png does not exist or is not a directory"):
        ImageFolderDataset({"root": str(f)})


def test_unset_root_raises():
    with pytest.raises(FermixError, match=r"dataset\.root is not set"):
        ImageFolderDataset({})


def test_root_without_images_raises(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"x")  # images must be inside class folders
    with pytest.raises(FermixError, match=rf"no images found in {tmp_path}"):
        ImageFolderDataset({"root": str(tmp_path)})


def test_empty_class_folder_raises_naming_it(tmp_path):
    write_image_folder(tmp_path, classes=("happy",), per_class=1)
    (tmp_path / "sad").mkdir()
    (tmp_path / "sad" / "readme.txt").write_text("x")
    with pytest.raises(FermixError, match=r"class folder .*sad has no images"):
        ImageFolderDataset({"root": str(tmp_path)})


def test_empty_class_folder_inside_a_split_raises(tmp_path):
    write_image_folder(tmp_path, classes=("happy",), splits=["train"], per_class=1)
    (tmp_path / "train" / "sad").mkdir()
    with pytest.raises(FermixError, match=r"class folder .*train/sad has no images"):
        ImageFolderDataset({"root": str(tmp_path)})


def test_corrupt_image_raises_on_load_naming_it(tmp_path):
    write_image_folder(tmp_path, classes=("happy",), per_class=1)
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    ds = ImageFolderDataset({"root": str(tmp_path)})
    rec = ds.records()
    row = rec[rec["sample_id"] == "happy/broken.jpg"].iloc[0]
    with pytest.raises(FermixError, match=r"cannot read image .*broken\.jpg"):
        ds.load(row)


def test_classes_and_label_space_together_raise(tmp_path):
    write_image_folder(tmp_path, per_class=1)
    with pytest.raises(FermixError, match=r"either dataset\.classes or dataset\.label_space"):
        ImageFolderDataset({"root": str(tmp_path), "classes": ["happy"], "label_space": "basic7"})


def test_classes_given_as_a_string_raise(tmp_path):
    write_image_folder(tmp_path, per_class=1)
    with pytest.raises(FermixError, match=r"dataset\.classes must be a list such as \[a, b\] .*got `happy,sad`"):
        ImageFolderDataset({"root": str(tmp_path), "classes": "happy,sad"})


def test_unknown_label_space_raises(tmp_path):
    write_image_folder(tmp_path, per_class=1)
    with pytest.raises(FermixError, match="unknown label space `basic9`"):
        ImageFolderDataset({"root": str(tmp_path), "label_space": "basic9"})


def test_omegaconf_config_is_accepted(tmp_path):
    omegaconf = pytest.importorskip("omegaconf")
    write_image_folder(tmp_path, classes=("happy", "sad"), per_class=1)
    cfg = omegaconf.OmegaConf.create(
        {"root": str(tmp_path), "manifest": None, "classes": ["sad", "happy"], "label_space": None}
    )
    ds = ImageFolderDataset(cfg)
    assert ds.label_space.classes == ("sad", "happy")


def test_jpeg_images_round_trip_through_load(tmp_path):
    write_image_folder(tmp_path, classes=("happy",), per_class=1, ext=".jpg", size=16)
    ds = ImageFolderDataset({"root": str(tmp_path)})
    img = ds.load(ds.records().iloc[0])["image"]
    assert img.shape == (16, 16, 3)
    direct = cv2.cvtColor(cv2.imread(str(tmp_path / "happy" / "happy_000.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(img, direct)


# ---------------------------------------------------------------- raw input for `fermix preprocess`


def test_raw_items_name_samples_by_path_without_suffix_with_class_and_split(tmp_path):
    write_image_folder(tmp_path, classes=("happy", "sad"), splits={"train": 1, "test": 1}, ext=".jpg")
    items = ImageFolderDataset.raw_items({"root": str(tmp_path)})
    assert [i.sample_id for i in items] == [
        "test/happy/happy_000", "test/sad/sad_000", "train/happy/happy_000", "train/sad/sad_000"
    ]
    first = items[0]
    assert first.path == (tmp_path / "test" / "happy" / "happy_000.jpg").absolute()
    assert (first.label, first.native_label, first.split, first.source, first.box) == (
        "happy", "happy", "test", "imagefolder", None
    )


def test_raw_items_give_canonical_labels_and_keep_the_native_folder_name(tmp_path):
    write_image_folder(tmp_path, classes=("Happiness", "angry"), per_class=1)
    items = ImageFolderDataset.raw_items({"root": str(tmp_path), "label_space": "basic7"})
    assert [(i.label, i.native_label) for i in items] == [("happy", "Happiness"), ("anger", "angry")]


def test_raw_items_refuse_two_files_that_differ_only_by_suffix(tmp_path):
    write_image_folder(tmp_path, classes=("happy",), per_class=1)
    write_image_folder(tmp_path, classes=("happy",), per_class=1, ext=".jpg")
    with pytest.raises(FermixError, match=r"would both be sample happy/happy_000; rename one"):
        ImageFolderDataset.raw_items({"root": str(tmp_path)})


# ---------------------------------------------------------------- a `fermix preprocess` output folder


def _preprocessed(root: Path, label_space: dict | None, rows: list[tuple[str, str, str, bool]]) -> Path:
    """root/images/<id>.png + manifest.csv [+ preprocess.json]; rows are (id, split, label, with landmarks)."""
    from fermix.data.manifest import COLUMNS, landmark_fields

    lines = [",".join(COLUMNS)]
    for k, (sid, split, label, with_landmarks) in enumerate(rows):
        image = np.full((24, 24, 3), 40 * k, dtype=np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / f"{sid}.png"), image)
        landmarks = np.arange(136, dtype=np.float32).reshape(68, 2) / 10 + k if with_landmarks else None
        fields = landmark_fields(landmarks)
        base = [sid, split, f"images/{sid}.png", label, label.upper(), "rafdb", f"s{k}"]
        lines.append(",".join([*base, *(str(fields[c]) for c in COLUMNS[7:])]))
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    if label_space is not None:
        (root / "preprocess.json").write_text(json.dumps({"label_space": label_space}))
    return root


def test_manifest_in_root_is_picked_up_with_its_ids_sources_and_landmarks(tmp_path):
    _preprocessed(tmp_path, None, [("a", "train", "sad", True), ("b", "test", "happy", True)])
    ds = ImageFolderDataset({"root": str(tmp_path), "manifest": None})
    rec = ds.records()
    assert list(rec["sample_id"]) == ["a", "b"] and list(rec["split"]) == ["train", "test"]
    assert list(rec["source"]) == ["rafdb", "rafdb"] and list(rec["subject"]) == ["s0", "s1"]
    assert "landmarks" in ds.keys
    sample = ds.load(rec.iloc[1])
    assert set(sample) == ds.keys
    assert sample["landmarks"].dtype == np.float32 and sample["landmarks"].shape == (68, 2)
    assert np.allclose(sample["landmarks"], np.arange(136).reshape(68, 2) / 10 + 1)


def test_landmarks_are_a_key_only_when_every_row_has_them(tmp_path):
    _preprocessed(tmp_path, None, [("a", "train", "sad", True), ("b", "test", "happy", False)])
    ds = ImageFolderDataset({"root": str(tmp_path)})
    assert "landmarks" not in ds.keys and "landmarks" not in ds.load(ds.records().iloc[0])


def test_label_space_comes_from_preprocess_json_when_not_configured(tmp_path):
    _preprocessed(tmp_path, {"name": "basic7", "classes": []}, [("a", "train", "sad", True)])
    ds = ImageFolderDataset({"root": str(tmp_path)})
    assert ds.label_space == LABEL_SPACES["basic7"] and list(ds.records()["expr"]) == [2]


def test_an_unregistered_recorded_label_space_keeps_its_class_order(tmp_path):
    space = {"name": "imagefolder", "classes": ["sad", "happy", "never_seen"]}
    _preprocessed(tmp_path, space, [("a", "train", "happy", True)])
    ds = ImageFolderDataset({"root": str(tmp_path)})
    assert ds.label_space.classes == ("sad", "happy", "never_seen") and list(ds.records()["expr"]) == [1]


def test_configured_classes_win_over_the_recorded_label_space(tmp_path):
    _preprocessed(tmp_path, {"name": "basic7", "classes": []}, [("a", "train", "sad", True)])
    ds = ImageFolderDataset({"root": str(tmp_path), "classes": ["happy", "sad"]})
    assert ds.label_space.classes == ("happy", "sad") and list(ds.records()["expr"]) == [1]


def test_an_unreadable_preprocess_json_is_one_sentence(tmp_path):
    _preprocessed(tmp_path, None, [("a", "train", "sad", True)])
    (tmp_path / "preprocess.json").write_text("{not json")
    with pytest.raises(FermixError, match=r"cannot read .*preprocess\.json.*set dataset\.label_space"):
        ImageFolderDataset({"root": str(tmp_path)})


def test_an_empty_manifest_label_means_unlabelled(tmp_path):
    _preprocessed(tmp_path, None, [("a", "train", "sad", False), ("b", "train", "", False)])
    ds = ImageFolderDataset({"root": str(tmp_path)})
    assert ds.label_space.classes == ("sad",) and list(ds.records()["expr"]) == [0, -1]
