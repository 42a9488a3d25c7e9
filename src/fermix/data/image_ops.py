"""Image ops the published recipes use that torchvision v2 does not have as such, and the basic helpers
every pipeline shares (interpolation names, the final ToDtype + Normalize). Each op accepts landmarks as
`tv_tensors.KeyPoints` and draws its randomness from torch's RNG only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from fermix.errors import FermixError

INTERPOLATION = {
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
    "nearest": v2.InterpolationMode.NEAREST,
}


def normalize_ops(spec: Mapping[str, Any]) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(spec["mean"], spec["std"])]


def interpolation(name: Any, where: str) -> v2.InterpolationMode:
    if str(name) not in INTERPOLATION:
        raise FermixError(f"{where} must be one of {', '.join(INTERPOLATION)}, not `{name}`")
    return INTERPOLATION[str(name)]



class PixelNoise(v2.Transform):
    """Additive Gaussian noise with `std` in 0-255 pixel units. On uint8 images the noisy sum is
    clipped to [0, 255] and truncated, as numpy's `clip(...).astype(uint8)` in the DMUE recipe does
    (torchvision's GaussianNoise truncates the noise instead); on float images std/255 is added and
    the result clipped to [0, 1]. Landmarks pass through."""

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if inpt.dtype == torch.uint8:
            noisy = inpt.to(torch.float32) + torch.randn(inpt.shape) * self.std
            out = noisy.clamp_(0, 255).to(torch.uint8)
        else:
            out = (inpt + torch.randn(inpt.shape, dtype=inpt.dtype) * (self.std / 255.0)).clamp_(0, 1)
        return tv_tensors.wrap(out, like=inpt)


class FixedCropFlip(v2.Transform):
    """The same crop (and flip, or none) for every sample; images and landmarks alike."""

    def __init__(self, offset: int, size: int, flip: bool) -> None:
        super().__init__()
        self.offset, self.size, self.flip = offset, size, flip

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = F.crop(inpt, self.offset, self.offset, self.size, self.size)
        return F.horizontal_flip(out) if self.flip else out


class BicubicThroughPil:
    """torchvision's tensor kernels for rotate/affine refuse bicubic; the published recipes ran it
    on PIL images, so a uint8 image goes through PIL for that one op (landmarks use the tensor kernel,
    which follows PIL's geometry)."""

    interpolation: Any

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if self.interpolation == v2.InterpolationMode.BICUBIC and isinstance(inpt, tv_tensors.Image):
            out = super().transform(F.to_pil_image(inpt), params)  # type: ignore[misc]
            return tv_tensors.wrap(F.pil_to_tensor(out), like=inpt)
        return super().transform(inpt, params)  # type: ignore[misc]


class RandomRotation(BicubicThroughPil, v2.RandomRotation):
    pass


class RandomAffine(BicubicThroughPil, v2.RandomAffine):
    pass


class RandomErasing(v2.RandomErasing):
    """Landmarks pass through erasing silently (torchvision warns on every sample)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            return inpt
        return super().transform(inpt, params)
