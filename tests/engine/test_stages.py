"""Staged training (multitask: teacher, then students): one fit per stage, one checkpoint, resume."""

from __future__ import annotations

import json

import torch

from fermix.engine.checkpoint import load_checkpoint
from tests.engine.runner import compose_job, run_train_in_process


def _tiny(tmp_path, *extra: str) -> list[str]:
    return [
        "method=multitask",
        "dataset=synthetic_partial",
        "dataset.train_per_cell=4",
        "dataset.val_per_cell=2",
        "dataset.test_per_cell=2",
        "dataset.image_size=32",
        "data.image_size=32",
        "data.resize=36",
        "data.batch_size=4",
        f"paths.data_dir={tmp_path / 'data'}",
        "backbone.width=8",
        "data.num_workers=0",
        "method.teacher_epochs=2",
        "method.student_epochs=1",
        "method.n_students=2",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "logger=csv",
        "progress=none",
        *extra,
    ]


def test_each_stage_is_its_own_fit_and_the_final_checkpoint_holds_the_ensemble(tmp_path):
    run = tmp_path / "r"
    summary = run_train_in_process(_tiny(tmp_path), run)
    for stage, epochs in (("teacher", 2), ("student0", 1), ("student1", 1)):
        done = json.loads((run / "checkpoints" / stage / "done.json").read_text())
        assert done["epochs"] == epochs
        assert (run / "csv" / stage / "metrics.csv").is_file()
    assert summary["epochs_trained"] == 4
    state = load_checkpoint(run / "checkpoints" / "best.ckpt")["state_dict"]
    assert {k.split(".")[2] for k in state if k.startswith("method.members.")} == {"0", "1", "2"}
    # each member's weights are the ones its own stage selected
    for k, stage in enumerate(("teacher", "student0", "student1")):
        own = load_checkpoint(run / "checkpoints" / stage / "best.ckpt")["state_dict"]
        key = f"method.members.{k}.heads.expr.4.weight"
        assert torch.equal(own[key], state[key])
    test = summary["metrics"]["test"]
    for name in ("teacher", "student0", "student1", "students_mean", "ensemble"):
        assert {f"{name}/au_score", f"{name}/expr_score", f"{name}/ccc_v", f"{name}/ccc_a"} <= set(test)
    # the AU thresholds were tuned on val and saved with the weights
    assert not torch.equal(state["method.au_thresholds"], torch.full_like(state["method.au_thresholds"], 0.5))


def test_a_staged_run_resumed_after_its_teacher_equals_the_uninterrupted_run(tmp_path):
    import shutil

    full = tmp_path / "full"
    expected = run_train_in_process(_tiny(tmp_path), full)
    # The same run "killed" after its teacher: student stages and the final checkpoint are gone.
    part = tmp_path / "part"
    shutil.copytree(full, part)
    for stage in ("student0", "student1"):
        shutil.rmtree(part / "checkpoints" / stage)
    (part / "checkpoints" / "best.ckpt").unlink()
    resumed = run_train_in_process(_tiny(tmp_path, "resume=auto"), part)
    assert resumed["metrics"]["test"] == expected["metrics"]["test"]
    a = load_checkpoint(full / "checkpoints" / "best.ckpt")["state_dict"]
    b = load_checkpoint(part / "checkpoints" / "best.ckpt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_multitask_recipe_selects_on_the_abaw_sum(tmp_path):
    cfg = compose_job("train", ["method=multitask", "dataset=synthetic_partial"], tmp_path)
    assert cfg.checkpoint.monitor == "val/select"
    assert cfg.optim.lr == 1e-3 and list(cfg.optim.betas) == [0.5, 0.999]  # CPU recipe lr; the paper's β1
    assert cfg.data.batch_size == 20 and cfg.method.n_students == 3 and cfg.method.train_tasks == ["expr", "au", "va"]
