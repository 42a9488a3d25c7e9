"""Shared by the method benchmarks: the trunk option, train loss / accuracy, and the results JSON.

Every method benchmark (iern, au_align, dmue, multitask, causalmer) writes `<--out>/results.json` in one
shape, which benchmarks/all_methods.py reads to build docs/results/summary.md:

    {"benchmark": "iern_synthetic", "trunk": "none" | "identity" | "expression",
     "budget": {...free-form: epochs and the like...},
     "rows": [{"model": "erm", "condition": "", "metric": "ood_acc",
               "mean": 0.535, "std": 0.145, "n": 3, "seeds": [0, 1, 2], "values": [0.658, 0.571, 0.375]}, ...]}

`condition` names the data setting where a benchmark has several ("noise 20%"; "" otherwise); `std` is the
sample std (ddof 1; 0.0 when n = 1); `values` are per seed, in the order of `seeds`, so that a summary can pair
a method with its baseline seed by seed. Metrics are fractions (accuracy 0.93, not 93).
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

TRUNKS = ("none", "identity", "expression")


def trunk_overrides(
    trunk: str, backbone: str, width: int | None, image_size: int = 64, epochs: int | None = None
) -> list[str]:
    """`backbone.pretrained=PATH` for every model of a benchmark (erm too), or nothing for trunk none.

    The trunk comes from benchmarks/pretrain_trunks.py, which builds it on first use and caches it."""
    if trunk == "none":
        return []
    if trunk not in TRUNKS:
        raise ValueError(f"--trunk must be one of {', '.join(TRUNKS)}, not {trunk!r}")
    from pretrain_trunks import ensure_trunk  # benchmarks/ is on sys.path when a benchmark runs as a script

    path = ensure_trunk(trunk, backbone, width=width, image_size=image_size, epochs=epochs)
    return [f"backbone.pretrained={Path(path).resolve()}"]


def final_train_loss(run_dir: Path) -> float:
    """The last epoch's mean training loss (`train/loss_epoch` of the run's CSV logs; the last stage's for a
    staged method). NaN if the run kept no CSV log."""
    files = sorted((run_dir / "csv").rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    for path in reversed(files):
        with path.open(newline="") as f:
            values = [row["train/loss_epoch"] for row in csv.DictReader(f) if row.get("train/loss_epoch")]
        if values:
            return float(values[-1])
    return float("nan")


def train_accuracy(ckpt_path: Path) -> float:
    """Expression accuracy of a checkpoint on its own training split against the labels it trained on
    (un-augmented, eval mode; unlabelled samples, expr < 0, left out): how well it fits, next to its loss."""
    import torch

    from fermix.engine.build import build_method
    from fermix.engine.checkpoint import load_checkpoint
    from fermix.engine.datamodule import FermixDataModule
    from fermix.engine.evaluate import predict_split

    ckpt = load_checkpoint(ckpt_path)
    cfg = ckpt["fermix"]["config"]
    data = {**cfg["data"], "num_workers": 0, "augment": {"random_crop": False, "hflip": 0.0}}
    dm = FermixDataModule(cfg["dataset"], data, seed=int(cfg["seed"]))
    method_cfg = {**cfg["method"], "pretrained": None} if "pretrained" in cfg["method"] else cfg["method"]
    method = build_method(method_cfg, {**cfg["backbone"], "pretrained": None}, dm.build())
    method.load_state_dict({k.removeprefix("method."): v for k, v in ckpt["state_dict"].items()})
    preds = predict_split(method, dm.loader("train"), torch.device("cpu"))
    labels = preds["expr"]
    keep = labels >= 0
    return float((preds["expr_logits"].argmax(1)[keep] == labels[keep]).float().mean())


def row(model: str, metric: str, per_seed: dict[int, float], condition: str = "") -> dict[str, Any]:
    """One results row from {seed: value}; NaN values are left out."""
    seeds = sorted(s for s, v in per_seed.items() if v == v)
    values = [float(per_seed[s]) for s in seeds]
    mean = statistics.fmean(values) if values else float("nan")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"model": model, "condition": condition, "metric": metric, "mean": mean, "std": std,
            "n": len(values), "seeds": seeds, "values": values}  # fmt: skip


def write_results(
    out: Path,
    benchmark: str,
    trunk: str,
    rows: list[dict[str, Any]],
    budget: dict[str, Any] | None = None,
    name: str = "results.json",
) -> Path:
    """Write <out>/<name> in the shared shape (module docstring)."""
    from fermix.utils.io import atomic_write_json

    path = out / name
    atomic_write_json(path, {"benchmark": benchmark, "trunk": trunk, "budget": budget or {}, "rows": rows})
    return path
