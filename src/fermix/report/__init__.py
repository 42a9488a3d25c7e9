"""Reports over finished runs: the pooled (micro) fold aggregate and the multirun sweep summary.

These read only what a run leaves on disk (summary.json, predictions_<split>.csv, Hydra's
.hydra/ files), never a checkpoint or a model. The one plugin code they load is a run's dataset
adapter class, for its declaration of folds (`fermix.report.pooled.fold_scheme`).
"""

from fermix.report.pooled import PooledAccuracy, find_run_dirs, pooled_accuracy, read_run, write_pooled
from fermix.report.sweep import summarize_sweep, write_sweep_summary

__all__ = [
    "PooledAccuracy",
    "find_run_dirs",
    "pooled_accuracy",
    "read_run",
    "summarize_sweep",
    "write_pooled",
    "write_sweep_summary",
]
