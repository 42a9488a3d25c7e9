"""The pooled (micro) aggregate over cross-validation folds, from finished runs' prediction files.

A dataset with folds reports one number per class over them: Σ_folds TP / Σ_folds N, and "All" =
accuracy over the pooled test images of every fold (the figure a paper reports over 3-fold
cross-validation, for example). That is not the mean of the fold accuracies: folds' test sets may differ in size and
class balance, so the two disagree, and comparing a pooled number against a mean mixes two
measures. Both are given here, the per-run accuracies with their mean ± sample std (ddof=1) below
the pooled row.

Which dataset option names a run's fold, and which options the pooled runs must share, is the
dataset adapter's to declare (`fold_option`, `fold_settings`; see `fold_scheme`); this module knows
no dataset by name.

A run is a `fermix train` run dir: summary.json (method, dataset, seed) and
predictions_<split>.csv (sample_id,label,...,pred,...,prob_<class>...; its prob_ columns give the
label space in index order). The fold and the settings come from the run's resolved config:
summary.json's `config` when it has one, else Hydra's .hydra/config.yaml next to it.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fermix.errors import FermixError
from fermix.registry import dataset_adapter_name
from fermix.utils.io import atomic_path, atomic_write_text

POOLED, MEAN, STD = "pooled", "mean", "std"
ALL = "All"


@dataclass(frozen=True)
class RunPredictions:
    """One run's labelled predictions on a split and what identifies the run."""

    run_dir: Path
    method: str
    dataset: str
    fold: str | None
    settings: tuple[tuple[str, str | None], ...]  # (dataset option, value) the pooled runs must share
    seed: int | None
    classes: tuple[str, ...]
    labels: np.ndarray  # true class index per labelled sample
    preds: np.ndarray  # predicted class index, same order

    @property
    def name(self) -> str:
        """Row name: `v1 seed 42`, `seed 42`, or the run dir's name."""
        parts = [p for p in (self.fold, None if self.seed is None else f"seed {self.seed}") if p]
        return " ".join(parts) if parts else self.run_dir.name

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(correct, total) per class."""
        c = len(self.classes)
        total = np.bincount(self.labels, minlength=c)
        correct = np.bincount(self.labels[self.labels == self.preds], minlength=c)
        return correct, total


@dataclass(frozen=True)
class PooledAccuracy:
    """The aggregate: `table` holds fractions; `correct` / `total` the counts behind each cell."""

    method: str
    dataset: str
    settings: tuple[tuple[str, str | None], ...]
    split: str
    classes: tuple[str, ...]
    runs: tuple[RunPredictions, ...]
    table: pd.DataFrame  # rows: one per run, pooled, mean, std; columns: classes..., All, n
    correct: pd.DataFrame  # rows: one per run, pooled; columns: classes..., All
    total: pd.DataFrame

    def markdown(self) -> str:
        """The table in percent, spec column order; run and pooled cells show `acc (tp/n)`."""
        columns = [*self.classes, ALL]
        shown = ", ".join(str(v) for _, v in self.settings if v is not None)
        setting = f" ({shown})" if shown else ""
        lines = [
            f"Pooled {self.split} accuracy (%) of {self.method} on {self.dataset}{setting} over {len(self.runs)} runs. "
            f"Per class: Σ TP / Σ N over the runs; {ALL}: accuracy on the pooled samples (a micro average). "
            f"Last row: mean ± sample std (ddof=1) of the per-run accuracies, which is not the pooled figure.",
            "",
            "| run | " + " | ".join(columns) + " | n |",
            "|---|" + "---:|" * (len(columns) + 1),
        ]
        for row in [*(r.name for r in self.runs), POOLED]:
            cells = [_count_cell(self.table.at[row, c], self.correct.at[row, c], self.total.at[row, c])
                     for c in columns]
            label = f"**{POOLED}**" if row == POOLED else row
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {int(self.table.at[row, 'n'])} |")
        spread = [_mean_std_cell(self.table.at[MEAN, c], self.table.at[STD, c]) for c in columns]
        lines.append("| mean ± std of runs | " + " | ".join(spread) + " | |")
        return "\n".join(lines) + "\n"


def _count_cell(acc: float, correct: int, total: int) -> str:
    value = "–" if math.isnan(acc) else f"{100 * acc:.2f}"
    return f"{value} ({int(correct)}/{int(total)})"


def _mean_std_cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{100 * mean:.2f}" if math.isnan(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


# -------------------------------------------------------------------- reading runs


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise FermixError(f"{run_dir} has no summary.json; pass the directory of a finished `fermix train` run.")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FermixError(f"cannot read {path}: {e}.") from e
    if not isinstance(summary, dict):
        raise FermixError(f"{path} holds no JSON object; it is not a fermix summary.")
    return summary


def run_config(run_dir: Path, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's config as plain data: summary.json's `config`, else Hydra's .hydra/config.yaml, else {}."""
    config = (summary or {}).get("config")
    if isinstance(config, dict):
        return config
    path = run_dir / ".hydra" / "config.yaml"
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise FermixError(f"cannot read {path}: {e}.") from e
        if isinstance(loaded, dict):
            return loaded
    return {}


def _dataset_option(config: dict[str, Any], key: str) -> str | None:
    dataset = config.get("dataset")
    value = dataset.get(key) if isinstance(dataset, dict) else None
    return None if value is None else str(value)


@dataclass(frozen=True)
class FoldScheme:
    """A dataset's folds: the option naming a run's fold, and the options the pooled runs must share."""

    option: str
    settings: tuple[str, ...] = ()


@cache
def fold_scheme(dataset: str | None) -> FoldScheme | None:
    """The folds the registered dataset adapter `dataset` declares (class attributes `fold_option`,
    `fold_settings`); None for an adapter without folds, or one this installation does not know."""
    from fermix.registry import DATASETS

    if not dataset or dataset not in DATASETS:
        return None
    try:
        adapter = DATASETS.get(dataset)
    except Exception:  # an adapter whose optional dependency is missing: its runs are not pooled
        return None
    option = getattr(adapter, "fold_option", None)
    return FoldScheme(str(option), tuple(getattr(adapter, "fold_settings", ()) or ())) if option else None


def run_adapter(config: dict[str, Any]) -> str | None:
    """The dataset adapter a run's config names (`dataset.adapter`, else `dataset.name`); None without one."""
    dataset = config.get("dataset")
    if not isinstance(dataset, dict) or not (dataset.get("adapter") or dataset.get("name")):
        return None
    return dataset_adapter_name(dataset)


def run_fold(config: dict[str, Any]) -> tuple[str | None, tuple[tuple[str, str | None], ...]]:
    """A run's fold and its shared settings, read from its config as its dataset declares them."""
    scheme = fold_scheme(run_adapter(config))
    if scheme is None:
        return None, ()
    return _dataset_option(config, scheme.option), tuple((k, _dataset_option(config, k)) for k in scheme.settings)


def read_run(run_dir: str | os.PathLike[str], split: str = "test") -> RunPredictions:
    """A run's labelled predictions on `split`, with method, dataset, fold, shared settings and seed."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    path = run_dir / f"predictions_{split}.csv"
    if not path.is_file():
        raise FermixError(f"{run_dir} has no predictions_{split}.csv; the run did not evaluate the {split} split.")
    try:
        frame = pd.read_csv(path, dtype={"sample_id": str})
    except (OSError, ValueError) as e:
        raise FermixError(f"cannot read {path}: {e}.") from e
    classes = tuple(c[len("prob_") :] for c in frame.columns if c.startswith("prob_"))
    if not {"label", "pred"} <= set(frame.columns) or not classes:
        raise FermixError(f"{path} is not a fermix predictions file (it needs label, pred and prob_<class> columns).")
    labels = frame["label"].to_numpy(dtype=np.int64)
    preds = frame["pred"].to_numpy(dtype=np.int64)
    keep = labels >= 0
    if not keep.any():
        raise FermixError(f"{path} has no labelled samples, so it has no accuracy to pool.")
    if (labels >= len(classes)).any() or (preds < 0).any() or (preds >= len(classes)).any():
        raise FermixError(f"{path} has a label or prediction outside its {len(classes)} classes.")
    config = run_config(run_dir, summary)
    seed = summary.get("seed", config.get("seed"))
    fold, settings = run_fold(config)
    return RunPredictions(
        run_dir=run_dir,
        method=str(summary.get("method", "?")),
        dataset=str(summary.get("dataset", "?")),
        fold=fold,
        settings=settings,
        seed=None if seed is None else int(seed),
        classes=classes,
        labels=labels[keep],
        preds=preds[keep],
    )


# -------------------------------------------------------------------- pooling


def _same(runs: Sequence[RunPredictions], attribute: str, what: str, hint: str) -> None:
    first = runs[0]
    for run in runs[1:]:
        a, b = getattr(first, attribute), getattr(run, attribute)
        if a != b:
            shown = (", ".join(a), ", ".join(b)) if isinstance(a, tuple) else (a, b)
            raise FermixError(
                f"runs {first.run_dir} and {run.run_dir} have different {what} ({shown[0]} vs {shown[1]}); {hint}."
            )


def pooled_accuracy(run_dirs: Iterable[str | os.PathLike[str]], split: str = "test") -> PooledAccuracy:
    """Per class Σ TP / Σ N and pooled accuracy over runs (one per fold), plus per-run accuracies.

    Refuses runs of different label spaces, methods, datasets or fold settings (the options the dataset
    says pooled runs share), and two runs of the same fold and seed (that would count one fold twice).
    """
    unique: dict[Path, None] = {}
    for d in run_dirs:
        unique.setdefault(Path(d).resolve(), None)
    if not unique:
        raise FermixError("no runs to pool; pass at least one run directory.")
    runs = [read_run(d, split) for d in unique]
    _same(runs, "classes", "label spaces", "pool runs of one dataset only")
    _same(runs, "method", "methods", "pool one method at a time")
    _same(runs, "dataset", "datasets", "pool the folds of one dataset only")
    for index, (option, first) in enumerate(runs[0].settings):  # one dataset, so the same options in each run
        for run in runs[1:]:
            if run.settings[index][1] != first:
                value = run.settings[index][1]
                raise FermixError(
                    f"runs {runs[0].run_dir} and {run.run_dir} have different dataset.{option} settings "
                    f"({first} vs {value}); pool {first} and {value} separately."
                )
    seen: dict[tuple[str | None, int | None], Path] = {}
    for run in runs:
        key = (run.fold, run.seed)
        if key in seen:
            raise FermixError(
                f"runs {seen[key]} and {run.run_dir} are both {run.name}; pool each fold once per seed."
            )
        seen[key] = run.run_dir
    runs.sort(key=lambda r: (r.fold or "", -1 if r.seed is None else r.seed, str(r.run_dir)))
    classes = runs[0].classes
    columns = [*classes, ALL]

    correct_rows, total_rows = {}, {}
    for run in runs:
        correct, total = run.counts()
        correct_rows[run.name] = [*correct.tolist(), int(correct.sum())]
        total_rows[run.name] = [*total.tolist(), int(total.sum())]
    correct_rows[POOLED] = np.sum(list(correct_rows.values()), axis=0).tolist()
    total_rows[POOLED] = np.sum(list(total_rows.values()), axis=0).tolist()
    correct_df = pd.DataFrame.from_dict(correct_rows, orient="index", columns=columns)
    total_df = pd.DataFrame.from_dict(total_rows, orient="index", columns=columns)

    acc = correct_df.astype(float) / total_df.where(total_df > 0).astype(float)
    per_run = acc.loc[[r.name for r in runs]]
    table = pd.concat([acc, per_run.mean().to_frame(MEAN).T, per_run.std(ddof=1).to_frame(STD).T])
    table["n"] = [*total_df[ALL].tolist(), np.nan, np.nan]
    table.index.name = "run"
    correct_df.index.name = total_df.index.name = "run"
    return PooledAccuracy(
        method=runs[0].method,
        dataset=runs[0].dataset,
        settings=runs[0].settings,
        split=split,
        classes=classes,
        runs=tuple(runs),
        table=table,
        correct=correct_df,
        total=total_df,
    )


# -------------------------------------------------------------------- files


def write_pooled(result: PooledAccuracy, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """pooled_<split>.md and pooled_<split>.csv in `out_dir` (atomic); returns both paths."""
    out_dir = Path(out_dir)
    md, csv = out_dir / f"pooled_{result.split}.md", out_dir / f"pooled_{result.split}.csv"
    atomic_write_text(md, result.markdown())
    with atomic_path(csv) as tmp:
        result.table.to_csv(tmp, float_format="%.6f")
    return md, csv


def job_order(path: Path) -> tuple[int, int | str]:
    """Hydra job dirs in job-number order (10 after 9), other names after them."""
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


_RUN_MARKERS = (".hydra", "checkpoints", "csv")  # what a run dir holds before its summary.json


def looks_like_run(path: Path) -> bool:
    """A directory `fermix train` started (Hydra's .hydra/, checkpoints/ or csv/ logs), finished or not."""
    return any((path / marker).is_dir() for marker in _RUN_MARKERS)


def find_run_dirs(patterns: Iterable[str | os.PathLike[str]], skipped: list[Path] | None = None) -> list[Path]:
    """Run dirs from command-line arguments: run dirs, sweep dirs (their job dirs) or globs of either.

    With `skipped` (a list to fill), a run that never wrote summary.json — a crashed or running job,
    given directly, matched by a glob or inside a sweep — is appended there instead of refused, so a
    report can cover the runs that did finish and name the others.
    """
    found: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        paths = [Path(p) for p in sorted(glob.glob(text))] if glob.has_magic(text) else [Path(text)]
        if not paths:
            raise FermixError(f"{text} matches no directory.")
        for path in paths:
            if (path / "summary.json").is_file():
                found.append(path)
            elif skipped is not None and looks_like_run(path):
                skipped.append(path)
            elif path.is_dir():
                children = sorted((p for p in path.iterdir() if p.is_dir()), key=job_order)
                jobs = [p for p in children if (p / "summary.json").is_file()]
                if skipped is not None:
                    unfinished = [p for p in children if p not in jobs and looks_like_run(p)]
                    skipped.extend(unfinished)
                    if jobs or unfinished:
                        found.extend(jobs)
                        continue
                if not jobs:
                    raise FermixError(f"{path} is neither a finished run (no summary.json) nor a sweep of them.")
                found.extend(jobs)
            elif not glob.has_magic(text):
                raise FermixError(f"{path} does not exist.")
    return found


def common_dir(run_dirs: Sequence[Path]) -> Path:
    """Where pooled files go by default: the runs' common parent (a multirun's sweep dir)."""
    parents = [str(Path(d).resolve().parent) for d in run_dirs]
    return Path(os.path.commonpath(parents))
