"""The run directory every rank of a job agrees on, and which unfinished run `resume=auto` continues."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fermix.engine import rundir
from fermix.errors import FermixError

LAUNCH_VARS = ("SLURM_", "TORCHELASTIC_", "RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
               "MASTER_ADDR", "MASTER_PORT")  # fmt: skip
TORCHRUN = {"TORCHELASTIC_RUN_ID": "none", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "RANK": "1"}
SRUN = {"SLURM_JOB_ID": "99", "SLURM_NTASKS": "2", "SLURM_NNODES": "1", "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_PROCID": "1", "SLURM_JOB_NAME": "fermix"}  # fmt: skip


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    for key in list(os.environ):
        if key.startswith(LAUNCH_VARS):
            monkeypatch.delenv(key)


def unfinished(base: Path, name: str, mtime: float) -> Path:
    last = base / name / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    os.utime(last, (mtime, mtime))
    return base / name


def test_resume_auto_continues_the_run_written_last_not_the_one_named_last(tmp_path):
    older = unfinished(tmp_path, "slurm-999", 1_000)
    newer = unfinished(tmp_path, "slurm-1000", 2_000)  # sorts before slurm-999 by name
    finished = unfinished(tmp_path, "zzz", 3_000)
    (finished / "summary.json").write_text("{}")
    assert rundir.newest_unfinished(tmp_path) == newer != older
    assert rundir.newest_unfinished(tmp_path / "missing") is None


def test_a_single_process_names_its_run_by_time_even_inside_a_slurm_job(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_JOB_ID", "99")  # e.g. several runs one after the other in one sbatch script
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "fermix")
    assert rundir.launcher_run_id() is None
    first = rundir._choose_train_run_dir(str(tmp_path), "erm_x", None)
    Path(first).mkdir(parents=True)
    assert rundir._choose_train_run_dir(str(tmp_path), "erm_x", None) != first


def test_srun_tasks_derive_one_name_from_the_job_array_task_and_step(monkeypatch, tmp_path):
    for key, value in {**SRUN, "SLURM_ARRAY_TASK_ID": "3", "SLURM_STEP_ID": "1"}.items():
        monkeypatch.setenv(key, value)
    assert rundir.launcher_run_id() == "slurm-99_3.1"
    assert rundir.train_run_dir.__wrapped__(str(tmp_path), "erm_x") == str(tmp_path / "erm_x" / "slurm-99_3.1")


def test_torchrun_without_a_store_or_an_id_asks_for_one(monkeypatch):
    for key, value in TORCHRUN.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")
    with pytest.raises(FermixError, match="--rdzv-id"):
        rundir.launcher_run_id()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job7")
    assert rundir.launcher_run_id() == "job7"


def test_torchrun_with_its_store_leaves_the_name_to_rank_zero(monkeypatch):
    for key, value in {**TORCHRUN, "TORCHELASTIC_USE_AGENT_STORE": "True", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    assert rundir.launcher_run_id() is None  # a timestamp, chosen once by rank 0 (distributed.agree)
