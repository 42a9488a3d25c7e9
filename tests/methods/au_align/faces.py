"""The spec's §8.1 template face (shared with tests/preprocess/test_au_maps.py) and small helpers."""

from __future__ import annotations

import numpy as np
import torch

from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from tests.preprocess.test_au_maps import template

BASIC7 = get_label_space("basic7").classes  # neutral, happy, sad, surprise, fear, disgust, anger
AU_CLASSES = ("anger", "disgust", "fear", "happy", "sad", "surprise")
FACE = template()


def face(size: float = 224.0) -> np.ndarray:
    return template(size)


def info(image_size: int = 32) -> DataInfo:
    return DataInfo(get_label_space("basic7"), frozenset({"image", "expr", "landmarks"}), image_size)


def landmarks_batch(labels: list[int], size: float = 32.0) -> torch.Tensor:
    return torch.tensor(template(size), dtype=torch.float32)[None].repeat(len(labels), 1, 1)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
