"""Configs stored before `_target_` (engine/legacy.py): the rewrite rule, and a checkpoint written by
fermix 2b2d0d9 (tests/golden/legacy_checkpoint/) that still loads, tests, predicts and resumes."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fermix.engine.checkpoint import load_checkpoint
from fermix.engine.legacy import LOGGER_TARGETS, upgrade_config
from fermix.engine.optim import build_optimizer, build_scheduler
from fermix.engine.restore import restore_method
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder

FIXTURE = Path(__file__).resolve().parents[1] / "golden" / "legacy_checkpoint" / "last.ckpt"
AUGMENT = "fermix.data.augment_ops"
HFLIP = "torchvision.transforms.v2.RandomHorizontalFlip"


# --- the rule -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999], "weight_decay": 0.0},
         {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3, "betas": [0.5, 0.999], "weight_decay": 0.0}),
        ({"name": "adamw", "lr": 1e-3},  # the old code's defaults, not AdamW's weight decay 1e-2
         {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0}),
        ({"name": "sgd", "lr": 0.002, "nesterov": True, "weight_decay": 5e-4, "betas": [0.9, 0.999]},  # betas: ignored
         {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.002, "momentum": 0.9, "nesterov": True,
          "weight_decay": 5e-4}),
    ],
)  # fmt: skip
def test_old_optimizers_become_their_torch_class_with_what_the_old_code_passed(old, new):
    assert upgrade_config({"optim": old})["optim"] == new


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"name": "none"}, {"_target_": None}),
        ({"name": "cosine", "t_max": None, "eta_min": 0.0, "interval": "epoch"},
         {"_target_": "fermix.engine.schedulers.cosine", "_partial_": True, "t_max": None, "eta_min": 0.0,
          "interval": "epoch"}),
        ({"name": "step", "step_size": 4, "gamma": 0.9, "interval": "epoch", "warmup_epochs": 3},
         {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 4, "gamma": 0.9,
          "interval": "epoch"}),
        ({"name": "plateau", "monitor": "val/loss", "mode": "min", "patience": 20, "factor": 0.1},
         {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True, "mode": "min", "factor": 0.1,
          "patience": 20, "monitor": "val/loss"}),
        ({"name": "plateau"},  # the old defaults: mode max on val/acc (torch's is min)
         {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True, "mode": "max", "factor": 0.1,
          "patience": 10, "monitor": "val/acc"}),
        ({"name": "table", "mode": "lr", "groups": {"base": [0.1]}, "interval": "step"},  # tables were always per epoch
         {"_target_": "fermix.engine.schedulers.table", "_partial_": True, "groups": {"base": [0.1]}, "mode": "lr"}),
        ({"name": "warmup_linear", "warmup_epochs": 5, "hold_epochs": 15, "decay_epochs": 140, "interval": "epoch"},
         {"_target_": "fermix.engine.schedulers.warmup_linear", "_partial_": True, "warmup_epochs": 5,
          "hold_epochs": 15, "decay_epochs": 140, "interval": "epoch"}),
    ],
)  # fmt: skip
def test_old_schedulers_become_their_target_with_what_the_old_code_read(old, new):
    assert upgrade_config({"sched": old})["sched"] == new


def test_old_ops_become_targets_nested_ones_too_and_grayscale_keeps_its_old_default():
    old = [
        {"name": "random_order", "ops": [{"name": "hflip", "p": 0.5}, {"name": "grayscale"}]},
        {"name": "fixed_crop_flip", "seed": 3},
        "to_float",
        {"name": "gaussian_noise", "std": 2.0},
        "normalize",
    ]
    new = upgrade_config({"data": {"augment": {"ops": old, "hflip": 0.5}}})["data"]["augment"]
    assert new["ops"] == [
        {"_target_": f"{AUGMENT}.RandomOrder", "ops": [
            {"_target_": HFLIP, "p": 0.5}, {"_target_": "torchvision.transforms.v2.RandomGrayscale", "p": 1.0}]},
        {"_target_": f"{AUGMENT}.FixedCropFlip", "seed": 3}, {"_target_": f"{AUGMENT}.ToFloat"},
        {"_target_": f"{AUGMENT}.GaussianNoise", "std": 2.0}, {"_target_": f"{AUGMENT}.Normalize"},
    ]  # fmt: skip
    assert new["hflip"] == 0.5


def test_old_logger_switches_get_the_targets_they_meant():
    logger = upgrade_config({"logger": {"tensorboard": False, "csv": True}})["logger"]
    assert logger == {"tensorboard": False, "csv": True, "targets": LOGGER_TARGETS}


def test_todays_config_is_left_as_it_is_and_the_input_is_not_changed(tmp_path):
    from fermix.engine.build import plain
    from tests.engine.runner import compose_job

    cfg = plain(compose_job("train", ["method=dmue", "dataset=rafdb"], tmp_path))
    assert upgrade_config(cfg) == cfg
    old = {"optim": {"name": "adam", "lr": 1.0}, "data": {"augment": {"ops": ["normalize"]}}}
    before = copy.deepcopy(old)
    upgrade_config(old)
    assert old == before


def test_names_no_fermix_ever_had_are_left_for_the_builder_to_refuse():
    cfg = {"optim": {"name": "lion", "lr": 1.0}, "data": {"augment": {"ops": [{"name": "flip"}]}}}
    assert upgrade_config(cfg) == cfg


# --- a checkpoint written by the old code -------------------------------------------------------------
def test_the_old_checkpoints_config_reads_in_todays_form_and_builds():
    config = load_checkpoint(FIXTURE)["fermix"]["config"]
    assert config["optim"]["_target_"] == "torch.optim.Adam" and "name" not in config["optim"]
    assert config["sched"]["_target_"] == "fermix.engine.schedulers.cosine" and config["sched"]["t_max"] is None
    assert [e["_target_"] for e in config["data"]["augment"]["ops"]] == [
        f"{AUGMENT}.RandomOrder",
        f"{AUGMENT}.RandomCrop",
        f"{AUGMENT}.GaussianNoise",
        f"{AUGMENT}.Normalize",
    ]
    assert "targets" in config["logger"]
    raw = torch.load(FIXTURE, weights_only=True, map_location="cpu")
    assert raw["fermix"]["config"]["optim"]["name"] == "adam"  # the file itself is the old form
    method, _, _ = restore_method(FIXTURE)
    opt = build_optimizer(config["optim"], method.param_groups())
    sched = build_scheduler(config["sched"], opt, max_epochs=1)["scheduler"]
    opt.load_state_dict(raw["optimizer_states"][0])
    sched.load_state_dict(raw["lr_schedulers"][0])  # the stored states fit what today's config builds


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """The fixture's dataset, written again (write_image_folder is deterministic)."""
    root = tmp_path_factory.mktemp("legacy") / "faces"
    return write_image_folder(root, per_class=6, size=32, splits=["train", "val", "test"])


@pytest.mark.parametrize("split", ["test", "train"])  # train: evaluated without augmentation, like every split
def test_the_old_checkpoint_tests(faces, tmp_path, fermix_main, split):
    ckpt = tmp_path / "last.ckpt"
    shutil.copy(FIXTURE, ckpt)
    result = fermix_main(["test", f"ckpt={ckpt}", f"dataset.root={faces}", f"split={split}", "accelerator=cpu",
                          "data.num_workers=0", "progress=none"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (summary,) = (tmp_path / "eval").glob(f"{split}_*/summary.json")
    assert 0.0 <= json.loads(summary.read_text())["metrics"][split]["acc"] <= 1.0


def test_the_old_checkpoint_predicts():
    import fermix

    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    table = fermix.load(FIXTURE, device="cpu").predict([image], align=False)
    assert len(table) == 1 and table["expression"].iloc[0] in ("happy", "sad", "surprise")


def test_the_old_checkpoint_resumes(faces, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("last", "best"):  # one epoch: the best is the last
        shutil.copy(FIXTURE, run / "checkpoints" / f"{name}.ckpt")
    ops = (f"[{{_target_:{AUGMENT}.RandomOrder,ops:[{{_target_:{HFLIP},p:0.5}},{{_target_:{AUGMENT}.Rotation,"
           f"degrees:10,interpolation:nearest}}]}},{{_target_:{AUGMENT}.RandomCrop}},{{_target_:{AUGMENT}.GaussianNoise,"
           f"p:0.5,std:3.0}},{{_target_:{AUGMENT}.Normalize}}]")  # fmt: skip
    overrides = quick_overrides(
        faces,
        "trainer.max_epochs=2",
        "backbone.width=2",
        "data.resize=36",
        "sched=cosine",
        f"data.augment.ops={ops}",
        "logger=none",
        "trainer.deterministic=true",
        "resume=auto",
    )
    summary = run_train_in_process(overrides, run)
    assert summary["epochs_trained"] == 2
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["fermix"]["epoch"] == 1 and last["fermix"]["config"]["optim"]["_target_"] == "torch.optim.Adam"
    assert last["lr_schedulers"][0]["T_max"] == 1  # the stored scheduler state carried on, as the old code did
