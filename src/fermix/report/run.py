"""`fermix report runs=<dir|glob|list> [out=DIR] [split=test]`: one folder of tables and figures over runs.

What researchers do after a multirun over seeds and folds: compare settings by mean ± std, quote the
pooled fold figure of cross-validated datasets, and look at curves, per-class accuracy and confusions. Everything is
read from what `fermix train` leaves in a run dir (summary.json, .hydra/, csv/ logs,
predictions_<split>.csv), never from a checkpoint, so no model is loaded.

Runs are grouped as the sweep summary groups them (fermix.report.sweep): runs whose overrides differ
only in seed and their dataset's fold option (one its adapter declares, see fermix.report.pooled) are
repeats of one setting.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fermix.engine.artifacts import plot_confusion_matrix
from fermix.errors import FermixError
from fermix.report.plots import plot_curves, plot_per_class, read_curves
from fermix.report.pooled import common_dir, find_run_dirs, read_run, read_summary
from fermix.report.sweep import (
    Job,
    SweepSummary,
    common_overrides,
    group_jobs,
    group_table,
    number_cell,
    spread_cell,
    summarize_runs,
    write_pooled_groups,
)
from fermix.utils.io import atomic_path, atomic_write_text

log = logging.getLogger("fermix")

REPORT_MD, METRICS_CSV, GROUPS_CSV, CURVES_PNG = "report.md", "metrics.csv", "metrics_grouped.csv", "curves.png"


@dataclass
class ClassResults:
    """Per-class accuracy of one group's runs over one label space, and their summed confusion."""

    group: str
    classes: tuple[str, ...]
    accuracy: pd.DataFrame  # rows: run names; columns: classes; NaN where a run had no sample of a class
    confusion: np.ndarray | None  # summed counts (rows = true class) over the runs with predictions
    confusion_runs: int


@dataclass
class Report:
    """Everything report.md shows, gathered before anything is written."""

    split: str
    summary: SweepSummary  # one row per run, mean ± std over all, pooled fold aggregates
    groups: dict[str, list[Job]]
    grouped: pd.DataFrame  # group_table: runs, <metric> mean, <metric> std
    curves: dict[str, pd.DataFrame]  # run name -> per-epoch curves
    classes: list[ClassResults]
    skipped: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is missing from the report, and why


# --------------------------------------------------------------------------- gathering


def _summary_per_class(job: Job, split: str) -> dict[str, float] | None:
    per_class = (read_summary(job.run_dir).get("per_class_acc") or {}).get(split)
    if not isinstance(per_class, dict) or not per_class:
        return None
    return {str(c): math.nan if v is None else float(v) for c, v in per_class.items()}


def _class_results(jobs: Sequence[Job], group: str, split: str, notes: list[str]) -> list[ClassResults]:
    """Per-class accuracy from predictions_<split>.csv (summary.json's per_class_acc when a run's file is
    missing or unusable), one ClassResults per label space among the group's runs."""
    rows: dict[tuple[str, ...], dict[str, list[float]]] = {}
    confusion: dict[tuple[str, ...], np.ndarray] = {}
    runs: dict[tuple[str, ...], int] = {}
    for job in jobs:
        try:
            run = read_run(job.run_dir, split)
        except FermixError as e:
            per_class = _summary_per_class(job, split)
            if per_class is None:
                notes.append(f"run {job.name} is left out of the per-class figures: {e}")
                continue
            classes = tuple(per_class)
            rows.setdefault(classes, {})[job.name] = list(per_class.values())
            notes.append(f"run {job.name}: {e} Its per-class accuracy comes from summary.json and it is left out "
                         f"of the confusion matrix.")  # fmt: skip
            continue
        c = len(run.classes)
        counts = np.bincount(run.labels * c + run.preds, minlength=c * c).reshape(c, c)
        totals = counts.sum(axis=1)
        rows.setdefault(run.classes, {})[job.name] = np.divide(
            np.diag(counts), totals, out=np.full(c, math.nan), where=totals > 0
        ).tolist()
        confusion[run.classes] = confusion.get(run.classes, np.zeros((c, c), np.int64)) + counts
        runs[run.classes] = runs.get(run.classes, 0) + 1
    return [
        ClassResults(
            group,
            classes,
            pd.DataFrame.from_dict(by_run, orient="index", columns=list(classes)),
            confusion.get(classes),
            runs.get(classes, 0),
        )
        for classes, by_run in rows.items()
    ]


def collect(run_dirs: Sequence[Path], split: str = "test", skipped: Iterable[Path] = ()) -> Report:
    """Read the runs into a Report (no file is written)."""
    summary = summarize_runs(list(run_dirs), split=split)
    groups = group_jobs(summary.jobs)
    notes: list[str] = []
    curves = {job.name: read_curves(job.run_dir) for job in summary.jobs}
    without = [name for name, frame in curves.items() if frame.empty]
    curves = {name: frame for name, frame in curves.items() if not frame.empty}
    if without:
        notes.append(
            f"no CSV training log (csv/metrics.csv; trained with logger=none?) in run(s) {', '.join(without)}."
        )
    classes = [r for label, jobs in groups.items() for r in _class_results(jobs, label, split, notes)]
    if not classes:
        evaluated = sorted({s for job in summary.jobs for s in (read_summary(job.run_dir).get("metrics") or {})})
        raise FermixError(
            f"none of the {len(summary.jobs)} runs has predictions_{split}.csv or a per-class {split} accuracy "
            f"in summary.json; choose a split they evaluated with split= ({', '.join(evaluated) or 'none'})."
        )
    return Report(
        split=split,
        summary=summary,
        groups=groups,
        grouped=group_table(summary.jobs),
        curves=curves,
        classes=classes,
        skipped=list(skipped),
        notes=notes,
    )


# --------------------------------------------------------------------------- writing


def _numbered(stem: str, index: int, count: int) -> str:
    return f"{stem}.png" if count == 1 else f"{stem}_{index + 1}.png"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _runs_table(report: Report) -> pd.DataFrame:
    """metrics.csv: one row per run."""
    table = report.summary.table.drop(index=["mean", "std"])
    label_of = {job.name: label for label, jobs in report.groups.items() for job in jobs}
    jobs = {job.name: job for job in report.summary.jobs}
    table.insert(0, "group", [label_of[name] for name in table.index])
    table.insert(3, "fold", [jobs[name].fold for name in table.index])
    table.insert(0, "run_dir", [str(jobs[name].run_dir) for name in table.index])
    table.index.name = "run"
    return table


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, float_format="%.6f")


def _per_class_markdown(report: Report) -> list[str]:
    """Per-class accuracy, mean ± std over each setting's runs: the numbers behind the bar chart."""
    lines: list[str] = []
    for result in report.classes:
        frame = result.accuracy
        where = f", {_md(result.group)}" if len(report.groups) > 1 else ""
        runs = len(frame)
        lines += [
            "",
            f"## Per-class {report.split} accuracy{where} (mean ± std over {runs} run{'s' * (runs != 1)})",
            "",
            "| " + " | ".join(_md(c) for c in result.classes) + " |",
            "|" + "---:|" * len(result.classes),
            "| " + " | ".join(spread_cell(frame[c].mean(), frame[c].std(ddof=1)) for c in result.classes) + " |",
        ]
    return lines


def _markdown(report: Report, figures: list[tuple[str, str]], pooled_files: list[Path]) -> str:
    summary, split = report.summary, report.split
    jobs = summary.jobs
    metrics = [c for c in summary.table.columns if c not in ("overrides", "seed")]
    shared = " ".join(common_overrides(jobs)) if len(jobs) > 1 else ""
    lines = [
        f"# Report over {len(jobs)} run{'s' if len(jobs) != 1 else ''}",
        "",
        f"Runs under `{summary.sweep_dir}`; per-class accuracy, confusion matrix and pooled folds on the "
        f"`{split}` split. Written by `fermix report`.",
    ]
    if shared:
        lines += ["", f"Overrides shared by every run: `{_md(shared)}`."]
    if report.skipped:
        skipped = ", ".join(f"`{p}`" for p in report.skipped)
        lines += ["", f"Skipped (no summary.json: unfinished or failed): {skipped}"]
    lines += [
        "",
        f"## Mean ± std per setting ({GROUPS_CSV})",
        "",
        "Runs that differ only in `seed` and their dataset's fold (if it has folds) are repeats of one setting. "
        "± is the sample standard deviation (ddof=1) over them.",
        "",
        "| setting | runs | " + " | ".join(metrics) + " |",
        "|---|---:|" + "---:|" * len(metrics),
    ]
    grouped = report.grouped
    for label in grouped.index:
        cells = [spread_cell(grouped.at[label, f"{m} mean"], grouped.at[label, f"{m} std"]) for m in metrics]
        lines.append(f"| {_md(label)} | {int(grouped.at[label, 'runs'])} | " + " | ".join(cells) + " |")
    several = len(report.groups) > 1
    lines += [
        "",
        f"## Runs ({METRICS_CSV})",
        "",
        "| run | " + ("setting | " if several else "") + "overrides that differ | seed | " + " | ".join(metrics) + " |",
        "|---|" + ("---|" if several else "") + "---|---:|" + "---:|" * len(metrics),
    ]
    label_of = {job.name: label for label, members in report.groups.items() for job in members}
    for job in jobs:
        cells = [_md(job.name), *([_md(label_of[job.name])] if several else [])]
        cells += [_md(summary.table.at[job.name, "overrides"]), "" if job.seed is None else str(job.seed)]
        cells += [number_cell(job.metrics.get(m, math.nan)) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _per_class_markdown(report)
    if summary.pooled:
        files = " and ".join(f"`{p.name}`" for p in pooled_files)
        lines += ["", f"## Pooled over folds ({files})", ""]
        for label, result in summary.pooled:
            lines += ([f"### {_md(label)}", ""] if label else []) + [result.markdown().rstrip(), ""]
    if summary.pooled_error:
        lines += ["", f"Pooled fold aggregate not computed: {summary.pooled_error}"]
    if figures:
        lines += ["", "## Figures"]
        for caption, name in figures:
            lines += ["", f"### {caption}", "", f"![{caption}]({name})"]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: Report, out: str | os.PathLike[str]) -> Path:
    """report.md, metrics.csv, metrics_grouped.csv, pooled_<split>.md/.csv (folds only) and the PNGs
    in `out` (each written atomically; report.md last). Returns report.md's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = report.split
    _write_csv(_runs_table(report), out / METRICS_CSV)
    _write_csv(report.grouped, out / GROUPS_CSV)
    pooled_files = write_pooled_groups(out, report.summary.pooled) if report.summary.pooled else []
    figures: list[tuple[str, str]] = []
    if report.curves:
        groups = {label: [j.name for j in jobs if j.name in report.curves] for label, jobs in report.groups.items()}
        plot_curves(out / CURVES_PNG, report.curves, {k: v for k, v in groups.items() if v})
        figures.append(("Training curves", CURVES_PNG))
    spaces: dict[tuple[str, ...], dict[str, pd.DataFrame]] = {}
    for result in report.classes:
        spaces.setdefault(result.classes, {})[result.group] = result.accuracy
    for i, (classes, frames) in enumerate(spaces.items()):
        name = _numbered(f"per_class_acc_{split}", i, len(spaces))
        runs = sum(len(f) for f in frames.values())
        plot_per_class(out / name, frames, f"per-class {split} accuracy, mean ± std over {runs} run{'s' * (runs != 1)}")
        figures.append((f"Per-class {split} accuracy" + (f" ({', '.join(classes)})" if len(spaces) > 1 else ""), name))
    confusions = [r for r in report.classes if r.confusion is not None and r.confusion_runs]
    for i, result in enumerate(confusions):
        name = _numbered(f"confusion_{split}", i, len(confusions))
        where = f" — {result.group}" if len(report.groups) > 1 else ""
        runs = f"{result.confusion_runs} run{'s' * (result.confusion_runs != 1)}"
        plot_confusion_matrix(
            out / name, result.confusion, result.classes, f"{split} confusion, summed over {runs}{where}"
        )
        figures.append((f"Confusion matrix ({split}, summed over {runs}){where}", name))
    md = out / REPORT_MD
    atomic_write_text(md, _markdown(report, figures, pooled_files))
    return md


# --------------------------------------------------------------------------- entry points


def default_out(run_dirs: Sequence[Path]) -> Path:
    """`<common parent>/report` (a multirun's `<sweep>/report`); `<run>/report` for a single run."""
    if len({d.resolve() for d in run_dirs}) == 1:
        return run_dirs[0] / "report"
    return common_dir(run_dirs) / "report"


def _unique(run_dirs: Iterable[Path]) -> list[Path]:
    seen: dict[Path, Path] = {}
    for d in run_dirs:
        seen.setdefault(d.resolve(), d)
    return list(seen.values())


def report_runs(
    runs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    split: str = "test",
) -> tuple[Report, Path]:
    """Find the runs (run dirs, sweep dirs or globs), gather and write the report; returns it and
    report.md's path. Runs without summary.json are skipped with a warning, unless none remain."""
    patterns = [runs] if isinstance(runs, str | os.PathLike) else list(runs)
    if not patterns:
        raise FermixError("runs= is empty; pass a run dir, a sweep dir or a glob such as runs/erm_*/multirun_*.")
    skipped: list[Path] = []
    run_dirs = _unique(find_run_dirs(patterns, skipped=skipped))
    shown = " ".join(str(p) for p in patterns)
    if not run_dirs:
        raise FermixError(
            f"{shown} holds no finished run: {len(skipped)} run dir(s) without summary.json "
            f"({', '.join(str(p) for p in skipped[:3])}{', ...' if len(skipped) > 3 else ''})."
        )
    for path in skipped:
        log.warning("skipping %s: it has no summary.json (the run did not finish)", path)
    report = collect(run_dirs, split, skipped)
    md = write_report(report, Path(out) if out else default_out(run_dirs))
    return report, md


def run_report(cfg: Any) -> Path:
    """The `fermix report` Hydra job (configs/report.yaml)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_missing(cfg, "runs"):
        raise FermixError("fermix report needs runs=DIR|GLOB: a run dir, a sweep dir, a glob or a list of them.")
    runs = OmegaConf.to_container(cfg.runs) if OmegaConf.is_list(cfg.runs) else str(cfg.runs)
    report, md = report_runs(runs, cfg.get("out"), str(cfg.split))
    grouped = report.grouped
    jobs = len(report.summary.jobs)
    print(f"report over {jobs} run{'s' * (jobs != 1)} in {len(grouped)} setting{'s' * (len(grouped) != 1)}: {md}")
    return md
