"""Finished run dirs written by hand, with the real writers, for the report tests; and a check that a
figure the report wrote is a picture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fermix.engine.artifacts import write_predictions_csv
from fermix.utils.io import atomic_write_json

CLASSES = ("a", "b", "c")


def per_class(spec: dict[str, tuple[int, int]], classes: Sequence[str] = CLASSES) -> tuple[list[int], list[int]]:
    """Labels and predictions with `correct` of `total` samples right per class ({"a": (4, 4)}); the
    wrong ones are predicted as the next class."""
    labels, preds = [], []
    for name, (correct, total) in spec.items():
        k = list(classes).index(name)
        labels += [k] * total
        preds += [k] * correct + [(k + 1) % len(classes)] * (total - correct)
    return labels, preds


def fabricate_run(
    run_dir: Path,
    labels: Sequence[int],
    preds: Sequence[int],
    *,
    classes: Sequence[str] = CLASSES,
    method: str = "erm",
    dataset: str = "mixbasic",
    seed: int = 1,
    fold: str | None = "v1",
    bias: str | None = "bias100",
    split: str = "test",
    config_in: str = "hydra",  # hydra: .hydra/config.yaml | summary: summary.json "config" | none
    overrides: Sequence[str] | None = None,
    metrics: dict[str, dict[str, float]] | None = None,
) -> Path:
    """A run dir as `fermix train` leaves it: predictions_<split>.csv, summary.json, .hydra/."""
    run_dir.mkdir(parents=True, exist_ok=True)
    y, p = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    probs = np.full((len(p), len(classes)), 0.1 / max(len(classes) - 1, 1))
    probs[np.arange(len(p)), p] = 0.9
    write_predictions_csv(run_dir / f"predictions_{split}.csv", [f"s{i}" for i in range(len(p))], y, probs, classes)
    dataset_cfg: dict[str, Any] = {"name": dataset}
    if fold is not None:
        dataset_cfg["fold"] = fold
    if bias is not None:
        dataset_cfg["bias"] = bias
    config = {"seed": seed, "method": {"name": method}, "dataset": dataset_cfg}
    labelled = y >= 0
    acc = float((y[labelled] == p[labelled]).mean()) if labelled.any() else float("nan")
    per_class_acc = {  # as train writes it: null for a class without samples
        name: (float((p[y == k] == k).mean()) if (y == k).any() else None) for k, name in enumerate(classes)
    }
    summary: dict[str, Any] = {
        "method": method,
        "dataset": dataset,
        "run_dir": str(run_dir),
        "seed": seed,
        "metrics": metrics if metrics is not None else {split: {"acc": acc}},
        "per_class_acc": {split: per_class_acc},
    }
    if config_in == "summary":
        summary["config"] = config
    atomic_write_json(run_dir / "summary.json", summary)
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    if config_in == "hydra":
        (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config))
    default_overrides = [f"seed={seed}"] + ([f"dataset.fold={fold}"] if fold else [])
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(list(overrides or default_overrides)))
    return run_dir


def two_folds(sweep: Path, **kwargs: Any) -> tuple[Path, Path]:
    """Fold v1 with 10 test images (9 right) and fold v2 with 30 (15 right): pooled 24/40 = 0.6,
    mean of the fold accuracies (0.9 + 0.5) / 2 = 0.7."""
    v1 = fabricate_run(sweep / "0", *per_class({"a": (4, 4), "b": (3, 3), "c": (2, 3)}), fold="v1", **kwargs)
    v2 = fabricate_run(sweep / "1", *per_class({"a": (5, 10), "b": (6, 10), "c": (4, 10)}), fold="v2", **kwargs)
    return v1, v2


def write_csv_log(run_dir: Path, losses: Sequence[float], val_acc: Sequence[float], stage: str = "") -> Path:
    """csv/[<stage>/]metrics.csv as Lightning's CSVLogger writes it for an erm run: per epoch a
    learning-rate row (no epoch), a validation row and a training row, each leaving the others' columns
    empty (layout copied from a real `fermix train logger=csv` run)."""
    header = "epoch,lr-Adam/all,step,train/ce_epoch,train/loss_epoch,train/skipped,val/acc,val/macro_f1\n"
    lines = []
    for epoch, (loss, acc) in enumerate(zip(losses, val_acc, strict=True)):
        step = 2 * epoch + 1
        lines.append(f",0.001,{step - 1},,,,,\n")
        lines.append(f"{epoch},,{step},,,,{acc},{acc / 2}\n")
        lines.append(f"{epoch},,{step},{loss},{loss},0.0,,\n")
    path = run_dir / "csv" / stage / "metrics.csv" if stage else run_dir / "csv" / "metrics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "".join(lines))
    return path


def assert_picture(path: Path) -> None:
    """A PNG that decodes to a sensible size and is not one flat colour: text, lines and fills."""
    from matplotlib.image import imread

    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 200, (path, image.shape)
    rgb = (image[..., :3] * 255).astype(np.int64).reshape(-1, 3)
    assert rgb.std() > 10, path
    assert len(np.unique(rgb @ np.array([1 << 16, 1 << 8, 1]))) > 50, path
