"""The reference cosine floors of spec §8.3 on the template face (cosine with each class's AU map,
mean over the 6 classes). They bound what ATT-COS means: ~0.45 is a uniform map, ~0.62 a face
silhouette, ~0.73 "looks at facial parts", and only class-specific attention goes beyond."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import torch

from fermix.methods.au_align.heatmaps import MapSpec, batch_maps
from tests.methods.au_align.faces import AU_CLASSES, BASIC7, FACE, cosine

TOL = 0.05


@pytest.fixture(scope="module")
def maps() -> dict[str, np.ndarray]:
    labels = [BASIC7.index(c) for c in AU_CLASSES]
    lm = torch.tensor(FACE, dtype=torch.float32)[None].repeat(len(labels), 1, 1)
    heat, valid = batch_maps(lm, torch.tensor(labels), BASIC7, (224, 224), MapSpec())
    assert valid.all()
    return {c: heat[i, 0].numpy() for i, c in enumerate(AU_CLASSES)}


def _mean_cos(reference: np.ndarray, maps: dict[str, np.ndarray]) -> float:
    return float(np.mean([cosine(reference, m) for m in maps.values()]))


def _kind(kind: str, **spec) -> np.ndarray:
    heat, valid = batch_maps(torch.tensor(FACE, dtype=torch.float32)[None], torch.tensor([0]), BASIC7, (224, 224),
                             MapSpec(kind=kind, **spec))  # fmt: skip
    assert valid.all()
    return heat[0, 0].numpy()


def test_uniform_map_floor_is_0_45(maps):
    assert _mean_cos(np.ones((224, 224)), maps) == pytest.approx(0.45, abs=TOL)


def test_face_shaped_blob_floor_is_0_62(maps):
    blob = np.zeros((224, 224), np.float32)
    cv2.fillConvexPoly(blob, cv2.convexHull(FACE.astype(np.int32)), 1.0)
    assert _mean_cos(blob, maps) == pytest.approx(0.62, abs=TOL)


def test_generic_au_map_floor_is_0_73(maps):
    assert _mean_cos(_kind("aus_generic"), maps) == pytest.approx(0.73, abs=TOL)


def test_landmark_gaussian_prior_lies_between_0_41_and_0_76(maps):
    per_class = [cosine(_kind("landmarks"), m) for m in maps.values()]
    assert min(per_class) >= 0.41 - TOL and max(per_class) <= 0.76 + TOL


def test_pairwise_class_map_cosines(maps):
    pairs = {(a, b): cosine(maps[a], maps[b]) for a, b in itertools.combinations(AU_CLASSES, 2)}
    assert np.mean(list(pairs.values())) == pytest.approx(0.55, abs=TOL)
    assert min(pairs, key=pairs.get) == ("happy", "surprise")
    assert pairs["happy", "surprise"] == pytest.approx(0.16, abs=TOL)
    assert max(pairs, key=pairs.get) == ("fear", "surprise")
    assert pairs["fear", "surprise"] == pytest.approx(0.92, abs=TOL)
