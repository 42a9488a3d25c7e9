"""Where a run writes: `runs/<method>_<dataset>/<run id>/`, shared by every rank of a job.

Registered as OmegaConf resolvers used by `hydra.run.dir` in configs/train.yaml and test.yaml,
so Hydra creates exactly the directory fermix writes into.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from omegaconf import OmegaConf


def launcher_run_id() -> str | None:
    """An id all ranks of one launch agree on: torchrun's or Slurm's job id; None outside them."""
    elastic = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if elastic and elastic != "none":
        return elastic
    slurm = os.environ.get("SLURM_JOB_ID")
    if slurm:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"slurm-{slurm}" + (f"_{task}" if task else "")
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


@functools.cache  # one answer per process, however often Hydra resolves it
def train_run_dir(runs_dir: str, group: str, resume: str | None = None) -> str:
    """A new run directory, or with `resume=auto` the newest unfinished one of the same group."""
    base = Path(runs_dir) / group
    if resume == "auto" and base.is_dir():
        candidates = sorted((p for p in base.iterdir() if p.is_dir() and is_unfinished(p)), key=lambda p: p.name)
        if candidates:
            return str(candidates[-1])
    shared = launcher_run_id()
    return str(base / shared if shared else _first_free(base / _timestamp()))


@functools.cache
def eval_run_dir(ckpt: str, split: str) -> str:
    """Evaluation output next to the checkpoint's run: `<run>/eval/<split>_<timestamp>`."""
    path = Path(ckpt)
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return str(_first_free(run / "eval" / f"{split}_{_timestamp()}"))


def register_resolvers() -> None:
    """Register the resolvers; each job invocation starts with fresh answers."""
    train_run_dir.cache_clear()
    eval_run_dir.cache_clear()
    for name, fn in (("fermix_run_dir", train_run_dir), ("fermix_eval_dir", eval_run_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
