"""One datamodule for every image dataset: adapter records -> splits -> transforms -> loaders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Sampler

from fermix.data.datasets.base import DatasetAdapter
from fermix.data.fingerprint import fingerprint
from fermix.data.info import DataInfo
from fermix.data.samplers import EpochShuffleSampler
from fermix.data.splits import assign_splits
from fermix.data.torch_dataset import RecordsDataset
from fermix.data.transforms import build_transform
from fermix.errors import FermixError
from fermix.methods.base import DatasetWrapper
from fermix.registry import dataset_adapter

SPLITS = ("train", "val", "test")
BAD_IMAGE_POLICIES = ("fail", "skip")

log = logging.getLogger("fermix")


class FermixDataModule(pl.LightningDataModule):
    """Builds the splits once (`build()`), before the method exists, because the method is
    sized from the dataset's label space. Splits carved from train use `data.split_seed`,
    which is deliberately separate from the training seed: runs over several seeds then share
    one validation split and their mean ± std compares like with like.
    """

    def __init__(
        self,
        dataset_cfg: Mapping[str, Any],
        data_cfg: Mapping[str, Any],
        seed: int = 0,
        wrapper: DatasetWrapper | None = None,
        augment: bool = True,
    ) -> None:
        super().__init__()
        # False (fermix test): every split gets the evaluation transform. Evaluation never augments, and a
        # checkpoint's stored augmentation ops (`_target_`s) are then never built from an untrusted file.
        self.augment = augment
        self.dataset_cfg = dataset_cfg
        self.data_cfg = data_cfg
        self.seed = seed
        self.wrapper = wrapper  # the method's sample unit when it is not one image (Method.sample_wrapper)
        self.train_sampler_factory: Callable[[Dataset], Sampler | None] | None = None
        # method.train_sources: several training sources ({name: TrainSource}) instead of one loader
        self.train_sources_factory: Callable[[Mapping[str, Any], int], Mapping[str, Any] | None] | None = None
        self._info: DataInfo | None = None
        self.records: pd.DataFrame | None = None
        self._datasets: dict[str, Dataset] = {}
        # data.bad_images=skip: the samples left out because they could not be read ({sample_id, path, reason})
        self.skipped_images: list[dict[str, str]] = []

    # --- set-up ---------------------------------------------------------------------------
    def build(self) -> DataInfo:
        if self._info is not None:
            return self._info
        adapter: DatasetAdapter = dataset_adapter(self.dataset_cfg)(self.dataset_cfg)
        records = adapter.records()
        if "split" not in records:
            records = records.assign(split=None)
        if bad_image_policy(self.data_cfg) == "skip":
            records = self._drop_unreadable(records, adapter.load)
        split_by = self.data_cfg.get("split_by") or None
        records = assign_splits(
            records,
            val_fraction=float(self.data_cfg.get("val_fraction", 0.1)),
            test_fraction=float(self.data_cfg.get("test_fraction", 0.0)),
            seed=int(self.data_cfg.get("split_seed", 0)),
            group_by="subject" if split_by == "subject" else None,
        )
        self.adapter = adapter
        self.records = records
        extras = dict(adapter.info_extras)  # e.g. a multimodal dataset's feature shapes
        if "au" in adapter.keys and adapter.au_names:
            extras["au_names"] = list(adapter.au_names)
        self._info = DataInfo(
            label_space=adapter.label_space,
            keys=frozenset(adapter.keys),
            image_size=int(self.data_cfg["image_size"]),
            num_domains=int(adapter.num_domains),
            extras=extras,
        )
        return self._info

    def _drop_unreadable(self, records: pd.DataFrame, load: Callable[[dict[str, Any]], Any]) -> pd.DataFrame:
        """data.bad_images=skip: read every sample once (the cost is opt-in), leave out the ones that
        cannot be read, before any split is carved, and say which."""
        rows = records.to_dict("records")

        def problem(row: dict[str, Any]) -> str | None:
            try:
                load(row)
            except FermixError as exc:
                return str(exc)
            return None

        workers = max(1, int(self.data_cfg.get("num_workers", 0) or 0))  # decoders release the GIL
        with ThreadPoolExecutor(max_workers=workers) as pool:
            problems = list(pool.map(problem, rows))
        bad = [i for i, p in enumerate(problems) if p is not None]
        if not bad:
            return records
        self.skipped_images = [
            {"sample_id": str(rows[i]["sample_id"]), "path": str(rows[i].get("path") or ""), "reason": str(problems[i])}
            for i in bad
        ]
        names = [s["path"] or s["sample_id"] for s in self.skipped_images]
        log.warning(
            "data.bad_images=skip: left out %d of %d samples that cannot be read: %s",
            len(bad), len(rows), ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else ""),
        )  # fmt: skip
        kept = records.drop(index=records.index[bad])
        before, after = records["split"].value_counts(), kept["split"].value_counts()
        for split, count in before.items():
            if count and not after.get(split, 0):
                raise FermixError(
                    f"split {split} of dataset {self.dataset_cfg['name']} has no samples after leaving out "
                    f"{len(bad)} unreadable ones (data.bad_images=skip), e.g. {names[0]}"
                )
        return kept.reset_index(drop=True)

    def setup(self, stage: str) -> None:
        """Lightning calls this before it asks for a loader: a fit needs training samples."""
        if stage == "fit":
            self.require_split("train")

    def require_split(self, split: str) -> None:
        """One sentence, before any training step, when a split the job needs is empty."""
        if self.has_split(split):
            return
        assert self.records is not None
        name = self.dataset_cfg["name"]
        counts = self.records["split"].value_counts()
        where = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
        raise FermixError(
            f"split {split} of dataset {name} has no samples (the {len(self.records)} samples are in: {where}); "
            f"check the dataset's split folders or manifest"
        )

    def reseed(self, seed: int) -> None:
        """A new training seed (the next stage of a staged method): new sample order and augmentation."""
        self.seed = seed
        self._datasets.pop("train", None)

    @property
    def info(self) -> DataInfo:
        return self.build()

    def check_requires(self, requires: frozenset[str], method_name: str) -> None:
        """Fail at set-up, in one sentence, when the dataset cannot feed the method."""
        missing = sorted(set(requires) - set(self.info.keys))
        if missing:
            name = self.dataset_cfg["name"]
            raise FermixError(
                f"method {method_name} needs {', '.join(f'`{k}`' for k in missing)}, "
                f"which dataset {name} does not supply"
            )

    def split_records(self, split: str) -> pd.DataFrame:
        self.build()
        assert self.records is not None
        return self.records[self.records["split"] == split]

    def has_split(self, split: str) -> bool:
        return len(self.split_records(split)) > 0

    def fingerprints(self) -> dict[str, str]:
        return {s: fingerprint(self.split_records(s)) for s in SPLITS if self.has_split(s)}

    def split_sizes(self) -> dict[str, int]:
        return {s: len(self.split_records(s)) for s in SPLITS}

    def dataset(self, split: str) -> Dataset:
        """The split's samples: one per image, or what the method's dataset wrapper makes of them
        (`wrapper`, e.g. windows of frames), whose loaders then use the wrapped dataset's collate."""
        if split not in self._datasets:
            self.require_split(split)
            records = self.split_records(split)
            transform = build_transform(self.data_cfg, train=self.augment and split == "train")
            dataset = RecordsDataset(records, self.adapter.load, transform, seed=self.seed)
            if self.wrapper is not None:
                dataset = self.wrapper.wrap(dataset, records, self.frame_labels(split), split, self.seed)
            self._datasets[split] = dataset
        return self._datasets[split]

    def task_labels(self, split: str) -> dict[str, np.ndarray]:
        """Label arrays of the split's samples (see `frame_labels`); with a dataset wrapper, one row per
        wrapped sample (windows: a window's tasks carry its first frame's labels)."""
        labels = self.frame_labels(split)
        return self.wrapper.task_labels(self.dataset(split), labels) if self.wrapper is not None else labels

    def frame_labels(self, split: str) -> dict[str, np.ndarray]:
        """The split's label arrays without loading an image: `expr` (N,), `au` (N, A), `va` (N, 2).

        −1 / NaN mark unlabelled entries. An adapter may give them (`task_labels(records)`); otherwise
        they come from the records' columns (`expr`, the AU names, `valence`/`arousal`).
        """
        records = self.split_records(split)
        given = self.adapter.task_labels(records)
        if given is not None:
            return dict(given)
        labels: dict[str, np.ndarray] = {}
        if "expr" in records:
            labels["expr"] = records["expr"].to_numpy(np.int64)
        au_names = list(self.info.extras.get("au_names") or [])
        if au_names and all(a in records for a in au_names):
            labels["au"] = records[au_names].to_numpy(np.float32)
        if {"valence", "arousal"} <= set(records):
            labels["va"] = records[["valence", "arousal"]].to_numpy(np.float32)
        return labels

    # --- loaders --------------------------------------------------------------------------
    def _rank_batch_size(self) -> int:
        """`data.batch_size` is global: under DDP each of the N ranks loads batch_size / N."""
        batch = int(self.data_cfg["batch_size"])
        world = self.trainer.world_size if self.trainer is not None else 1
        if batch % world:
            raise FermixError(f"data.batch_size={batch} cannot be split evenly over {world} processes")
        return batch // world

    def loader(self, split: str, train: bool = False, batch_size: int | None = None) -> DataLoader:
        dataset = self.dataset(split)
        workers = int(self.data_cfg.get("num_workers", 0))
        sampler = None
        if train:
            if self.train_sampler_factory is not None:
                sampler = self.train_sampler_factory(dataset)
            if sampler is None:
                sampler = EpochShuffleSampler(len(dataset), seed=self.seed)
        return DataLoader(
            dataset,
            batch_size=batch_size or int(self.data_cfg["batch_size"]),
            sampler=sampler,
            shuffle=False,
            drop_last=bool(self.data_cfg.get("drop_last", False)) if train else False,
            num_workers=workers,
            persistent_workers=workers > 0 and train,
            pin_memory=torch.cuda.is_available(),
            collate_fn=getattr(dataset, "collate_fn", None),
        )

    def source_loaders(self) -> dict[str, DataLoader] | None:
        """One training loader per source the method names (None: the method wants one loader).

        Each source batch is `data.batch_size × batch_scale` (the original multitask recipe: 20
        images per task per step) and drops its last partial batch, so every step has all sources.
        """
        if self.train_sources_factory is None:
            return None
        sources = self.train_sources_factory(self.task_labels("train"), self.seed)
        if not sources:
            return None
        dataset = self.dataset("train")
        workers = int(self.data_cfg.get("num_workers", 0))
        return {
            name: DataLoader(
                dataset,
                batch_size=self._rank_batch_size() * int(source.batch_scale),
                sampler=source.sampler,
                drop_last=True,
                num_workers=workers,
                persistent_workers=workers > 0,
                pin_memory=torch.cuda.is_available(),
                collate_fn=getattr(dataset, "collate_fn", None),
            )
            for name, source in sources.items()
        }

    # Lightning's fit loops (one per rank) use these; single-process evaluation calls loader() directly.
    def train_dataloader(self) -> DataLoader | CombinedLoader:
        sources = self.source_loaders()
        if sources is not None:
            # A step takes one batch of every source; the epoch ends with the shortest (spec: min_k).
            return CombinedLoader(sources, mode="min_size")
        return self.loader("train", train=True, batch_size=self._rank_batch_size())

    def val_dataloader(self) -> DataLoader | list:
        if not self.has_split("val"):  # recipes without validation (IERN trains to the last epoch)
            return []
        return self.loader("val", batch_size=self._rank_batch_size())


def bad_image_policy(data_cfg: Mapping[str, Any]) -> str:
    """`data.bad_images`: fail (the default: the first unreadable image stops the job, naming the file)
    or skip (every image is read once up front and the unreadable ones are left out and reported)."""
    policy = str(data_cfg.get("bad_images") or "fail").strip().lower()
    if policy not in BAD_IMAGE_POLICIES:
        raise FermixError(f"data.bad_images={policy} is not one of {', '.join(BAD_IMAGE_POLICIES)}")
    return policy
