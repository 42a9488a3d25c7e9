"""`dataset=synthetic`: the procedural face benchmark as a dataset adapter.

Train, val and test are generated (never carved), with disjoint subjects (`dataset=synthetic_identity`,
task=identity: the same people in every split, labelled by who they are). Every sample carries
image, landmarks, expr (observed, possibly noisy or -1), expr_clean, expr_soft, au (occurrence,
NaN where unlabelled), au_intensity, va, domain, subject and sample_id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from fermix.data.action_units import SYNTHETIC_AUS
from fermix.data.datasets.base import DatasetAdapter
from fermix.data.label_spaces import canonical_name
from fermix.data.synthetic.config import SyntheticConfig
from fermix.data.synthetic.design import domain_styles, label_space
from fermix.data.synthetic.store import SplitData, load_or_build

KEYS = frozenset(
    {"image", "landmarks", "expr", "expr_clean", "expr_soft", "au", "au_intensity", "va", "domain", "subject",
     "sample_id"}
)  # fmt: skip


class SyntheticDataset(DatasetAdapter):
    name = "synthetic"
    Config = SyntheticConfig  # the generator's settings are the dataset's options
    keys = KEYS
    au_names = SYNTHETIC_AUS

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.config = SyntheticConfig.from_mapping(cfg)
        self.label_space = label_space(self.config)
        self.domain_names = [s.name for s in domain_styles(self.config)]
        self.num_domains = self.config.num_domains
        self.cache_dir = self.config.cache_dir if self.config.cache else None
        self._splits: dict[str, SplitData] | None = None

    # Arrays are opened lazily and dropped when pickled (DataLoader workers under spawn reopen
    # the memory maps instead of receiving copies of every image).
    @property
    def splits(self) -> dict[str, SplitData]:
        if self._splits is None:
            self._splits = load_or_build(self.config, self.cache_dir)
        return self._splits

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.cache_dir is not None:
            state["_splits"] = None
        return state

    def records(self) -> pd.DataFrame:
        frames = []
        for split, data in self.splits.items():
            m = data.meta
            n = len(data)
            frames.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"{split}/{i:06d}" for i in range(n)],
                        "path": "",
                        "expr": m["expr"].astype(np.int64),
                        "split": split,
                        "subject": [f"p{s:04d}" for s in m["subject"]],
                        "source": [self.domain_names[d] for d in m["domain"]],
                        "domain": m["domain"].astype(np.int64),
                        "row": np.arange(n, dtype=np.int64),
                        "part": split,  # the generated split: `split` may change when val is carved from train
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def load(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return self.sample(str(row["part"]), int(row["row"]))

    def task_labels(self, records: pd.DataFrame) -> dict[str, np.ndarray]:
        """`expr` (N,), `au` occurrence (N, A) and `va` (N, 2) of `records`, NaN where unlabelled,
        read from the label tables (no image is touched), in the same values `sample` gives."""
        n, n_au = len(records), len(self.au_names)
        au = np.full((n, n_au), np.nan, np.float32)
        va = np.full((n, 2), np.nan, np.float32)
        parts = records["part"].to_numpy()
        rows = records["row"].to_numpy()
        for part in np.unique(parts):
            at = np.flatnonzero(parts == part)
            m = self.splits[str(part)].meta
            r = rows[at]
            has_au, has_va = m["has_au"][r].astype(bool), m["has_va"][r].astype(bool)
            au[at[has_au]] = (m["au_intensity"][r[has_au]] >= self.config.au_threshold).astype(np.float32)
            va[at[has_va]] = m["va"][r[has_va]]
        return {"expr": records["expr"].to_numpy(np.int64), "au": au, "va": va}

    def sample(self, split: str, i: int) -> dict[str, Any]:
        data = self.splits[split]
        m = data.meta
        n_cls = self.label_space.num_classes
        soft = np.zeros(n_cls, np.float32)
        if self.config.task == "identity":  # the label is the person, never noisy; `cls` is the expression drawn
            clean = int(m["expr"][i])
            soft[clean] = 1.0
        else:
            clean = int(m["cls"][i])
            soft[clean] += m["blend_w"][i]
            if m["blend_cls"][i] >= 0:
                soft[m["blend_cls"][i]] += 1.0 - m["blend_w"][i]
        intensity = m["au_intensity"][i]
        au = (intensity >= self.config.au_threshold).astype(np.float32)
        if not m["has_au"][i]:
            au = np.full_like(au, np.nan)
            intensity = np.full_like(intensity, np.nan)
        va = m["va"][i] if m["has_va"][i] else np.full(2, np.nan, np.float32)
        return {
            "image": np.array(data.images[i]),  # a writable copy of the memory-mapped row
            "landmarks": m["landmarks"][i].copy(),
            "expr": int(m["expr"][i]),
            "expr_clean": clean,
            "expr_soft": soft,
            "au": au,
            "au_intensity": np.asarray(intensity, np.float32),
            "va": np.asarray(va, np.float32),
            "domain": int(m["domain"][i]),
            "subject": f"p{int(m['subject'][i]):04d}",
            "sample_id": f"{split}/{i:06d}",
        }

    def writer_samples(self, splits: tuple[str, ...] = ("train", "val", "test")) -> Iterator[dict[str, Any]]:
        """Samples in the writers' vocabulary (fermix.data.writers): names instead of indices."""
        names = [canonical_name(c) for c in self.label_space.classes]
        for split in splits:
            if split not in self.splits:
                continue
            for i in range(len(self.splits[split])):
                s = self.sample(split, i)
                yield {
                    "image": s["image"],
                    "sample_id": s["sample_id"].replace("/", "_"),
                    "split": split,
                    "expr": names[s["expr"]] if s["expr"] >= 0 else None,
                    "domain": self.domain_names[s["domain"]],
                    "subject": s["subject"],
                    "landmarks": s["landmarks"],
                    "au": s["au"],
                    "au_names": SYNTHETIC_AUS,
                    "va": s["va"],
                }
