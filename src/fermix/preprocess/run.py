"""`fermix preprocess dataset=<name>`: the Hydra job around the pipeline.

The dataset class that `dataset.adapter` (else `dataset.name`) names lists its raw photos through
the classmethod `raw_items(cfg) -> list[RawItem]`; everything else comes from the `preprocess:` config.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fermix.data.datasets.base import DatasetAdapter
from fermix.data.label_spaces import LabelSpace, get_label_space
from fermix.data.raw import RawItem
from fermix.errors import FermixError
from fermix.preprocess import settings as config
from fermix.preprocess.pipeline import preprocess
from fermix.registry import DATASETS, dataset_adapter_name

log = logging.getLogger("fermix")


def raw_items_of(name: str, dataset_cfg: Mapping[str, Any]) -> list[RawItem]:
    """The raw photos of dataset `name`, or one sentence saying it has none to preprocess."""
    cls = DATASETS.get(dataset_adapter_name({"name": name, **dataset_cfg}))
    if not (isinstance(cls, type) and issubclass(cls, DatasetAdapter) and cls.preprocessable):
        raise FermixError(
            f"dataset {name} cannot be preprocessed; it does not list raw photos (no raw_items), "
            f"so train on it directly or preprocess its images with dataset=imagefolder dataset.root=..."
        )
    items = list(cls.raw_items(dataset_cfg))
    if not items:
        raise FermixError(f"dataset {name} lists no images to preprocess; check dataset.root.")
    return items


def label_space_of(name: str, dataset_cfg: Mapping[str, Any], items: Sequence[RawItem]) -> LabelSpace:
    """The label space the items' labels live in, recorded so the output reads back in the same order.

    In order: the class's own `raw_label_space(cfg)` or class-level `label_space`, the config's
    `label_space` name, its `classes` list, else the sorted labels found (named after the dataset).
    """
    cls = DATASETS.get(dataset_adapter_name({"name": name, **dataset_cfg}))
    declared = cls.raw_label_space(dataset_cfg)
    if declared is not None:
        return declared
    if isinstance(getattr(cls, "label_space", None), LabelSpace):  # a class-level label space (not set per instance)
        return cls.label_space
    if dataset_cfg.get("label_space"):
        return get_label_space(str(dataset_cfg["label_space"]))
    if dataset_cfg.get("classes"):
        return LabelSpace(name, tuple(str(c) for c in dataset_cfg["classes"]))
    labels = sorted({str(i.label) for i in items if i.label is not None}, key=lambda x: (x.casefold(), x))
    return LabelSpace(name, tuple(labels))


def _refuse_output_inside_input(out: Path, dataset_cfg: Mapping[str, Any]) -> None:
    root = dataset_cfg.get("root")
    if not root:
        return
    root_path = Path(str(root)).expanduser().absolute()
    if out == root_path or root_path in out.parents:
        raise FermixError(
            f"preprocess.out={out} is inside dataset.root={root_path}; write the aligned faces outside the raw data."
        )


def run_preprocess(cfg: DictConfig) -> dict[str, Any]:
    """Hydra entry: list raw items, validate settings, run the pipeline, log the outcome."""
    pre = cfg.preprocess
    if not pre.get("out"):
        raise FermixError("preprocess.out is not set; set preprocess.out=/path/to/aligned_faces.")
    out = Path(str(pre.out)).expanduser().absolute()
    dataset_cfg = OmegaConf.to_container(cfg.dataset, resolve=True)
    assert isinstance(dataset_cfg, dict)
    name = str(dataset_cfg["name"])
    settings = config.settings_from_config(pre)
    workers = config.num_workers(pre)
    limit = config.limit(pre)
    progress = config.progress_mode(cfg.get("progress"))
    _refuse_output_inside_input(out, dataset_cfg)

    items = raw_items_of(name, dataset_cfg)
    space = label_space_of(name, dataset_cfg, items)
    meta = {
        "dataset": name,
        "dataset_root": str(Path(str(dataset_cfg["root"])).expanduser().absolute()) if dataset_cfg.get("root") else "",
        "label_space": space.to_dict(),
    }
    report = preprocess(items, settings, out, workers=workers, progress=progress, limit=limit, meta=meta)
    counts = report["counts"]
    log.info(
        "preprocess: %d aligned, %d failed (%d processed now, %d reused) -> %s",
        counts["aligned"],
        counts["failed"],
        counts["processed"],
        counts["reused"],
        out,
    )
    for failure in report["failures"][:5]:
        log.info("  failed: %s (%s)", failure["sample_id"], failure["reason"])
    if len(report["failures"]) > 5:
        log.info("  ... %d more failures listed in %s", len(report["failures"]) - 5, out / "preprocess.json")
    return report
