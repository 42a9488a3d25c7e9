"""The generator's settings: one frozen dataclass, built from the Hydra `dataset` group.

Every field changes what is generated, so the whole dataclass (with the generator's version)
is the cache key; fields that do not change the data (cache location) are not in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fermix.errors import FermixError

# Bump when a change to the face model, renderer or design makes old caches wrong.
GENERATOR_VERSION = 2

FOLDS = ("v1", "v2", "v3")

# Global subject ids of the identity preset's people start here; no expression split may reach it
# (validate), and a person's face is drawn from (data seed, subject id), so for every pair of data
# seeds the identity people are other faces than any expression split's people.
IDENTITY_BASE = 1_000_000
IDENTITY_DESIGN_VERSION = 2  # bump when the identity split tables change (only task=identity caches)

# Fields added after caches existed: left out of the cache key at their defaults, so the key of
# every expression config (and with it every existing cache) is unchanged.
_KEY_DEFAULTS_OMITTED = {"task": "expression", "identities": 300}


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = 0
    image_size: int = 64
    classes: str = "basic7"  # basic7 | basic8 (adds contempt) | mixbasic6 (no neutral)
    num_domains: int = 3
    bias: str = "none"  # none | bias100 | bias90: the MixBasic-style withheld (domain, class) cells
    fold: str = "v1"  # which Latin-square rotation withholds which classes (v1, v2, v3)
    leak: float = 0.1  # bias90: a withheld cell keeps this fraction of a normal cell in training
    test: str = "iid"  # iid | ood (withheld cells only) | balanced (every cell)
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
    noise_kind: str = "symmetric"  # symmetric | class (a fixed confusable class per class)
    noise_splits: tuple[str, ...] = ("train", "val")  # test labels stay clean
    partial: str = "none"  # none | disjoint (train: one task per sample) | random
    partial_fraction: float = 0.5  # random: chance each task's label is kept
    domain_styles: tuple[str, ...] = ()  # empty = the built-in styles in order
    task: str = "expression"  # expression | identity (the label is the person; *_per_cell count per person)
    identities: int = 300  # task=identity: how many people (all in train, val and test)

    def key(self) -> str:
        """A short hash of everything that determines the generated data."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if _KEY_DEFAULTS_OMITTED.get(k, ...) != v}
        if self.task == "identity":
            fields["identity_design"] = IDENTITY_DESIGN_VERSION
        payload = json.dumps({"version": GENERATOR_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> SyntheticConfig:
        """Generator fields of a dataset config (other keys such as `name` or `cache_dir` are ignored)."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for k, v in cfg.items():
            if k in defaults:
                values[k] = tuple(v) if isinstance(defaults[k], tuple) and v is not None else v
        try:
            out = cls(**values)
        except TypeError as e:
            raise FermixError(f"synthetic dataset config: {e}") from None
        out.validate()
        return out

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise FermixError(f"synthetic dataset: {msg}")

        if self.classes not in ("basic7", "basic8", "mixbasic6"):
            bad(f"classes={self.classes} is not one of basic7, basic8, mixbasic6.")
        if not 16 <= self.image_size <= 224:
            bad(f"image_size={self.image_size} is outside 16..224.")
        if self.num_domains < 1:
            bad("num_domains must be at least 1.")
        if self.bias not in ("none", "bias100", "bias90"):
            bad(f"bias={self.bias} is not one of none, bias100, bias90.")
        if self.bias != "none" and self.num_domains < 2:
            bad(f"bias={self.bias} withholds classes per domain and needs num_domains >= 2.")
        if self.fold not in FOLDS:
            bad(f"fold={self.fold} is not one of {', '.join(FOLDS)}.")
        if self.test not in ("iid", "ood", "balanced"):
            bad(f"test={self.test} is not one of iid, ood, balanced.")
        if self.test == "ood" and self.bias == "none":
            bad("test=ood needs withheld cells; set bias=bias100 or bias90.")
        if self.noise_kind not in ("symmetric", "class"):
            bad(f"noise_kind={self.noise_kind} is not symmetric or class.")
        if self.partial not in ("none", "disjoint", "random"):
            bad(f"partial={self.partial} is not one of none, disjoint, random.")
        for name in ("noise", "ambiguity", "leak", "partial_fraction"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                bad(f"{name}={getattr(self, name)} is not in [0, 1].")
        if min(self.train_per_cell, self.val_per_cell, self.test_per_cell) < 0:
            bad("per-cell sample counts cannot be negative.")
        if len(self.subjects_per_domain) != 3 or min(self.subjects_per_domain) < 1:
            bad("subjects_per_domain needs three positive counts (train, val, test).")
        if sum(self.subjects_per_domain) * self.num_domains >= IDENTITY_BASE:
            bad(f"subjects_per_domain x num_domains reaches the identity preset's people (ids from {IDENTITY_BASE}).")
        if self.task not in ("expression", "identity"):
            bad(f"task={self.task} is not expression or identity.")
        if self.task == "identity":
            if not 2 <= self.identities <= IDENTITY_BASE:
                bad(f"identities={self.identities} is outside 2..{IDENTITY_BASE}.")
            if self.bias != "none" or self.noise > 0 or self.partial != "none":
                bad("task=identity labels people: it takes no bias, label noise or partial labels.")

