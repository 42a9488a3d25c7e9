"""The figures of `fermix report`: training curves, per-class accuracy bars, a summed confusion matrix.

Curves come from each run's Lightning CSV log (csv/metrics.csv; a staged method logs one file per
stage, csv/<stage>/metrics.csv). Lightning writes a row per logging call, so one epoch is spread
over several rows: a curve's value at an epoch is the last non-empty one of that epoch.
Like engine/artifacts.py, plotting uses matplotlib's object API on the Agg canvas (no pyplot state,
no display) and every PNG is written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fermix.engine.artifacts import save_figure

# Logged under train/ but not a loss term: the count of batches skipped for a non-finite loss.
_NOT_CURVES = ("train/skipped",)
_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
            "tab:cyan", "tab:gray")  # fmt: skip


def _curve_name(column: str) -> str | None:
    """`train/ce_epoch` -> `train/ce`, `val/acc` -> `val/acc`; None for step-level and other columns."""
    if column in _NOT_CURVES or column.endswith("_step"):
        return None
    if column.startswith("train/"):
        return column.removesuffix("_epoch")
    if column.startswith("val/"):
        return column
    return None


def _log_files(run_dir: Path) -> list[tuple[str, Path]]:
    single = run_dir / "csv" / "metrics.csv"
    if single.is_file():
        return [("", single)]
    return [(f.parent.name, f) for f in sorted((run_dir / "csv").glob("*/metrics.csv"))]


def read_curves(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Per-epoch train loss terms and validation metrics of a run (index: epoch; columns like
    `train/loss`, `val/acc`, prefixed `<stage>: ` for a staged method). Empty without a CSV log."""
    frames = []
    for stage, path in _log_files(Path(run_dir)):
        try:
            log = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if "epoch" not in log.columns:
            continue
        names = {c: _curve_name(c) for c in log.columns}
        names = {c: n for c, n in names.items() if n is not None}
        if not names:
            continue
        log = log.dropna(subset=["epoch"])
        per_epoch = log.groupby(log["epoch"].astype(int))[list(names)].last().rename(columns=names)
        per_epoch = per_epoch.apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
        frames.append(per_epoch.add_prefix(f"{stage}: ") if stage else per_epoch)
    if not frames:
        return pd.DataFrame()
    curves = pd.concat(frames, axis=1)
    curves.index.name = "epoch"
    return curves


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _panel_order(names: Sequence[str]) -> list[str]:
    """Training loss terms first (the total `loss` leading), then validation metrics, per stage."""

    def key(name: str) -> tuple[str, int, int, str]:
        stage, _, metric = name.rpartition(": ")
        kind = 0 if metric.startswith("train/") else 1
        return stage, kind, 0 if metric in ("train/loss", "val/acc") else 1, metric

    return sorted(names, key=key)


def plot_curves(
    path: str | os.PathLike[str],
    curves: Mapping[str, pd.DataFrame],
    groups: Mapping[str, Sequence[str]],
    title: str = "",
) -> list[str]:
    """One panel per curve, one line per run; a group of several runs also gets its mean line with a
    ±1 std band. Returns the panel names, training loss terms first."""
    names = _panel_order(list(dict.fromkeys(c for frame in curves.values() for c in frame.columns)))
    if not names:
        raise ValueError("no run has a training curve to plot")
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = _figure(4.4 * ncols, 3.3 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    from matplotlib.ticker import MaxNLocator

    # One group of a few runs: a colour and legend entry per run, the mean dashed black. Otherwise a
    # colour per group, its runs thin and faint, its mean bold.
    per_run = len(groups) == 1 and len(next(iter(groups.values()))) <= len(_COLOURS)
    for ax, name in zip(axes, names, strict=False):
        for g, (label, runs) in enumerate(groups.items()):
            series = {r: curves[r][name].dropna() for r in runs if name in curves.get(r, pd.DataFrame()).columns}
            series = {r: s for r, s in series.items() if len(s)}
            for i, (run, s) in enumerate(series.items()):
                colour = _COLOURS[(i if per_run else g) % len(_COLOURS)]
                ax.plot(s.index, s.to_numpy(), color=colour, lw=1.6 if per_run else 0.8,
                        alpha=0.9 if per_run else 0.35, marker="o" if per_run and len(s) < 12 else None, ms=3,
                        label=f"run {run}" if per_run else None)  # fmt: skip
            n = len(series)
            if n >= 2:
                table = pd.concat(series, axis=1)
                mean, std = table.mean(axis=1), table.std(axis=1, ddof=1).fillna(0.0)
                colour = "black" if per_run else _COLOURS[g % len(_COLOURS)]
                ax.fill_between(mean.index, (mean - std).to_numpy(), (mean + std).to_numpy(), color=colour,
                                alpha=0.12 if per_run else 0.2, lw=0)  # fmt: skip
                ax.plot(mean.index, mean.to_numpy(), color=colour, lw=2.2, ls="--" if per_run else "-",
                        label=f"mean ± std ({n} runs)" if per_run else f"{label}: mean ± std ({n} runs)")  # fmt: skip
            elif n == 1 and not per_run:
                only = next(iter(series.values()))
                ax.plot(only.index, only.to_numpy(), color=_COLOURS[g % len(_COLOURS)], lw=2.2,
                        label=f"{label} (1 run)")  # fmt: skip
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name.rpartition(": ")[2].split("/", 1)[-1])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in axes[: len(names)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=9)
    fig.suptitle(title or "training curves (train: per-epoch loss terms; val: per-epoch metrics)")
    save_figure(fig, path)
    return names


def plot_per_class(
    path: str | os.PathLike[str],
    accuracies: Mapping[str, pd.DataFrame],
    title: str,
) -> None:
    """Bars of per-class accuracy, mean ± sample std over each group's runs (`accuracies[group]`:
    rows = runs, columns = classes, NaN where a run had no sample of the class); one bar per group
    and class, its mean printed above it."""
    classes = list(next(iter(accuracies.values())).columns)
    n_groups = len(accuracies)
    fig = _figure(max(6.0, 0.9 * len(classes) * max(1, n_groups * 0.6) + 2.0), 4.6)
    ax = fig.add_subplot()
    width = 0.8 / n_groups
    x = np.arange(len(classes))
    annotate = len(classes) * n_groups <= 30
    for g, (label, frame) in enumerate(accuracies.items()):
        counts = frame.notna().sum().to_numpy()
        mean = frame.mean().to_numpy(dtype=float)
        std = np.where(counts >= 2, frame.std(ddof=1).to_numpy(dtype=float), 0.0)
        top = np.nan_to_num(mean)
        # the band is clipped to [0, 1]: an accuracy cannot leave it, however far one std reaches
        yerr = np.vstack([np.minimum(std, top), np.minimum(std, 1.0 - top)])
        offsets = x - 0.4 + width * (g + 0.5)
        runs = len(frame)
        name = f"mean ± std over {runs} runs" if n_groups == 1 else f"{label} ({runs} run{'s' * (runs != 1)})"
        bars = ax.bar(offsets, top, width * 0.92, yerr=yerr, capsize=3, color=_COLOURS[g % len(_COLOURS)],
                      label=name, error_kw={"elinewidth": 1, "ecolor": "black"})  # fmt: skip
        if annotate:
            for bar, m, s, up in zip(bars, mean, std, yerr[1], strict=True):
                text = "no samples" if math.isnan(m) else f"{m:.2f}" + (f"\n±{s:.2f}" if s > 0 else "")
                ax.text(bar.get_x() + bar.get_width() / 2, (0 if math.isnan(m) else m) + up + 0.015, text,
                        ha="center", va="bottom", fontsize=8 if n_groups < 3 else 7)  # fmt: skip
    ax.set_xticks(
        x, labels=classes, rotation=30 if len(classes) > 5 else 0, ha="right" if len(classes) > 5 else "center"
    )
    ax.set_ylim(0.0, 1.25)
    ax.set_yticks(np.linspace(0.0, 1.0, 6))
    ax.set_ylabel("accuracy (recall of the class)")
    ax.set_xlabel("true class")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper right", fontsize=9, ncols=min(n_groups, 3))
    ax.set_title(title)
    save_figure(fig, path)
