"""`fermix test ckpt=...`: rebuild everything from the checkpoint alone and evaluate one split.

Only what cannot change the model may be overridden: the dataset's paths, the evaluation dataset
itself (cross-dataset evaluation, with labels mapped by class name), batch size, loader workers,
device and precision. The CLI refuses anything else before we get here.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fermix.data.label_spaces import LabelSpace, canonical_name
from fermix.engine.artifacts import print_metrics_table
from fermix.engine.build import plain
from fermix.engine.datamodule import FermixDataModule
from fermix.engine.evaluate import evaluate_split, resolve_device
from fermix.engine.restore import restore_method
from fermix.errors import FermixError
from fermix.protocols import EvalContext, EvalProtocol, declared, set_values
from fermix.registry import dataset_adapter, dataset_adapter_name
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
    legacy = "adapter" in override and "adapter" not in trained  # a checkpoint from before presets named it
    if legacy and dataset_adapter_name(override) == dataset_adapter_name(trained):
        override = {str(k): v for k, v in override.items() if k != "adapter"}  # the same adapter: nothing to merge
    options = {f.name for f in fields(dataset_adapter(trained).Config)}  # an older checkpoint may lack newer ones
    unknown = [str(k) for k in override if k not in trained and k not in options]
    if unknown:  # merging would add the key silently and nothing would read it
        raise FermixError(
            f"dataset.{unknown[0]} is not an option of dataset {trained.get('name')}, which the checkpoint was "
            f"trained on (its options: {', '.join(str(k) for k in trained)})"
        )
    merged = OmegaConf.merge(trained, override)
    return merged, True


def protocols_of(method: Any, adapter: Any) -> dict[str, type[EvalProtocol]]:
    """The evaluation protocols this checkpoint offers: its method's and its evaluation dataset's."""
    return declared(type(method), type(adapter))


def run_protocols(cfg: DictConfig, protocols: dict[str, type[EvalProtocol]], ctx: EvalContext) -> dict[str, Any]:
    """Run each protocol whose override is set (in the order the owners declare them); their results by
    summary key. A protocol key set for a checkpoint that does not offer it is refused by the CLI."""
    results: dict[str, Any] = {}
    for key, value in set_values(cfg, protocols).items():
        protocol = protocols[key]
        if not protocol.enabled(value):
            continue
        out = protocol().run(value, ctx)
        if out:
            results[protocol.summary_key or key] = out
    return results


def run_test(cfg: DictConfig) -> dict[str, Any]:
    ckpt_path = Path(cfg.ckpt)
    method, meta, trained = restore_method(ckpt_path)
    info = method.data_info
    dataset_cfg, same_dataset = _eval_dataset_cfg(trained.dataset, cfg.get("dataset"))
    data_cfg = trained.data
    for key in ("batch_size", "num_workers", "bad_images"):
        if cfg.data.get(key) is not None:
            data_cfg[key] = cfg.data[key]

    wrapper = type(method).sample_wrapper(trained)  # data_cfg is trained.data
    dm = FermixDataModule(dataset_cfg, data_cfg, seed=int(trained.seed), wrapper=wrapper, augment=False)
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
                split,
                expected,
                found,
            )
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    device = resolve_device(cfg.get("accelerator"))
    precision = cfg.get("precision") or trained.trainer.get("precision")
    target_map = label_map(info.label_space, data_info.label_space)
    result = evaluate_split(
        method, dm.loader(split), split, run_dir, device=device, precision=str(precision), target_map=target_map
    )
    print_metrics_table(result["metrics"], title=f"{method.name} · {dataset_cfg.name} {split} · {ckpt_path.name}")

    def evaluate_with(transform: Any, out_dir: Path) -> dict[str, Any]:
        return evaluate_split(method, dm.loader(split), split, out_dir, device=device, precision=str(precision),
                              target_map=target_map, transform=transform)  # fmt: skip

    context = EvalContext(
        method=method, data_info=data_info, split=split, loader=dm.loader(split), records=dm.split_records(split),
        run_dir=run_dir, result=result, evaluate_with=evaluate_with,
        show=lambda metrics, title: print_metrics_table(metrics, title=title), log=log.info,
    )  # fmt: skip
    extra = run_protocols(cfg, protocols_of(method, dm.adapter), context)
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
    summary.update(extra)
    atomic_write_json(run_dir / "summary.json", summary)
    return summary
