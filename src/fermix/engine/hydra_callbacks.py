"""Hydra callbacks registered in configs/train.yaml (`hydra.callbacks`).

Hydra instantiates these for every `fermix train`, single run or multirun, so this module imports
only Hydra and the standard library at the top; the report code loads when a multirun ends.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("fermix")


class SweepSummary(Callback):
    """After `fermix train -m ...`: sweep_summary.md/.csv (and the pooled fold aggregate when the jobs
    differ in their dataset's fold, fermix.report.pooled) in the sweep dir. A summary is a convenience,
    so a failure here logs one warning line and never fails the sweep whose runs already finished."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            from fermix.report.sweep import SUMMARY_MD, write_sweep_summary

            sweep_dir = Path(str(config.hydra.sweep.dir))
            summary = write_sweep_summary(sweep_dir)
            pooled = " and pooled fold aggregate" if summary.pooled else ""
            log.info("sweep summary%s of %d jobs: %s", pooled, len(summary.jobs), sweep_dir / SUMMARY_MD)
        except Exception as exc:  # never crash a finished sweep over its summary
            message = " ".join(str(exc).split()) or exc.__class__.__name__
            log.warning("sweep summary not written: %s", message)
