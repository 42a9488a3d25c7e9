from collections import Counter

import pytest

from fermix.data.samplers import REPEAT_STRIDE, ClassBalancedSampler, EpochShuffleSampler
from fermix.data.torch_dataset import sample_seed
from fermix.errors import FermixError


def _labels_1_10_100() -> list[int]:
    return [0] * 1 + [1] * 10 + [2] * 100


def test_class_balanced_draws_are_uniform_over_classes_on_a_1_10_100_label_set():
    labels = _labels_1_10_100()
    sampler = ClassBalancedSampler(labels, seed=0, num_samples=100_000)
    counts = Counter(labels[i] for i, _ in sampler)
    assert sum(counts.values()) == 100_000
    for c in range(3):
        assert abs(counts[c] / 100_000 - 1 / 3) < 0.02


def test_plain_shuffling_of_the_same_labels_is_far_from_uniform():
    """The contrast that makes the previous test meaningful: without weights class 0 is ~1%."""
    labels = _labels_1_10_100()
    counts = Counter(labels[i] for i, _ in EpochShuffleSampler(len(labels), seed=0))
    assert counts[0] / len(labels) < 0.02


def test_one_epoch_draws_as_many_samples_as_there_are_labelled_ones_and_never_an_unlabelled_one():
    labels = [0, 1, -1, 1, -1, 0, 2]
    sampler = ClassBalancedSampler(labels, seed=3)
    keys = list(sampler)
    assert len(keys) == len(sampler) == 5
    assert all(labels[i] >= 0 for i, _ in keys)


def test_draws_depend_only_on_seed_and_epoch():
    labels = _labels_1_10_100()
    a, b = ClassBalancedSampler(labels, seed=5), ClassBalancedSampler(labels, seed=5)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert [i for i, _ in a] != [i for i, _ in b]
    assert [i for i, _ in a] != [i for i, _ in ClassBalancedSampler(labels, seed=6, num_samples=len(a))]


def test_a_repeated_draw_gets_its_own_augmentation_stream():
    labels = [0] + [1] * 50  # sample 0 is drawn about half the time
    sampler = ClassBalancedSampler(labels, seed=0)
    sampler.set_epoch(4)
    keys = [k for k in sampler if k[0] == 0]
    assert len(keys) > 1
    assert keys[0] == (0, 4)  # the first draw is keyed like EpochShuffleSampler's
    assert [s for _, s in keys] == [4 + r * REPEAT_STRIDE for r in range(len(keys))]
    assert len({sample_seed(0, s, i) for i, s in keys}) == len(keys)


def test_a_label_set_without_labels_is_a_clear_error():
    with pytest.raises(FermixError, match="at least one labelled sample"):
        ClassBalancedSampler([-1, -1], seed=0)


def test_lightning_distributed_wrapper_gives_each_rank_a_disjoint_share_of_one_global_draw():
    """What Lightning does under DDP (use_distributed_sampler): the same global draw on every rank,
    split between ranks; set_epoch reaches our sampler through the wrapper."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    labels = _labels_1_10_100()
    ranks = [DistributedSamplerWrapper(ClassBalancedSampler(labels, seed=1), num_replicas=2, rank=r, shuffle=True,
                                       seed=0) for r in range(2)]
    for wrapper in ranks:
        wrapper.set_epoch(3)
    shares = [list(w) for w in ranks]
    full = ClassBalancedSampler(labels, seed=1)
    full.set_epoch(3)
    expected = Counter(full)
    got = Counter(shares[0]) + Counter(shares[1])
    assert len(shares[0]) == len(shares[1]) == 56  # 111 draws, padded to 112 and split
    assert sum((got - expected).values()) == 1  # one padding draw, otherwise exactly the global draw
    assert all(s == 3 or s >= REPEAT_STRIDE for share in shares for _, s in share)
