"""Filling in train/val/test splits that a dataset does not define itself.

Explicit splits always win. What is carved is decided by the seed alone (rows are sorted by
`sample_id` first), so the same data and seed give the same split on every machine and in every
process, whatever order the adapter listed the files in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedShuffleSplit

from fermix.errors import FermixError

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"valid": "val", "validation": "val"}


def assign_splits(
    records: pd.DataFrame,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    group_by: str | None = None,
) -> pd.DataFrame:
    """Return a copy of `records` whose `split` column is "train", "val" or "test" on every row.

    Rows without a split form the pool. Test is carved from the pool only when no row is
    already "test"; val is carved from pool + "train" rows only when no row is already "val".
    With `group_by`, whole groups (subjects) move, so no group is in two carved splits.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= float(value) < 1.0:
            raise FermixError(f"{name}={value} is not a fraction; use a value in [0, 1).")
    for col in ("sample_id", "expr", "split"):
        if col not in records.columns:
            raise FermixError(f"records have no `{col}` column; cannot assign splits.")
    dupes = records["sample_id"][records["sample_id"].duplicated()]
    if len(dupes):
        raise FermixError(f"sample_id `{dupes.iloc[0]}` appears more than once; sample ids must be unique.")

    out = records.copy()
    split = _normalised_splits(out["split"])
    # Positions in sample_id order: every decision below is made on this order only.
    order = np.argsort(out["sample_id"].astype(str).to_numpy(), kind="stable")
    explicit = split.notna().to_numpy()

    if test_fraction > 0 and not (split == "test").any():
        candidates = [p for p in order if not explicit[p]]
        for p in _carve(out, candidates, explicit, test_fraction, seed, group_by, "test"):
            split.iat[p] = "test"
    split[split.isna()] = "train"

    if val_fraction > 0 and not (split == "val").any():
        candidates = [p for p in order if split.iat[p] == "train"]
        train_explicit = np.zeros(len(out), dtype=bool)  # all train rows are fair game for val
        for p in _carve(out, candidates, train_explicit, val_fraction, seed, group_by, "val"):
            split.iat[p] = "val"

    out["split"] = split.astype(object)
    return out


def normalise_split(value: object) -> str | None:
    """Canonical split name ("valid"/"validation" mean val), or None for no split; else a user error."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip().lower()
    if s == "":
        return None
    s = SPLIT_ALIASES.get(s, s)
    if s not in SPLITS:
        raise FermixError(f"split value `{value}` is not one of {', '.join(SPLITS)} (or empty).")
    return s


def _normalised_splits(col: pd.Series) -> pd.Series:
    """Object series holding "train"/"val"/"test" or None."""
    return pd.Series([normalise_split(v) for v in col.tolist()], index=col.index, dtype=object)


def _carve(
    df: pd.DataFrame,
    candidates: list[int],
    locked: np.ndarray,
    fraction: float,
    seed: int,
    group_by: str | None,
    target: str,
) -> list[int]:
    """Positions (out of `candidates`, given in sample_id order) that move to split `target`."""
    if not candidates:
        return []
    labels = df["expr"].to_numpy()[candidates]
    if group_by is None:
        n_take = math.ceil(fraction * len(candidates))
        if len(candidates) - n_take < 1:
            raise FermixError(
                f"carving {target} ({fraction:.0%} of {len(candidates)} rows) would leave train empty; "
                f"lower the fraction or add data."
            )
        picked = _stratified_or_plain(labels, n_take, seed)
        return [candidates[i] for i in picked]

    groups = _groups(df, group_by)
    # A group that already has rows in an explicit split is not moved, or it would straddle two splits.
    locked_groups = set(groups[locked])
    movable = [i for i, p in enumerate(candidates) if groups[p] not in locked_groups]
    cand_groups = groups[[candidates[i] for i in movable]]
    unique = sorted(set(cand_groups))
    if not unique:
        raise FermixError(
            f"cannot carve {target} by `{group_by}`: every {group_by} of the unassigned rows already has "
            f"rows in an explicit split."
        )
    n_take = math.ceil(fraction * len(unique))
    if len(unique) - n_take < 1:
        raise FermixError(
            f"carving {target} by `{group_by}` ({fraction:.0%} of {len(unique)} groups) would leave train "
            f"empty; lower the fraction or add {group_by}s."
        )
    gss = GroupShuffleSplit(n_splits=1, test_size=n_take, random_state=seed)
    _, picked = next(gss.split(np.zeros(len(movable)), groups=cand_groups))
    return [candidates[movable[i]] for i in picked]


def _stratified_or_plain(labels: np.ndarray, n_take: int, seed: int) -> np.ndarray:
    """Stratified by label when every class can give rows to both sides; otherwise a plain shuffle."""
    x = np.zeros(len(labels))
    try:
        sss = StratifiedShuffleSplit(n_splits=1, test_size=n_take, random_state=seed)
        _, picked = next(sss.split(x, labels))
    except ValueError:  # a class with < 2 rows, or fewer rows to take than classes
        ss = ShuffleSplit(n_splits=1, test_size=n_take, random_state=seed)
        _, picked = next(ss.split(x))
    return np.sort(picked)


def _groups(df: pd.DataFrame, group_by: str) -> np.ndarray:
    """Group key per row as str; missing column or missing values are user errors."""
    if group_by not in df.columns:
        raise FermixError(f"cannot split by `{group_by}`: the records have no `{group_by}` column.")
    col = df[group_by]
    missing = col.isna() | (col.astype(str).str.strip() == "")
    if missing.all():
        raise FermixError(f"cannot split by `{group_by}`: the `{group_by}` column is empty.")
    if missing.any():
        first = df["sample_id"][missing].iloc[0]
        raise FermixError(
            f"cannot split by `{group_by}`: {int(missing.sum())} rows have no {group_by} (e.g. `{first}`)."
        )
    return col.astype(str).to_numpy()
