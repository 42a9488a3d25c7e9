"""The training augmentation: the default pipeline is unchanged, each op does what it says, the
published recipes in docs/augmentation.md build and run, landmarks follow the pixels, and ops lists
stored before `_target_` (engine/legacy.py) give the very transforms fermix built from them then."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torchvision import tv_tensors
from torchvision.transforms import v2

from fermix.data.torch_dataset import RecordsDataset
from fermix.data.transforms import build_transform
from fermix.engine.legacy import upgrade_config
from fermix.errors import FermixError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "augmentation.md"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "legacy_checkpoint" / "augment.json"
HFLIP = "torchvision.transforms.v2.RandomHorizontalFlip"
GRAYSCALE = "torchvision.transforms.v2.RandomGrayscale"
BASE = {"image_size": 56, "resize": 64, "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3}
PIXELS = {**BASE, "mean": [0.0] * 3, "std": [1 / 255] * 3}  # output back in 0-255 units


def _legacy_build_transform(data_cfg, train):
    """The builder as it was before `data.augment.ops` existed (frozen copy, the reference)."""
    size = int(data_cfg["image_size"])
    resize = int(data_cfg.get("resize") or size)
    interp = {"bilinear": v2.InterpolationMode.BILINEAR, "nearest": v2.InterpolationMode.NEAREST}[
        str(data_cfg.get("interpolation", "bilinear"))
    ]
    ops = [v2.ToImage(), v2.Resize((resize, resize), interpolation=interp, antialias=True)]
    aug = data_cfg.get("augment") or {}
    if train:
        if aug.get("random_crop", True) and resize > size:
            ops.append(v2.RandomCrop(size))
        else:
            ops.append(v2.CenterCrop(size))
        if aug.get("hflip", 0.0):
            ops.append(v2.RandomHorizontalFlip(float(aug["hflip"])))
        if aug.get("rotation", 0):
            ops.append(v2.RandomRotation(float(aug["rotation"]), interpolation=interp))
        jitter = float(aug.get("color_jitter", 0.0) or 0.0)
        if jitter:
            ops.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    else:
        ops.append(v2.CenterCrop(size))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(data_cfg["mean"], data_cfg["std"])]
    return v2.Compose(ops)


def op(target, **arguments):
    """A `data.augment.ops` entry: fermix's op by class name, or a torchvision transform by its path."""
    return {"_target_": target if "." in target else f"fermix.data.augment_ops.{target}", **arguments}


def _image(seed=0, size=64):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _points(size=64):
    return tv_tensors.KeyPoints(torch.rand(68, 2, generator=torch.Generator().manual_seed(1)) * size,
                                canvas_size=(size, size))


def _run(transform, seed, *inputs):
    torch.manual_seed(seed)
    return transform(*inputs)


def _train(ops, cfg=BASE):
    return build_transform({**cfg, "augment": {"ops": ops}}, train=True)


# --- the default pipeline -----------------------------------------------------------------------
LEGACY_CONFIGS = {
    "train.yaml": {**BASE, "image_size": 64, "resize": 72,
                   "augment": {"random_crop": True, "hflip": 0.5, "rotation": 0, "color_jitter": 0.0, "ops": None}},
    "all keys": {**BASE, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.4],
                 "augment": {"random_crop": True, "hflip": 0.5, "rotation": 15, "color_jitter": 0.2}},
    "no crop, no flip": {**BASE, "resize": 56, "interpolation": "nearest",
                         "augment": {"random_crop": False, "hflip": 0}},
    "no augment key": BASE,
}


@pytest.mark.parametrize("name", list(LEGACY_CONFIGS))
@pytest.mark.parametrize("train", [True, False])
def test_default_pipeline_gives_the_same_images_and_landmarks_as_before(name, train):
    cfg = LEGACY_CONFIGS[name]
    new, old = build_transform(cfg, train=train), _legacy_build_transform(cfg, train=train)
    image, points = _image(size=80), _points(size=80)
    for seed in range(4):
        assert torch.equal(_run(new, seed, image), _run(old, seed, image))
        (a, ka), (b, kb) = _run(new, seed, image, points), _run(old, seed, image, points)
        assert torch.equal(a, b) and torch.equal(ka, kb)


def test_ops_spelling_out_the_default_reproduce_it():
    default = build_transform({**BASE, "augment": {"random_crop": True, "hflip": 0.5}}, train=True)
    listed = _train([op("RandomCrop"), op(HFLIP, p=0.5)])
    image = _image()
    outputs = [_run(listed, seed, image) for seed in range(6)]
    assert all(torch.equal(out, _run(default, seed, image)) for seed, out in enumerate(outputs))
    assert len({out.sum().item() for out in outputs}) > 1  # and they are random


def test_eval_pipeline_ignores_ops():
    cfg = {**BASE, "augment": {"ops": [op(HFLIP, p=1.0), op("RandomCrop"), op(GRAYSCALE, p=1.0)]}}
    image = _image()
    assert torch.equal(build_transform(cfg, train=False)(image), _legacy_build_transform(BASE, train=False)(image))


def test_null_ops_keep_the_simple_keys_and_a_list_replaces_them():
    keys = {"random_crop": False, "hflip": 1.0}
    image = _image()
    flipped = build_transform({**BASE, "augment": {**keys, "ops": None}}, train=True)(image)
    replaced = build_transform({**BASE, "augment": {**keys, "ops": [op("CenterCrop")]}}, train=True)(image)
    assert torch.equal(flipped, replaced.flip(-1))


# --- each op ------------------------------------------------------------------------------------
def test_hflip_with_p_1_mirrors_the_image():
    image = _image()
    plain = _train([op("CenterCrop")])(image)
    assert torch.equal(_train([op("CenterCrop"), op(HFLIP, p=1.0)])(image), plain.flip(-1))
    assert torch.equal(_train([op("CenterCrop"), op(HFLIP, p=0.0)])(image), plain)


def test_fixed_crop_flip_is_one_crop_and_flip_for_the_whole_run_drawn_from_its_seed():
    import random

    image = _image()
    transform = _train([op("FixedCropFlip", seed=7)])
    v = random.Random(7).random()  # the multitask original's single draw, made at build time
    offset = int((64 - 56) * v)
    full = build_transform({**BASE, "image_size": 64, "augment": {"ops": [op("CenterCrop")]}}, train=True)
    expected = full(image)[:, offset : offset + 56, offset : offset + 56]
    expected = expected.flip(-1) if v < 0.5 else expected
    for seed in range(4):  # every sample, every epoch: the same crop
        assert torch.equal(_run(transform, seed, image), expected)
    outputs = {tuple(_train([op("FixedCropFlip", seed=s)])(image).flatten()[:64].tolist()) for s in range(6)}
    assert len(outputs) > 1  # another run (seed) gets another crop


@pytest.mark.parametrize("entry", [op("GaussianNoise", std=5.48), op(HFLIP), op(GRAYSCALE),
                                   op("RandomErasing"), op("Rotation", degrees=20)])
def test_an_op_with_p_0_is_the_identity_and_leaves_the_random_stream_alone(entry):
    image = _image()
    plain = _run(_train([op("RandomCrop")]), 5, image)
    assert torch.equal(_run(_train([{**entry, "p": 0.0}, op("RandomCrop")]), 5, image), plain)


def test_gaussian_noise_adds_std_in_pixel_units_then_clips():
    noise = _train([op("GaussianNoise", std=5.48), op("CenterCrop")], PIXELS)
    grey = _run(noise, 0, np.full((64, 64, 3), 128, np.uint8))
    assert abs(grey.std().item() - 5.48) < 0.15
    assert abs(grey.mean().item() - 127.5) < 0.2  # truncation to uint8 floors, as numpy's astype does
    assert torch.allclose(grey, grey.round(), atol=1e-3)  # still whole grey levels
    black, white = (_run(noise, 0, np.full((64, 64, 3), v, np.uint8)) for v in (0, 255))
    assert black.min() >= 0 and black.max() < 30 and (black > 0).any()  # clipped, not wrapped round
    assert white.max() <= 255.01 and white.min() > 225 and (white < 254.5).any()


def test_random_erasing_after_normalize_writes_the_value_in_normalised_units():
    white = np.full((64, 64, 3), 255, np.uint8)
    erase = op("RandomErasing", p=1.0, value=0)
    after = _run(_train([op("CenterCrop"), op("Normalize"), erase]), 0, white)
    before = _run(_train([op("CenterCrop"), erase]), 0, white)
    assert set(after.unique().tolist()) == {0.0, 1.0}  # 0 = the mean grey after normalising
    assert set(before.unique().tolist()) == {-1.0, 1.0}  # 0 = black before it
    assert torch.equal(after == 0, before == -1)  # the same rectangle for the same seed


def test_random_erasing_random_values_after_to_float_are_standard_normal():
    white = np.full((64, 64, 3), 255, np.uint8)
    erase = op("RandomErasing", p=1.0, scale=[0.3, 0.3], value="random")
    out = _run(_train([op("CenterCrop"), op("ToFloat"), erase, op("Normalize")], {**BASE, "std": [1.0] * 3}), 0, white)
    erased = out[out != 0.5] + 0.5  # undo the mean
    assert erased.numel() > 0.25 * out.numel()
    assert abs(erased.mean().item()) < 0.1 and abs(erased.std().item() - 1) < 0.1


def test_grayscale_gives_three_equal_channels():
    out = _train([op("CenterCrop"), op(GRAYSCALE, p=1.0)])(_image())
    assert out.shape == (3, 56, 56) and torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert not torch.equal(out, _train([op("CenterCrop")])(_image()))


def test_color_jitter_applies_its_range_with_probability_p():
    image = np.full((64, 64, 3), 100, np.uint8)
    double = [op("CenterCrop"), op("ColorJitter", brightness=[2.0, 2.0])]
    assert torch.allclose(_train(double, PIXELS)(image), torch.full((3, 56, 56), 200.0), atol=0.01)
    never = [op("CenterCrop"), op("ColorJitter", brightness=[2.0, 2.0], p=0.0)]
    assert torch.allclose(_train(never, PIXELS)(image), torch.full((3, 56, 56), 100.0), atol=0.01)


def test_gaussian_blur_smooths_and_picks_the_smallest_odd_kernel_covering_3_sigma():
    blur = _train([op("CenterCrop"), op("GaussianBlur", sigma=[0.1, 1.5])])
    (kernel,) = [t for t in blur.transforms if isinstance(t, v2.GaussianBlur)]
    assert list(kernel.kernel_size) == [11, 11]  # 2 * ceil(4.5) + 1
    image = _image()
    plain = _train([op("CenterCrop")])(image)
    strong = _train([op("CenterCrop"), op("GaussianBlur", sigma=1.5)])(image)
    assert strong.std() < 0.5 * plain.std()


def test_rotation_is_applied_with_probability_p():
    image = _image()
    plain = _train([op("CenterCrop")])(image)
    half = _train([op("CenterCrop"), op("Rotation", degrees=[30, 30], p=0.5)])
    applied = [not torch.equal(_run(half, seed, image), plain) for seed in range(40)]
    assert 8 <= sum(applied) <= 32
    never = _train([op("CenterCrop"), op("Rotation", degrees=30, p=0.0)])
    assert torch.equal(never(image), plain)


def test_random_resized_crop_outputs_image_size():
    out = _train([op("RandomResizedCrop", scale=[0.5, 1.0], ratio=[1.0, 1.0])])(_image())
    assert out.shape == (3, 56, 56)


def _square_rotation_and_flip_outputs(image):
    flip_then_rotate = _train([op(HFLIP, p=1.0), op("Rotation", degrees=[90, 90],
                                                             interpolation="nearest"), op("CenterCrop")])
    rotate_then_flip = _train([op("Rotation", degrees=[90, 90], interpolation="nearest"),
                               op(HFLIP, p=1.0), op("CenterCrop")])
    return flip_then_rotate(image), rotate_then_flip(image)


def test_random_order_draws_a_new_order_per_sample_and_the_same_one_for_the_same_seed():
    image = _image()
    orders = _square_rotation_and_flip_outputs(image)
    assert not torch.equal(*orders)  # the two orders give different images
    nested = [op(HFLIP, p=1.0), op("Rotation", degrees=[90, 90], interpolation="nearest")]
    shuffled = _train([op("RandomOrder", ops=nested), op("CenterCrop")])
    seen = []
    for seed in range(12):
        out = _run(shuffled, seed, image)
        assert torch.equal(out, _run(shuffled, seed, image))  # reproducible for one torch seed
        matches = [i for i, order in enumerate(orders) if torch.equal(out, order)]
        assert len(matches) == 1
        seen.append(matches[0])
    assert set(seen) == {0, 1}


# --- landmarks ----------------------------------------------------------------------------------
GEOMETRIC = {
    "hflip": [op(HFLIP, p=1.0), op("RandomCrop")],
    "random_crop": [op("RandomCrop")],
    "fixed_crop_flip": [op("FixedCropFlip", seed=7)],
    "center_crop": [op("CenterCrop", size=56)],
    "random_resized_crop": [op("RandomResizedCrop", scale=[0.6, 1.0], interpolation="nearest")],
    "rotation bicubic": [op("Rotation", degrees=25, interpolation="bicubic"), op("CenterCrop")],
    "affine nearest": [op("Affine", degrees=10, translate=0.1, scale=[0.8, 1.2], shear=8,
                        interpolation="nearest"), op("RandomCrop")],
    "affine bilinear": [op("Affine", degrees=10, translate=[0.1, 0.05], scale=[0.9, 1.1], shear=8),
                        op("RandomCrop")],
    "affine bicubic": [op("Affine", degrees=10, scale=[0.9, 1.1], interpolation="bicubic"),
                       op("CenterCrop")],
    "random_order": [op("RandomOrder", ops=[op(HFLIP), op("RandomCrop"),
                                           op("Affine", degrees=10, translate=0.1, interpolation="nearest")])],
}


@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_a_landmark_on_a_bright_spot_stays_on_it(name):
    transform = _train(GEOMETRIC[name], PIXELS)
    image = np.zeros((64, 64, 3), np.uint8)
    image[19:24, 38:43] = 255  # a 5×5 spot centred on pixel (x=40, y=21)
    point = tv_tensors.KeyPoints(torch.tensor([[40.5, 21.5]]), canvas_size=(64, 64))  # pixel corners
    moved = 0
    for seed in range(8):
        out, kp = _run(transform, seed, image, point)
        x, y = kp[0].floor().long().tolist()
        assert 0 <= x < 56 and 0 <= y < 56
        assert out[:, y, x].min() > 200, f"seed {seed}: landmark at ({x}, {y}) is not on the spot"
        moved += (x, y) != (40, 21)
    assert moved > 0


# --- the published recipes ----------------------------------------------------------------------
def _recipes() -> dict[str, str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    return {m.group(1): block for block in blocks if (m := re.search(r"^# recipe: (\w+)", block, flags=re.M))}


def test_docs_hold_the_three_recipes():
    assert set(_recipes()) == {"iern", "dmue", "au_align"}


def _face(row):
    """A 64 px uint8 face with 68 landmarks; point 36 (image-left eye corner) left of point 45."""
    points = np.random.default_rng(2).uniform(12, 52, (68, 2)).astype(np.float32)
    points[36], points[45] = (20, 28), (44, 28)
    return {"image": _image(row["seed"]), "landmarks": points}


@pytest.mark.parametrize("recipe", ["iern", "dmue", "au_align"])
def test_published_recipe_builds_and_runs_on_a_64px_face_with_landmarks(recipe):
    cfg = OmegaConf.create(_recipes()[recipe]).data
    assert cfg.image_size == 224 and cfg.resize in (224, 256)
    cfg.resize, cfg.image_size = cfg.resize // 4, 56  # the same ops at test size (scaled by 1/4)
    ds = RecordsDataset(pd.DataFrame({"seed": [0, 1]}), _face, build_transform(cfg, train=True), seed=7)
    for epoch in range(6):
        sample = ds[(1, epoch)]
        image, landmarks = sample["image"], sample["landmarks"]
        assert image.shape == (3, 56, 56) and image.dtype == torch.float32 and torch.isfinite(image).all()
        assert landmarks.shape == (68, 2) and landmarks[36, 0] < landmarks[45, 0]  # order restored after flips
        again = ds[(1, epoch)]
        assert torch.equal(again["image"], image) and torch.equal(again["landmarks"], landmarks)
    assert not torch.equal(ds[(1, 0)]["image"], ds[(1, 1)]["image"])


def test_train_yaml_accepts_an_ops_list_from_the_command_line():
    from hydra import compose, initialize_config_dir

    from fermix.cli import config_dir
    from fermix.engine.rundir import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        default = compose(config_name="train")
        ops = f"[{{_target_:fermix.data.augment_ops.RandomCrop}},{{_target_:{HFLIP},p:0.5}}]"
        listed = compose(config_name="train", overrides=[f"data.augment.ops={ops}"])
    assert default.data.augment.ops is None
    image = _image(size=80)
    for seed in range(3):
        assert torch.equal(_run(build_transform(listed.data, train=True), seed, image),
                           _run(build_transform(default.data, train=True), seed, image))


# --- ops lists stored before `_target_` ----------------------------------------------------------
def _golden() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", sorted(_golden()))
def test_an_old_ops_list_upgrades_to_the_transform_fermix_built_from_it_before(case):
    """Same torchvision objects (repr) and, seed by seed, the same pixels and landmarks as fermix 2b2d0d9."""
    golden = _golden()[case]
    data = upgrade_config({"data": golden["data"]})["data"]
    assert all("_target_" in e for e in data["augment"]["ops"]) and "name" not in json.dumps(data["augment"]["ops"])
    transform = build_transform(data, train=True)
    assert repr(transform) == golden["repr"]
    image, points = _image(), _points()
    digests = []
    for seed in range(6):
        out, keypoints = _run(transform, seed, image, points)
        raw = out.contiguous().numpy().tobytes() + keypoints.as_subclass(torch.Tensor).contiguous().numpy().tobytes()
        digests.append(hashlib.sha256(raw).hexdigest()[:16])
    assert digests == golden["sha256"]


# --- errors -------------------------------------------------------------------------------------
BAD = {
    "not importable": ([op("RandomCrap")], ["ops[0]._target_", "did you mean `fermix.data.augment_ops.RandomCrop`"]),
    "unknown argument": ([op(HFLIP, prob=1)], ["ops[0]", "RandomHorizontalFlip", "no argument `prob`", "takes: p"]),
    "missing argument": ([op("GaussianNoise")], ["ops[0]", "GaussianNoise", "needs `std`"]),
    "nested not importable": ([op("RandomOrder", ops=[op("Blur")])], ["ops[0].ops[0]._target_", "augment_ops.Blur"]),
    "no target": ([{"p": 0.5}], ["`_target_`"]),
    "old form": ([{"name": "hflip", "p": 0.5}], ["`_target_`", f"{{_target_: {HFLIP}, p: 0.5}}"]),
    "old bare name": (["normalize"], ["{_target_: fermix.data.augment_ops.Normalize}"]),
    "not a transform": ([op("collections.OrderedDict")], ["OrderedDict", "is not a torchvision v2 transform"]),
    "not a list": ("hflip", ["must be a list"]),
    "bad probability": ([op("Rotation", degrees=5, p=2)], ["`Rotation`", "probability"]),
    "torchvision refuses": ([op(HFLIP, p=2)], ["ops[0]", "RandomHorizontalFlip", "refused", "`p`"]),
    "torchvision check": ([op("ColorJitter", hue=0.9)], ["`ColorJitter`", "hue"]),
    "even kernel": ([op("GaussianBlur", kernel_size=4)], ["`GaussianBlur`", "odd"]),
    "bad interpolation": ([op("Rotation", degrees=5, interpolation="cubic")], ["`Rotation`", "cubic"]),
    "crop too large": ([op("RandomCrop", size=100)], ["`RandomCrop`", "100 px"]),
    "wrong final size": ([op("CenterCrop", size=40)], ["40 px", "image_size is 56"]),
    "torchvision crop size": ([op("torchvision.transforms.v2.CenterCrop", size=40)], ["40 px", "image_size is 56"]),
    "normalize twice": ([op("Normalize"), op("Normalize"), op("RandomCrop")], ["`Normalize`", "at most once"]),
    "normalize in group": ([op("RandomOrder", ops=[op("Normalize")])], ["`Normalize`", "top level"]),
    "noise after normalize": ([op("Normalize"), op("GaussianNoise", std=5)], ["`GaussianNoise`", "Normalize"]),
    "jitter after normalize": ([op("Normalize"), op("ColorJitter")], ["`ColorJitter`", "before Normalize"]),
    "random value on uint8": ([op("RandomErasing", value="random")], ["`RandomErasing`", "ToFloat"]),
    "bicubic on floats": ([op("ToFloat"), op("Rotation", degrees=5, interpolation="bicubic")], ["PIL"]),
    "group sizes differ": (
        [op("RandomOrder", ops=[op("RandomCrop", size=40), op("CenterCrop")])],
        ["`RandomOrder`", "different sizes"],
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_ops_give_one_sentence_errors(name):
    ops, fragments = BAD[name]
    with pytest.raises(FermixError) as info:
        _train(ops)
    message = str(info.value)
    assert "\n" not in message and ". " not in message.replace("e.g.", "") and not message.endswith(".")
    for fragment in fragments:
        assert fragment in message
