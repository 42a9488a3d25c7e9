"""write_rafdb writes RAF-DB's published `basic` layout, checked literally."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fermix.data.datasets.rafdb import RAFDBDataset
from fermix.data.writers.rafdb import write_rafdb
from fermix.errors import FermixError


def _sample(sid: str, expr: str | None, split: str, shape: tuple[int, int] = (30, 20)) -> dict:
    return {"image": np.full((*shape, 3), 90, dtype=np.uint8), "sample_id": sid, "expr": expr, "split": split}


def test_names_images_and_label_file_follow_the_published_layout(tmp_path):
    samples = [
        _sample("a", "surprise", "train"),
        _sample("b", "neutral", "test"),
        _sample("c", "happy", "val"),
        _sample("d", "anger", "test"),
    ]
    root = write_rafdb(samples, tmp_path / "basic")
    assert (root / "EmoLabel/list_patition_label.txt").read_text() == (
        "train_00001.jpg 1\ntrain_00002.jpg 4\ntest_0001.jpg 7\ntest_0002.jpg 6\n"
    )
    assert cv2.imread(str(root / "Image/original/train_00002.jpg")).shape == (30, 20, 3)
    assert cv2.imread(str(root / "Image/aligned/test_0002_aligned.jpg")).shape == (100, 100, 3)
    assert sorted(p.name for p in (root / "Image/aligned").iterdir()) == [
        "test_0001_aligned.jpg", "test_0002_aligned.jpg", "train_00001_aligned.jpg", "train_00002_aligned.jpg"
    ]


@pytest.mark.parametrize(("expr", "native"), [("surprise", 1), ("fear", 2), ("disgust", 3), ("happiness", 4),
                                              ("sad", 5), ("angry", 6), ("neutral", 7)])
def test_labels_are_written_as_raf_numbers_found_by_name(tmp_path, expr, native):
    root = write_rafdb([_sample("a", expr, "train")], tmp_path / "basic")
    assert (root / "EmoLabel/list_patition_label.txt").read_text() == f"train_00001.jpg {native}\n"


@pytest.mark.parametrize("expr", ["contempt", None])
def test_a_label_raf_db_does_not_have_is_refused(tmp_path, expr):
    with pytest.raises(FermixError, match=f"has label {expr}, which is not a RAF-DB class"):
        write_rafdb([_sample("a", expr, "train")], tmp_path / "basic")


def test_the_adapter_reads_back_the_written_labels_and_splits(tmp_path):
    classes = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")
    samples = [_sample(f"s{i}", classes[i % 7], "test" if i % 3 == 0 else "train") for i in range(14)]
    root = write_rafdb(samples, tmp_path / "basic", aligned_size=16)
    for mode in ("aligned", "original"):
        ds = RAFDBDataset({"root": str(root), "images": mode})
        rec = ds.records()
        written = sorted((s["split"], classes.index(s["expr"])) for s in samples)
        assert sorted(zip(rec["split"], rec["expr"], strict=True)) == written
    assert ds.load(rec.iloc[0])["image"].shape == (30, 20, 3)
