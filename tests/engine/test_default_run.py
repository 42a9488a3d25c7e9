"""`fermix train` with no dataset override trains on the synthetic faces end to end."""

import json

import torch

from tests.engine.runner import compose_job, run_train_in_process

TINY = [
    "dataset.train_per_cell=3",
    "dataset.val_per_cell=1",
    "dataset.test_per_cell=1",
    "backbone.width=8",
    "data.num_workers=0",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.num_sanity_val_steps=0",
    "logger=csv",
    "progress=none",
]


def test_the_default_dataset_is_synthetic(tmp_path):
    cfg = compose_job("train", [], tmp_path)
    assert cfg.dataset.name == "synthetic" and cfg.method.name == "erm"


def test_default_run_on_synthetic_faces_writes_test_metrics_and_a_loadable_checkpoint(tmp_path):
    run = tmp_path / "run"
    summary = run_train_in_process([*TINY, f"paths.data_dir={tmp_path / 'data'}"], run)
    assert summary["split_sizes"] == {"train": 63, "val": 21, "test": 21}
    assert 0.0 <= summary["metrics"]["test"]["acc"] <= 1.0
    assert json.loads((run / "summary.json").read_text())["dataset"] == "synthetic"
    ckpt = torch.load(run / "checkpoints/best.ckpt", weights_only=True)
    assert ckpt["fermix"]["data_info"]["num_domains"] == 3 and ckpt["fermix"]["dataset"] == "synthetic"
    assert any((tmp_path / "data/synthetic").glob("64px-*/config.json"))  # built once into the cache
