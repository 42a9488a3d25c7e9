"""`fermix train experiment=au_align_synthetic` and `fermix test ckpt=` on CPU, tiny sizes."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.engine.runner import run_train_in_process

TINY = [
    "experiment=au_align_synthetic",
    "dataset.train_per_cell=3",
    "dataset.val_per_cell=1",
    "dataset.test_per_cell=2",
    "backbone.width=8",
    "data.image_size=32",
    "data.resize=36",
    "data.batch_size=16",
    "data.num_workers=0",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "trainer.num_sanity_val_steps=0",
    "logger=default",  # TensorBoard on: the validation overlays are logged there too
    "progress=none",
]
METRICS = {"att_cos@5", "cam_cos", "gradcam_cos"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("au_align")
    summary = run_train_in_process([*TINY, f"paths.data_dir={root / 'data'}"], root / "run")
    return root, summary


def test_training_on_synthetic_faces_reports_att_cos_and_cam_cos_next_to_accuracy(run):
    root, summary = run
    for split in ("val", "test"):
        metrics = summary["metrics"][split]
        assert set(metrics) >= METRICS and "acc" in metrics
        assert all(0.0 <= metrics[name] <= 1.0 for name in METRICS)
        assert (root / "run" / f"au_align_overlays_{split}.png").is_file()
    ckpt = torch.load(root / "run/checkpoints/best.ckpt", weights_only=True)
    method = ckpt["fermix"]["config"]["method"]  # the synthetic recipe was applied; map_zoom=auto sees resize 36
    assert (method["lam"], method["large_maps_stages"]) == (4.0, 1)
    assert (method["map_zoom"], method["data_resize"]) == ("auto", 36)


def test_each_validation_logs_the_overlays_to_tensorboard_next_to_the_confusion(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, _ = run
    events = EventAccumulator(str(root / "run" / "tensorboard"), size_guidance={"images": 0}).Reload()
    val_steps = [e.step for e in events.Scalars("val/acc")]
    assert val_steps
    for tag in ("val/au_align_overlays", "val/confusion", "val/samples"):
        assert [e.step for e in events.Images(tag)] == val_steps, tag
    overlay = events.Images("val/au_align_overlays")[-1]
    assert overlay.encoded_image_string[:4] == b"\x89PNG" and overlay.width > overlay.height / 2


def test_fermix_test_rebuilds_the_method_and_writes_metrics_and_overlays(run, fermix_main):
    root, summary = run
    result = fermix_main(["test", f"ckpt={root / 'run/checkpoints/best.ckpt'}", "data.num_workers=0"], root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "att_cos@5" in result.stdout and "cam_cos" in result.stdout
    (eval_dir,) = (root / "run" / "eval").glob("test_*")
    tested = json.loads((eval_dir / "summary.json").read_text())["metrics"]["test"]
    for name, value in summary["metrics"]["test"].items():
        assert math.isclose(tested[name], value, rel_tol=1e-6, abs_tol=1e-6), name
    assert (eval_dir / "au_align_overlays_test.png").read_bytes()[:4] == b"\x89PNG"
