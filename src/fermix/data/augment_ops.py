"""`data.augment.ops`: a paper's training augmentation written as an ordered list of ops in YAML
(docs/augmentation.md), each entry an object named by `_target_` with its arguments beside it.

An entry names either a torchvision v2 transform (taken as it is, e.g. RandomHorizontalFlip) or one of
the ops below, which need to know where they stand in the list before they become transforms: the
pixel stage (uint8, float, normalised), the image size left by the crops before them, and the data
config's image size and interpolation (their defaults). The builder tracks both and refuses, in one
sentence naming the entry, a list that cannot work.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import v2

from fermix.data import image_ops
from fermix.errors import FermixError
from fermix.utils.targets import instantiate, target_name

# Pixel stages an op can see: uint8 (after Resize), float in [0, 1] (after ToFloat), normalised
# floats (after Normalize). Some ops only make sense in some stages; the builder checks.
_UINT8, _FLOAT, _NORMALISED = "uint8", "float", "normalised"


@dataclass
class Context:
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
        if name not in image_ops.INTERPOLATION:
            raise self.fail(f"interpolation must be one of {', '.join(image_ops.INTERPOLATION)}, not `{name}`")
        return image_ops.INTERPOLATION[name]

    def fail(self, message: str) -> FermixError:
        where = f"augment op `{self.op}` at {self.where}" if self.op else self.where
        return FermixError(f"{where}: {message}")


class AugmentOp(ABC):
    """An entry of `data.augment.ops` that becomes torchvision transforms once it knows its Context.

    The constructor only keeps the arguments; `build` checks them, so that every complaint can name
    the entry's place in the list."""

    @abstractmethod
    def build(self, ctx: Context) -> v2.Transform | list[v2.Transform]:
        """The transforms for this position; may change `ctx.size` (crops) or `ctx.stage`."""


def build_ops(entries: Any, spec: Mapping[str, Any]) -> list[v2.Transform]:
    """The train ops between Resize and the network, from `data.augment.ops` (a list of `_target_`
    mappings); ToDtype+Normalize are appended unless a Normalize entry places them."""
    ctx = Context(spec=spec, size=int(spec["resize"]))
    ops = _build_list(entries, ctx)
    if ctx.stage != _NORMALISED:
        ops += image_ops.normalize_ops(spec)
    if ctx.size != ctx.image_size:
        raise FermixError(
            f"data.augment.ops leave a {ctx.size} px image but data.image_size is {ctx.image_size}: "
            f"add a crop to {ctx.image_size} px (e.g. `{{_target_: fermix.data.augment_ops.RandomCrop}}`)"
        )
    return ops


def _build_list(entries: Any, ctx: Context) -> list[v2.Transform]:
    where = ctx.where
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise FermixError(
            f"{where} must be a list of ops like `{{_target_: torchvision.transforms.v2.RandomHorizontalFlip, "
            f"p: 0.5}}`, not `{entries}`"
        )
    out: list[v2.Transform] = []
    for i, entry in enumerate(entries):
        ctx.where, ctx.op = f"{where}[{i}]", ""
        built = _build_one(entry, ctx)
        out += built if isinstance(built, list) else [built]
    ctx.where, ctx.op = where, ""
    return out


def _build_one(entry: Any, ctx: Context) -> v2.Transform | list[v2.Transform]:
    entry = _plain(entry)
    if not isinstance(entry, dict) or "_target_" not in entry:
        raise ctx.fail(_not_an_entry(entry))
    target = target_name(entry, ctx.where)
    op = instantiate(entry, ctx.where, _recursive_=False)  # RandomOrder builds its own nested ops
    ctx.op = target.rpartition(".")[2]
    try:
        if isinstance(op, AugmentOp):
            built = op.build(ctx)
        elif isinstance(op, v2.Transform):
            built = op
            _follow_size(op, ctx)
        else:
            kind = type(op).__name__
            raise ctx.fail(f"`{target}` is not a torchvision v2 transform or a fermix augment op (it built {kind})")
    except FermixError:
        raise
    except (ValueError, TypeError) as exc:  # torchvision's own argument checks
        raise ctx.fail(f"bad argument: {str(exc).strip().rstrip('.')}") from exc
    if entry.get("p") == 0:  # switched off: no coin flip either, as if the entry were absent
        return v2.Identity()
    return built


def _not_an_entry(entry: Any) -> str:
    """What to write instead; for an entry in the form before `_target_`, its translation."""
    from fermix.engine.legacy import upgrade_op

    new = upgrade_op(entry)
    if isinstance(new, dict) and "_target_" in new:
        shown = ", ".join(f"{k}: {v}" for k, v in new.items())
        return f"ops are named by `_target_` now: write `{{{shown}}}` for `{entry}` (docs/augmentation.md)"
    return f"each op must be a mapping with a `_target_` (docs/augmentation.md lists them), not `{entry}`"


def _follow_size(transform: v2.Transform, ctx: Context) -> None:
    """A torchvision transform with a `size` (crops, Resize) sets the image size after it."""
    size = getattr(transform, "size", None)
    if isinstance(size, int):
        ctx.size = size
    elif isinstance(size, (list, tuple)) and len(size) in (1, 2) and all(isinstance(s, int) for s in size):
        if len(set(size)) != 1:
            raise ctx.fail(f"it gives a {size[0]}×{size[1]} image; the ops work on square images")
        ctx.size = int(size[0])


def _plain(value: Any) -> Any:
    """OmegaConf containers -> dicts and lists, so torchvision's own type checks accept them."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def _maybe(transform: v2.Transform, p: float, ctx: Context) -> v2.Transform:
    """Apply with probability p; p = 1 adds no coin flip, so the RNG stream is the plain op's
    (p = 0 is dropped altogether by the caller)."""
    p = _probability(p, ctx)
    return transform if p >= 1.0 else v2.RandomApply([transform], p=p)


def _probability(p: Any, ctx: Context) -> float:
    if not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ctx.fail(f"p must be a probability in [0, 1], not `{p}`")
    return float(p)


def _crop_size(size: Any, ctx: Context) -> int:
    size = ctx.image_size if size is None else size
    if not isinstance(size, int) or size < 1:
        raise ctx.fail(f"size must be a positive number of pixels, not `{size}`")
    return size


def _pair(value: Any, name: str, ctx: Context) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
        raise ctx.fail(f"{name} must be a range `[lo, hi]`, not `{value}`")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ctx.fail(f"{name} must be a range `[lo, hi]` with lo <= hi, not `{value}`")
    return lo, hi


def _bicubic_needs_uint8(interp: v2.InterpolationMode, ctx: Context) -> None:
    if interp == v2.InterpolationMode.BICUBIC and ctx.stage != _UINT8:
        raise ctx.fail("bicubic runs through PIL and needs the uint8 image: put this op before ToFloat/Normalize")


# --- the ops --------------------------------------------------------------------------------------
class RandomCrop(AugmentOp):
    """RandomCrop to `size` (default data.image_size); the crop must fit the image it gets."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size

    def build(self, ctx: Context) -> v2.Transform:
        size = _crop_size(self.size, ctx)
        if size > ctx.size:
            raise ctx.fail(f"a {size} px crop does not fit the {ctx.size} px image it gets (see data.resize)")
        ctx.size = size
        return v2.RandomCrop(size)


class FixedCropFlip(AugmentOp):
    """The multitask original's training transform, bug included: one v ~ U(0, 1), drawn once per
    run (here from `seed`), fixes the crop offset ⌊(side − size)·v⌋ and the flip (v < 0.5) of every
    sample for the whole run. Per-sample RandomCrop + RandomHorizontalFlip is the fix."""

    def __init__(self, seed: int, size: int | None = None) -> None:
        self.seed, self.size = seed, size

    def build(self, ctx: Context) -> v2.Transform:
        size = _crop_size(self.size, ctx)
        if size > ctx.size:
            raise ctx.fail(f"a {size} px crop does not fit the {ctx.size} px image it gets (see data.resize)")
        if not isinstance(self.seed, int):
            raise ctx.fail(f"seed must be an integer, not `{self.seed}`")
        v = random.Random(self.seed).random()
        offset = int((ctx.size - size) * v)
        ctx.size = size
        return image_ops.FixedCropFlip(offset, size, flip=v < 0.5)


class CenterCrop(AugmentOp):
    """CenterCrop to `size` (default data.image_size; pads when larger than the image)."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size

    def build(self, ctx: Context) -> v2.Transform:
        ctx.size = _crop_size(self.size, ctx)
        return v2.CenterCrop(ctx.size)


class RandomResizedCrop(AugmentOp):
    """RandomResizedCrop to `size` (default data.image_size), antialiased, data.interpolation by default."""

    def __init__(
        self,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        size: int | None = None,
        interpolation: str | None = None,
    ) -> None:
        self.scale, self.ratio, self.size, self.interpolation = scale, ratio, size, interpolation

    def build(self, ctx: Context) -> v2.Transform:
        ctx.size = _crop_size(self.size, ctx)
        return v2.RandomResizedCrop(
            ctx.size, scale=_pair(self.scale, "scale", ctx), ratio=_pair(self.ratio, "ratio", ctx),
            interpolation=ctx.interp(self.interpolation), antialias=True,
        )  # fmt: skip


class Rotation(AugmentOp):
    """RandomRotation within `degrees` (±x or [lo, hi]) with probability p; bicubic through PIL."""

    def __init__(
        self, degrees: float | Sequence[float], p: float = 1.0, interpolation: str | None = None, fill: Any = 0
    ) -> None:
        self.degrees, self.p, self.interpolation, self.fill = degrees, p, interpolation, fill

    def build(self, ctx: Context) -> v2.Transform:
        interp = ctx.interp(self.interpolation)
        _bicubic_needs_uint8(interp, ctx)
        return _maybe(image_ops.RandomRotation(self.degrees, interpolation=interp, fill=self.fill), self.p, ctx)


class Affine(AugmentOp):
    """RandomAffine with probability p; `translate` a fraction for both axes or [fx, fy]; bicubic through PIL."""

    def __init__(
        self,
        degrees: float | Sequence[float] = 0.0,
        translate: float | Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        shear: float | Sequence[float] | None = None,
        p: float = 1.0,
        interpolation: str | None = None,
        fill: Any = 0,
    ) -> None:
        self.degrees, self.translate, self.scale, self.shear = degrees, translate, scale, shear
        self.p, self.interpolation, self.fill = p, interpolation, fill

    def build(self, ctx: Context) -> v2.Transform:
        interp = ctx.interp(self.interpolation)
        _bicubic_needs_uint8(interp, ctx)
        translate = self.translate
        if isinstance(translate, (int, float)):
            translate = (float(translate), float(translate))
        scale = None if self.scale is None else _pair(self.scale, "scale", ctx)
        affine = image_ops.RandomAffine(
            self.degrees, translate=translate, scale=scale, shear=self.shear, interpolation=interp, fill=self.fill
        )
        return _maybe(affine, self.p, ctx)


class ColorJitter(AugmentOp):
    """ColorJitter (0 = unchanged; a float or [lo, hi] as torchvision takes them) with probability p,
    on pixel values: before Normalize."""

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.0,
        contrast: float | Sequence[float] = 0.0,
        saturation: float | Sequence[float] = 0.0,
        hue: float | Sequence[float] = 0.0,
        p: float = 1.0,
    ) -> None:
        self.brightness, self.contrast, self.saturation, self.hue, self.p = brightness, contrast, saturation, hue, p

    def build(self, ctx: Context) -> v2.Transform:
        if ctx.stage == _NORMALISED:
            raise ctx.fail("it works on pixel values: put it before Normalize")
        jitter = v2.ColorJitter(
            brightness=self.brightness, contrast=self.contrast, saturation=self.saturation, hue=self.hue
        )
        return _maybe(jitter, self.p, ctx)


class GaussianBlur(AugmentOp):
    """GaussianBlur with σ drawn per sample from `sigma`; the kernel covers ±3σ of the widest blur."""

    def __init__(
        self, sigma: float | Sequence[float] = (0.1, 2.0), kernel_size: int | None = None, p: float = 1.0
    ) -> None:
        self.sigma, self.kernel_size, self.p = sigma, kernel_size, p

    def build(self, ctx: Context) -> v2.Transform:
        sigma = self.sigma
        lo, hi = (float(sigma), float(sigma)) if isinstance(sigma, (int, float)) else _pair(sigma, "sigma", ctx)
        kernel_size = 2 * math.ceil(3 * hi) + 1 if self.kernel_size is None else self.kernel_size
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ctx.fail(f"kernel_size must be a positive odd integer, not `{kernel_size}`")
        return _maybe(v2.GaussianBlur(kernel_size, sigma=(lo, hi)), self.p, ctx)


class GaussianNoise(AugmentOp):
    """Additive N(0, std²) per pixel and channel, std in 0-255 pixel units, then clipped (image_ops.PixelNoise)."""

    def __init__(self, std: float, p: float = 1.0) -> None:
        self.std, self.p = std, p

    def build(self, ctx: Context) -> v2.Transform:
        if ctx.stage == _NORMALISED:
            raise ctx.fail("its std is in 0-255 pixel units: put it before Normalize")
        if not isinstance(self.std, (int, float)) or self.std < 0:
            raise ctx.fail(f"std must be a non-negative number of 0-255 pixel units, not `{self.std}`")
        return _maybe(image_ops.PixelNoise(float(self.std)), self.p, ctx)


class RandomErasing(AugmentOp):
    """RandomErasing (landmarks pass through); `value: random` writes standard-normal floats."""

    def __init__(
        self,
        p: float = 0.5,
        scale: Sequence[float] = (0.02, 0.33),
        ratio: Sequence[float] = (0.3, 3.3),
        value: float | str | Sequence[float] = 0,
    ) -> None:
        self.p, self.scale, self.ratio, self.value = p, scale, ratio, value

    def build(self, ctx: Context) -> v2.Transform:
        if self.value == "random" and ctx.stage == _UINT8:
            raise ctx.fail("value `random` writes standard-normal floats: put ToFloat or Normalize before it")
        return image_ops.RandomErasing(
            p=_probability(self.p, ctx), scale=_pair(self.scale, "scale", ctx), ratio=_pair(self.ratio, "ratio", ctx),
            value=self.value,
        )  # fmt: skip


class RandomOrder(AugmentOp):
    """Nested ops in an order drawn per sample; all crops inside must agree on one output size, so
    the group's output size does not depend on the order."""

    def __init__(self, ops: Sequence[Any]) -> None:
        self.ops = ops

    def build(self, ctx: Context) -> v2.Transform:
        start, in_group = ctx.size, ctx.in_group
        ctx.in_group = True
        ctx.where += ".ops"
        entries = self.ops if isinstance(self.ops, Sequence) and not isinstance(self.ops, (str, bytes)) else None
        if not entries:
            raise ctx.fail(f"ops must be a non-empty list of ops, not `{self.ops}`")
        where, built, sizes = ctx.where, [], set()
        for i, entry in enumerate(entries):
            ctx.size, ctx.where = start, f"{where}[{i}]"
            one = _build_one(entry, ctx)
            built += one if isinstance(one, list) else [one]
            if ctx.size != start:
                sizes.add(ctx.size)
        ctx.where, ctx.op = where[: -len(".ops")], "RandomOrder"
        if len(sizes) > 1:
            raise ctx.fail(
                f"its crops give different sizes {sorted(sizes)}, so the output size would depend on the order"
            )
        ctx.size, ctx.in_group = (sizes.pop() if sizes else start), in_group
        return v2.RandomOrder(built)


class ToFloat(AugmentOp):
    """ToDtype(float, scale): later ops see floats in [0, 1]."""

    def build(self, ctx: Context) -> v2.Transform:
        if ctx.in_group or ctx.stage != _UINT8:
            raise ctx.fail("it must appear at most once, at the top level, before Normalize")
        ctx.stage = _FLOAT
        return v2.ToDtype(torch.float32, scale=True)


class Normalize(AugmentOp):
    """ToDtype + Normalize(data.mean, data.std) here instead of after the last op."""

    def build(self, ctx: Context) -> list[v2.Transform]:
        if ctx.in_group or ctx.stage == _NORMALISED:
            raise ctx.fail("it must appear at most once, at the top level of data.augment.ops")
        ctx.stage = _NORMALISED
        return image_ops.normalize_ops(ctx.spec)
