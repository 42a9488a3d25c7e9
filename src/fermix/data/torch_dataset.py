"""The torch Dataset that turns an adapter's records into sample dicts (DESIGN §1 batch keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from fermix.data.landmarks import reorder_if_mirrored

_SEED_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, epoch, index) over 64 bits


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * _SEED_MIX + epoch * 1_000_003 + index) % (2**63 - 1)


class RecordsDataset(Dataset):
    """Loads records through the adapter and applies the transform.

    Indexed by an int (evaluation) or an `(index, epoch)` pair from the training sampler; in the
    latter case the transform's randomness is seeded from (seed, epoch, index), so augmentation
    does not depend on worker count or on where a run was resumed.
    """

    def __init__(
        self,
        records: pd.DataFrame,
        load: Callable[[dict[str, Any]], dict[str, Any]],
        transform: Callable[[Any], torch.Tensor],
        seed: int = 0,
    ) -> None:
        self.rows = records.to_dict("records")
        self.load = load
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, tuple):
            index, epoch = key
            with torch.random.fork_rng(devices=[]):
                # The CPU generator only: torch.manual_seed also queues a seed for every lazily
                # initialised accelerator (CUDA, XPU, MTIA), formatting a stack trace each time —
                # half of the loader's time per sample. Transforms draw from the CPU generator.
                torch.default_generator.manual_seed(sample_seed(self.seed, epoch, index))
                sample = self._get(index)
        else:
            index = int(key)
            sample = self._get(index)
        sample["index"] = index
        return sample

    def _with_landmarks(self, image: Any, landmarks: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform image and landmarks together, so the landmarks stay in the pixel coordinates
        of the image the network sees. Landmarks use pixel centres at integers (dlib, OpenCV);
        torchvision's keypoints use pixel corners, hence the half-pixel shifts."""
        h, w = (image.shape[:2] if isinstance(image, np.ndarray) else image.shape[-2:])
        points = tv_tensors.KeyPoints(torch.as_tensor(landmarks, dtype=torch.float32) + 0.5, canvas_size=(h, w))
        out, points = self.transform(image, points)
        return out, reorder_if_mirrored(points.as_subclass(torch.Tensor) - 0.5)

    def _get(self, index: int) -> dict[str, Any]:
        sample = dict(self.load(self.rows[index]))
        if sample.get("landmarks") is not None:
            sample["image"], sample["landmarks"] = self._with_landmarks(sample["image"], sample["landmarks"])
        elif "image" in sample:  # feature-only samples (multimodal sequences) have no image to transform
            sample["image"] = self.transform(sample["image"])
        if "expr" in sample:
            sample["expr"] = torch.as_tensor(sample["expr"], dtype=torch.long)
        return sample
