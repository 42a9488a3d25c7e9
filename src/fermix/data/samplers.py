"""Training-order samplers whose output depends only on (seed, epoch).

They yield `(index, epoch)` pairs (a sampler that draws with replacement marks repeats, see
ClassBalancedSampler). The dataset seeds each sample's augmentation from that pair,
so what a training run sees is the same with 0 or 8 loader workers and after a resume from any
epoch boundary — the precondition for "resume gives the same weights as an uninterrupted run".
Lightning calls `set_epoch` at the start of every epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch.utils.data import Sampler

from fermix.errors import FermixError


class _EpochSeeded(Sampler[tuple[int, int]]):
    """What fermix samplers share: the loop sets the epoch, and every draw is seeded from (seed, epoch)."""

    num_samples: int
    seed: int
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def _generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + salt)


class EpochShuffleSampler(_EpochSeeded):
    def __init__(self, num_samples: int, seed: int, shuffle: bool = True) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = self._generator()
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = range(self.num_samples)
        epoch = self.epoch
        return ((i, epoch) for i in order)


# A repeated draw of one sample within an epoch gets its own augmentation stream: the second
# element of the key is `epoch` for the first draw and `epoch + r * REPEAT_STRIDE` for the r-th
# repeat, so RecordsDataset seeds it differently (the key still depends only on (seed, epoch)).
REPEAT_STRIDE = 1 << 20


def keys_with_repeats(draws: Iterable[int], epoch: int) -> list[tuple[int, int]]:
    """Key the r-th draw of an index within one epoch `epoch + r * REPEAT_STRIDE`, so each repeat
    gets its own augmentation stream (the convention of ClassBalancedSampler)."""
    seen: dict[int, int] = {}
    keys = []
    for index in draws:
        repeat = seen.get(index, 0)
        seen[index] = repeat + 1
        keys.append((index, epoch + repeat * REPEAT_STRIDE))
    return keys


class _WeightedDraws(_EpochSeeded):
    """Draws `num_samples` dataset indices with replacement from `weights` (zero = never drawn)."""

    _salt: ClassVar[int] = 0
    weights: torch.Tensor

    def _set_weights(self, weights: Any, seed: int, num_samples: int | None, labelled: int) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.num_samples = int(num_samples if num_samples is not None else labelled)
        if self.num_samples < 1:
            raise FermixError(f"a sampler must draw at least one sample per epoch, not {self.num_samples}")
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = self._generator(salt=self._salt)
        draws = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g).tolist()
        return iter(keys_with_repeats(draws, self.epoch))


class ClassBalancedSampler(_WeightedDraws):
    """Draws with replacement, each labelled sample weighted 1 / (size of its class).

    Every class is then equally likely in every draw, so batches are class-balanced in
    expectation (ufoym's imbalanced-dataset sampler, which DMUE requires: a batch missing a
    class is skipped). Unlabelled samples (label < 0) are never drawn. `num_samples` draws per
    epoch, by default the number of labelled samples. The draw depends only on (seed, epoch).
    """

    _salt = 7_919

    def __init__(self, labels: Sequence[int], seed: int, num_samples: int | None = None) -> None:
        labels_t = torch.as_tensor(list(labels), dtype=torch.long)
        labelled = labels_t >= 0
        if not bool(labelled.any()):
            raise FermixError("the class-balanced sampler needs at least one labelled sample")
        counts = torch.bincount(labels_t[labelled])
        weights = torch.zeros(len(labels_t), dtype=torch.float64)
        weights[labelled] = 1.0 / counts[labels_t[labelled]].double()
        self._set_weights(weights, seed, num_samples, int(labelled.sum()))
