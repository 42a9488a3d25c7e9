"""Checkpoints written by an earlier fermix still load, test and predict (issue 22).

tests/fixtures/checkpoints/<case>.ckpt were trained by `fermix train` at commit 2b2d0d9, before the
configs became structured (optimizers, schedulers and augment ops built by `_target_`, the synthetic
presets config files with `dataset.adapter`, recipes in configs/experiment/). <case>.json holds what
that commit's `fermix test` and `fermix.load(ckpt).predict` gave for them; tests/fixtures/checkpoints/make.py
wrote both (its header says when, and when not, to rerun it). Each test works on a copy of the checkpoint
in tmp_path, from tmp_path: `fermix test` writes its eval folder beside the checkpoint and regenerates
the synthetic data under ./datasets/ from the config stored in the checkpoint, and nothing may be
written into tests/fixtures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fermix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"
WRITTEN_BY = "2b2d0d9"
CASES = ["erm_synthetic", "iern_synthetic_bias", "dmue_synthetic_noisy", "multitask_synthetic_partial"]
TOLERANCE = 1e-4  # the recorded numbers are rounded to 1e-5


def record_of(case: str) -> dict:
    return json.loads((FIXTURES / f"{case}.json").read_text())


@pytest.fixture(params=CASES)
def legacy(request, tmp_path) -> tuple[dict, Path]:
    """The case's record and a copy of its checkpoint in tmp_path."""
    record = record_of(request.param)
    ckpt = tmp_path / record["checkpoint"]
    shutil.copyfile(FIXTURES / record["checkpoint"], ckpt)
    return record, ckpt


def assert_close(found: dict, recorded: dict, what: str) -> None:
    assert set(found) == set(recorded), what
    for key, value in recorded.items():
        assert found[key] == pytest.approx(value, abs=TOLERANCE), f"{what}: {key}"


def test_every_fixture_was_written_by_the_commit_before_the_config_refactor():
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(CASES)
    for case in CASES:
        record = record_of(case)
        assert record["written_by"]["git_commit"].startswith(WRITTEN_BY), case
        assert (FIXTURES / record["checkpoint"]).stat().st_size < 400_000, case


def test_checkpoint_written_by_2b2d0d9_tests_to_its_recorded_metrics(legacy, fermix_main):
    record, ckpt = legacy
    work = ckpt.parent
    result = fermix_main(["test", f"ckpt={ckpt}", "progress=none"], work)
    assert result.returncode == 0, result.stderr[-3000:]
    (summary_file,) = (work / "eval").glob("test_*/summary.json")
    summary = json.loads(summary_file.read_text())
    expected = record["test"]
    assert summary["dataset"] == expected["dataset"] and summary["split"] == expected["split"] == "test"
    assert summary["num_samples"] == expected["num_samples"]
    # The test split is regenerated identically (same faces, same labels, in the same order) and every
    # face gets the class it got when the checkpoint was written.
    assert "differs from the one this checkpoint was trained with" not in result.stdout + result.stderr
    predictions = pd.read_csv(summary_file.parent / "predictions_test.csv")
    assert predictions["label"].tolist() == expected["labels"]
    assert predictions["pred"].tolist() == expected["preds"]
    assert_close(summary["metrics"]["test"], expected["metrics"], "metrics")
    assert_close(summary["per_class_acc"]["test"], expected["per_class_acc"], "per-class accuracy")
    assert not (FIXTURES / "eval").exists() and not (FIXTURES / "datasets").exists()


def test_checkpoint_written_by_2b2d0d9_predicts_its_recorded_outputs(legacy):
    record, ckpt = legacy
    expected = record["predict"]
    images = [str(FIXTURES / image) for image in expected["images"]]
    table = fermix.load(ckpt, device="cpu").predict(images, align=False)
    assert table["status"].tolist() == ["ok"] * len(images)
    assert table["expression"].tolist() == expected["expression"]
    np.testing.assert_allclose(
        table[expected["columns"]].to_numpy(float), np.array(expected["values"]), rtol=0, atol=TOLERANCE
    )


def test_checkpoint_written_by_2b2d0d9_predicts_a_folder_through_the_cli(legacy, fermix_main):
    record, ckpt = legacy
    expected = record["predict"]
    photos = ckpt.parent / "photos"
    photos.mkdir()
    for image in expected["images"][:2]:
        shutil.copyfile(FIXTURES / image, photos / Path(image).name)
    out = ckpt.parent / "predicted"
    result = fermix_main(
        ["predict", f"ckpt={ckpt}", f"input={photos}", "align=false", f"out={out}", "annotate=false",
         "accelerator=cpu", "progress=none"],
        ckpt.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(out / "predictions.csv")
    assert [Path(s).name for s in table["source"]] == [Path(i).name for i in expected["images"][:2]]
    assert table["status"].tolist() == ["ok", "ok"]
    np.testing.assert_allclose(
        table[expected["columns"]].to_numpy(float), np.array(expected["values"][:2]), rtol=0, atol=TOLERANCE
    )
