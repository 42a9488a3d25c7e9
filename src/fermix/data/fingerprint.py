"""A short content hash of a dataset's labelled samples.

A checkpoint stores the fingerprint of its training records, so evaluation can tell whether it
is looking at the data the model was trained on (a silent source of inflated test numbers).
"""

from __future__ import annotations

import hashlib

import pandas as pd


def fingerprint(records: pd.DataFrame) -> str:
    """First 16 hex chars of sha256 over the sorted (sample_id, expr) pairs; row order does not matter."""
    pairs = sorted(zip(records["sample_id"].astype(str), records["expr"].astype(int), strict=True))
    h = hashlib.sha256()
    for sample_id, expr in pairs:
        # Length-prefixed so no two different tables can produce the same byte stream.
        sid = sample_id.encode("utf-8")
        h.update(f"{len(sid)}:".encode())
        h.update(sid)
        h.update(f"|{expr}\n".encode())
    return h.hexdigest()[:16]
