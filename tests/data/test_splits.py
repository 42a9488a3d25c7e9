from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fermix.data.splits import assign_splits
from fermix.errors import FermixError


def _records(n_per_class=20, n_classes=3, split=None, subjects=None):
    rows = []
    for k in range(n_classes):
        for i in range(n_per_class):
            rows.append({"sample_id": f"c{k}/img{i:03d}.png", "expr": k, "split": split})
    df = pd.DataFrame(rows)
    df["split"] = df["split"].astype(object)
    if subjects is not None:
        df["subject"] = [f"s{i % subjects}" for i in range(len(df))]
    return df


def _by_id(df):
    return dict(zip(df["sample_id"], df["split"], strict=True))


def test_pool_rows_become_train_val_test_with_requested_sizes():
    out = assign_splits(_records(), val_fraction=0.25, test_fraction=0.2, seed=0)
    counts = out["split"].value_counts()
    assert counts["test"] == 12  # 20% of 60
    assert counts["val"] == 12  # 25% of the 48 left
    assert counts["train"] == 36
    assert set(out["split"]) == {"train", "val", "test"}


def test_input_is_not_modified_and_row_order_is_kept():
    rec = _records()
    before = rec.copy()
    out = assign_splits(rec, val_fraction=0.2, test_fraction=0.2, seed=0)
    pd.testing.assert_frame_equal(rec, before)
    assert list(out["sample_id"]) == list(rec["sample_id"])
    assert list(out.index) == list(rec.index)


def test_same_seed_gives_same_split_and_other_seed_differs():
    a = assign_splits(_records(), val_fraction=0.2, test_fraction=0.2, seed=7)
    b = assign_splits(_records(), val_fraction=0.2, test_fraction=0.2, seed=7)
    c = assign_splits(_records(), val_fraction=0.2, test_fraction=0.2, seed=8)
    assert _by_id(a) == _by_id(b)
    assert _by_id(a) != _by_id(c)


def test_split_does_not_depend_on_row_order():
    rec = _records()
    shuffled = rec.sample(frac=1.0, random_state=123).reset_index(drop=True)
    a = assign_splits(rec, val_fraction=0.2, test_fraction=0.2, seed=3)
    b = assign_splits(shuffled, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert _by_id(a) == _by_id(b)


def test_carving_is_stratified_by_expression():
    out = assign_splits(_records(n_per_class=20, n_classes=4), val_fraction=0.2, test_fraction=0.25, seed=1)
    for split, expected in (("test", 5), ("val", 3)):  # 25% of 20 per class, then 20% of the 15 left
        per_class = out[out["split"] == split]["expr"].value_counts()
        assert sorted(per_class.to_dict().items()) == [(k, expected) for k in range(4)]


def test_tiny_classes_fall_back_to_unstratified_carving():
    rec = _records(n_per_class=6, n_classes=2)
    rec.loc[len(rec)] = {"sample_id": "rare/one.png", "expr": 2, "split": None}  # a class of one row
    out = assign_splits(rec, val_fraction=0.0, test_fraction=0.25, seed=0)
    assert (out["split"] == "test").sum() == 4  # ceil(0.25 * 13)
    assert out["split"].notna().all()


def test_explicit_splits_are_respected():
    rec = _records()
    rec.loc[rec.index[:6], "split"] = "test"
    rec.loc[rec.index[6:10], "split"] = "val"
    out = assign_splits(rec, val_fraction=0.3, test_fraction=0.3, seed=0)
    assert (out["split"] == "test").sum() == 6
    assert (out["split"] == "val").sum() == 4
    assert (out["split"] == "train").sum() == 50
    pd.testing.assert_series_equal(out["split"][:10], rec["split"][:10].astype(object))


def test_val_is_carved_from_pool_and_explicit_train_rows():
    rec = _records(n_per_class=10, n_classes=2, split="train")
    rec.loc[rec.index[::2], "split"] = None  # half pool, half explicit train; no val, no test
    rec.loc[rec.index[:2], "split"] = "test"
    out = assign_splits(rec, val_fraction=0.5, test_fraction=0.5, seed=0)
    assert (out["split"] == "test").sum() == 2  # an existing test split is not enlarged
    assert (out["split"] == "val").sum() == 9  # half of the 18 train rows
    assert (out["split"] == "train").sum() == 9


def test_zero_fractions_make_everything_train():
    out = assign_splits(_records(), val_fraction=0.0, test_fraction=0.0, seed=0)
    assert set(out["split"]) == {"train"}


def test_nan_and_empty_string_count_as_unassigned_and_valid_is_val():
    rec = _records(n_per_class=4, n_classes=2)
    rec["split"] = [np.nan, "", None, "Valid", "TRAIN", "test", None, None]
    out = assign_splits(rec, val_fraction=0.5, test_fraction=0.5, seed=0)
    assert list(out["split"][3:6]) == ["val", "train", "test"]
    assert set(out["split"]) == {"train", "val", "test"}
    assert (out["split"] == "val").sum() == 1  # an explicit val row means no val is carved


def test_group_split_is_subject_independent():
    rec = _records(n_per_class=30, n_classes=3, subjects=10)
    out = assign_splits(rec, val_fraction=0.25, test_fraction=0.2, seed=5, group_by="subject")
    subjects = {s: set(out[out["split"] == s]["subject"]) for s in ("train", "val", "test")}
    assert subjects["test"] and subjects["val"] and subjects["train"]
    assert not subjects["train"] & subjects["val"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]
    assert len(subjects["test"]) == 2  # 20% of 10 subjects
    assert len(subjects["val"]) == 2  # 25% of the 8 left


def test_group_split_does_not_depend_on_row_order():
    rec = _records(n_per_class=10, n_classes=3, subjects=6)
    shuffled = rec.sample(frac=1.0, random_state=9)
    a = assign_splits(rec, val_fraction=0.2, test_fraction=0.2, seed=2, group_by="subject")
    b = assign_splits(shuffled, val_fraction=0.2, test_fraction=0.2, seed=2, group_by="subject")
    assert _by_id(a) == _by_id(b)


def test_group_split_keeps_subjects_of_explicit_rows_out_of_test():
    rec = _records(n_per_class=10, n_classes=2, subjects=5)
    rec.loc[rec["subject"] == "s0", "split"] = "train"
    out = assign_splits(rec, val_fraction=0.0, test_fraction=0.5, seed=0, group_by="subject")
    assert set(out[out["subject"] == "s0"]["split"]) == {"train"}
    test_subjects = set(out[out["split"] == "test"]["subject"])
    assert test_subjects and not test_subjects & set(out[out["split"] == "train"]["subject"])


def test_group_by_missing_column_raises():
    with pytest.raises(FermixError, match="no `subject` column"):
        assign_splits(_records(), val_fraction=0.2, test_fraction=0.2, seed=0, group_by="subject")


def test_group_by_empty_column_raises():
    rec = _records()
    rec["subject"] = None
    with pytest.raises(FermixError, match="`subject` column is empty"):
        assign_splits(rec, val_fraction=0.2, test_fraction=0.2, seed=0, group_by="subject")


def test_group_by_with_some_missing_subjects_raises_naming_a_sample():
    rec = _records(subjects=4)
    rec.loc[3, "subject"] = ""
    with pytest.raises(FermixError, match=r"1 rows have no subject \(e\.g\. `c0/img003\.png`\)"):
        assign_splits(rec, val_fraction=0.2, test_fraction=0.2, seed=0, group_by="subject")


def test_carve_that_would_empty_train_raises():
    rec = _records(n_per_class=1, n_classes=1)
    with pytest.raises(FermixError, match="would leave train empty"):
        assign_splits(rec, val_fraction=0.0, test_fraction=0.5, seed=0)
    rec = _records(n_per_class=4, n_classes=1, subjects=1)
    with pytest.raises(FermixError, match="would leave train empty"):
        assign_splits(rec, val_fraction=0.2, test_fraction=0.0, seed=0, group_by="subject")


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_fraction_outside_unit_interval_raises(bad):
    with pytest.raises(FermixError, match=f"val_fraction={bad}"):
        assign_splits(_records(), val_fraction=bad, test_fraction=0.1, seed=0)


def test_unknown_split_value_and_duplicate_ids_raise():
    rec = _records(n_per_class=2, n_classes=2)
    rec.loc[0, "split"] = "holdout"
    with pytest.raises(FermixError, match="holdout"):
        assign_splits(rec, val_fraction=0.2, test_fraction=0.2, seed=0)
    rec = _records(n_per_class=2, n_classes=2)
    rec.loc[1, "sample_id"] = rec.loc[0, "sample_id"]
    with pytest.raises(FermixError, match=r"c0/img000\.png"):
        assign_splits(rec, val_fraction=0.2, test_fraction=0.2, seed=0)


def test_group_carve_with_no_free_subject_raises():
    rec = _records(n_per_class=4, n_classes=2, subjects=2)
    rec.loc[[0, 1], "split"] = "train"  # both subjects now have explicit rows
    with pytest.raises(FermixError, match=r"every subject of the unassigned rows"):
        assign_splits(rec, val_fraction=0.0, test_fraction=0.2, seed=0, group_by="subject")
