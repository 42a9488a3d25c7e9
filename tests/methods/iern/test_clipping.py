"""Gradient clipping (trainer.gradient_clip_val) with IERN: the centers' 1/λ-scaled gradient is not counted.

The engine clips inside the manual-optimisation handle's `step`, after the method has rescaled the
centers' gradient by 1/λ (2000 at the paper's λ). Counted, that gradient would set the clip factor
of the whole feature step; IERN therefore declares the centers as `unclipped_parameters`.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from fermix.data.info import DataInfo
from fermix.data.label_spaces import get_label_space
from fermix.engine.module import FermixModule
from fermix.methods.iern.model import FEAT, IERN, IERNConfig

CLIP = 10.0  # below the feature networks' gradient norm on this batch (~70), so clipping acts


def _feature_step_grads(clip: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Gradients the feature optimizer steps with, per param group, after one batch through Lightning."""
    torch.manual_seed(0)
    info = DataInfo(get_label_space("mixbasic6"), frozenset({"image", "expr", "domain"}), image_size=32, num_domains=3)
    method = IERN(IERNConfig(channels=8), info, {"name": "small_cnn", "width": 8})
    adam = {"_target_": "torch.optim.Adam", "lr": 2e-4, "betas": [0.5, 0.999]}
    module = FermixModule(method, adam, {"_target_": None}, {}, clip=clip)
    seen: dict[str, torch.Tensor] = {}
    build = module.configure_optimizers

    def configure_optimizers() -> Any:
        optimizers, schedulers = build()

        def record(opt: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
            for group in opt.param_groups:
                seen[group["name"]] = torch.cat([p.grad.flatten().clone() for p in group["params"]])

        optimizers[FEAT].register_step_pre_hook(record)
        return optimizers, schedulers

    module.configure_optimizers = configure_optimizers  # type: ignore[method-assign]
    g = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.randn(8, 3, 32, 32, generator=g),
        "expr": torch.randint(0, 6, (8,), generator=g),
        "domain": torch.randint(0, 3, (8,), generator=g),
        "index": torch.arange(8),
    }
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and logging
        trainer.fit(module, train_dataloaders=DataLoader([batch], batch_size=None))
    return seen


def test_clipping_leaves_the_centers_gradient_alone_and_clips_the_feature_networks_by_their_own_norm():
    free = _feature_step_grads({})
    clipped = _feature_step_grads({"gradient_clip_val": CLIP})
    networks = [name for name in free if name != "centers"]
    norm = torch.cat([free[n] for n in networks]).norm()
    assert norm > CLIP  # the batch exercises clipping
    # The centers step with their full 1/λ-scaled gradient, exactly as without clipping...
    torch.testing.assert_close(clipped["centers"], free["centers"], rtol=0.0, atol=0.0)
    # ...and g_e, g_c, g_r are clipped to CLIP by their own norm (torch's clip_grad_norm_ adds 1e-6 to it).
    for name in networks:
        torch.testing.assert_close(clipped[name], free[name] * (CLIP / (norm + 1e-6)), rtol=1e-5, atol=1e-7)
    assert abs(float(torch.cat([clipped[n] for n in networks]).norm()) - CLIP) < 1e-4


def test_iern_declares_only_the_centers_unclipped():
    info = DataInfo(get_label_space("mixbasic6"), frozenset({"image", "expr", "domain"}), image_size=32, num_domains=3)
    method = IERN(IERNConfig(channels=8), info, {"name": "small_cnn", "width": 8})
    assert [id(p) for p in method.unclipped_parameters()] == [id(method.centers)]
