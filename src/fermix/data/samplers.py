"""Training-order samplers whose output depends only on (seed, epoch).

They yield `(index, epoch)` pairs. The dataset seeds each sample's augmentation from that pair,
so what a training run sees is the same with 0 or 8 loader workers and after a resume from any
epoch boundary — the precondition for "resume gives the same weights as an uninterrupted run".
Lightning calls `set_epoch` at the start of every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[tuple[int, int]]):
    def __init__(self, num_samples: int, seed: int, shuffle: bool = True) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = range(self.num_samples)
        epoch = self.epoch
        return ((i, epoch) for i in order)
