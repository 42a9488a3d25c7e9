"""The multitask recipe's samplers (spec multitask.md §3, tests §8.6)."""

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import chisquare

from fermix.data.samplers import REPEAT_STRIDE, ClassBalancedSampler, _EpochSeeded
from fermix.errors import FermixError
from fermix.methods.multitask.samplers import (
    MLROSSampler,
    SubsetShuffleSampler,
    VAHistogramSampler,
    irlbl,
    mlros_clone_counts,
)

DRAWS = 100_000


def _uniform_p_value(counts: np.ndarray) -> float:
    """χ² goodness of fit of category counts against equal frequencies."""
    return float(chisquare(counts).pvalue)


def _independent_aus(prevalence: list[float], rows: int = 2000, seed: int = 0, unlabelled: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    au = (rng.random((rows, len(prevalence))) < np.asarray(prevalence)).astype(np.float32)
    au[rng.random(rows) < unlabelled] = np.nan
    return au


def _exclusive_aus(positives: list[int], negatives: int) -> np.ndarray:
    """Each row is positive for at most one AU, so cloning one AU never changes another's count."""
    rows = [np.eye(len(positives))[j] for j, n in enumerate(positives) for _ in range(n)]
    rows += [np.zeros(len(positives))] * negatives
    return np.asarray(rows, dtype=np.float32)


def _clustered_va(rows: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    va = np.stack([np.tanh(rng.normal(0.3, 0.3, rows)), np.tanh(rng.normal(-0.1, 0.5, rows))], axis=1)
    va[rng.random(rows) < 0.1] = np.nan
    va[:5, 1] = np.nan  # valence without arousal: not labelled for VA
    return va


def _cells(va: np.ndarray, bins: int) -> np.ndarray:
    """Each labelled row's 2-D cell over min..max edges, computed here independently of the sampler."""
    ids = []
    for d in range(2):
        x = va[:, d]
        edges = np.linspace(np.nanmin(x), np.nanmax(x), bins + 1)
        ids.append(np.minimum(np.searchsorted(edges, x, side="right") - 1, bins - 1))
    return ids[0] * bins + ids[1]


# --- EXPR: the existing class-balanced sampler ---------------------------------------------------
def test_expr_class_balanced_draws_pass_a_chi2_test_for_uniform_class_frequency():
    labels = np.repeat(np.arange(7), [3, 40, 400, 25, 900, 120, 9]).tolist() + [-1] * 50
    sampler = ClassBalancedSampler(labels, seed=0, num_samples=DRAWS)
    counts = np.bincount([labels[i] for i, _ in sampler], minlength=7)
    assert _uniform_p_value(counts) > 1e-3
    # the same test rejects plain shuffling of the labelled rows, so it can fail
    plain = SubsetShuffleSampler([i for i, y in enumerate(labels) if y >= 0], seed=0)
    assert _uniform_p_value(np.bincount([labels[i] for i, _ in plain], minlength=7)) < 1e-12


# --- VA: inverse 2-D histogram cell size ----------------------------------------------------------
def test_va_draws_pass_a_chi2_test_for_uniform_frequency_over_occupied_cells():
    va = _clustered_va()
    cells = _cells(va, bins=20)
    labelled = np.isfinite(va).all(axis=1)
    occupied = np.unique(cells[labelled])
    assert 60 < len(occupied) < 400  # a skewed cloud: many empty cells, unequal occupied ones
    drawn = cells[[i for i, _ in VAHistogramSampler(va, seed=0, num_samples=DRAWS)]]
    assert set(drawn) <= set(occupied)
    counts = np.array([np.sum(drawn == c) for c in occupied])
    assert _uniform_p_value(counts) > 1e-3
    plain = cells[[i for i, _ in SubsetShuffleSampler(np.flatnonzero(labelled), seed=0)]]
    assert _uniform_p_value(np.array([np.sum(plain == c) for c in occupied])) < 1e-12


def test_va_histogram_edges_follow_the_data_not_the_label_range():
    # in [0, 0.5]² with 2 bins the data-driven split is at 0.25; [-1, 1] edges would put all rows in one cell
    va = np.array([[0.0, 0.0], [0.3, 0.3], [0.4, 0.45], [0.5, 0.5], [np.nan, np.nan]])
    sampler = VAHistogramSampler(va, seed=0, bins=2)
    np.testing.assert_allclose(sampler.weights.numpy(), [1.0, 1 / 3, 1 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(sampler.v_edges, [0.0, 0.25, 0.5])


def test_va_weight_is_one_over_the_size_of_the_rows_cell():
    va = _clustered_va()
    labelled = np.isfinite(va).all(axis=1)
    cells = _cells(va, bins=20)
    size = Counter(cells[labelled].tolist())
    expected = np.where(labelled, [1 / size[c] if ok else 0.0 for c, ok in zip(cells, labelled, strict=True)], 0.0)
    np.testing.assert_allclose(VAHistogramSampler(va, seed=0).weights.numpy(), expected)


# --- AU: ML-ROS -----------------------------------------------------------------------------------
MINORITY_FIT_BUDGET = [0.5, 0.3, 0.15, 0.2, 0.12, 0.4, 0.35, 0.18]  # minority AUs 2, 3, 4, 7


@pytest.mark.parametrize("weight", ["code", "intended"])
def test_mlros_draws_raise_the_frequency_of_every_minority_au_over_uniform_sampling(weight):
    au = _independent_aus(MINORITY_FIT_BUDGET)
    labelled = np.isfinite(au).all(axis=1)
    prevalence = au[labelled].mean(axis=0)
    minority = np.flatnonzero(irlbl(au[labelled].sum(axis=0)) > 2.0)
    assert minority.tolist() == [2, 3, 4, 7]
    sampler = MLROSSampler(au, seed=0, weight=weight, num_samples=DRAWS)
    frequency = au[[i for i, _ in sampler]].mean(axis=0)
    assert np.all(frequency[minority] > prevalence[minority] + 0.01)  # gains ≥ 0.026 here; 1 s.e. ≈ 0.0013


def test_mlros_clones_each_minority_au_until_its_irlbl_reaches_mean_ir_and_no_further():
    au = _exclusive_aus([600, 250, 120, 40, 500], negatives=300)  # IRLbl 1, 2.4, 5, 15, 1.2
    sampler = MLROSSampler(au, seed=1, clone_budget=10.0)
    clones = sampler.clone_counts
    pos = au.sum(axis=0)
    augmented = pos + clones @ au
    assert augmented[0] == pos[0] == augmented.max()  # the majority AU is never cloned here
    for j in (1, 2, 3):  # the minority AUs, served in order
        assert augmented[0] / augmented[j] <= 2.0 < augmented[0] / (augmented[j] - 32)
    assert augmented[4] == pos[4]  # IRLbl 1.2: not a minority, not cloned
    assert clones[au.sum(axis=1) == 0].sum() == 0


def test_mlros_global_clone_budget_stops_the_whole_procedure_at_the_first_batch_past_it():
    au = _exclusive_aus([500, 3, 4], negatives=493)  # AU1 and AU2 are minority; AU1 alone exhausts 10 %
    sampler = MLROSSampler(au, seed=0, clone_budget=0.1, clone_batch=32)
    assert sampler.clone_counts.sum() == 128  # 100 clones allowed: batches of 32 stop at the first total ≥ 100
    assert sampler.clone_counts[au[:, 1] == 1].sum() == 128
    assert sampler.clone_counts[au[:, 2] == 1].sum() == 0  # the later minority AU gets nothing


def _literal_mlros(
    labels: np.ndarray, rng: np.random.Generator, mean_ir: float, batch: int, budget: float
) -> np.ndarray:
    """Spec §3 word for word: append clones to the label matrix and recompute IRLbl on it each time."""
    rows = len(labels)
    ir = labels.sum(0).max() / labels.sum(0)
    pools = {j: list(np.flatnonzero(labels[:, j] == 1)) for j in range(labels.shape[1])}
    augmented, cloned = labels, []
    for j in [j for j in range(labels.shape[1]) if ir[j] > mean_ir]:
        while True:
            picks = [pools[j][k] for k in rng.integers(0, len(pools[j]), size=batch)]
            pools[j].extend(picks)
            augmented = np.concatenate([augmented, labels[picks]])
            cloned.extend(picks)
            if augmented.sum(0).max() / augmented.sum(0)[j] <= mean_ir or len(cloned) >= budget * rows:
                break
        if len(cloned) >= budget * rows:
            break
    return np.bincount(np.asarray(cloned, dtype=np.int64), minlength=rows)


@pytest.mark.parametrize("budget", [0.5, 5.0])
def test_mlros_running_counts_equal_recomputing_irlbl_on_the_augmented_matrix(budget):
    labels = (np.random.default_rng(3).random((300, 5)) < [0.6, 0.2, 0.08, 0.3, 0.05]).astype(np.int64)
    ours = mlros_clone_counts(labels == 1, np.random.default_rng(9), 2.0, 32, budget)
    literal = _literal_mlros(labels, np.random.default_rng(9), 2.0, 32, budget)
    assert ours.sum() > 0
    np.testing.assert_array_equal(ours, literal)


def test_mlros_code_weights_are_clone_count_over_n_with_one_over_n_for_rows_cloned_zero_times():
    au = _independent_aus(MINORITY_FIT_BUDGET, rows=600)
    labelled = np.isfinite(au).all(axis=1)
    n = int(labelled.sum())
    sampler = MLROSSampler(au, seed=0, weight="code")
    c = sampler.clone_counts
    assert {0, 1} <= set(c[labelled].tolist()) and c.max() >= 2  # all three cases occur
    w = sampler.weights.numpy()
    np.testing.assert_allclose(w[labelled & (c == 0)], 1 / n)
    np.testing.assert_allclose(w[labelled & (c == 1)], 1 / n)  # the original's quirk: cloned once, no boost
    np.testing.assert_allclose(w[labelled & (c >= 2)], c[labelled & (c >= 2)] / n)
    assert np.all(w[~labelled] == 0)


def test_mlros_intended_weights_are_one_plus_clone_count_over_n_from_the_same_clones():
    au = _independent_aus(MINORITY_FIT_BUDGET, rows=600)
    labelled = np.isfinite(au).all(axis=1)
    code, intended = MLROSSampler(au, seed=0, weight="code"), MLROSSampler(au, seed=0, weight="intended")
    np.testing.assert_array_equal(code.clone_counts, intended.clone_counts)
    expected = np.where(labelled, (1 + intended.clone_counts) / labelled.sum(), 0.0)
    np.testing.assert_allclose(intended.weights.numpy(), expected)


def test_mlros_skips_an_au_without_positives_and_still_balances_the_others():
    au = _exclusive_aus([400, 50, 0], negatives=100)
    sampler = MLROSSampler(au, seed=0)
    assert sampler.clone_counts[au[:, 1] == 1].sum() > 0
    np.testing.assert_array_equal(MLROSSampler(np.zeros((10, 3)), seed=0).clone_counts, 0)


def test_mlros_clone_procedure_is_fixed_by_the_seed():
    au = _independent_aus(MINORITY_FIT_BUDGET, rows=600)
    np.testing.assert_array_equal(MLROSSampler(au, seed=4).clone_counts, MLROSSampler(au, seed=4).clone_counts)
    assert not np.array_equal(MLROSSampler(au, seed=4).clone_counts, MLROSSampler(au, seed=5).clone_counts)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MLROSSampler(np.zeros((4, 2)), seed=0, weight="paper"), "mlros_weight must be one of"),
        (lambda: MLROSSampler(np.full((4, 2), np.nan), seed=0), "at least one labelled sample"),
        (lambda: MLROSSampler(np.full((4, 2), 0.7), seed=0), "0 or 1"),
        (lambda: MLROSSampler(np.zeros(4), seed=0), "label array"),
        (lambda: VAHistogramSampler(np.full((4, 2), np.nan), seed=0), "at least one labelled sample"),
        (lambda: VAHistogramSampler(np.zeros((4, 3)), seed=0), r"\(N, 2\)"),
        (lambda: SubsetShuffleSampler([], seed=0), "at least one sample"),
    ],
)
def test_unusable_sampler_inputs_are_one_sentence_errors(make, message):
    with pytest.raises(FermixError, match=message):
        make()


# --- shared properties ----------------------------------------------------------------------------
def _mlros(seed: int) -> MLROSSampler:
    return MLROSSampler(_independent_aus(MINORITY_FIT_BUDGET, rows=500), seed=seed)


def _va(seed: int) -> VAHistogramSampler:
    return VAHistogramSampler(_clustered_va(rows=500), seed=seed)


def _subset(seed: int) -> SubsetShuffleSampler:
    return SubsetShuffleSampler(list(range(3, 500, 2)), seed=seed)


SAMPLERS: list[Callable[[int], _EpochSeeded]] = [_mlros, _va, _subset]


@pytest.mark.parametrize("make", SAMPLERS, ids=["mlros", "va", "subset"])
def test_draws_depend_only_on_seed_and_epoch(make):
    a, b = make(7), make(7)
    a.set_epoch(2)
    b.set_epoch(2)
    first = list(a)
    assert first == list(b) == list(a)  # same (seed, epoch), also when iterated again
    b.set_epoch(3)
    assert [i for i, _ in b] != [i for i, _ in first]
    other = make(8)
    other.set_epoch(2)
    assert [i for i, _ in other] != [i for i, _ in first]


@pytest.mark.parametrize("make", [_mlros, _va], ids=["mlros", "va"])
def test_weighted_samplers_draw_labelled_rows_only_and_n_k_of_them_by_default(make):
    sampler = make(0)
    labelled = sampler.weights.numpy() > 0
    keys = list(sampler)
    assert len(keys) == len(sampler) == labelled.sum() < len(labelled)
    assert all(labelled[i] for i, _ in keys)


@pytest.mark.parametrize("make", [_mlros, _va], ids=["mlros", "va"])
def test_repeated_draws_of_a_row_carry_distinct_epoch_keys(make):
    sampler = make(0)
    sampler.set_epoch(5)
    by_index: dict[int, list[int]] = {}
    for index, key in sampler:
        by_index.setdefault(index, []).append(key)
    assert max(len(k) for k in by_index.values()) > 1
    for keys in by_index.values():
        assert keys == [5 + r * REPEAT_STRIDE for r in range(len(keys))]


def test_subset_shuffle_yields_each_given_index_once_per_epoch_keyed_by_the_epoch():
    indices = [9, 2, 40, 7, 11]
    sampler = SubsetShuffleSampler(indices, seed=0)
    sampler.set_epoch(6)
    keys = list(sampler)
    assert sorted(i for i, _ in keys) == sorted(indices)
    assert {k for _, k in keys} == {6}
