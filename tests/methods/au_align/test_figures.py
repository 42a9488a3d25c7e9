"""The overlay grid of `evaluation_figures`: image, AU map, attention and each CAM per sample."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from fermix.methods.au_align import AUAlign, AUAlignConfig
from tests.methods.au_align.faces import info, landmarks_batch


def test_overlay_grid_has_one_panel_group_per_sample_with_the_cosines():
    torch.manual_seed(0)
    method = AUAlign(AUAlignConfig(cams=["cam", "gradcam", "layercam"]), info(32), {"name": "small_cnn", "width": 8})
    labels = [0, 1, 3]
    batch = {"image": torch.randn(3, 3, 32, 32), "expr": torch.tensor(labels), "landmarks": landmarks_batch(labels)}
    with torch.no_grad():
        figures = method.eval().evaluation_figures(batch)
    fig = figures["au_align_overlays"]
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 2 * 2 * 6  # 2 rows x 2 samples per row x (image, AU map, attention, 3 CAMs)
    assert titles[0].startswith("neutral →") and titles[1] == "AU map: none"
    assert any(t.startswith("attention L5 0.") for t in titles) and any(t.startswith("LayerCAM ") for t in titles)
