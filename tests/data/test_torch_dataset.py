"""RecordsDataset: per-sample seeded augmentation."""

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from fermix.data.torch_dataset import RecordsDataset, sample_seed
from fermix.data.transforms import build_transform

CFG = OmegaConf.create({
    "image_size": 56, "resize": 64, "mean": [0.5] * 3, "std": [0.5] * 3,
    "augment": {"random_crop": True, "hflip": 0.5, "rotation": 10.0, "color_jitter": 0.2},
})  # fmt: skip


def _load(row):
    return {"image": np.random.default_rng(row["seed"]).integers(0, 256, (64, 64, 3), dtype=np.uint8)}


def test_sample_augmentation_equals_a_torch_manual_seed_draw_and_leaves_the_global_rng_alone():
    """Seeding only the CPU generator (not torch.manual_seed, which also queues accelerator seeds)
    gives the same augmentation as a full torch.manual_seed would."""
    transform = build_transform(CFG, train=True)
    ds = RecordsDataset(pd.DataFrame({"seed": [3, 4, 5]}), _load, transform, seed=11)
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    for index, epoch in [(0, 0), (1, 0), (2, 5), (1, 7)]:
        got = ds[(index, epoch)]["image"]
        torch.manual_seed(sample_seed(11, epoch, index))
        expected = transform(_load({"seed": [3, 4, 5][index]})["image"])
        torch.random.set_rng_state(before)
        assert torch.equal(got, expected)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert not torch.equal(ds[(1, 0)]["image"], ds[(1, 1)]["image"])
