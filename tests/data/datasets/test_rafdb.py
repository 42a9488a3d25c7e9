"""The rafdb adapter on a fixture written by hand in RAF-DB's published `basic` layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fermix.data.datasets.rafdb import RAFDBDataset
from fermix.data.raw import RawItem
from fermix.data.writers.rafdb import write_rafdb
from fermix.errors import FermixError
from tests.engine.runner import quick_overrides, run_train_in_process

# RAF-DB's own order: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral.
LINES = {
    "train_00001.jpg": 5,
    "train_00002.jpg": 1,
    "train_00003.jpg": 7,
    "train_00004.jpg": 4,
    "test_0001.jpg": 1,
    "test_0002.jpg": 6,
}
ALIGNED_SHAPE, ORIGINAL_SHAPE = (10, 10, 3), (16, 12, 3)


def _make_root(root: Path, lines: dict[str, object] | None = None, *, aligned: bool = True) -> Path:
    lines = LINES if lines is None else lines
    rng = np.random.default_rng(0)
    for name in LINES:
        stem = Path(name).stem
        folders = [("original", name, ORIGINAL_SHAPE)] + ([("aligned", f"{stem}_aligned.jpg", ALIGNED_SHAPE)] * aligned)
        for folder, file_name, shape in folders:
            path = root / "Image" / folder / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), rng.integers(0, 255, shape, dtype=np.uint8))
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{n} {lab}\n" for n, lab in lines.items()))
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    return _make_root(tmp_path / "basic")


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


def _by_id(ds: RAFDBDataset, column: str) -> dict:
    rec = ds.records()
    return dict(zip(rec["sample_id"], rec[column], strict=True))


# ---------------------------------------------------------------- labels and splits


def test_native_labels_map_into_basic7_by_name(root):
    ds = RAFDBDataset({"root": str(root)})
    assert ds.label_space.name == "basic7"
    names = {sid: ds.label_space.classes[e] for sid, e in _by_id(ds, "expr").items()}
    assert names["train_00002"] == "surprise" and _by_id(ds, "expr")["train_00002"] == 3  # RAF 1 -> basic7 index 3
    assert names["train_00003"] == "neutral" and _by_id(ds, "expr")["train_00003"] == 0  # RAF 7
    assert names["train_00001"] == "sad" and names["train_00004"] == "happy" and names["test_0002"] == "anger"
    assert _by_id(ds, "native_label")["train_00001"] == "5"


def test_split_comes_from_the_name_prefix(root):
    splits = _by_id(RAFDBDataset({"root": str(root)}), "split")
    train = {k for k, v in splits.items() if v == "train"}
    assert train == {"train_00001", "train_00002", "train_00003", "train_00004"}
    assert {k for k, v in splits.items() if v == "test"} == {"test_0001", "test_0002"}


@pytest.mark.parametrize(("mode", "shape", "folder"), [("aligned", ALIGNED_SHAPE, "aligned"),
                                                       ("original", ORIGINAL_SHAPE, "original")])
def test_both_image_modes_read_their_folder(root, mode, shape, folder):
    ds = RAFDBDataset({"root": str(root), "images": mode})
    row = ds.records().set_index("sample_id").loc["test_0002"]
    suffix = "test_0002_aligned.jpg" if mode == "aligned" else "test_0002.jpg"
    assert row["path"] == str((root / "Image" / folder / suffix).absolute())
    sample = ds.load(row.to_dict() | {"sample_id": "test_0002"})
    assert set(sample) == ds.keys and sample["image"].shape == shape and sample["subject"] == ""


def test_aligned_is_the_default(root):
    assert RAFDBDataset({"root": str(root)}).images == "aligned"


def test_the_folder_holding_basic_is_accepted_as_root(root):
    assert len(RAFDBDataset({"root": str(root.parent)})) == len(LINES)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [0, 8, "x"])
def test_a_label_out_of_range_names_its_line(root, bad):
    _make_root(root, {**LINES, "train_00003.jpg": bad})
    with pytest.raises(FermixError, match=f"line 3 of EmoLabel/list_patition_label.txt gives label `{bad}`") as err:
        RAFDBDataset({"root": str(root)})
    _one_sentence(str(err.value))


def test_a_missing_image_is_counted_with_an_example(root):
    (root / "Image" / "aligned" / "train_00002_aligned.jpg").unlink()
    (root / "Image" / "aligned" / "test_0001_aligned.jpg").unlink()
    with pytest.raises(FermixError, match=r"rafdb: 2 images listed in .* are missing from .*aligned, e\.g\. ") as err:
        RAFDBDataset({"root": str(root)})
    _one_sentence(str(err.value))
    assert RAFDBDataset({"root": str(root), "images": "original"}).records().shape[0] == len(LINES)


def test_a_name_without_a_split_prefix_names_its_line(root):
    _make_root(root, {**LINES, "val_00001.jpg": 3})
    with pytest.raises(FermixError, match=r"line 7 of .* names val_00001\.jpg, which starts with neither"):
        RAFDBDataset({"root": str(root)})


def test_a_malformed_line_names_its_number(root):
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 5\n\ntrain_00002.jpg\n")
    with pytest.raises(FermixError, match=r"line 3 of .* is `train_00002\.jpg`"):
        RAFDBDataset({"root": str(root)})


def test_a_repeated_name_is_refused(root):
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 5\ntrain_00001.jpg 4\n")
    with pytest.raises(FermixError, match=r"line 2 of .* lists train_00001\.jpg a second time"):
        RAFDBDataset({"root": str(root)})


def test_an_unknown_image_mode_is_one_sentence(root):
    with pytest.raises(FermixError, match=r"dataset\.images=cropped is not one of aligned, original"):
        RAFDBDataset({"root": str(root), "images": "cropped"})


def test_a_root_without_the_label_file_is_one_sentence(tmp_path):
    with pytest.raises(FermixError, match=r"has no EmoLabel/list_patition_label\.txt") as err:
        RAFDBDataset({"root": str(tmp_path)})
    _one_sentence(str(err.value))


# ---------------------------------------------------------------- preprocessing


def test_raw_items_list_the_original_photographs_without_the_aligned_folder(tmp_path):
    root = _make_root(tmp_path / "basic", aligned=False)
    items = RAFDBDataset.raw_items({"root": str(root)})
    assert all(isinstance(i, RawItem) for i in items) and len(items) == len(LINES)
    by_id = {i.sample_id: i for i in items}
    first = by_id["train_00002"]
    assert first.path == root / "Image" / "original" / "train_00002.jpg"
    assert (first.label, first.native_label, first.split, first.source) == ("surprise", "1", "train", "rafdb")
    assert by_id["test_0002"].label == "anger" and by_id["test_0002"].split == "test"
    assert all(i.box is None for i in items)
    with pytest.raises(FermixError, match=r"missing from .*aligned"):
        RAFDBDataset({"root": str(root)})


# ---------------------------------------------------------------- end to end


def test_fermix_train_runs_on_a_rafdb_root(tmp_path):
    rng = np.random.default_rng(0)
    classes = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")
    samples = [
        {"image": rng.integers(0, 255, (24, 24, 3), dtype=np.uint8), "sample_id": f"{c}{i}", "expr": c,
         "split": "test" if i == 0 else "train"}
        for c in classes for i in range(4)
    ]
    root = write_rafdb(samples, tmp_path / "basic", aligned_size=32)
    overrides = quick_overrides(root, "dataset=rafdb", "trainer.max_epochs=1")
    summary = run_train_in_process(overrides, tmp_path / "run")
    assert summary["split_sizes"]["test"] == 7 and summary["epochs_trained"] == 1
