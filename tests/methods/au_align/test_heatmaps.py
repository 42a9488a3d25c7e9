"""Target maps drawn from the batch's landmarks (spec §1.3, §2.3; §8.1 geometry and joint augmentation)."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.transforms import v2

from fermix.data.torch_dataset import RecordsDataset
from fermix.data.transforms import build_transform
from fermix.errors import FermixError
from fermix.methods.au_align.heatmaps import MapSpec, batch_maps, class_units, draw_au_map
from fermix.preprocess.au_maps import au_map, au_map_from_units
from tests.methods.au_align.faces import BASIC7, FACE, cosine, face


def _maps(labels, lm=FACE, size=(224, 224), **spec):
    lms = torch.tensor(np.asarray(lm), dtype=torch.float32)[None].repeat(len(labels), 1, 1)
    return batch_maps(lms, torch.tensor(labels), BASIC7, size, MapSpec(**spec))


def test_class_maps_are_the_au_maps_module_maps_of_each_label():
    maps, valid = _maps([1, 2, 3, 4, 5, 6], lm=face(64), size=(64, 64))
    assert valid.all()
    for i, label in enumerate([1, 2, 3, 4, 5, 6]):
        ref, ok = au_map(face(64).astype(np.float32), BASIC7[label], (64, 64))
        assert ok
        np.testing.assert_allclose(maps[i, 0].numpy(), ref, atol=1e-6)


def test_happy_map_sits_on_the_lip_corners_and_cheeks_not_on_the_brows():
    maps, _ = _maps([BASIC7.index("happy")])
    heat = maps[0, 0].numpy()
    for point in (48, 54):  # AU12: circles on the lip corners
        x, y = FACE[point].astype(int)
        assert heat[y, x] > 0.9
    for point in (41, 46):  # AU6: below each eye, H/6 lower
        x, y = FACE[point].astype(int)
        assert heat[y + 37, x] > 0.9
    for point in (19, 24):  # no brow AU in happiness
        x, y = FACE[point].astype(int)
        assert heat[y, x] < 0.01
    assert heat[0, 0] < 0.01 and heat[-1, -1] < 0.01


def test_the_map_follows_the_landmarks_when_the_face_moves():
    shifted = FACE + np.array([20.0, -12.0])
    a, _ = _maps([BASIC7.index("surprise")])
    b, _ = _maps([BASIC7.index("surprise")], lm=shifted)
    moved = np.roll(np.roll(a[0, 0].numpy(), 20, axis=1), -12, axis=0)
    assert cosine(moved[20:-20, 20:-20], b[0, 0].numpy()[20:-20, 20:-20]) > 0.97


def test_zoom_keeps_the_regions_in_proportion_to_a_magnified_face():
    z = 1.25
    magnified = (FACE - 111.5) * z + 111.5  # the face as a resize-then-centre-crop pipeline shows it
    ref = au_map(FACE, "fear", (224, 224))[0]
    big = cv2.resize(ref, (280, 280), interpolation=cv2.INTER_LINEAR)[28:252, 28:252]
    with_zoom = draw_au_map(magnified, class_units(["fear"], "code")[0], (224, 224), MapSpec(zoom=z))[0]
    without = draw_au_map(magnified, class_units(["fear"], "code")[0], (224, 224), MapSpec())[0]
    assert cosine(with_zoom, big) > 0.97
    assert cosine(with_zoom, big) > cosine(without, big) + 0.02


def test_neutral_unlabelled_failed_landmarks_and_unknown_classes_have_no_map():
    lm = torch.tensor(FACE, dtype=torch.float32)[None].repeat(4, 1, 1)
    lm[2, 5] = float("inf")
    maps, valid = batch_maps(lm, torch.tensor([0, -1, 1, 1]), BASIC7, (224, 224), MapSpec())
    assert valid.tolist() == [False, False, False, True]
    assert maps[:3].abs().sum() == 0
    toy, toy_valid = batch_maps(lm[:1], torch.tensor([0]), ("a", "b"), (224, 224), MapSpec())
    assert not toy_valid.any() and toy.abs().sum() == 0


def test_generic_map_is_class_agnostic_and_exists_for_neutral():
    maps, valid = _maps([0, 1], kind="aus_generic")
    assert valid.all()
    torch.testing.assert_close(maps[0], maps[1])
    np.testing.assert_allclose(maps[0, 0].numpy(), au_map_from_units(FACE, range(20), (224, 224))[0], atol=1e-6)


def test_landmark_prior_peaks_on_every_non_jaw_landmark_with_sigma_8px():
    maps, valid = _maps([0], kind="landmarks")
    heat = maps[0, 0].numpy()
    assert valid.all() and heat.max() == pytest.approx(1.0) and heat.min() == pytest.approx(0.0, abs=1e-6)
    for x, y in FACE[17:].round().astype(int):
        assert heat[y, x] > 0.95
    x, y = FACE[8].round().astype(int)  # the chin tip is a jaw point, dropped with jaw=False
    assert heat[y, x] < 0.5
    jaw, _ = _maps([0], kind="landmarks", jaw=True)
    assert jaw[0, 0, y, x] > 0.95
    isolated = torch.full((1, 68, 2), 30.0)  # all points at one spot: the value 8 px away is exp(-1/2)
    single, _ = batch_maps(isolated, None, BASIC7, (224, 224), MapSpec(kind="landmarks"))
    assert float(single[0, 0, 30, 38]) == pytest.approx(np.exp(-0.5), abs=0.01)


def test_unknown_heatmap_type_or_codebook_is_one_sentence():
    with pytest.raises(FermixError, match="unknown heatmap type `blob`"):
        MapSpec(kind="blob")
    with pytest.raises(FermixError, match="unknown AU codebook"):
        MapSpec(codebook="fig9")


def test_joint_augmentation_keeps_image_landmarks_and_map_together():
    """Resize -> rotate -> random resized crop -> flip with a fixed seed (spec §8.1): the map drawn
    from the transformed landmarks peaks where the image's painted lip corners went."""
    image = np.zeros((224, 224, 3), dtype=np.uint8)
    for point in (48, 54):
        cv2.circle(image, tuple(int(v) for v in FACE[point]), 3, (255, 255, 255), -1)
    data = {
        "image_size": 224, "resize": 256, "mean": [0.0] * 3, "std": [1.0] * 3, "interpolation": "bilinear",
        "augment": {"ops": [
            {"_target_": "fermix.data.augment_ops.Rotation", "degrees": 6, "p": 1.0},
            {"_target_": "fermix.data.augment_ops.RandomResizedCrop", "scale": [0.8, 1.0], "ratio": [1.0, 1.0]},
            {"_target_": "torchvision.transforms.v2.RandomHorizontalFlip", "p": 1.0},
        ]},
    }  # fmt: skip
    transform = build_transform(data, train=True)
    assert any(isinstance(t, v2.RandomHorizontalFlip) for t in transform.transforms)
    rows = pd.DataFrame([{"sample_id": "s0"}])
    load = lambda row: {"image": image, "landmarks": FACE.astype(np.float32), "expr": 1}  # noqa: E731
    dataset = RecordsDataset(rows, load, transform)
    sample = dataset[(0, 3)]
    lm = sample["landmarks"]
    assert float(lm[36, 0]) < float(lm[45, 0])  # re-ordered after the flip: 36 is still the image-left eye
    maps, valid = batch_maps(lm[None], torch.tensor([1]), BASIC7, (224, 224), MapSpec())
    heat = maps[0, 0].numpy()
    bright = sample["image"][0].numpy() > 0.5
    ys, xs = np.nonzero(bright)
    assert valid.all() and heat.min() >= 0.0 and heat.max() <= 1.0
    for point in (48, 54):
        x, y = lm[point].tolist()
        near = (np.abs(xs - x) <= 5) & (np.abs(ys - y) <= 5)
        assert near.any()  # the painted dot went where the landmark went
        cx, cy = xs[near].mean(), ys[near].mean()
        assert abs(cx - x) <= 2 and abs(cy - y) <= 2
        assert heat[round(y), round(x)] > 0.9  # the map's plateau is on it
    neutral, neutral_valid = batch_maps(lm[None], torch.tensor([0]), BASIC7, (224, 224), MapSpec())
    assert not neutral_valid.any() and neutral.abs().sum() == 0
