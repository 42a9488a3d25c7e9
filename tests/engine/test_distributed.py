"""Multi-process training launched from outside: torchrun (one node, several nodes) and srun.

The launcher-derived Trainer settings and ranks are unit-tested on environment dicts; the launches
run `fermix train` in real processes (gloo on CPU, tiny sizes). A run must be one run directory
that only global rank 0 wrote, split the global batch over the ranks, keep every rank's weights
identical, and give test metrics equal to a one-process `fermix test` of its best.ckpt.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from fermix.engine import distributed
from fermix.engine.distributed import Launch, external_launch, process_rank, trainer_settings
from fermix.errors import FermixError
from tests.engine.runner import run_train_in_process
from tests.helpers import write_image_folder

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TORCHRUN_ENV = {"TORCHELASTIC_RUN_ID": "abc", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "RANK": "3"}
SRUN_ENV = {
    "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "2", "SLURM_NNODES": "1",
    "SLURM_NTASKS_PER_NODE": "2", "SLURM_NODELIST": "127.0.0.1", "SLURM_JOB_NAME": "fermix", "SLURM_NODEID": "0",
}  # fmt: skip
DDP_CFG = {"accelerator": "cpu", "devices": 2, "num_nodes": 1, "strategy": "ddp", "max_epochs": 1}
AUTO_CFG = {**DDP_CFG, "devices": 1, "strategy": "auto"}


# --- what a launcher implies (environment dicts, no processes) ---------------------------------
def test_torchrun_sets_devices_nodes_and_ddp_from_its_environment():
    assert external_launch(TORCHRUN_ENV) == Launch("torchrun", 4, 3, 2, 2)
    settings = trainer_settings(AUTO_CFG, environ=TORCHRUN_ENV)
    assert (settings["devices"], settings["num_nodes"], settings["strategy"]) == (2, 2, "ddp")


def test_srun_sets_devices_from_tasks_per_node_and_nodes_from_slurm():
    env = {**SRUN_ENV, "SLURM_NTASKS": "6", "SLURM_NNODES": "3", "SLURM_NTASKS_PER_NODE": "2(x3)", "SLURM_PROCID": "5"}
    assert external_launch(env) == Launch("srun", 6, 5, 2, 3)
    settings = trainer_settings(AUTO_CFG, environ=env)
    assert (settings["devices"], settings["num_nodes"], settings["strategy"]) == (2, 3, "ddp")


@pytest.mark.parametrize("name", ["bash", "interactive"])
def test_an_interactive_slurm_job_leaves_the_processes_to_lightning(name):
    env = {**SRUN_ENV, "SLURM_JOB_NAME": name, "SLURM_PROCID": "0"}
    assert external_launch(env) is None
    assert trainer_settings(DDP_CFG, environ=env) == DDP_CFG


def test_without_a_launcher_the_trainer_config_is_unchanged():
    assert external_launch({}) is None
    assert trainer_settings(DDP_CFG, environ={}) == DDP_CFG


def test_a_preset_device_count_yields_to_the_launcher_but_an_explicit_one_must_agree():
    env = {**TORCHRUN_ENV, "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "4", "RANK": "0"}
    assert trainer_settings(DDP_CFG, environ=env)["devices"] == 4  # trainer=ddp's devices: 2
    agreeing = {**env, "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "2"}
    assert trainer_settings(DDP_CFG, explicit={"devices"}, environ=agreeing)["devices"] == 2
    with pytest.raises(FermixError, match=r"trainer.devices=2 asks for 2 processes per node, but torchrun started 4"):
        trainer_settings(DDP_CFG, explicit={"devices"}, environ=env)
    with pytest.raises(FermixError, match=r"trainer.num_nodes=1 asks for 1 nodes, but srun started 2"):
        srun = {**SRUN_ENV, "SLURM_NTASKS": "4", "SLURM_NNODES": "2"}
        trainer_settings(DDP_CFG, explicit={"num_nodes"}, environ=srun)


def test_a_single_process_launch_refuses_a_config_that_waits_for_more_processes():
    one = {**TORCHRUN_ENV, "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "RANK": "0"}
    assert trainer_settings(AUTO_CFG, environ=one) == AUTO_CFG  # one process: plain single-device training
    with pytest.raises(FermixError, match="but torchrun started 1"):
        trainer_settings(DDP_CFG, environ=one)


def test_strategies_that_start_processes_are_refused_under_a_launcher():
    with pytest.raises(FermixError, match="ddp_spawn starts its own processes"):
        trainer_settings({**DDP_CFG, "strategy": "ddp_spawn"}, environ=TORCHRUN_ENV)


def test_methods_with_parameters_unused_in_a_step_get_find_unused_parameters():
    assert trainer_settings(DDP_CFG, find_unused_parameters=True, environ={})["strategy"] == (
        "ddp_find_unused_parameters_true"
    )
    assert trainer_settings(AUTO_CFG, find_unused_parameters=True, environ=TORCHRUN_ENV)["strategy"] == (
        "ddp_find_unused_parameters_true"
    )
    assert trainer_settings({**DDP_CFG, "strategy": "fsdp"}, find_unused_parameters=True, environ={})["strategy"] == (
        "fsdp"
    )  # the user's own strategy choice stays


def test_slurm_without_tasks_per_node_or_with_uneven_nodes_is_one_sentence():
    with pytest.raises(FermixError, match="without --ntasks-per-node"):
        external_launch({k: v for k, v in SRUN_ENV.items() if k != "SLURM_NTASKS_PER_NODE"})
    with pytest.raises(FermixError, match="different task counts per node"):
        external_launch({**SRUN_ENV, "SLURM_NTASKS": "3", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "2,1"})


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({}, 0),
        (TORCHRUN_ENV, 3),
        ({**SRUN_ENV, "SLURM_PROCID": "1"}, 1),
        ({**SRUN_ENV, "SLURM_PROCID": "0", "SLURM_JOB_NAME": "interactive"}, 0),
        ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, 1),  # a child Lightning's launcher re-ran
        ({"LOCAL_RANK": "0", "NODE_RANK": "1", "WORLD_SIZE": "4"}, 1),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "2"}, 0),  # Lightning's parent sets these too
    ],
)
def test_process_rank_is_zero_only_for_the_writing_process(env, rank):
    assert (process_rank(env) > 0) == (rank > 0)
    if "RANK" in env or "SLURM_PROCID" in env:
        assert process_rank(env) == rank


def test_ranks_agree_on_rank_zeros_choice_through_the_store(monkeypatch):
    from torch.distributed import TCPStore

    port = free_port()
    server = TCPStore("127.0.0.1", port, is_master=True, timeout=datetime.timedelta(seconds=10))
    env = {**TORCHRUN_ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "TORCHELASTIC_USE_AGENT_STORE": "True"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RANK", "0")
    assert distributed.agree("k", lambda: "rank0's") == "rank0's"
    assert distributed.agree("k", lambda: "restarted rank0's") == "rank0's"  # an elastic restart keeps it
    monkeypatch.setenv("RANK", "1")
    assert distributed.agree("k", lambda: "rank1's") == "rank0's"
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")
    assert distributed.agree("k", lambda: "rank1's") == "rank1's"  # no store: each rank derives it alike
    del server


def test_a_multirun_inside_torchrun_is_refused_in_one_sentence(monkeypatch, tmp_path, fermix_main):
    for key, value in {**TORCHRUN_ENV, "RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    result = fermix_main(["train", "-m", "seed=1,2"], tmp_path)
    assert result.returncode == 1 and "a multirun cannot run inside torchrun" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_other_ranks_leave_fermix_test_to_rank_zero(monkeypatch, tmp_path, fermix_main):
    for key, value in TORCHRUN_ENV.items():  # rank 3 of 4
        monkeypatch.setenv(key, value)
    (tmp_path / "best.ckpt").write_bytes(b"not read by rank 3")
    result = fermix_main(["test", f"ckpt={tmp_path / 'best.ckpt'}"], tmp_path)
    assert result.returncode == 0 and result.stderr == "" and list(tmp_path.iterdir()) == [tmp_path / "best.ckpt"]


# --- real launches ------------------------------------------------------------------------------
COMMON = [
    "dataset=imagefolder", "dataset.root=faces", "backbone.width=8", "data.image_size=32", "data.resize=32",
    "data.batch_size=8", "data.num_workers=0", "data.val_fraction=0.25", "data.test_fraction=0.25",
    "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0", "logger=csv", "progress=none",
]  # fmt: skip
HYDRA_FILES = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log"}

# fermix's CLI plus a callback that reports, from every rank, the per-rank batch sizes, skipped
# batches and final weights (gathered to rank 0, written outside the run directory).
PROBE = """
import json, os, sys
import lightning.pytorch as pl
import torch
import fermix.engine.train as train
from fermix.cli import main
from fermix.engine.module import batch_size

class Probe(pl.Callback):
    def on_train_start(self, trainer, module):
        self.sizes, self.skipped = [], 0
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.sizes.append(batch_size(batch))
        self.skipped += int(module._skipping)
    def on_train_end(self, trainer, module):
        weights = torch.cat([p.detach().double().flatten() for p in module.parameters()])
        sizes = trainer.strategy.all_gather(torch.tensor(self.sizes))
        skipped = trainer.strategy.all_gather(torch.tensor(self.skipped))
        every = trainer.strategy.all_gather(weights)
        if trainer.is_global_zero:
            with open(os.environ["FERMIX_PROBE"], "a") as f:
                f.write(json.dumps({"world": trainer.world_size, "sizes": sizes.tolist(), "skipped": skipped.tolist(),
                                    "same_weights": all(torch.equal(every[0], w) for w in every)}) + "\\n")

build = train.build_callbacks
train.build_callbacks = lambda *args, **kwargs: [*build(*args, **kwargs), Probe()]
raise SystemExit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without launcher or debug variables (pytest may itself run under Slurm)."""
    names = {"RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
             "MASTER_PORT", "FERMIX_DEBUG", "HYDRA_FULL_ERROR"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(("SLURM_", "TORCHELASTIC_"))}
    path = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PATH": path, **extra}


def run(cmd: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def only_run(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir()]  # exactly one directory for all ranks
    return run_dir


def probe(workdir: Path, name: str, args: list[str], nproc: int = 2) -> tuple[Path, list[dict], str]:
    """torchrun (default single-node rendezvous: a uuid run id) of `fermix train` with the probe."""
    script = workdir / "ddp_probe.py"
    script.write_text(PROBE)
    report = workdir / f"{name}.jsonl"
    result = run(
        [*TORCHRUN, f"--nproc_per_node={nproc}", str(script), "train", *args, f"paths.runs_dir={name}"],
        workdir,
        FERMIX_PROBE=str(report),
    )
    (group,) = (workdir / name).iterdir()
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    return only_run(group), lines, result.stdout + result.stderr


def assert_exact_single_process_test(run_dir: Path, workdir: Path, fermix_main) -> None:
    """`fermix test ckpt=best.ckpt` in this one process == summary.json's test metrics; every test sample once."""
    summary = json.loads((run_dir / "summary.json").read_text())
    result = fermix_main(["test", f"ckpt={run_dir / 'checkpoints/best.ckpt'}"], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (evaluation,) = (run_dir / "eval").glob("test_*")
    assert json.loads((evaluation / "summary.json").read_text())["metrics"]["test"] == summary["metrics"]["test"]
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    assert len(predictions) == summary["split_sizes"]["test"] == predictions["sample_id"].nunique()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("ddp")
    write_image_folder(work / "faces", per_class=16, size=32)  # train 27, val 9, test 12
    return work


@pytest.fixture(scope="module")
def erm_torchrun(workdir) -> dict:
    """`torchrun --nproc_per_node=2 --master_port=P -m fermix train` (static rendezvous: run id "none")."""
    cmd = [*TORCHRUN, "--nproc_per_node=2", f"--master_port={free_port()}", "-m", "fermix", "train", *COMMON,
           "trainer.max_epochs=1", "paths.runs_dir=torchrun"]  # fmt: skip
    result = run(cmd, workdir)
    run_dir = only_run(workdir / "torchrun/erm_imagefolder")
    return {"run": run_dir, "files": files(run_dir), "output": result.stdout + result.stderr}


def test_erm_under_torchrun_is_one_run_directory_written_by_rank_zero_only(erm_torchrun, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    single = workdir / "single"
    run_train_in_process([*COMMON, "trainer.max_epochs=1"], single)  # the same artefacts, one process
    assert erm_torchrun["files"] == files(single) | HYDRA_FILES  # no second .hydra, log or csv from rank 1
    log = (erm_torchrun["run"] / "train.log").read_text()
    assert "DDP over 2 processes" in log and "GLOBAL_RANK: 0" in log and "GLOBAL_RANK: 1" not in log
    assert erm_torchrun["output"].count("erm · test (best.ckpt)") == 1  # rank 0 alone evaluated


def test_erm_under_torchrun_splits_the_global_batch_over_the_ranks(erm_torchrun, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    summary = json.loads((erm_torchrun["run"] / "summary.json").read_text())
    one = run_train_in_process([*COMMON, "trainer.max_epochs=1", "logger=none"], workdir / "one_process")
    train = summary["split_sizes"]["train"]
    assert summary["global_step"] == one["global_step"] == math.ceil(train / 8) == 4
    assert math.ceil(math.ceil(train / 2) / 8) != 4  # what each rank loading all 8 would have stepped


def test_erm_under_torchrun_gives_the_exact_single_process_test_metrics(erm_torchrun, workdir, fermix_main):
    assert_exact_single_process_test(erm_torchrun["run"], workdir, fermix_main)


def test_iern_three_optimizers_train_in_step_on_both_ranks(workdir, fermix_main):
    args = [
        "experiment=iern_synthetic_bias", "dataset.train_per_cell=4", "dataset.val_per_cell=1",
        "dataset.test_per_cell=2", f"paths.data_dir={workdir / 'data'}", "backbone.width=8", "method.channels=8",
        "data.image_size=32", "data.resize=36", "data.batch_size=8", "data.num_workers=0", "sched.warmup_epochs=1",
        "sched.hold_epochs=0", "sched.decay_epochs=2", "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0",
        "logger=csv", "progress=none", "trainer.max_epochs=1",
    ]  # fmt: skip
    run_dir, (report,), output = probe(workdir, "iern_runs", args)
    assert report["world"] == 2 and report["same_weights"]
    sizes = torch.tensor(report["sizes"])
    assert sizes.shape[0] == 2 and bool((sizes[:, :-1] == 4).all())  # 8 per step, 4 per rank
    assert {".hydra/config.yaml", "train.log", "summary.json", "checkpoints/best.ckpt"} <= files(run_dir)
    assert not list(run_dir.glob("*process*")) and output.count("run finished") == 1
    assert_exact_single_process_test(run_dir, workdir, fermix_main)


# --- slower launches (CI runs them too) ----------------------------------------------------------
@pytest.mark.slow
def test_two_torchrun_nodes_on_localhost_share_one_run(workdir):
    """scripts/torchrun_multinode.sh as node 0 and node 1 (one process each, static rendezvous)."""
    script = REPO / "scripts" / "torchrun_multinode.sh"
    args = [*COMMON, "trainer.max_epochs=1", "paths.runs_dir=multinode"]
    port = str(free_port())
    nodes = [
        subprocess.Popen(
            ["bash", str(script), *args],
            cwd=workdir,
            env=clean_env(NNODES="2", NODE_RANK=str(rank), NPROC_PER_NODE="1", MASTER_PORT=port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (1, 0)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    run_dir = only_run(workdir / "multinode/erm_imagefolder")
    assert "DDP over 2 processes (1 per node, 2 node(s)" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 4
    assert ".hydra/config.yaml" in files(run_dir) and not list(run_dir.glob("*process*"))


@pytest.mark.slow
def test_srun_tasks_share_the_slurm_run_directory(workdir):
    """Two plain processes with the environment srun gives two tasks of one step on one node."""
    args = [sys.executable, "-m", "fermix", "train", *COMMON, "trainer=ddp", "trainer.max_epochs=1",
            "paths.runs_dir=srun"]  # fmt: skip
    port = str(free_port())
    tasks = [
        subprocess.Popen(
            args,
            cwd=workdir,
            env=clean_env(**SRUN_ENV, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), MASTER_PORT=port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (1, 0)
    ]
    outputs = [task.communicate(timeout=300)[0] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    run_dir = only_run(workdir / "srun/erm_imagefolder")
    assert run_dir.name == "slurm-4242.0"
    assert "DDP over 2 processes" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 4
    assert not list(run_dir.glob("*process*")) and "run finished" not in outputs[0]  # rank 1 wrote no log


# srun's part for one node: start SLURM_NTASKS_PER_NODE copies of the command with the task variables.
FAKE_SRUN = """#!/usr/bin/env bash
while [[ "$1" == -* ]]; do shift; done
pids=()
for ((i = 0; i < SLURM_NTASKS_PER_NODE; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NODEID=0 SLURM_STEP_ID=0 "$@" &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
exit $rc
"""


@pytest.mark.slow
def test_the_sbatch_example_runs_ddp_through_srun(workdir, tmp_path):
    """scripts/slurm_ddp.sbatch as Slurm would run it on one node with two tasks (srun played by a script)."""
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    env = {**SRUN_ENV, "SLURM_JOB_ID": "777", "SLURM_CPUS_PER_TASK": "1", "SLURM_SUBMIT_DIR": str(workdir),
           "MASTER_PORT": str(free_port()), "PYTHON": sys.executable}  # fmt: skip
    env = clean_env(**env)
    env["PATH"] = os.pathsep.join([str(srun.parent), env["PATH"]])
    args = [*COMMON, "trainer.max_epochs=1", "paths.runs_dir=sbatch"]
    result = subprocess.run(["bash", str(REPO / "scripts/slurm_ddp.sbatch"), *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    run_dir = only_run(workdir / "sbatch/erm_imagefolder")
    assert run_dir.name == "slurm-777"
    assert "DDP over 2 processes" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 4


@pytest.mark.slow
def test_resume_auto_under_torchrun_continues_the_unfinished_run(workdir):
    cmd = [*TORCHRUN, "--nproc_per_node=2", "-m", "fermix", "train", *COMMON, "logger=none", "paths.runs_dir=resume"]
    run([*cmd, "trainer.max_epochs=1"], workdir)
    run_dir = only_run(workdir / "resume/erm_imagefolder")
    (run_dir / "summary.json").unlink()  # as if the job had been killed after its last.ckpt
    result = run([*cmd, "trainer.max_epochs=2", "resume=auto"], workdir)
    assert only_run(workdir / "resume/erm_imagefolder") == run_dir  # both ranks chose the same, old directory
    assert "resuming from" in result.stdout + result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 8


@pytest.mark.slow
def test_dmue_skips_a_batch_on_every_rank_together(workdir):
    """28 per rank: a rank's half-batch lacks a class pair about half the time; all ranks then skip."""
    args = [
        "experiment=dmue_synthetic_noisy", "dataset.image_size=32", "dataset.train_per_cell=8",
        "dataset.val_per_cell=3", "dataset.test_per_cell=3", "dataset.subjects_per_domain=[4,2,2]",
        f"dataset.cache_dir={workdir / 'dmue_cache'}", "backbone.width=8", "data.image_size=32", "data.resize=36",
        "data.num_workers=0", "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0", "logger=csv",
        "progress=none", "method.ramp_alpha=1", "data.batch_size=56", "trainer.max_epochs=2",
    ]  # fmt: skip
    run_dir, (report,), _ = probe(workdir, "dmue_runs", args)
    first, second = report["skipped"]
    assert first == second and 0 < first < 6  # 168 draws per epoch / 56 = 3 steps, 2 epochs
    assert report["same_weights"] and report["sizes"][0][0] == 28
    logged = pd.read_csv(run_dir / "csv/metrics.csv")["train/skipped"].dropna().sum()
    assert logged == first


@pytest.mark.slow
def test_multitask_stages_train_in_step_on_both_ranks(workdir):
    """Teacher then students, one batch per task source per step, each source's batch split over ranks."""
    args = [
        "experiment=multitask_synthetic_partial", "dataset.train_per_cell=8", "dataset.val_per_cell=4",
        "dataset.test_per_cell=4", "dataset.subjects_per_domain=[1,1,1]", "dataset.image_size=32",
        "data.image_size=32", "data.resize=32", "data.batch_size=4", f"paths.data_dir={workdir / 'mt_data'}",
        "backbone.width=8", "data.num_workers=0", "method.teacher_epochs=1", "method.student_epochs=1",
        "method.n_students=2", "trainer.accelerator=cpu", "trainer.num_sanity_val_steps=0", "logger=csv",
        "progress=none",
    ]  # fmt: skip
    run_dir, reports, _ = probe(workdir, "multitask_runs", args)
    assert len(reports) == 3 and all(r["same_weights"] for r in reports)  # teacher, student0, student1
    assert all(size == 3 * 2 for r in reports for rank in r["sizes"] for size in rank)  # 3 tasks × 4 / 2 ranks
    assert {"checkpoints/best.ckpt", "summary.json", "checkpoints/student1/done.json"} <= files(run_dir)
