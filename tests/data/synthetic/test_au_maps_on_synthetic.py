"""The synthetic generator's landmarks feed the AU heatmaps (issue 4: one landmark convention)."""

import numpy as np

from fermix.data.synthetic.config import SyntheticConfig
from fermix.data.synthetic.design import class_names, split_table
from fermix.data.synthetic.generate import render_split
from fermix.preprocess.au_maps import au_map


def test_a_happy_synthetic_face_gets_a_valid_map_hot_at_its_lip_corners_and_cold_at_the_border():
    cfg = SyntheticConfig(image_size=224, train_per_cell=2, num_domains=1)
    table = split_table(cfg, "train")
    arrays = render_split(cfg, table)
    names = class_names(cfg)
    for i in np.flatnonzero(table.cls == names.index("happy")):
        lm = arrays.landmarks[i]
        heat, valid = au_map(lm, "happy", (224, 224))
        assert valid and heat.shape == (224, 224)
        for corner in (48, 54):  # AU12's blobs sit on the lip corners
            x, y = np.round(lm[corner]).astype(int)
            assert heat[y, x] > 0.5
        assert heat[:8].max() == 0 and heat[:, :8].max() == 0
    neutral = int(np.flatnonzero(table.cls == names.index("neutral"))[0])
    _, valid = au_map(arrays.landmarks[neutral], "neutral", (224, 224))
    assert not valid
