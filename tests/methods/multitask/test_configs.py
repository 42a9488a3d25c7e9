"""The multitask recipes compose to the spec's values (§5, §9)."""

from __future__ import annotations

import pytest

from tests.engine.runner import compose_job

FIXED_CROP_FLIP = {"_target_": "fermix.data.augment_ops.FixedCropFlip", "seed": 5}
RANDOM_CROP = {"_target_": "fermix.data.augment_ops.RandomCrop"}
HFLIP = {"_target_": "torchvision.transforms.v2.RandomHorizontalFlip", "p": 0.5}


def test_the_affwild2_experiment_is_the_paper_recipe(tmp_path):
    cfg = compose_job("train", ["experiment=multitask_affwild2", "seed=5"], tmp_path)
    assert cfg.method.name == "multitask" and cfg.dataset.name == "affwild2"
    assert (cfg.method.lambda_au, cfg.method.lambda_teacher, cfg.method.temperature) == (8.0, 0.4, 1.5)
    assert (cfg.method.n_students, cfg.method.teacher_epochs, cfg.method.student_epochs) == (5, 8, 3)
    assert cfg.optim._target_ == "torch.optim.Adam" and cfg.optim.lr == 1e-4 and list(cfg.optim.betas) == [0.5, 0.999]
    assert cfg.sched._target_ is None and cfg.checkpoint.monitor == "val/select"
    assert (cfg.data.batch_size, cfg.data.image_size, cfg.data.resize) == (20, 112, 134)
    # ToTensor×255 − (131.0912, 103.8827, 91.4953), std 1, written for ToTensor's [0, 1] scale
    assert [m * 255 for m in cfg.data.mean] == pytest.approx([131.0912, 103.8827, 91.4953])
    assert [s * 255 for s in cfg.data.std] == pytest.approx([1.0] * 3)
    assert list(cfg.data.augment.ops) == [FIXED_CROP_FLIP]  # the original's one draw per run
    assert cfg.backbone.name == "resnet50"


def test_the_ferplus_backbone_can_replace_the_experiments_resnet(tmp_path):
    cfg = compose_job("train", ["experiment=multitask_affwild2", "backbone=resnet50_ferplus"], tmp_path)
    assert cfg.backbone.name == "resnet50_ferplus"


@pytest.mark.parametrize("dataset", ["affwild2", "synthetic_partial"])
def test_the_cnn_rnn_recipes_train_with_the_originals_one_crop_and_flip_per_run(dataset, tmp_path):
    # The original's CNN-RNN train.py feeds every frame of every window through the CNN backbone's
    # augment_transforms: one v ~ U(0, 1) drawn when the teacher is built fixes the crop offset and
    # the flip for the whole run, students included (the datasets' ColorJitter transforms are dead code).
    cfg = compose_job("train", [f"experiment=multitask_rnn_{dataset}", "seed=5"], tmp_path)
    assert cfg.method.name == "multitask_rnn"
    assert list(cfg.data.augment.ops) == [FIXED_CROP_FLIP]


def test_the_cnn_rnn_affwild2_recipe_preprocesses_as_the_cnn_recipe(tmp_path):
    rnn = compose_job("train", ["experiment=multitask_rnn_affwild2"], tmp_path / "rnn")
    cnn = compose_job("train", ["experiment=multitask_affwild2"], tmp_path / "cnn")
    assert rnn.data.windows.seq_len == 32 and rnn.data.batch_size == 20
    for key in ("image_size", "resize", "mean", "std", "interpolation"):
        assert rnn.data[key] == cnn.data[key], key  # the frozen CNN sees frames as it was trained on them
    assert rnn.data.augment.ops == cnn.data.augment.ops


def test_the_cnn_rnn_per_window_fix_is_one_override_away(tmp_path):
    ops = f"[{{_target_: {RANDOM_CROP['_target_']}}}, {{_target_: {HFLIP['_target_']}, p: 0.5}}]"
    per_window = f"data.augment.ops={ops}"
    cfg = compose_job("train", ["experiment=multitask_rnn_affwild2", per_window], tmp_path)
    assert list(cfg.data.augment.ops) == [RANDOM_CROP, HFLIP]
