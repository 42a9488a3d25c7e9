"""Run loggers (TensorBoard, CSV) that continue a resumed run's logs instead of restarting them.

A resumed run replays the epoch that was interrupted. Lightning's CSVLogger deletes an existing
`metrics.csv`, so the rows of every epoch before the crash were lost; TensorBoard showed the
replayed steps twice. Resuming from a checkpoint of epoch E saved at global step S, the CSV keeps
the rows of epochs <= E (rows without an epoch — the learning-rate monitor's, logged at the start
of an epoch — when their step < S), and TensorBoard hides the old events at steps >= S (its
`purge_step`): both read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig

from fermix.utils.io import atomic_write_text
from fermix.utils.targets import call, instantiate, target_name


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues: the checkpoint's epoch (finished) and global step."""

    epoch: int
    global_step: int

    @classmethod
    def of(cls, ckpt_path: str | os.PathLike[str] | None) -> ResumePoint | None:
        """Read from a fermix checkpoint without loading its tensors (mmap); None for a fresh run."""
        if not ckpt_path:
            return None
        try:
            meta = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)["fermix"]
        except Exception:  # the one-sentence error for a bad file comes from load_checkpoint
            from fermix.engine.checkpoint import load_checkpoint

            meta = load_checkpoint(ckpt_path)["fermix"]
        return cls(int(meta["epoch"]), int(meta["global_step"]))

    def keeps(self, row: dict[str, Any]) -> bool:
        """True for a CSV row logged before the checkpoint was saved."""
        try:
            if row.get("epoch") not in (None, ""):
                return int(float(row["epoch"])) <= self.epoch
            return int(float(row["step"])) < self.global_step
        except (KeyError, TypeError, ValueError):
            return False  # a torn last line of a killed run


class _ContinuedWriter(ExperimentWriter):
    """Lightning's CSV writer, but a resumed run trims metrics.csv to the resume point and appends."""

    def __init__(self, log_dir: str, resume: ResumePoint | None) -> None:
        self._resume = resume
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self._resume is None or not path.is_file():
            super()._check_log_dir_exists()  # a fresh run: Lightning replaces the old file
            return
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = [row for row in reader if self._resume.keeps(row)]
            header = list(reader.fieldnames or [])
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, text.getvalue())
        self.metrics_keys = header  # new rows are appended under this header (extended if keys appear)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv continues across a resume (see the module docstring)."""

    def __init__(self, *args: Any, resume: ResumePoint | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resume = resume

    @property
    @rank_zero_experiment  # other ranks get Lightning's no-op experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuedWriter(self.log_dir, self._resume)
        return self._experiment


def tensorboard(save_dir: str, name: str, version: str = "", resume: ResumePoint | None = None) -> Any:
    """Lightning's TensorBoardLogger; a resumed run hides the old events from its global step on."""
    from lightning.pytorch.loggers import TensorBoardLogger

    extra = {"purge_step": resume.global_step} if resume else {}
    return TensorBoardLogger(save_dir=save_dir, name=name, version=version, **extra)


def build_loggers(cfg: DictConfig, run_dir: Path, version: str = "", resume: ResumePoint | None = None) -> list[Any]:
    """The loggers of `logger.targets` whose switch (`logger.<name>`, e.g. logger.csv) is not off.

    Each target is called with the run folder, its name (the log's sub-folder), the version (a
    staged method logs each stage under its own) and the resume point."""
    logger_cfg = cfg.get("logger") or {}
    loggers: list[Any] = []
    for name, target in (logger_cfg.get("targets") or {}).items():
        if not logger_cfg.get(name, True):
            continue
        where = f"logger.targets.{name}"
        factory = instantiate(target, where, _partial_=True)
        loggers.append(call(factory, where, target_name(target, where), save_dir=str(run_dir), name=str(name),
                            version=version, resume=resume))  # fmt: skip
    return loggers
