"""Staged training (multitask: teacher, then students): one fit per stage, one checkpoint, resume."""

from __future__ import annotations

import json

import pytest
import torch

from fermix.engine.checkpoint import load_checkpoint
from tests.conftest import assert_one_sentence_error
from tests.engine.runner import compose_job, run_train_in_process


def _tiny(tmp_path, *extra: str) -> list[str]:
    return [
        "experiment=multitask_synthetic_partial",
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
    cfg = compose_job("train", ["experiment=multitask_synthetic_partial"], tmp_path)
    assert cfg.checkpoint.monitor == "val/select"
    assert cfg.optim.lr == 1e-3 and list(cfg.optim.betas) == [0.5, 0.999]  # CPU recipe lr; the paper's β1
    assert cfg.data.batch_size == 20 and cfg.method.n_students == 3 and cfg.method.train_tasks == ["expr", "au", "va"]


# checkpoint.monitor=epoch, mode=min: the teacher's best epoch is its first, its last epoch the second,
# so the two weights differ and the test can tell which one the students were distilled from.
_FIRST_IS_BEST = ("checkpoint.monitor=epoch", "checkpoint.mode=min", "method.n_students=1")


def _teacher(path):
    state = load_checkpoint(path)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("method.members.0.")}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def first_is_best_run(tmp_path_factory):
    """A teacher (2 epochs, best = the first) and one student, with the default teacher_weights."""
    tmp_path = tmp_path_factory.mktemp("stages")
    run = tmp_path / "r"
    run_train_in_process(_tiny(tmp_path, *_FIRST_IS_BEST), run)
    return tmp_path, run


def test_students_distil_from_the_teachers_last_epoch_as_the_original_does(first_is_best_run):
    _, run = first_is_best_run
    best, last = _teacher(run / "checkpoints/teacher/best.ckpt"), _teacher(run / "checkpoints/teacher/last.ckpt")
    assert not _same(best, last)  # the case this test is about
    # the teacher the student stage held (and the finished ensemble keeps) is the teacher's last epoch
    assert _same(_teacher(run / "checkpoints/student0/last.ckpt"), last)
    assert _same(_teacher(run / "checkpoints/best.ckpt"), last)


def test_teacher_weights_best_distils_from_the_teachers_validation_selected_epoch(tmp_path):
    run = tmp_path / "r"
    run_train_in_process(_tiny(tmp_path, *_FIRST_IS_BEST, "method.teacher_weights=best"), run)
    best, last = _teacher(run / "checkpoints/teacher/best.ckpt"), _teacher(run / "checkpoints/teacher/last.ckpt")
    assert not _same(best, last)
    assert _same(_teacher(run / "checkpoints/student0/last.ckpt"), best)
    assert _same(_teacher(run / "checkpoints/best.ckpt"), best)


def test_trainer_max_epochs_set_for_a_staged_method_is_refused_naming_the_keys_that_apply(tmp_path, fermix_main):
    args = ["train", *_tiny(tmp_path, "trainer.max_epochs=1"), f"hydra.run.dir={tmp_path / 'run'}"]
    result = fermix_main(args, tmp_path)
    assert_one_sentence_error(result, "trainer.max_epochs", "method.teacher_epochs", "method.student_epochs")
    assert not (tmp_path / "run" / "checkpoints" / "teacher").exists()  # refused before anything trained


def test_students_from_an_existing_teacher_checkpoint_skip_the_teacher_stage_and_match_the_full_run(
    first_is_best_run,
):
    tmp_path, full = first_is_best_run
    teacher = full / "checkpoints" / "teacher" / "last.ckpt"  # the weights the full run distilled from
    reused = tmp_path / "reused"
    summary = run_train_in_process(_tiny(tmp_path, *_FIRST_IS_BEST, f"method.teacher_ckpt={teacher}"), reused)
    assert not (reused / "checkpoints" / "teacher").exists()
    assert summary["epochs_trained"] == 1  # the student's epoch only
    a = load_checkpoint(full / "checkpoints" / "best.ckpt")["state_dict"]
    b = load_checkpoint(reused / "checkpoints" / "best.ckpt")["state_dict"]
    assert _same(_teacher(reused / "checkpoints" / "best.ckpt"), _teacher(teacher))
    # same seed, same teacher: the student is the full run's student, bit for bit
    student = [k for k in a if k.startswith("method.members.1.")]
    assert student and all(torch.equal(a[k], b[k]) for k in student)


def test_a_teacher_checkpoint_that_does_not_exist_is_refused_in_one_sentence(tmp_path, fermix_main):
    missing = tmp_path / "nope.ckpt"
    args = ["train", *_tiny(tmp_path, f"method.teacher_ckpt={missing}"), f"hydra.run.dir={tmp_path / 'run'}"]
    assert_one_sentence_error(fermix_main(args, tmp_path), "nope.ckpt", "does not exist")


def test_a_debug_preset_caps_every_stage_at_its_max_epochs(tmp_path):
    run = tmp_path / "r"
    run_train_in_process(_tiny(tmp_path, "debug=smoke", "method.student_epochs=3"), run)
    for stage in ("teacher", "student0", "student1"):  # smoke: max_epochs 1; the stages ask for 2 and 3
        assert json.loads((run / "checkpoints" / stage / "done.json").read_text())["epochs"] == 1
