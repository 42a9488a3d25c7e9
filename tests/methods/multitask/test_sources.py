"""Spec §3 / §8.7: one loader per task, one batch of each per step, the epoch ends with the shortest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fermix.data.samplers import ClassBalancedSampler
from fermix.engine.datamodule import FermixDataModule
from fermix.methods.multitask import Multitask, MultitaskConfig
from fermix.methods.multitask.samplers import MLROSSampler, SubsetShuffleSampler, VAHistogramSampler

DATA = {"batch_size": 5, "num_workers": 0, "image_size": 32, "resize": 32, "mean": [0.5] * 3, "std": [0.5] * 3,
        "augment": {"random_crop": False}}  # fmt: skip


def _dm(tmp_path, **dataset) -> FermixDataModule:
    cfg = {"name": "synthetic", "seed": 0, "image_size": 32, "train_per_cell": 4, "val_per_cell": 1,
           "test_per_cell": 1, "partial": "disjoint", "cache": False, **dataset}  # fmt: skip
    return FermixDataModule(cfg, DATA, seed=3)


def _method(dm: FermixDataModule, **kw) -> Multitask:
    return Multitask(MultitaskConfig(n_students=1, **kw), dm.build(), {"name": "small_cnn", "width": 8})


def test_task_labels_agree_with_the_loaded_samples(tmp_path):
    dm = _dm(tmp_path)
    labels = dm.task_labels("train")
    ds = dm.dataset("train")
    for i in range(0, len(ds), 7):
        s = ds[i]
        assert int(s["expr"]) == labels["expr"][i]
        assert np.array_equal(np.asarray(s["au"]), labels["au"][i], equal_nan=True)
        assert np.array_equal(np.asarray(s["va"]), labels["va"][i], equal_nan=True)


def test_one_step_is_one_batch_per_task_and_the_epoch_is_the_shortest_task(tmp_path):
    dm = _dm(tmp_path)
    method = _method(dm, balance=False)
    dm.train_sources_factory = method.train_sources
    sources = dm.source_loaders()
    labels = dm.task_labels("train")
    sizes = {
        "expr": int((labels["expr"] >= 0).sum()),
        "au": int((~np.isnan(labels["au"]).any(1)).sum()),
        "va": int((~np.isnan(labels["va"]).any(1)).sum()),
    }
    assert set(sources) == {"expr", "au", "va"}
    assert {t: len(loader) for t, loader in sources.items()} == {t: n // 5 for t, n in sizes.items()}
    combined = dm.train_dataloader()
    steps = list(combined)
    assert len(steps) == min(n // 5 for n in sizes.values())
    batch, *_ = steps[0]
    assert list(batch) == ["expr", "au", "va"]
    for task, sub in batch.items():
        assert len(sub["image"]) == 5
        if task == "expr":
            assert bool((sub["expr"] >= 0).all())
        else:
            assert not bool(sub[task].isnan().any())


@pytest.mark.parametrize(
    ("balance", "kinds"),
    [(True, (ClassBalancedSampler, MLROSSampler, VAHistogramSampler)), (False, (SubsetShuffleSampler,) * 3)],
)
def test_balance_chooses_the_samplers_of_spec_section_3(tmp_path, balance, kinds):
    dm = _dm(tmp_path)
    sources = _method(dm, balance=balance).train_sources(dm.task_labels("train"), seed=0)
    assert [type(sources[t].sampler) for t in ("expr", "au", "va")] == list(kinds)


def test_masked_batching_uses_one_mixed_loader_of_three_task_batches(tmp_path):
    dm = _dm(tmp_path)
    method = _method(dm, batching="masked")
    dm.train_sources_factory = method.train_sources
    batch, *_ = next(iter(dm.train_dataloader()))
    assert list(batch) == ["mixed"] and len(batch["mixed"]["image"]) == 15
    method.begin_stage(method.stages()[0])
    terms = method.training_step(batch)
    assert set(terms) == {"expr", "au", "v", "a"} and all(torch.isfinite(v) for v in terms.values())


def test_single_task_baselines_train_on_their_task_only(tmp_path):
    dm = _dm(tmp_path)
    sources = _method(dm, train_tasks=["au"]).train_sources(dm.task_labels("train"), seed=0)
    assert list(sources) == ["au"]
    assert _method(dm, train_tasks=["au"]).derived_metrics({"au_score": 0.7, "acc": 0.5, "macro_f1": 0.5})[
        "select"
    ] == pytest.approx(0.7)
