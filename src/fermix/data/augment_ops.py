"""`data.augment.ops`: a paper's training augmentation written as an ordered list of ops in YAML
(docs/augmentation.md). The builder checks each entry's arguments against its op's signature and the
pixel stage it runs in (uint8, float, normalised), and tracks the image size through the crops.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import v2

from fermix.data.image_ops import (
    INTERPOLATION,
    FixedCropFlip,
    PixelNoise,
    RandomAffine,
    RandomErasing,
    RandomRotation,
    normalize_ops,
)
from fermix.errors import FermixError

# --- the op list ------------------------------------------------------------------------------
# Pixel stages an op can see: uint8 (after Resize), float in [0, 1] (after to_float), normalised
# floats (after normalize). Some ops only make sense in some stages; the builder checks.
_UINT8, _FLOAT, _NORMALISED = "uint8", "float", "normalised"


@dataclass
class _Ctx:
    """What the builder knows at one position of the list."""

    spec: Mapping[str, Any]
    size: int  # side of the square image at this position
    stage: str = _UINT8
    where: str = "data.augment.ops"
    op: str = ""  # the op being built, for error messages
    in_group: bool = False

    @property
    def image_size(self) -> int:
        return int(self.spec["image_size"])

    def interp(self, name: str | None) -> v2.InterpolationMode:
        name = str(name or self.spec["interpolation"])
        if name not in INTERPOLATION:
            raise self.fail(f"interpolation must be one of {', '.join(INTERPOLATION)}, not `{name}`")
        return INTERPOLATION[name]

    def fail(self, message: str) -> FermixError:
        where = f"augment op `{self.op}` at {self.where}" if self.op else self.where
        return FermixError(f"{where}: {message}")


_OPS: dict[str, Callable[..., Any]] = {}


def _op(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(builder: Callable[..., Any]) -> Callable[..., Any]:
        _OPS[name] = builder
        return builder

    return register


def known_ops() -> list[str]:
    """Names accepted in `data.augment.ops`."""
    return sorted(_OPS)


def build_ops(entries: Any, spec: Mapping[str, Any]) -> list[v2.Transform]:
    """The train ops between Resize and the network, from `data.augment.ops` (a list of mappings
    `{name: ..., <kwargs>}`); ToDtype+Normalize are appended unless a `normalize` entry places them."""
    ctx = _Ctx(spec=spec, size=int(spec["resize"]))
    ops = _build_list(entries, ctx)
    if ctx.stage != _NORMALISED:
        ops += normalize_ops(spec)
    if ctx.size != ctx.image_size:
        raise FermixError(
            f"data.augment.ops leave a {ctx.size} px image but data.image_size is {ctx.image_size}: "
            f"add a crop to {ctx.image_size} px (e.g. `{{name: random_crop}}`)"
        )
    return ops


def _build_list(entries: Any, ctx: _Ctx) -> list[v2.Transform]:
    where = ctx.where
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise FermixError(f"{where} must be a list of ops like `{{name: hflip, p: 0.5}}`, not `{entries}`")
    out: list[v2.Transform] = []
    for i, entry in enumerate(entries):
        ctx.where, ctx.op = f"{where}[{i}]", ""
        built = _build_one(entry, ctx)
        out += built if isinstance(built, list) else [built]
    ctx.where, ctx.op = where, ""
    return out


def _build_one(entry: Any, ctx: _Ctx) -> v2.Transform | list[v2.Transform]:
    entry = _plain(entry)
    if isinstance(entry, str):  # a bare name, e.g. `- normalize`
        entry = {"name": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise ctx.fail(f"each op must be a mapping with a `name` (one of {', '.join(known_ops())}), not `{entry}`")
    kwargs = dict(entry)
    name = str(kwargs.pop("name"))
    if name not in _OPS:
        raise ctx.fail(f"unknown augment op `{name}`; known: {', '.join(known_ops())}")
    builder, ctx.op = _OPS[name], name
    params = list(inspect.signature(builder).parameters.values())[1:]
    unknown = sorted(set(kwargs) - {p.name for p in params})
    if unknown:
        takes = ", ".join(p.name for p in params) or "no arguments"
        raise ctx.fail(f"unknown argument `{'`, `'.join(unknown)}`; it takes: {takes}")
    missing = [p.name for p in params if p.default is inspect.Parameter.empty and p.name not in kwargs]
    if missing:
        raise ctx.fail(f"`{'`, `'.join(missing)}` is required")
    try:
        built = builder(ctx, **kwargs)
    except FermixError:
        raise
    except (ValueError, TypeError) as exc:  # torchvision's own argument checks
        raise ctx.fail(f"bad argument: {str(exc).strip().rstrip('.')}") from exc
    if kwargs.get("p") == 0:  # switched off: no coin flip either, as if the entry were absent
        return v2.Identity()
    return built


def _plain(value: Any) -> Any:
    """OmegaConf containers -> dicts and lists, so torchvision's own type checks accept them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def _maybe(transform: v2.Transform, p: float, ctx: _Ctx) -> v2.Transform:
    """Apply with probability p; p = 1 adds no coin flip, so the RNG stream is the plain op's
    (p = 0 is dropped altogether by the caller)."""
    p = _probability(p, ctx)
    return transform if p >= 1.0 else v2.RandomApply([transform], p=p)


def _probability(p: Any, ctx: _Ctx) -> float:
    if not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ctx.fail(f"p must be a probability in [0, 1], not `{p}`")
    return float(p)


def _crop_size(size: Any, ctx: _Ctx) -> int:
    size = ctx.image_size if size is None else size
    if not isinstance(size, int) or size < 1:
        raise ctx.fail(f"size must be a positive number of pixels, not `{size}`")
    return size


def _pair(value: Any, name: str, ctx: _Ctx) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
        raise ctx.fail(f"{name} must be a range `[lo, hi]`, not `{value}`")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ctx.fail(f"{name} must be a range `[lo, hi]` with lo <= hi, not `{value}`")
    return lo, hi


def _bicubic_needs_uint8(interp: v2.InterpolationMode, ctx: _Ctx) -> None:
    if interp == v2.InterpolationMode.BICUBIC and ctx.stage != _UINT8:
        raise ctx.fail("bicubic runs through PIL and needs the uint8 image: put this op before to_float/normalize")


@_op("random_crop")
def _random_crop(ctx: _Ctx, size: int | None = None) -> v2.Transform:
    size = _crop_size(size, ctx)
    if size > ctx.size:
        raise ctx.fail(f"a {size} px crop does not fit the {ctx.size} px image it gets (see data.resize)")
    ctx.size = size
    return v2.RandomCrop(size)


@_op("fixed_crop_flip")
def _fixed_crop_flip(ctx: _Ctx, seed: int, size: int | None = None) -> v2.Transform:
    """The multitask original's training transform, bug included: one v ~ U(0, 1), drawn once per
    run (here from `seed`), fixes the crop offset ⌊(side − size)·v⌋ and the flip (v < 0.5) of every
    sample for the whole run. Per-sample `random_crop` + `hflip` is the fix."""
    size = _crop_size(size, ctx)
    if size > ctx.size:
        raise ctx.fail(f"a {size} px crop does not fit the {ctx.size} px image it gets (see data.resize)")
    if not isinstance(seed, int):
        raise ctx.fail(f"seed must be an integer, not `{seed}`")
    v = random.Random(seed).random()
    offset = int((ctx.size - size) * v)
    ctx.size = size
    return FixedCropFlip(offset, size, flip=v < 0.5)


@_op("center_crop")
def _center_crop(ctx: _Ctx, size: int | None = None) -> v2.Transform:
    ctx.size = _crop_size(size, ctx)
    return v2.CenterCrop(ctx.size)


@_op("random_resized_crop")
def _random_resized_crop(
    ctx: _Ctx,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    size: int | None = None,
    interpolation: str | None = None,
) -> v2.Transform:
    ctx.size = _crop_size(size, ctx)
    return v2.RandomResizedCrop(
        ctx.size, scale=_pair(scale, "scale", ctx), ratio=_pair(ratio, "ratio", ctx),
        interpolation=ctx.interp(interpolation), antialias=True,
    )


@_op("hflip")
def _hflip(ctx: _Ctx, p: float = 0.5) -> v2.Transform:
    return v2.RandomHorizontalFlip(_probability(p, ctx))


@_op("rotation")
def _rotation(
    ctx: _Ctx, degrees: float | Sequence[float], p: float = 1.0, interpolation: str | None = None, fill: Any = 0
) -> v2.Transform:
    interp = ctx.interp(interpolation)
    _bicubic_needs_uint8(interp, ctx)
    return _maybe(RandomRotation(degrees, interpolation=interp, fill=fill), p, ctx)


@_op("affine")
def _affine(
    ctx: _Ctx,
    degrees: float | Sequence[float] = 0.0,
    translate: float | Sequence[float] | None = None,
    scale: Sequence[float] | None = None,
    shear: float | Sequence[float] | None = None,
    p: float = 1.0,
    interpolation: str | None = None,
    fill: Any = 0,
) -> v2.Transform:
    interp = ctx.interp(interpolation)
    _bicubic_needs_uint8(interp, ctx)
    if isinstance(translate, (int, float)):
        translate = (float(translate), float(translate))
    scale = None if scale is None else _pair(scale, "scale", ctx)
    return _maybe(
        RandomAffine(degrees, translate=translate, scale=scale, shear=shear, interpolation=interp, fill=fill), p, ctx
    )


@_op("color_jitter")
def _color_jitter(
    ctx: _Ctx,
    brightness: float | Sequence[float] = 0.0,
    contrast: float | Sequence[float] = 0.0,
    saturation: float | Sequence[float] = 0.0,
    hue: float | Sequence[float] = 0.0,
    p: float = 1.0,
) -> v2.Transform:
    if ctx.stage == _NORMALISED:
        raise ctx.fail("it works on pixel values: put it before normalize")
    jitter = v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
    return _maybe(jitter, p, ctx)


@_op("grayscale")
def _grayscale(ctx: _Ctx, p: float = 1.0) -> v2.Transform:
    return v2.RandomGrayscale(_probability(p, ctx))


@_op("gaussian_blur")
def _gaussian_blur(
    ctx: _Ctx, sigma: float | Sequence[float] = (0.1, 2.0), kernel_size: int | None = None, p: float = 1.0
) -> v2.Transform:
    lo, hi = (float(sigma), float(sigma)) if isinstance(sigma, (int, float)) else _pair(sigma, "sigma", ctx)
    if kernel_size is None:
        kernel_size = 2 * math.ceil(3 * hi) + 1  # covers ±3 sigma of the widest blur
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ctx.fail(f"kernel_size must be a positive odd integer, not `{kernel_size}`")
    return _maybe(v2.GaussianBlur(kernel_size, sigma=(lo, hi)), p, ctx)


@_op("gaussian_noise")
def _gaussian_noise(ctx: _Ctx, std: float, p: float = 1.0) -> v2.Transform:
    if ctx.stage == _NORMALISED:
        raise ctx.fail("its std is in 0-255 pixel units: put it before normalize")
    if not isinstance(std, (int, float)) or std < 0:
        raise ctx.fail(f"std must be a non-negative number of 0-255 pixel units, not `{std}`")
    return _maybe(PixelNoise(float(std)), p, ctx)


@_op("random_erasing")
def _random_erasing(
    ctx: _Ctx,
    p: float = 0.5,
    scale: Sequence[float] = (0.02, 0.33),
    ratio: Sequence[float] = (0.3, 3.3),
    value: float | str | Sequence[float] = 0,
) -> v2.Transform:
    if value == "random" and ctx.stage == _UINT8:
        raise ctx.fail("value `random` writes standard-normal floats: put to_float or normalize before it")
    return RandomErasing(
        p=_probability(p, ctx), scale=_pair(scale, "scale", ctx), ratio=_pair(ratio, "ratio", ctx), value=value
    )


@_op("random_order")
def _random_order(ctx: _Ctx, ops: Sequence[Any]) -> v2.Transform:
    """Nested ops in an order drawn per sample; all crops inside must agree on one output size, so
    the group's output size does not depend on the order."""
    start, in_group = ctx.size, ctx.in_group
    ctx.in_group = True
    ctx.where += ".ops"
    built: list[v2.Transform] = []
    sizes = set()
    entries = ops if isinstance(ops, Sequence) and not isinstance(ops, (str, bytes)) else None
    if not entries:
        raise ctx.fail(f"ops must be a non-empty list of ops, not `{ops}`")
    where = ctx.where
    for i, entry in enumerate(entries):
        ctx.size, ctx.where = start, f"{where}[{i}]"
        one = _build_one(entry, ctx)
        built += one if isinstance(one, list) else [one]
        if ctx.size != start:
            sizes.add(ctx.size)
    ctx.where, ctx.op = where[: -len(".ops")], "random_order"
    if len(sizes) > 1:
        raise ctx.fail(f"its crops give different sizes {sorted(sizes)}, so the output size would depend on the order")
    ctx.size, ctx.in_group = (sizes.pop() if sizes else start), in_group
    return v2.RandomOrder(built)


@_op("to_float")
def _to_float(ctx: _Ctx) -> v2.Transform:
    if ctx.in_group or ctx.stage != _UINT8:
        raise ctx.fail("it must appear at most once, at the top level, before normalize")
    ctx.stage = _FLOAT
    return v2.ToDtype(torch.float32, scale=True)


@_op("normalize")
def _normalize(ctx: _Ctx) -> list[v2.Transform]:
    if ctx.in_group or ctx.stage == _NORMALISED:
        raise ctx.fail("it must appear at most once, at the top level of data.augment.ops")
    ctx.stage = _NORMALISED
    return normalize_ops(ctx.spec)


