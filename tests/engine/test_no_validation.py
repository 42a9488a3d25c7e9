"""Recipes without a validation split (IERN keeps the last epoch) and validation carved from train."""

import pytest

from fermix.errors import FermixError
from tests.engine.runner import run_train_in_process


def _tiny(tmp_path, *extra: str) -> list[str]:
    return [
        "dataset.train_per_cell=3",
        "dataset.val_per_cell=0",
        "dataset.test_per_cell=1",
        f"paths.data_dir={tmp_path / 'data'}",
        "backbone.width=8",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "logger=none",
        "progress=none",
        *extra,
    ]


def test_a_run_without_validation_keeps_the_last_epoch(tmp_path):
    summary = run_train_in_process(_tiny(tmp_path, "data.val_fraction=0", "checkpoint.monitor=null"), tmp_path / "r")
    assert set(summary["metrics"]) == {"test"}
    assert summary["split_sizes"]["val"] == 0


def test_selecting_on_validation_without_a_validation_split_is_refused(tmp_path):
    with pytest.raises(FermixError, match="needs a validation split"):
        run_train_in_process(_tiny(tmp_path, "data.val_fraction=0"), tmp_path / "r")


def test_validation_carved_from_generated_training_faces_loads_them(tmp_path):
    summary = run_train_in_process(_tiny(tmp_path, "data.val_fraction=0.2"), tmp_path / "r")
    assert summary["split_sizes"]["val"] > 0 and set(summary["metrics"]) == {"val", "test"}
