"""The multitask recipe's per-task training samplers (spec multitask.md §3, `--force_balance`).

Each task has its own loader; with balancing on, each draws N_k indices with replacement per
epoch from weights that flatten its label distribution: ML-ROS clone counts for AUs, the inverse
2-D histogram cell size for valence/arousal (the EXPR sampler is `fermix.data.samplers.ClassBalancedSampler`).
With balancing off, a task's rows are shuffled (`SubsetShuffleSampler`). The samplers take the
FULL training split's label arrays, so the indices they yield are dataset indices; a row that
carries no label for the task (any NaN in it) is never drawn. Like every fermix sampler, they yield
`(index, epoch key)` pairs whose draws depend only on (seed, epoch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from fermix.data.samplers import _EpochSeeded, _WeightedDraws
from fermix.errors import FermixError

MLROS_WEIGHTS = ("code", "intended")


def _labelled_rows(labels: np.ndarray, width: int | None, what: str) -> np.ndarray:
    """Rows whose every entry is a number: an (N, width) array with NaN marking unlabelled rows."""
    if labels.ndim != 2 or (width is not None and labels.shape[1] != width):
        shape = f"(N, {width})" if width is not None else "(N, number of AUs)"
        raise FermixError(f"the {what} sampler needs a {shape} label array, got shape {tuple(labels.shape)}")
    labelled = np.isfinite(labels).all(axis=1)
    if not labelled.any():
        raise FermixError(f"the {what} sampler needs at least one labelled sample")
    return labelled


def irlbl(positive_counts: np.ndarray) -> np.ndarray:
    """Imbalance ratio per label, max_l(pos_l) / pos_j (inf for a label without positives)."""
    counts = positive_counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return counts.max() / counts


def mlros_clone_counts(
    positives: np.ndarray,
    rng: np.random.Generator,
    mean_ir: float = 2.0,
    clone_batch: int = 32,
    clone_budget: float = 0.5,
) -> np.ndarray:
    """How often ML-ROS clones each row of a binary (M, A) label matrix (spec §3, the original's loop).

    Minority labels (IRLbl > mean_ir on the original matrix) are served in index order; for each,
    `clone_batch` of its positives are drawn with replacement until its IRLbl on the matrix augmented
    with all clones so far is ≤ mean_ir, or the clones reach `clone_budget`·M, which ends the whole
    procedure. As in the original, a label's pool of positives grows with the clones drawn for it
    (a later draw may pick a clone again). A label without positives cannot be cloned and is skipped.
    The augmented matrix is kept as running positive counts, which gives the same IRLbl.
    """
    rows, _ = positives.shape
    pos = positives.sum(axis=0).astype(np.int64)
    minority = [j for j, r in enumerate(irlbl(pos)) if r > mean_ir and pos[j] > 0]
    budget = clone_budget * rows
    counts = np.zeros(rows, dtype=np.int64)
    total = 0
    for j in minority:
        pool = np.flatnonzero(positives[:, j]).tolist()
        while True:
            picks = [pool[k] for k in rng.integers(0, len(pool), size=clone_batch)]
            pool.extend(picks)
            np.add.at(counts, picks, 1)
            pos += positives[picks].sum(axis=0)
            total += clone_batch
            if irlbl(pos)[j] <= mean_ir or total >= budget:
                break
        if total >= budget:
            break
    return counts


class MLROSSampler(_WeightedDraws):
    """AU sampler: ML-ROS clone counts turned into draw weights (spec §3, AU).

    The clone procedure runs once, at construction, from a generator seeded by `seed` (the original
    also ran it once). Over the N labelled rows, `weight="code"` gives w_i = c_i/N if row i was cloned
    c_i > 0 times, else 1/N, the original's quirk: a row cloned once gets no boost;
    `weight="intended"` gives the ML-ROS intent (1 + c_i)/N. Unlabelled rows get weight 0.
    `.clone_counts` and `.weights` are full-dataset-length arrays.
    """

    _salt = 104_729
    _CLONE_SALT = 0x4D4C524F53  # keeps the clone stream apart from the epoch draws

    def __init__(
        self,
        au: np.ndarray,
        seed: int,
        mean_ir: float = 2.0,
        clone_batch: int = 32,
        clone_budget: float = 0.5,
        weight: str = "code",
        num_samples: int | None = None,
    ) -> None:
        if weight not in MLROS_WEIGHTS:
            raise FermixError(f"mlros_weight must be one of {', '.join(MLROS_WEIGHTS)}, not {weight!r}")
        if clone_batch < 1:
            raise FermixError(f"the ML-ROS clone batch must be at least 1, not {clone_batch}")
        au = np.asarray(au, dtype=np.float64)
        labelled = _labelled_rows(au, None, "ML-ROS AU")
        values = au[labelled]
        if not np.isin(values, (0.0, 1.0)).all():
            raise FermixError("the ML-ROS AU sampler needs AU labels of 0 or 1 (NaN for an unlabelled row)")
        rng = np.random.default_rng([seed % 2**64, self._CLONE_SALT])
        clones = mlros_clone_counts(values == 1.0, rng, mean_ir, clone_batch, clone_budget)
        n = len(values)
        self.clone_counts = np.zeros(len(au), dtype=np.int64)
        self.clone_counts[labelled] = clones
        per_row = (np.where(clones > 0, clones, 1) if weight == "code" else 1 + clones) / n
        weights = np.zeros(len(au), dtype=np.float64)
        weights[labelled] = per_row
        self._set_weights(weights, seed, num_samples, n)


class VAHistogramSampler(_WeightedDraws):
    """Valence/arousal sampler: w_i = 1 / (rows in i's cell of a bins×bins histogram) (spec §3, VA).

    The edges are data-driven, from the labelled rows' min to max per dimension (np.histogram2d's
    default, as the original), not the [−1, 1] label range; the maximum falls in the last bin.
    Every occupied cell is then equally likely in every draw.
    """

    _salt = 15_485_863

    def __init__(self, va: np.ndarray, seed: int, bins: int = 20, num_samples: int | None = None) -> None:
        if bins < 1:
            raise FermixError(f"the VA histogram needs at least one bin per dimension, not {bins}")
        va = np.asarray(va, dtype=np.float64)
        labelled = _labelled_rows(va, 2, "VA histogram")
        v, a = va[labelled, 0], va[labelled, 1]
        hist, v_edges, a_edges = np.histogram2d(v, a, bins=bins)
        self.v_edges, self.a_edges = v_edges, a_edges
        # np.digitize puts the maximum past the last edge; np.histogram2d counts it in the last bin.
        v_bin = np.minimum(np.digitize(v, v_edges) - 1, bins - 1)
        a_bin = np.minimum(np.digitize(a, a_edges) - 1, bins - 1)
        weights = np.zeros(len(va), dtype=np.float64)
        weights[labelled] = 1.0 / hist[v_bin, a_bin]
        self._set_weights(weights, seed, num_samples, int(labelled.sum()))


class SubsetShuffleSampler(_EpochSeeded):
    """A task's rows in a fresh order every epoch, each once (the recipe with `balance=false`)."""

    def __init__(self, indices: Sequence[int], seed: int) -> None:
        self.indices = [int(i) for i in indices]
        if not self.indices:
            raise FermixError("the shuffle sampler needs at least one sample to shuffle")
        self.num_samples = len(self.indices)
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.num_samples, generator=self._generator()).tolist()
        epoch = self.epoch
        return ((self.indices[k], epoch) for k in order)
