"""The module every export format writes: image in, a fixed tuple of named tensors out.

A method's `export()` gives its inference-only module (DMUE: the target branch; IERN: backbone,
emotion encoder, fuser, dictionary, classifier; the other image methods: the method itself). Each
has `predict(batch) -> dict`, the outputs every metric reads. ONNX and TorchScript want a plain
`forward(tensor) -> tuple`, so the wrapper calls `predict({"image": image})` and returns the
outputs named in `OUTPUTS` that the method produces, in that order (fermix.json records it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fermix.engine.build import method_class
from fermix.errors import FermixError

# The standard predict outputs (DESIGN §3) an exported model returns, in this order, when the method
# produces them. Method-specific extras (per-member or per-stratum outputs, CAMs, cosines) stay out:
# they serve evaluation, not deployment.
OUTPUTS: tuple[str, ...] = ("expr_logits", "au_logits", "au_pred", "va", "uncertainty", "attention", "features")

# Batch keys a method may require that inference does not read (labels, and inputs used only by
# training losses). A required key outside this set and `image` means the method cannot run on an image alone.
TRAINING_ONLY_KEYS = frozenset({"expr", "au", "va", "domain", "landmarks", "au_map", "sample_id", "subject"})


class ExportWrapper(nn.Module):
    """`forward(image) -> tuple(predict({"image": image})[k] for k in output_names)`, in eval mode."""

    def __init__(self, module: nn.Module, output_names: Sequence[str]) -> None:
        super().__init__()
        if not callable(getattr(module, "predict", None)):
            raise TypeError(f"{type(module).__name__} has no predict(batch); an export module needs one")
        self.module = module
        self.output_names = tuple(output_names)
        self.eval()

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        out = self.module.predict({"image": image})
        return tuple(out[name] for name in self.output_names)


def check_image_only(method: nn.Module) -> None:
    """Refuse a method whose inference needs more than an image (the multimodal ones)."""
    needs = sorted(set(getattr(method, "requires", ())) - TRAINING_ONLY_KEYS - {"image"})
    if needs or "image" not in getattr(method, "requires", ()):
        inputs = ", ".join(needs) or "no image"
        raise FermixError(
            f"fermix export writes image models, and method {getattr(method, 'name', '?')} reads {inputs}; "
            f"evaluate it with fermix test instead"
        )


def check_single_frames(config: Mapping[str, Any], method: str) -> None:
    """Refuse a checkpoint whose method reads another sample unit than one image (its dataset wrapper)."""
    wrapper = method_class(method).sample_wrapper(config)
    if wrapper is not None:
        raise FermixError(
            f"fermix export writes per-image models, and method {method} reads {wrapper.describe()}; "
            f"evaluate it with fermix test instead"
        )


def output_names(module: nn.Module, probe: Tensor) -> tuple[str, ...]:
    """The `OUTPUTS` that `module.predict` returns for a probe image batch, in `OUTPUTS` order."""
    with torch.no_grad():
        out = module.predict({"image": probe})
    names = tuple(k for k in OUTPUTS if k in out and torch.is_tensor(out[k]))
    if not names:
        raise FermixError(f"{type(module).__name__}.predict returns none of the exportable outputs {list(OUTPUTS)}")
    return names


def wrap(module: nn.Module, image_size: int, in_channels: int = 3) -> ExportWrapper:
    """The wrapper around a method's export module, its outputs found from a probe batch of two images."""
    module.eval()
    probe = torch.zeros(2, in_channels, image_size, image_size)
    try:
        names = output_names(module, probe)
    except RuntimeError as exc:
        raise FermixError(
            f"the exported model does not run on {image_size}×{image_size} images ({exc.__class__.__name__}); "
            f"export at the trained size (image_size=null)"
        ) from exc
    return ExportWrapper(module, names)
