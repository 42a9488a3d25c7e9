"""The multitask recipe end to end on Aff-Wild2's layout (written from synthetic faces), with ABAW files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fermix.data.datasets.abaw_submission import ABAW_HEADERS
from fermix.data.synthetic.dataset import SyntheticDataset
from fermix.data.writers.affwild2 import write_affwild2
from tests.conftest import run_fermix


@pytest.fixture(scope="module")
def affwild2_root(tmp_path_factory) -> Path:
    cfg = {"seed": 0, "image_size": 32, "train_per_cell": 3, "val_per_cell": 2, "test_per_cell": 1,
           "partial": "disjoint", "cache": False}  # fmt: skip
    samples = [s for s in SyntheticDataset(cfg).writer_samples(("train", "val"))]
    return write_affwild2(samples, tmp_path_factory.mktemp("aw") / "AffWild2")


def test_multitask_trains_on_affwild2_and_writes_an_abaw_submission(affwild2_root, tmp_path):
    run = tmp_path / "run"
    train = run_fermix(
        [
            "train", "experiment=multitask_affwild2", f"dataset.root={affwild2_root}",
            "backbone=small_cnn", "backbone.pretrained=null", "trainer=default",  # the recipe on a tiny CPU net
            "backbone.width=8", "data.image_size=32", "data.resize=36", "data.batch_size=4", "data.num_workers=0",
            "method.teacher_epochs=1", "method.student_epochs=1", "method.n_students=1",
            "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0", "logger=none", "progress=none",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    test = run_fermix(
        ["test", f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "split=val", "abaw_submission=true",
         f"hydra.run.dir={tmp_path / 'eval'}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert test.returncode == 0, test.stderr[-3000:]
    for task in ("AU", "EXPR", "VA"):
        files = sorted((tmp_path / "eval" / "abaw_submission" / task).glob("*.txt"))
        assert files, task
        lines = files[0].read_text().split("\n")
        assert lines[0] == ",".join(ABAW_HEADERS[task]) and lines[-1] != ""
        annotation = affwild2_root / "annotations" / f"{task}_Set" / "Validation_Set" / files[0].name
        assert len(lines) == len(annotation.read_text().strip().split("\n"))  # one line per frame
