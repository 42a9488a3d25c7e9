"""The generator's settings: one frozen dataclass, the `dataset=synthetic` schema (configs/dataset/synthetic.yaml).

Every generator field changes what is generated, so those fields (with the generator's version) are the
cache key; the dataset's name and the cache location (`_NOT_GENERATED`) do not change the data and are not in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fermix.data.datasets.base import DatasetConfig, options_of
from fermix.errors import FermixError

# Bump when a change to the face model, renderer or design makes old caches wrong.
GENERATOR_VERSION = 2

class Classes(StrEnum):
    basic7 = "basic7"
    basic8 = "basic8"  # adds contempt
    mixbasic6 = "mixbasic6"  # no neutral


class Bias(StrEnum):
    none = "none"
    bias100 = "bias100"  # MixBasic-style withheld (domain, class) cells, only in test
    bias90 = "bias90"  # a withheld cell keeps `leak` of a normal cell in training


class Fold(StrEnum):
    """Which Latin-square rotation withholds which classes."""

    v1 = "v1"
    v2 = "v2"
    v3 = "v3"


FOLDS = tuple(f.value for f in Fold)


class TestSplit(StrEnum):
    iid = "iid"
    ood = "ood"  # withheld cells only
    balanced = "balanced"  # every cell


# symmetric | class (a fixed confusable class per class; `class` is a keyword, hence the functional form)
NoiseKind = StrEnum("NoiseKind", {"symmetric": "symmetric", "class": "class"})


class Partial(StrEnum):
    none = "none"
    disjoint = "disjoint"  # train: one task per sample
    random = "random"  # each task's label kept with partial_fraction


class Task(StrEnum):
    expression = "expression"
    identity = "identity"  # the label is the person


# Fields that do not change what is generated: never in the cache key.
_NOT_GENERATED = ("name", "adapter", "cache", "cache_dir")

# Global subject ids of the identity preset's people start here; no expression split may reach it
# (validate), and a person's face is drawn from (data seed, subject id), so for every pair of data
# seeds the identity people are other faces than any expression split's people.
IDENTITY_BASE = 1_000_000
IDENTITY_DESIGN_VERSION = 2  # bump when the identity split tables change (only task=identity caches)

# Fields added after caches existed: left out of the cache key at their defaults, so the key of
# every expression config (and with it every existing cache) is unchanged.
_KEY_DEFAULTS_OMITTED = {"task": "expression", "identities": 300}


@dataclass(frozen=True)
class SyntheticConfig(DatasetConfig):
    cache: bool = True  # build once, then memory-map from cache_dir
    cache_dir: str | None = None  # null: generate in memory
    seed: int = 0
    image_size: int = 64
    classes: Classes = Classes.basic7
    num_domains: int = 3
    bias: Bias = Bias.none
    fold: Fold = Fold.v1
    leak: float = 0.1  # bias90: a withheld cell keeps this fraction of a normal cell in training
    test: TestSplit = TestSplit.iid
    train_per_cell: int = 100  # samples per (domain, class) cell
    val_per_cell: int = 20
    test_per_cell: int = 40
    subjects_per_domain: tuple[int, int, int] = (20, 6, 8)  # train / val / test; splits never share a subject
    intensity: tuple[float, float] = (0.5, 1.0)  # expression intensity t
    au_jitter: float = 0.15  # relative per-AU jitter around t
    au_spontaneous: float = 0.05  # chance that a non-prototype AU fires weakly
    au_threshold: float = 0.25  # occurrence = intensity >= threshold
    va_noise: float = 0.1
    rotation: float = 8.0  # in-plane rotation std (degrees)
    scale: tuple[float, float] = (0.9, 1.08)
    translate: float = 0.04  # std, in units of half the image
    yaw: float = 0.15  # max horizontal squeeze of one side
    lighting: float = 0.25  # max strength of the lighting gradient
    ambiguity: float = 0.0  # fraction of samples blending two prototypes
    blend_weight: tuple[float, float] = (0.55, 0.8)  # weight of the primary class in a blend
    noise: float = 0.0  # label-noise rate
    noise_kind: NoiseKind = NoiseKind.symmetric  # type: ignore[valid-type]
    noise_splits: tuple[str, ...] = ("train", "val")  # test labels stay clean
    partial: Partial = Partial.none
    partial_fraction: float = 0.5  # random: chance each task's label is kept
    domain_styles: tuple[str, ...] = ()  # empty = the built-in styles in order
    task: Task = Task.expression  # identity: *_per_cell count per person
    identities: int = 300  # task=identity: how many people (all in train, val and test)

    def __post_init__(self) -> None:
        """Lists (as a config gives them) become tuples, so a config compares and hashes as one written in Python."""
        for f in dataclasses.fields(self):
            if isinstance(value := getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(value))

    def key(self) -> str:
        """A short hash of everything that determines the generated data."""
        fields = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in _NOT_GENERATED and _KEY_DEFAULTS_OMITTED.get(k, ...) != v
        }
        if self.task == "identity":
            fields["identity_design"] = IDENTITY_DESIGN_VERSION
        payload = json.dumps({"version": GENERATOR_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> SyntheticConfig:
        """The typed, validated config of a `dataset=synthetic` (or preset) mapping."""
        out: SyntheticConfig = options_of(cls, cfg, "synthetic")
        out.validate()
        return out

    def validate(self) -> None:
        """What the types cannot say: ranges and combinations that generate nothing sensible."""

        def bad(msg: str) -> None:
            raise FermixError(f"synthetic dataset: {msg}")

        if not 16 <= self.image_size <= 224:
            bad(f"image_size={self.image_size} is outside 16..224.")
        if self.num_domains < 1:
            bad("num_domains must be at least 1.")
        if self.bias != "none" and self.num_domains < 2:
            bad(f"bias={self.bias} withholds classes per domain and needs num_domains >= 2.")
        if self.test == "ood" and self.bias == "none":
            bad("test=ood needs withheld cells; set bias=bias100 or bias90.")
        for name in ("noise", "ambiguity", "leak", "partial_fraction"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                bad(f"{name}={getattr(self, name)} is not in [0, 1].")
        if min(self.train_per_cell, self.val_per_cell, self.test_per_cell) < 0:
            bad("per-cell sample counts cannot be negative.")
        if len(self.subjects_per_domain) != 3 or min(self.subjects_per_domain) < 1:
            bad("subjects_per_domain needs three positive counts (train, val, test).")
        if sum(self.subjects_per_domain) * self.num_domains >= IDENTITY_BASE:
            bad(f"subjects_per_domain x num_domains reaches the identity preset's people (ids from {IDENTITY_BASE}).")
        if self.task == "identity":
            if not 2 <= self.identities <= IDENTITY_BASE:
                bad(f"identities={self.identities} is outside 2..{IDENTITY_BASE}.")
            if self.bias != "none" or self.noise > 0 or self.partial != "none":
                bad("task=identity labels people: it takes no bias, label noise or partial labels.")

