"""Where a run writes: `runs/<method>_<dataset>/<run id>/`, shared by every rank of a job.

Registered as OmegaConf resolvers used by `hydra.run.dir` in configs/train.yaml and test.yaml,
so Hydra creates exactly the directory fermix writes into. Every rank of a multi-process launch
resolves it before any process group exists, so the ranks must arrive at one answer without
talking to each other, or through the launcher: under torchrun global rank 0 names the run and
the others read the name from torchrun's store; under srun every task derives it from the Slurm
job id. docs/distributed.md.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from fermix.engine.distributed import agree, external_launch, store_available
from fermix.errors import FermixError

_invocation = 0  # jobs started in this process: each `fermix train` agrees on its own directory


def slurm_run_id() -> str | None:
    """`slurm-<job>[_<array task>][.<step>]`: the same in every task of one srun step."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    step = os.environ.get("SLURM_STEP_ID")
    return f"slurm-{job}" + (f"_{task}" if task else "") + (f".{step}" if step else "")


def launcher_run_id() -> str | None:
    """A run name every rank of a multi-process launch derives alike (None: a timestamp will do).

    The Slurm job and step when there is one; torchrun's rendezvous id only when its store cannot
    carry rank 0's choice to the others (then `--rdzv-id` must be given).
    """
    launch = external_launch()
    if launch is None or launch.world_size == 1:
        return None
    slurm = slurm_run_id()
    if slurm:
        return slurm
    if launch.launcher == "torchrun" and not store_available():
        elastic = os.environ.get("TORCHELASTIC_RUN_ID", "")
        if elastic and elastic != "none":
            return elastic
        raise FermixError(
            "torchrun gave its workers neither a rendezvous id nor a shared store to agree on one run directory; "
            "pass --rdzv-id=<unique id> to torchrun, or hydra.run.dir=DIR"
        )
    return None


def _timestamp() -> str:
    return time.strftime("%Y-%m-%d_%H-%M-%S")


def _first_free(path: Path) -> Path:
    """`path`, or `path_1`, `path_2`, ... if it exists (two runs started in the same second)."""
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}_{n}")
        n += 1
    return candidate


def is_unfinished(run: Path) -> bool:
    return (run / "checkpoints" / "last.ckpt").is_file() and not (run / "summary.json").is_file()


def newest_unfinished(base: Path) -> Path | None:
    """The unfinished run whose last.ckpt was written last (names need not sort by time: Slurm ids)."""
    if not base.is_dir():
        return None
    runs = [p for p in base.iterdir() if p.is_dir() and is_unfinished(p)]
    return max(runs, key=lambda p: ((p / "checkpoints" / "last.ckpt").stat().st_mtime, p.name), default=None)


def _choose_train_run_dir(runs_dir: str, group: str, resume: str | None) -> str:
    base = Path(runs_dir) / group
    if resume == "auto":
        unfinished = newest_unfinished(base)
        if unfinished is not None:
            return str(unfinished)
    shared = launcher_run_id()
    return str(base / shared if shared else _first_free(base / _timestamp()))


@functools.cache  # one answer per process and job, however often Hydra resolves it
def train_run_dir(runs_dir: str, group: str, resume: str | None = None) -> str:
    """A new run directory, or with `resume=auto` the newest unfinished one of the same group;
    the same on every rank of a torchrun or srun launch."""
    return agree(f"fermix/run_dir/{_invocation}", lambda: _choose_train_run_dir(runs_dir, group, resume))


@functools.cache
def eval_run_dir(ckpt: str, split: str) -> str:
    """Evaluation output next to the checkpoint's run: `<run>/eval/<split>_<timestamp>`."""
    path = Path(ckpt)
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return str(_first_free(run / "eval" / f"{split}_{_timestamp()}"))


def register_resolvers() -> None:
    """Register the resolvers; each job invocation starts with fresh answers."""
    global _invocation
    _invocation += 1
    train_run_dir.cache_clear()
    eval_run_dir.cache_clear()
    for name, fn in (("fermix_run_dir", train_run_dir), ("fermix_eval_dir", eval_run_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
