"""Checkpoints written before the synthetic presets became config files still load, test, predict and resume.

tests/golden/legacy_preset/synthetic_bias_erm.ckpt was written by fermix at 2b2d0d9 (meta.json there has the
command): a 1-epoch erm run whose stored config says `dataset.name: synthetic_bias` and has no `adapter` key.
The registry's legacy table (fermix.registry.LEGACY_DATASET_ADAPTERS) reads it with the `synthetic` adapter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from fermix.engine.checkpoint import load_checkpoint
from tests.engine.runner import compose_job, run_train_in_process

FIXTURE = Path(__file__).resolve().parents[1] / "golden" / "legacy_preset" / "synthetic_bias_erm.ckpt"
# The fixture's training overrides (meta.json), for the resumed run
TRAINED = ["method=erm", "dataset=synthetic_bias", "dataset.cache=false", "dataset.image_size=32",
           "dataset.train_per_cell=3", "dataset.val_per_cell=1", "dataset.test_per_cell=2",
           "dataset.subjects_per_domain=[2,1,1]", "backbone.width=2", "data.image_size=32", "data.resize=32",
           "data.batch_size=8", "data.num_workers=0", "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0",
           "logger=none", "progress=none", "seed=0"]  # fmt: skip


@pytest.fixture(scope="module")
def meta() -> dict:
    return load_checkpoint(FIXTURE)["fermix"]


def test_the_fixture_names_a_preset_without_an_adapter(meta):
    assert meta["config"]["dataset"]["name"] == "synthetic_bias" and "adapter" not in meta["config"]["dataset"]


@pytest.mark.parametrize("extra", [[], ["dataset=synthetic_bias"]], ids=["own config", "preset chosen again"])
def test_it_tests_on_its_own_data_and_reproduces_its_validation_metrics(meta, extra, tmp_path):
    """`dataset=synthetic_bias` composes today's preset (with `adapter`) for a checkpoint without one."""
    from fermix.engine.datamodule import FermixDataModule
    from fermix.engine.testing import _eval_dataset_cfg, run_test

    sizes = ["dataset.train_per_cell=3", "dataset.val_per_cell=1", "dataset.test_per_cell=2",
             "dataset.subjects_per_domain=[2,1,1]", "dataset.image_size=32", "dataset.cache=false"]  # fmt: skip
    cfg = compose_job("test", [f"ckpt={FIXTURE}", "split=val", *extra, *(sizes if extra else [])], tmp_path)
    dataset_cfg, same = _eval_dataset_cfg(OmegaConf.create(meta["config"]["dataset"]), cfg.get("dataset"))
    data = FermixDataModule(dataset_cfg, meta["config"]["data"], seed=0)
    assert same and data.fingerprints() == meta["data_fingerprints"]  # the very samples it was trained on
    summary = run_test(cfg)
    assert summary["num_samples"] == meta["split_sizes"]["val"]
    assert summary["metrics"]["val"]["acc"] == pytest.approx(meta["metrics"]["val"]["acc"], abs=1e-6)


def test_it_predicts(meta):
    import fermix.inference

    faces = [np.full((32, 32, 3), v, dtype=np.uint8) for v in (40, 200)]
    table = fermix.inference.load(FIXTURE, device="cpu").predict(faces, align=False)
    assert list(table["status"]) == ["ok", "ok"]
    assert set(table["expression"]) <= set(meta["label_space"]["classes"])


def test_it_resumes(meta, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("last.ckpt", "best.ckpt"):  # the run dir as it was left: 1 epoch, so best is last
        shutil.copy(FIXTURE, run / "checkpoints" / name)
    overrides = [*TRAINED, f"paths.data_dir={tmp_path / 'data'}", "trainer.max_epochs=2", "resume=auto"]
    summary = run_train_in_process(overrides, run)
    assert summary["global_step"] == 2 * meta["global_step"]  # the second epoch only
    resumed = load_checkpoint(run / "checkpoints" / "last.ckpt")["fermix"]
    assert resumed["config"]["dataset"]["adapter"] == "synthetic"  # written by today's config
