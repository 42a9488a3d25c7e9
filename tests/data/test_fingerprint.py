from __future__ import annotations

import pandas as pd

from fermix.data.fingerprint import fingerprint


def _records(ids, exprs):
    return pd.DataFrame({"sample_id": ids, "expr": exprs, "path": [f"/x/{i}" for i in ids]})


def test_fingerprint_is_16_hex_chars():
    fp = fingerprint(_records(["a", "b"], [0, 1]))
    assert len(fp) == 16
    int(fp, 16)


def test_fingerprint_ignores_row_order_and_other_columns():
    a = _records(["a", "b", "c"], [0, 1, 2])
    b = a.iloc[[2, 0, 1]].assign(path="elsewhere", split="train")
    assert fingerprint(a) == fingerprint(b)


def test_fingerprint_changes_with_labels_or_samples():
    base = fingerprint(_records(["a", "b"], [0, 1]))
    assert fingerprint(_records(["a", "b"], [1, 0])) != base
    assert fingerprint(_records(["a", "c"], [0, 1])) != base
    assert fingerprint(_records(["a"], [0])) != base


def test_fingerprint_cannot_be_fooled_by_concatenation():
    assert fingerprint(_records(["a|1\nb"], [0])) != fingerprint(_records(["a", "b"], [1, 0]))
