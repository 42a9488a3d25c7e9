"""A training process killed with SIGKILL resumes (`resume=auto`) to exactly the run it would have been.

fermix writes `last.ckpt` at the end of every epoch (after validation), atomically; a resume
replays the interrupted epoch from it with the RNG states it holds and the per-(seed, epoch)
sampler, so weights, optimizer state, metrics and logs equal an uninterrupted run's (CPU,
deterministic mode). A kill inside a checkpoint write leaves the previous checkpoint intact and
a hidden temporary, which the next run in that folder removes.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fermix.engine.checkpoint import load_checkpoint
from fermix.errors import FermixError
from fermix.utils.io import is_temp_name, remove_stale_temps
from tests.helpers import write_image_folder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

MAX_EPOCHS = 3
ARGS = [
    "train",
    "dataset=imagefolder",
    "dataset.root=faces",
    "backbone.width=8",
    "data.image_size=32",
    "data.resize=36",
    "data.batch_size=4",  # 42 steps per epoch: a kill lands well inside one
    "data.num_workers=0",
    "data.val_fraction=0.25",
    "data.test_fraction=0.25",
    "data.augment.rotation=10",  # augmentation on, so the random streams matter
    "sched=cosine",  # the learning rate changes every epoch
    "optim.lr=0.01",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    f"trainer.max_epochs={MAX_EPOCHS}",
    "logger=csv",
    "progress=plain",
]
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("FERMIX_DEBUG", "HYDRA_FULL_ERROR")},
    "OMP_NUM_THREADS": "1",
    "PYTHONWARNINGS": "ignore",
}

# `fermix train` in a process that SIGKILLs itself in the middle of writing its 2nd last.ckpt
# (epoch 1): half of the checkpoint's bytes reach the temporary file, then the process dies.
DIES_WHILE_SAVING = """
import io, os, signal, sys
from pathlib import Path
import torch

real_save, saves = torch.save, []

def save(obj, f, *args, **kwargs):
    if isinstance(f, (str, os.PathLike)) and Path(f).name.startswith(".last.ckpt.tmp-"):
        saves.append(f)
        if len(saves) == 2:
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            with open(f, "wb") as out:
                out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                out.flush()
                os.fsync(out.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)

torch.save = save
sys.argv = ["fermix", *sys.argv[1:]]
from fermix.cli import main
raise SystemExit(main())
"""


def _popen(workdir: Path, run: str, *extra: str, python: tuple[str, ...] = ("-m", "fermix")) -> subprocess.Popen:
    """`fermix train` in the background; its stderr goes to a file (a pipe nobody reads could fill up)."""
    log = workdir / f"{run}{'_resumed' if extra else ''}.stderr"
    with open(log, "w") as err:  # the child holds its own copy
        proc = subprocess.Popen([sys.executable, *python, *ARGS, f"hydra.run.dir=runs/{run}", *extra], cwd=workdir,
                                env=ENV, stdout=subprocess.DEVNULL, stderr=err)
    proc.stderr_log = log
    return proc


def _finish(proc: subprocess.Popen) -> None:
    assert proc.wait(timeout=300) == 0, proc.stderr_log.read_text()[-3000:]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error):
        return []


def _kill_mid_epoch(proc: subprocess.Popen, run_dir: Path) -> None:
    """SIGKILL `proc` a few steps into the epoch after its first last.ckpt (Lightning saves at epoch ends only)."""
    last, log = run_dir / "checkpoints" / "last.ckpt", run_dir / "csv" / "metrics.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed"
        try:
            meta = load_checkpoint(last)["fermix"]
        except FermixError:  # not written yet
            time.sleep(0.02)
            continue
        # Kill once the next epoch has logged a step (every 10 steps), early in its 42 steps.
        if meta["epoch"] < MAX_EPOCHS - 1 and any(
            r["epoch"] and int(r["epoch"]) > meta["epoch"] for r in _csv_rows(log)
        ):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=300)
            return
        time.sleep(0.02)
    raise AssertionError("no checkpoint followed by a new epoch within the deadline")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Three runs with the same seed: straight; killed mid-epoch then resumed; killed inside a
    checkpoint write then resumed. Returns the work dir holding runs/{straight,killed,saving}."""
    workdir = tmp_path_factory.mktemp("crash")
    write_image_folder(workdir / "faces", per_class=100, size=32)
    straight = _popen(workdir, "straight")
    killed = _popen(workdir, "killed")
    saving = _popen(workdir, "saving", python=("-c", DIES_WHILE_SAVING))

    _kill_mid_epoch(killed, workdir / "runs/killed")
    saving.wait(timeout=300)
    (workdir / "kill_report.json").write_text(json.dumps({
        "killed_returncode": killed.returncode,
        "killed_epoch": load_checkpoint(workdir / "runs/killed/checkpoints/last.ckpt")["fermix"]["epoch"],
        "killed_csv_epochs": sorted({int(r["epoch"]) for r in _csv_rows(workdir / "runs/killed/csv/metrics.csv")
                                     if r["epoch"]}),
        "saving_returncode": saving.returncode,
        "saving_files": sorted(p.name for p in (workdir / "runs/saving/checkpoints").iterdir()),
        "saving_epoch": load_checkpoint(workdir / "runs/saving/checkpoints/last.ckpt")["fermix"]["epoch"],
        "unfinished": [not (workdir / f"runs/{r}/summary.json").exists() for r in ("killed", "saving")],
    }))
    resumed = [_popen(workdir, run, "resume=auto") for run in ("killed", "saving")]
    for proc in (straight, *resumed):
        _finish(proc)
    return workdir


@pytest.mark.slow
def test_the_kills_landed_mid_epoch_and_inside_a_checkpoint_write(runs):
    report = json.loads((runs / "kill_report.json").read_text())
    assert report["killed_returncode"] == report["saving_returncode"] == -signal.SIGKILL
    assert report["unfinished"] == [True, True]  # neither wrote summary.json
    # killed: last.ckpt of an early epoch, and the CSV shows the next epoch under way (lost work)
    assert report["killed_epoch"] < MAX_EPOCHS - 1
    assert max(report["killed_csv_epochs"]) == report["killed_epoch"] + 1
    # saving: died writing epoch 1's last.ckpt; epoch 0's is intact, the torn temporary beside it
    assert report["saving_epoch"] == 0
    temps = [n for n in report["saving_files"] if n != "best.ckpt" and n != "last.ckpt"]
    assert len(temps) == 1 and is_temp_name(temps[0]) and temps[0].startswith(".last.ckpt.tmp-")


@pytest.mark.slow
@pytest.mark.parametrize("run", ["killed", "saving"])
def test_resume_auto_after_sigkill_equals_the_uninterrupted_run(runs, run):
    a_dir, b_dir = runs / "runs/straight", runs / f"runs/{run}"
    assert "resuming from" in (b_dir / "train.log").read_text()
    for name in ("last.ckpt", "best.ckpt"):
        a = torch.load(a_dir / "checkpoints" / name, weights_only=True)
        b = torch.load(b_dir / "checkpoints" / name, weights_only=True)
        assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"], name
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for key, value in a["state_dict"].items():
            assert torch.equal(value, b["state_dict"][key]), (name, key)
        (sa,), (sb,) = a["optimizer_states"], b["optimizer_states"]
        assert sa["param_groups"] == sb["param_groups"], name  # learning rates of the cosine schedule too
        for ma, mb in zip(sa["state"].values(), sb["state"].values(), strict=True):
            assert all(torch.equal(ma[k], mb[k]) for k in ("step", "exp_avg", "exp_avg_sq")), name
        assert a["lr_schedulers"] == b["lr_schedulers"], name
        assert a["fermix"]["metrics"] == b["fermix"]["metrics"], name
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a_dir, b_dir))
    for key in ("metrics", "per_class_acc", "checkpoint_val_metrics", "best_epoch", "epochs_trained", "global_step"):
        assert sa[key] == sb[key], key
    assert sb["epochs_trained"] == MAX_EPOCHS
    for name in ("predictions_val.csv", "predictions_test.csv"):  # class probabilities, 6 decimals
        assert (a_dir / name).read_bytes() == (b_dir / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("run", ["killed", "saving"])
def test_resumed_csv_log_reads_as_one_uninterrupted_run(runs, run):
    """No duplicate rows for the replayed epoch, none lost before it: the file equals the straight run's."""
    straight = (runs / "runs/straight/csv/metrics.csv").read_text()
    resumed = (runs / f"runs/{run}/csv/metrics.csv").read_text()
    assert resumed == straight


@pytest.mark.slow
def test_resumed_run_removed_the_temporary_the_kill_left(runs):
    files = sorted(p.name for p in (runs / "runs/saving/checkpoints").iterdir())
    assert files == ["best.ckpt", "last.ckpt"]
    assert "left by a run killed while saving" in (runs / "runs/saving/train.log").read_text()


# --- a kill inside save_atomic, in a bare process -----------------------------------------------

# One interpreter (torch imported once) forks a child per case; each child saves a good
# checkpoint, then SIGKILLs itself inside a second save_atomic of a bigger one.
KILLED_SAVES = """
import io, os, signal, sys
from pathlib import Path
import torch
from fermix.engine import checkpoint

def ckpt(n):
    meta = {"format": checkpoint.FORMAT, "format_version": checkpoint.FORMAT_VERSION, "epoch": n}
    return {"fermix": meta, "state_dict": {"w": torch.arange(n * 1000, dtype=torch.float32)}}

def die_mid_write(obj, f, *args, **kwargs):  # half of the bytes are in the temporary when it dies
    buffer = io.BytesIO()
    real_save(obj, buffer, *args, **kwargs)
    with open(f, "wb") as out:
        out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        out.flush()
        os.fsync(out.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

real_save = torch.save
for where in sys.argv[2:]:
    target = Path(sys.argv[1]) / where / "last.ckpt"
    pid = os.fork()
    if pid == 0:
        checkpoint.save_atomic(ckpt(1), target)
        if where == "mid-write":
            torch.save = die_mid_write
        else:  # the temporary is complete and fsynced; the process dies instead of renaming it
            os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.save_atomic(ckpt(1000), target)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(where, os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exited")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_inside_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    cases = ["mid-write", "before-rename"]
    proc = subprocess.run([sys.executable, "-c", KILLED_SAVES, str(tmp_path), *cases], env=ENV, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [cases[0], str(int(signal.SIGKILL)), cases[1], str(int(signal.SIGKILL))]

    for where in cases:
        target = tmp_path / where / "last.ckpt"
        kept = load_checkpoint(target)
        assert kept["fermix"]["epoch"] == 1 and torch.equal(kept["state_dict"]["w"], torch.arange(1000.0)), where
        (temp,) = (p for p in target.parent.iterdir() if p != target)
        assert is_temp_name(temp.name) and temp.name.startswith(".last.ckpt.tmp-") and temp.stat().st_size > 0
        if where == "mid-write":  # what a plain, non-atomic write would have left as last.ckpt
            with pytest.raises(FermixError, match="truncated, corrupt"):
                load_checkpoint(temp)
        else:
            assert load_checkpoint(temp)["fermix"]["epoch"] == 1000

        assert remove_stale_temps(target.parent) == [temp]
        assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
