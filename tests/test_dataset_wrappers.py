"""A method brings its own sample unit (a dataset wrapper) without any engine change.

The toy method below reads pairs of consecutive faces (its wrapper, switched on by its own key
`data.pairs`), the way multitask_rnn reads windows of frames: registering the method is all it takes
for `fermix train` to feed it pairs, for `fermix test` to evaluate it on pairs, and for
`fermix export` / `fermix predict`, which write and run per-image models, to refuse it in its words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, default_collate

from fermix.methods.base import DatasetWrapper, MethodConfig
from tests.engine.runner import compose_job, train_toy_method
from tests.engine.toy_methods import PixelLinear


class Pairs(Dataset):
    """Sample i is faces 2i and 2i+1 (the last face alone when the count is odd) with the first one's labels."""

    def __init__(self, frames: Dataset) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return (len(self.frames) + 1) // 2

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, None)
        rows = [2 * index, min(2 * index + 1, len(self.frames) - 1)]
        items = [self.frames[(r, epoch) if epoch is not None else r] for r in rows]
        item = {k: v for k, v in items[0].items() if k != "image"}
        item["image"] = torch.stack([i["image"] for i in items])
        return item

    @staticmethod
    def collate_fn(items):
        batch = default_collate([{k: v for k, v in i.items() if k != "image"} for i in items])
        batch["image"] = torch.cat([i["image"] for i in items])  # 2B faces, pair by pair
        return batch


class PairWrapper(DatasetWrapper):
    key = "data.pairs"
    wrapped: ClassVar[list[str]] = []

    @classmethod
    def from_config(cls, config):
        return cls() if (config.get("data") or {}).get("pairs") else None

    def wrap(self, frames, records, labels, split, seed):
        PairWrapper.wrapped.append(split)
        return Pairs(frames)

    def task_labels(self, wrapped, labels):
        return {k: np.asarray(v)[::2] for k, v in labels.items()}

    def describe(self) -> str:
        return "pairs of faces (data.pairs)"


@dataclass
class PairConfig(MethodConfig):
    pass


class PairMean(PixelLinear):
    """A linear pixel classifier that scores a pair of faces by the mean of their logits."""

    name = "pair_mean"
    Config = PairConfig
    dataset_wrapper = PairWrapper
    batch_images: ClassVar[list[int]] = []

    def logits(self, batch):
        PairMean.batch_images.append(len(batch["image"]))
        return super().logits(batch).view(-1, 2, self.data_info.num_classes).mean(1)

    def predict(self, batch):
        return {"expr_logits": self.logits(batch)}


@pytest.fixture
def pair_run(monkeypatch, tmp_path):
    PairWrapper.wrapped.clear()
    PairMean.batch_images.clear()
    toy = "tests.test_dataset_wrappers:PairMean"
    return train_toy_method(monkeypatch, tmp_path, "pair_mean", toy, "+data.pairs=true")


def test_a_toy_methods_wrapper_feeds_training_and_testing_its_own_samples(pair_run, tmp_path):
    from fermix.engine.testing import run_test

    assert {"train", "val", "test"} <= set(PairWrapper.wrapped)
    assert PairMean.batch_images and all(n % 2 == 0 for n in PairMean.batch_images)  # pairs, flattened
    PairWrapper.wrapped.clear()
    tested = run_test(compose_job("test", [f"ckpt={pair_run}"], tmp_path / "t"))
    assert PairWrapper.wrapped == ["test"]
    assert tested["num_samples"] == 6  # 12 test faces as 6 pairs


def test_export_and_predict_refuse_a_wrapped_model_in_the_wrappers_words(pair_run, fermix_main, tmp_path):
    out = fermix_main(["export", f"ckpt={pair_run}", f"out={tmp_path / 'x'}"], tmp_path)
    assert out.returncode == 1 and "method pair_mean reads pairs of faces (data.pairs)" in out.stderr
    out = fermix_main(["predict", f"ckpt={pair_run}", f"input={tmp_path / 'faces'}"], tmp_path)
    assert out.returncode == 1 and "checkpoint that reads pairs of faces (data.pairs)" in out.stderr


def test_a_wrappers_key_set_for_a_method_that_does_not_declare_it_is_refused():
    """`data.windows` is multitask_rnn's sample unit: a plain method would silently ignore it, so it refuses."""
    import fermix.data.windows  # noqa: F401  (defines FrameWindows; the CLI imports every method's first)
    from fermix.errors import FermixError
    from fermix.registry import METHODS

    with pytest.raises(FermixError, match=r"data\.windows is read by methods that declare FrameWindows; method erm"):
        METHODS.get("erm").sample_wrapper({"data": {"windows": {"seq_len": 4}}})
    assert METHODS.get("erm").sample_wrapper({"data": {"windows": None}}) is None
