"""Reports over finished runs: the pooled (micro) fold aggregate and the multirun sweep summary.

These read only what a run leaves on disk (summary.json, predictions_<split>.csv, Hydra's
.hydra/ files), never a checkpoint, so they import neither torch nor Lightning.
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
