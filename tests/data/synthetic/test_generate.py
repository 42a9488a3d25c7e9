import hashlib

import numpy as np
import pytest

from fermix.data.synthetic import face
from fermix.data.synthetic.config import SyntheticConfig
from fermix.data.synthetic.design import class_names, split_table
from fermix.data.synthetic.generate import render_split

CFG = SyntheticConfig(train_per_cell=3, val_per_cell=1, test_per_cell=1)


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in (arrays.images, arrays.landmarks, arrays.au_intensity, arrays.va):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_same_seed_gives_identical_bytes_and_another_seed_does_not():
    table = split_table(CFG, "train")
    a, b = render_split(CFG, table), render_split(CFG, table)
    assert _digest(a) == _digest(b)
    other = SyntheticConfig(seed=1, train_per_cell=3)
    assert _digest(render_split(other, split_table(other, "train"))) != _digest(a)


def test_rendering_in_chunks_equals_rendering_at_once():
    table = split_table(CFG, "train")
    whole = render_split(CFG, table)
    first, second = render_split(CFG, table, 0, 10), render_split(CFG, table, 10)
    np.testing.assert_array_equal(np.concatenate([first.images, second.images]), whole.images)
    np.testing.assert_array_equal(np.concatenate([first.landmarks, second.landmarks]), whole.landmarks)


@pytest.mark.parametrize("size", [64, 112, 224])
def test_images_have_the_configured_size_and_landmarks_lie_inside_them(size):
    cfg = SyntheticConfig(image_size=size, train_per_cell=2)
    arrays = render_split(cfg, split_table(cfg, "train"))
    assert arrays.images.shape[1:] == (size, size, 3) and arrays.images.dtype == np.uint8
    assert arrays.landmarks.shape[1:] == (68, 2)
    assert arrays.landmarks.min() >= 0 and arrays.landmarks.max() <= size - 1


def test_landmarks_sit_on_the_drawn_features():
    """The mouth interior is dark where the landmarks say the lips part (surprise opens the mouth);
    sampled in its lower part, below the teeth."""
    cfg = SyntheticConfig(train_per_cell=4, num_domains=1, domain_styles=("studio",), image_size=128)
    table = split_table(cfg, "train")
    arrays = render_split(cfg, table)
    surprise = class_names(cfg).index("surprise")
    for i in np.flatnonzero(table.cls == surprise):
        lm = arrays.landmarks[i]
        inner_centre = (0.3 * lm[62] + 0.7 * lm[66]).round().astype(int)
        mouth = arrays.images[i][inner_centre[1], inner_centre[0]].astype(float)
        cheek = arrays.images[i][int(lm[2, 1]), int(0.5 * (lm[2, 0] + lm[48, 0]))].astype(float)
        assert mouth.mean() < 0.6 * cheek.mean()


def test_au_intensities_follow_the_class_prototype():
    cfg = SyntheticConfig(train_per_cell=10, au_spontaneous=0.0)
    table = split_table(cfg, "train")
    arrays = render_split(cfg, table)
    names = class_names(cfg)
    for c, name in enumerate(names):
        proto = face.prototype_vector(name).astype(bool)
        au = arrays.au_intensity[table.cls == c]
        assert (au[:, ~proto] == 0).all()
        if proto.any():
            assert (au[:, proto].mean(axis=0) > 0.4).all()


def test_valence_arousal_follow_the_circumplex():
    cfg = SyntheticConfig(train_per_cell=20)
    table = split_table(cfg, "train")
    va = render_split(cfg, table).va
    names = class_names(cfg)
    happy, sad = va[table.cls == names.index("happy")], va[table.cls == names.index("sad")]
    assert happy[:, 0].mean() > 0.3 and happy[:, 1].mean() > 0.2
    assert sad[:, 0].mean() < -0.3 and sad[:, 1].mean() < -0.1
    assert np.abs(va).max() <= 1.0
