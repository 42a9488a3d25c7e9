"""One table for a Hydra multirun: a row per finished job, then mean ± std per metric over the jobs.

`fermix train -m ...` leaves `<sweep dir>/<job num>/` run dirs, each with summary.json and
Hydra's .hydra/overrides.yaml. When the jobs differ in their dataset's fold (the option its adapter
declares, fermix.report.pooled.fold_scheme), the pooled fold aggregate is added: one per group of
jobs that share every override except the fold and `seed` (so `-m method=A,B dataset.fold=v1,v2,v3`
on a dataset whose fold option is `fold` gives one pooled table per method, and several seeds per
fold are pooled together). Overrides that only say where or how a run was written (hydra.*,
paths.runs_dir, resume, progress) never make a group of their own.

`summarize_runs` does the same over any list of run dirs, and `group_table` gives each group's
mean ± std: both are what `fermix report` (fermix.report.run) builds on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fermix.errors import FermixError
from fermix.report.pooled import (
    PooledAccuracy,
    fold_scheme,
    job_order,
    pooled_accuracy,
    read_summary,
    run_adapter,
    run_config,
    run_fold,
)
from fermix.utils.io import atomic_path, atomic_write_text

SUMMARY_MD, SUMMARY_CSV = "sweep_summary.md", "sweep_summary.csv"
POOLED_SPLIT = "test"
_GROUPING_KEYS = ("seed",)  # overrides that vary inside one pooled group, with the dataset's fold option
# Overrides that say where a run went or how it was resumed, not what it trained: never a group of their own.
_BOOKKEEPING_KEYS = ("resume", "paths.runs_dir", "progress")
_BOOKKEEPING_PREFIXES = ("hydra.", "hydra/")


@dataclass(frozen=True)
class Job:
    """One finished job of a sweep."""

    run_dir: Path
    name: str  # the job dir's name (Hydra's job number)
    overrides: tuple[str, ...]
    seed: int | None
    fold: str | None
    metrics: dict[str, float]  # "<split>/<metric>"
    fold_key: str | None = None  # the override naming the fold (`dataset.<its fold option>`), if the dataset has folds


@dataclass
class SweepSummary:
    """The jobs' table, its mean ± std rows and the pooled fold aggregates."""

    sweep_dir: Path
    jobs: list[Job]
    table: pd.DataFrame  # rows: job names, then mean, std; columns: overrides, seed, metrics...
    pooled: list[tuple[str, PooledAccuracy]] = field(default_factory=list)  # (group label, aggregate)
    pooled_error: str | None = None  # why the pooled aggregate is missing although folds differ

    def markdown(self) -> str:
        metrics = [c for c in self.table.columns if c not in ("overrides", "seed")]
        common = " ".join(common_overrides(self.jobs)).replace("|", "\\|") or "none"
        lines = [
            f"# Sweep summary: {self.sweep_dir}",
            "",
            f"{len(self.jobs)} finished jobs. Last row: mean ± sample std (ddof=1) over the jobs.",
            f"Overrides shared by every job: {common}; the table lists the ones that differ.",
            "",
            "| job | overrides | seed | " + " | ".join(metrics) + " |",
            "|---|---|---:|" + "---:|" * len(metrics),
        ]
        for job in self.jobs:
            values = [number_cell(job.metrics.get(m, math.nan)) for m in metrics]
            seed = "" if job.seed is None else str(job.seed)
            overrides = str(self.table.at[job.name, "overrides"]).replace("|", "\\|")
            lines.append(f"| {job.name} | {overrides} | {seed} | " + " | ".join(values) + " |")
        spread = [spread_cell(self.table.at["mean", m], self.table.at["std", m]) for m in metrics]
        lines.append("| mean ± std | | | " + " | ".join(spread) + " |")
        for label, result in self.pooled:
            lines += ["", f"## Pooled over folds{f': {label}' if label else ''}", "", result.markdown().rstrip()]
        if self.pooled_error:
            lines += ["", f"Pooled fold aggregate not computed: {self.pooled_error}"]
        return "\n".join(lines) + "\n"


def number_cell(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"


def spread_cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _overrides(run_dir: Path) -> tuple[str, ...]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ()
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(str(o) for o in loaded) if isinstance(loaded, list) else ()


def _flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for split, values in (summary.get("metrics") or {}).items():
        for name, value in (values or {}).items():
            out[f"{split}/{name}"] = math.nan if value is None else float(value)
    return out


def _read_job(run_dir: Path, name: str | None = None) -> Job:
    summary = read_summary(run_dir)
    config = run_config(run_dir, summary)
    fold, _ = run_fold(config)
    scheme = fold_scheme(run_adapter(config))
    seed = summary.get("seed", config.get("seed"))
    return Job(
        run_dir=run_dir,
        name=name or run_dir.name,
        overrides=_overrides(run_dir),
        seed=None if seed is None else int(seed),
        fold=fold,
        metrics=_flat_metrics(summary),
        fold_key=None if scheme is None else f"dataset.{scheme.option}",
    )


def _pick(metrics: dict[str, float], names: list[str]) -> dict[str, float]:
    return {m: metrics.get(m, math.nan) for m in names}


def common_overrides(jobs: list[Job]) -> list[str]:
    """Overrides every job was given (the command line's fixed part), in the first job's order."""
    return [o for o in jobs[0].overrides if all(o in job.overrides for job in jobs[1:])] if jobs else []


def _table(jobs: list[Job]) -> pd.DataFrame:
    metric_names = list(dict.fromkeys(m for job in jobs for m in job.metrics))
    common = set(common_overrides(jobs)) if len(jobs) > 1 else set()
    rows = {
        job.name: {
            "overrides": " ".join(o for o in job.overrides if o not in common),
            "seed": job.seed,
            **_pick(job.metrics, metric_names),
        }
        for job in jobs
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["overrides", "seed", *metric_names])
    values = table[metric_names].astype(float)
    table.loc["mean"] = {"overrides": "", "seed": None, **values.mean().to_dict()}
    table.loc["std"] = {"overrides": "", "seed": None, **values.std(ddof=1).to_dict()}
    table["seed"] = table["seed"].astype("Int64")
    table.index.name = "job"
    return table


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _group_key(job: Job) -> tuple[str, ...]:
    """The overrides that make a job's setting: all but seed, fold and where the run was written."""
    return tuple(
        o for o in job.overrides
        if (key := _override_key(o)) not in (*_GROUPING_KEYS, *_BOOKKEEPING_KEYS, job.fold_key)
        and not key.startswith(_BOOKKEEPING_PREFIXES)
    )  # fmt: skip


def group_jobs(jobs: list[Job]) -> dict[str, list[Job]]:
    """Jobs that differ only in seed and fold, keyed by a label of what sets the group apart
    (`method=erm`; "all runs" when there is one group), in order of first appearance."""
    groups: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(_group_key(job), []).append(job)
    if len(groups) == 1:
        return {"all runs": jobs}
    shared = set.intersection(*(set(key) for key in groups))
    labels: dict[str, list[Job]] = {}
    for key, members in groups.items():
        label = " ".join(o for o in key if o not in shared) or "(no overrides)"
        labels.setdefault(label, []).extend(members)
    return labels


def group_table(jobs: list[Job]) -> pd.DataFrame:
    """Mean and sample std (ddof=1) of every metric over each group's jobs: rows are groups, columns
    `runs`, then `<metric> mean`, `<metric> std` per metric (std is NaN for a group of one)."""
    metric_names = list(dict.fromkeys(m for job in jobs for m in job.metrics))
    rows = {}
    for label, members in group_jobs(jobs).items():
        values = pd.DataFrame([_pick(job.metrics, metric_names) for job in members], columns=metric_names)
        row: dict[str, float] = {"runs": len(members)}
        for m in metric_names:
            row[f"{m} mean"] = values[m].mean()
            row[f"{m} std"] = values[m].std(ddof=1)
        rows[label] = row
    columns = ["runs", *(f"{m} {stat}" for m in metric_names for stat in ("mean", "std"))]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table["runs"] = table["runs"].astype(int)
    table.index.name = "group"
    return table


def _pooled(jobs: list[Job], split: str = POOLED_SPLIT) -> tuple[list[tuple[str, PooledAccuracy]], str | None]:
    if len({job.fold for job in jobs}) < 2:
        return [], None
    groups = group_jobs(jobs)
    results, errors = [], []
    for group, members in groups.items():
        if len({job.fold for job in members}) < 2:
            continue
        label = group if len(groups) > 1 else ""
        try:
            results.append((label, pooled_accuracy([job.run_dir for job in members], split)))
        except FermixError as e:
            errors.append(f"{label or 'all jobs'}: {e}")
    return results, " ".join(errors) or None


def job_names(run_dirs: list[Path]) -> list[str]:
    """Short unique names: the dir name when the runs share one parent (a sweep's job numbers), else
    the path below the runs' common folder (`multirun_a/0`, `multirun_b/0`)."""
    if len({d.resolve().parent for d in run_dirs}) <= 1:
        return [d.name for d in run_dirs]
    base = os.path.commonpath([str(d.resolve()) for d in run_dirs])
    return [Path(os.path.relpath(d.resolve(), base)).as_posix() for d in run_dirs]


def summarize_runs(
    run_dirs: list[Path], sweep_dir: str | os.PathLike[str] | None = None, split: str = POOLED_SPLIT
) -> SweepSummary:
    """The summary over any finished runs (run dirs with summary.json), not only one sweep's jobs;
    the pooled fold aggregate is computed on `split`."""
    if not run_dirs:
        raise FermixError("no finished runs to summarise; pass run dirs that hold summary.json.")
    jobs = [_read_job(d, name) for d, name in zip(run_dirs, job_names(run_dirs), strict=True)]
    pooled, error = _pooled(jobs, split)
    base = Path(sweep_dir) if sweep_dir is not None else Path(os.path.commonpath([str(d) for d in run_dirs]))
    return SweepSummary(sweep_dir=base, jobs=jobs, table=_table(jobs), pooled=pooled, pooled_error=error)


def summarize_sweep(sweep_dir: str | os.PathLike[str]) -> SweepSummary:
    """Read every finished job of a multirun (job dirs with summary.json)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FermixError(f"sweep dir {sweep_dir} does not exist.")
    dirs = sorted((p for p in sweep_dir.iterdir() if (p / "summary.json").is_file()), key=job_order)
    if not dirs:
        raise FermixError(f"{sweep_dir} holds no finished job (no <job>/summary.json).")
    return summarize_runs(dirs, sweep_dir)


def write_sweep_summary(sweep_dir: str | os.PathLike[str]) -> SweepSummary:
    """sweep_summary.md/.csv, and pooled_test.md/.csv when folds were pooled, in the sweep dir (atomic)."""
    summary = summarize_sweep(sweep_dir)
    atomic_write_text(summary.sweep_dir / SUMMARY_MD, summary.markdown())
    with atomic_path(summary.sweep_dir / SUMMARY_CSV) as tmp:
        summary.table.to_csv(tmp, float_format="%.6f")
    if summary.pooled:
        write_pooled_groups(summary.sweep_dir, summary.pooled)
    return summary


def write_pooled_groups(out_dir: Path, pooled: list[tuple[str, PooledAccuracy]]) -> list[Path]:
    """pooled_<split>.md/.csv: the one group as `fermix.report.pooled.write_pooled` writes it, or all
    groups with a leading `group` column."""
    split = pooled[0][1].split
    md = "\n".join((f"## {label}\n\n" if label else "") + result.markdown() for label, result in pooled)
    paths = [out_dir / f"pooled_{split}.md", out_dir / f"pooled_{split}.csv"]
    atomic_write_text(paths[0], md)
    frames = [result.table.assign(group=label).set_index("group", append=True) for label, result in pooled]
    table = frames[0].droplevel("group") if len(frames) == 1 else pd.concat(frames).reorder_levels(["group", "run"])
    with atomic_path(paths[1]) as tmp:
        table.to_csv(tmp, float_format="%.6f")
    return paths
