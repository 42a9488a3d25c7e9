"""`fermix test ckpt=...`: rebuild everything from the checkpoint alone and evaluate one split.

Only what cannot change the model may be overridden: the dataset's paths, the evaluation dataset
itself (cross-dataset evaluation, with labels mapped by class name), batch size, loader workers,
device and precision. The CLI refuses anything else before we get here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fermix.data.info import DataInfo
from fermix.data.label_spaces import LabelSpace, canonical_name
from fermix.engine.artifacts import print_metrics_table
from fermix.engine.build import plain
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.evaluate import evaluate_split, resolve_device
from fermix.engine.restore import restore_method
from fermix.errors import FermixError
from fermix.utils.io import atomic_write_json

log = logging.getLogger("fermix")


def label_map(model: LabelSpace, data: LabelSpace) -> torch.Tensor | None:
    """Index map from the evaluation data's classes to the model's, by canonical class name."""
    if model.classes == data.classes:
        return None
    known = {canonical_name(c): i for i, c in enumerate(model.classes)}
    unknown = [c for c in data.classes if canonical_name(c) not in known]
    if unknown:
        raise FermixError(
            f"the evaluation dataset has classes the model was not trained on ({', '.join(unknown)}); "
            f"the model knows {', '.join(model.classes)}"
        )
    return torch.tensor([known[canonical_name(c)] for c in data.classes])


def _eval_dataset_cfg(trained: DictConfig, override: Any) -> tuple[DictConfig, bool]:
    """The dataset config to evaluate on, and whether it is the training dataset."""
    if override is None:
        return trained, True
    if "name" in override and override["name"] != trained.get("name"):
        return override, False
    unknown = [str(k) for k in override if k not in trained]
    if unknown:  # merging would add the key silently and nothing would read it
        raise FermixError(
            f"dataset.{unknown[0]} is not an option of dataset {trained.get('name')}, which the checkpoint was "
            f"trained on (its options: {', '.join(str(k) for k in trained)})"
        )
    merged = OmegaConf.merge(trained, override)
    return merged, True


def write_submission(out: Path, records: Any, preds: dict[str, Any], info: DataInfo) -> dict[str, int]:
    """ABAW 2020 files (one txt per video and task) from a split's predictions; returns files per task.

    Predictions are matched to records by sample id, first occurrence first (a sequence model
    sees a frame twice where windows overlap; the first prediction counts, as in the original).
    AU decisions use the method's tuned thresholds when it predicts `au_pred`, else σ > 0.5; a
    frame missing from a video repeats the previous frame's prediction.
    """
    import numpy as np

    from fermix.report.abaw_submission import fill_missing_frames, submission_frames, write_abaw_submission

    first: dict[str, int] = {}
    for i, sample_id in enumerate(preds["sample_id"]):
        first.setdefault(str(sample_id), i)
    records = records[records["sample_id"].astype(str).isin(first)]
    rows = np.array([first[str(i)] for i in records["sample_id"]], dtype=np.int64)
    au = preds.get("au_pred")
    if au is None and "au_logits" in preds:
        au = (preds["au_logits"].sigmoid() > 0.5).float()
    tables = submission_frames(
        records,
        expr_index=preds["expr_logits"].argmax(1).numpy()[rows] if "expr_logits" in preds else None,
        class_names=tuple(info.label_space.classes),
        au_pred=au.numpy()[rows] if au is not None else None,
        au_names=tuple(info.extras.get("au_names") or ()),
        va=preds["va"].numpy()[rows] if "va" in preds else None,
    )
    return {task: len(write_abaw_submission(out / task, task, fill_missing_frames(t))) for task, t in tables.items()}


def _missing_modalities(
    cfg: DictConfig, method: Any, dm: Any, split: str, run_dir: Path, device: Any, precision: str, full: dict
) -> dict[str, Any]:
    """`eval.remove=[t, av, ...]` (or `all`): evaluate again with those modalities zeroed. Per
    setting: the metrics and the drop gap (worse by how much, per metric); per metric: the std of
    the gaps over the settings (the paper's balance statistic) and, when t, a and v were each
    removed alone, each modality's contribution (its drop, normalised to sum to 1)."""
    from fermix.engine.artifacts import print_metrics_table
    from fermix.metrics.multimodal import REMOVAL_SETTINGS, drop_gaps, gap_std, modality_contribution

    remove = (cfg.get("eval") or {}).get("remove")
    if not remove:
        return {}
    settings = list(REMOVAL_SETTINGS) if remove == "all" else [str(r) for r in remove]
    removed: dict[str, dict[str, float]] = {}
    for setting in settings:
        out_dir = run_dir / f"remove_{setting}"
        removed[setting] = evaluate_split(method, dm.loader(split), split, out_dir, device=device,
                                          precision=precision, remove=setting)["metrics"]  # fmt: skip
        print_metrics_table(removed[setting], title=f"{method.name} · {split} · without {setting}")
    names = sorted(k for k in full if all(k in m for m in removed.values()))
    gaps = {k: drop_gaps(full, removed, k) for k in names}
    result: dict[str, Any] = {
        "settings": {s: {"metrics": removed[s], "gap": {k: gaps[k][s] for k in names}} for s in settings},
        "gap_std": {k: gap_std(gaps[k]) for k in names},
    }
    print_metrics_table(result["gap_std"], title=f"{method.name} · std of the drop gaps over {', '.join(settings)}")
    if {"t", "a", "v"} <= set(removed):
        result["contribution"] = {k: modality_contribution(full, removed, k) for k in names}
    return result


def run_test(cfg: DictConfig) -> dict[str, Any]:
    ckpt_path = Path(cfg.ckpt)
    method, meta, trained = restore_method(ckpt_path)
    info = method.data_info
    dataset_cfg, same_dataset = _eval_dataset_cfg(trained.dataset, cfg.get("dataset"))
    data_cfg = trained.data
    for key in ("batch_size", "num_workers", "bad_images"):
        if cfg.data.get(key) is not None:
            data_cfg[key] = cfg.data[key]

    dm = FermixDataModule(dataset_cfg, data_cfg, seed=int(trained.seed))
    data_info = dm.build()
    dm.check_requires(method.requires, method.name)
    split = str(cfg.split)
    if not dm.has_split(split):
        raise FermixError(f"dataset {dataset_cfg.name} has no `{split}` split to evaluate")
    if same_dataset:
        expected = meta.get("data_fingerprints", {}).get(split)
        found = dm.fingerprints().get(split)
        if expected and found != expected:
            log.warning(
                "the %s split differs from the one this checkpoint was trained with (fingerprint %s, now %s)",
                split, expected, found,
            )
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    device = resolve_device(cfg.get("accelerator"))
    precision = cfg.get("precision") or trained.trainer.get("precision")
    result = evaluate_split(
        method,
        dm.loader(split),
        split,
        run_dir,
        device=device,
        precision=str(precision),
        target_map=label_map(info.label_space, data_info.label_space),
    )
    print_metrics_table(result["metrics"], title=f"{method.name} · {dataset_cfg.name} {split} · {ckpt_path.name}")
    removal = _missing_modalities(cfg, method, dm, split, run_dir, device, str(precision), result["metrics"])
    if cfg.get("abaw_submission"):
        written = write_submission(run_dir / "abaw_submission", dm.split_records(split), result["predictions"], info)
        log.info("ABAW submission files: %s", ", ".join(f"{t} {n}" for t, n in written.items()))
    summary = {
        "checkpoint": str(ckpt_path),
        "method": method.name,
        "trained_on": meta["dataset"],
        "dataset": dataset_cfg.name,
        "split": split,
        "num_samples": result["num_samples"],
        "metrics": {split: result["metrics"]},
        "per_class_acc": {split: result["per_class_acc"]},
        "checkpoint_val_metrics": meta.get("metrics", {}).get("val", {}),
        "eval_config": plain(cfg),
    }
    if removal:
        summary["missing_modality"] = removal
    atomic_write_json(run_dir / "summary.json", summary)
    return summary
