"""`dataset=synthetic_mm`: multimodal sequences with a unimodal shortcut (methods/causalmer.md §6.2).

Samples are shaped like MulT's IEMOCAP (text 300-d, audio 74-d, vision 35-d per step, aligned length
20, K = 4 emotions with exactly one present, labels (N, 4, 2)) or, with `shape: mosei`, like MOSEI
(length 50, K = 7 classes and a sentiment score in [-3, 3] that rounds to the class).

Each modality carries at most one code, a symbol in 0..K-1. The two genuine modalities (text and audio
when vision is the shortcut) carry u_1, u_2:
  interaction: u_1 uniform, u_2 = (y - u_1) mod K, so y = (u_1 + u_2) mod K while each code alone is
               independent of y (at chance for any probe), the case CausalMER's graph assumes;
  additive:    u_1 = u_2 = y, each genuine modality informative alone.
The shortcut modality carries y with probability `rho` and a uniformly random code otherwise (which
equals y one time in K), in train and val. At test, `test_variant` says what it carries: `iid` (as in
training), `random` (a uniform code), `reversed` ((y + 1) mod K) or `zeroed` (the modality is all
zeros). The test samples are the same for every variant except in the shortcut modality.

Embedding (decided once, before any method was run on it; do not tune these to make a method win).
Code c of modality m is a prototype: K orthonormal directions of a random 16-d latent space, scaled so
that two codes lie `separation` apart, mapped into D_m dimensions by a fixed random projection with
orthonormal columns. Every step of a sample's sequence is
    offset_m + prototype_m[c] + SAMPLE_NOISE * eta (one per sample) + STEP_NOISE * eps (fresh per step),
with offset_m a fixed N(0, OFFSET_STD^2) vector per modality (real features do not have zero mean, so a
zeroed modality is out of distribution, as in the paper's missing-modality protocol) and eta, eps
standard normal per element. The time average has per-element noise sigma = sqrt(0.3^2 + 1/L) = 0.374
at L = 20, so codes are d' = separation / sigma apart after averaging: genuine 3.75 / 0.374 = 10.0, shortcut
2.25 / 0.374 = 6.0; one step alone is noisier (d' 3.6 and 2.2). The shortcut's accuracy is set by rho alone
(a logistic regression on time-averaged vision scores 0.83-0.85 = rho + (1 - rho) / K). In the interaction
regime the genuine codes are easy to read one at a time but the label needs their sum mod K, which carries no
first-order signal: a model must escape the all-"absent" plateau to learn it, and the separation sets how fast.

The gate (issue 21; tests/data/test_synthetic_mm_gate.py, docs/results/causalmer.md "The gate"): a trained model
that never sees the shortcut must beat the all-"absent" floor (avg_acc 0.75) by ten points. The first genuine
separation, 0.94 (generator version 1; the nearest-prototype decoder read a code right 77% of the time and y
from text + audio 62-63%), failed it, and so did the 1-layer MulT recipe at every separation (1.5 to 9) and
training size (up to 30 000) tried. The benchmark's fused model is therefore the spec's time-averaged MLP
stand-in (`method.fused=mlp`), and the separation is the first rung of a ladder fixed before its runs (3.0,
3.75, 4.5) at which that model passed on three seeds: 3.75 (test avg_acc 0.937, 0.989, 0.990).
Options: `separation` (genuine codes' distance), `remove` (modalities zeroed in every split),
`val_variant` (the validation split's shortcut) and `val_twin` (the validation samples again with another
shortcut, flagged `twin`, for a second selection from one training).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from fermix.data.datasets.base import DatasetConfig, options_of
from fermix.data.datasets.common import at_least
from fermix.data.datasets.mult_pickle import MODALITIES, PICKLE_SPLITS, MultArraysDataset
from fermix.errors import FermixError

SHAPES: dict[str, dict[str, Any]] = {
    "iemocap": {"classes": 4, "length": 20, "dims": {"text": 300, "audio": 74, "vision": 35}},
    "mosei": {"classes": 7, "length": 50, "dims": {"text": 300, "audio": 74, "vision": 35}},
}


class Shape(StrEnum):
    iemocap = "iemocap"
    mosei = "mosei"


class Regime(StrEnum):
    interaction = "interaction"
    additive = "additive"


class Shortcut(StrEnum):
    text = "text"
    audio = "audio"
    vision = "vision"
    none = "none"


class Variant(StrEnum):
    """What the shortcut modality carries in a split."""

    iid = "iid"
    random = "random"
    reversed = "reversed"
    zeroed = "zeroed"


NO_CODE = -1  # a modality that carries no code (noise only, or zeroed)

LATENT_DIM = 16
STEP_NOISE = 1.0
SAMPLE_NOISE = 0.3
OFFSET_STD = 1.0
GENUINE_SEPARATION = 3.75  # frozen by the gate (docstring); generator version 1 had 0.94
SHORTCUT_SEPARATION = 2.25
SCORE_JITTER = 0.45  # MOSEI shape: score = class - 3 + U(-0.45, 0.45), so it rounds back to its class


@dataclass(frozen=True)
class SyntheticMMConfig(DatasetConfig):
    """configs/dataset/synthetic_mm.yaml: the generator's settings are the dataset's options."""

    seed: int = 0
    shape: Shape = Shape.iemocap
    regime: Regime = Regime.interaction
    shortcut: Shortcut = Shortcut.vision
    rho: float = 0.8
    test_variant: Variant = Variant.iid
    val_variant: Variant = Variant.iid  # the validation split's shortcut (iid: as training); random = shortcut-free
    val_twin: Variant | None = None  # a second copy of the validation samples with this shortcut variant (`twin` = 1)
    remove: Any = None  # modalities zeroed in every split, by name or letter; from_mapping makes it a tuple of names
    separation: float = GENUINE_SEPARATION  # distance between two codes of a genuine modality (latent units)
    train: int = 2000
    val: int = 500
    test: int = 1000
    lengths: Any = None  # one int or [text, audio, vision]; from_mapping makes it a tuple; None = the shape's

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> SyntheticMMConfig:
        """The typed config (closed choices checked by its schema), with the ranges checked and `remove` and
        `lengths` read; a bad value is a one-sentence error."""
        o: SyntheticMMConfig = options_of(cls, cfg, "synthetic_mm")
        at_least(o.seed, "seed", 0)
        for key in ("train", "val", "test"):
            at_least(getattr(o, key), key, 1)
        if not 0.0 <= o.rho <= 1.0:
            raise FermixError(f"dataset.rho={o.rho} is not a probability in [0, 1].")
        if not (np.isfinite(o.separation) and o.separation > 0):
            raise FermixError(f"dataset.separation={o.separation} is not a positive number.")
        return replace(o, remove=_modalities(o.remove, "remove"), lengths=_lengths(o.lengths))

    @property
    def num_classes(self) -> int:
        return int(SHAPES[self.shape]["classes"])

    def length(self, modality: str) -> int:
        lengths = _lengths(self.lengths)  # read already by from_mapping; a config built in Python may not be
        if lengths is None:
            return int(SHAPES[self.shape]["length"])
        return lengths[MODALITIES.index(modality)]

    @property
    def removed(self) -> tuple[str, ...]:
        """The modalities `remove` names (read already by from_mapping; a config built in Python may not be)."""
        return _modalities(self.remove, "remove")

    def dim(self, modality: str) -> int:
        return int(SHAPES[self.shape]["dims"][modality])

    def roles(self) -> dict[str, str]:
        """Modality -> "genuine" | "shortcut" | "noise"."""
        genuine = [m for m in MODALITIES if m != self.shortcut][:2]
        return {m: "genuine" if m in genuine else "shortcut" if m == self.shortcut else "noise" for m in MODALITIES}


def generate(cfg: SyntheticMMConfig) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """The three splits in MulT's layout (float32 features) and each split's codes.

    Codes per split: `y` (class), `code_<modality>` (NO_CODE where a modality carries none),
    `shortcut_clean` (the shortcut copied y by design, before the test variant).
    """
    embeddings = _embeddings(cfg)
    arrays: dict[str, dict[str, np.ndarray]] = {}
    codes: dict[str, dict[str, np.ndarray]] = {}
    sizes = {"train": cfg.train, "valid": cfg.val, "test": cfg.test}
    for index, part in enumerate(PICKLE_SPLITS):
        rng = np.random.default_rng([cfg.seed, 1 + index])
        arrays[part], codes[part] = _split(cfg, embeddings, rng, sizes[part], part)
        if cfg.val_twin is not None:
            codes[part]["twin"] = np.zeros(sizes[part], np.int64)
    if cfg.val_twin is not None:  # the same draws again: only the shortcut modality differs, as between test variants
        twin_cfg = replace(cfg, val_variant=cfg.val_twin)
        rng = np.random.default_rng([cfg.seed, 1 + list(PICKLE_SPLITS).index("valid")])
        twin_arrays, twin_codes = _split(twin_cfg, embeddings, rng, cfg.val, "valid")
        twin_codes["twin"] = np.ones(cfg.val, np.int64)
        arrays["valid"] = {k: np.concatenate([v, twin_arrays[k]]) for k, v in arrays["valid"].items()}
        codes["valid"] = {k: np.concatenate([v, twin_codes[k]]) for k, v in codes["valid"].items()}
    return arrays, codes


class SyntheticMMDataset(MultArraysDataset):
    """The generated splits served exactly as the `iemocap` / `mosei` adapters serve a MulT pickle."""

    name = "synthetic_mm"
    Config = SyntheticMMConfig

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.config = SyntheticMMConfig.from_mapping(cfg)
        self.arrays, self.codes = generate(self.config)
        self._set_splits(self.arrays, "synthetic_mm")
        if self.config.val_twin is not None:
            self.keys = self.keys | {"twin"}

    def load(self, row: Mapping[str, Any]) -> dict[str, Any]:
        sample = super().load(row)
        if self.config.val_twin is not None:  # 1 on the validation twin: mult / causalmer report it as twin_*
            sample["twin"] = int(row["twin"])
        return sample

    def _extra_columns(self, part: str) -> dict[str, Any]:
        return dict(self.codes[part])

    def write(self, path: str | Path) -> Path:
        """This dataset as a MulT pickle (float64), which dataset=iemocap / mosei read back."""
        from fermix.data.writers.mult_pickle import write_mult_pickle

        return write_mult_pickle(self.arrays, path)


# -------------------------------------------------------------------- generation


@dataclass(frozen=True)
class _Embedding:
    offset: np.ndarray  # (D,)
    prototypes: np.ndarray  # (K, D): code c's mean displacement


def _embeddings(cfg: SyntheticMMConfig) -> dict[str, _Embedding]:
    """Fixed per modality and seed: shared by all splits."""
    rng = np.random.default_rng([cfg.seed, 0])
    k = cfg.num_classes
    out = {}
    for m, role in cfg.roles().items():
        d = cfg.dim(m)
        latent = min(LATENT_DIM, d)
        codes = np.linalg.qr(rng.standard_normal((latent, latent)))[0][:k]  # K orthonormal latent directions
        projection = np.linalg.qr(rng.standard_normal((d, latent)))[0]  # orthonormal columns
        offset = rng.normal(0.0, OFFSET_STD, d)
        separation = SHORTCUT_SEPARATION if role == "shortcut" else cfg.separation
        # orthonormal codes are sqrt(2) apart; scale them to `separation`
        prototypes = (codes @ projection.T) * (separation / np.sqrt(2.0))
        out[m] = _Embedding(offset.astype(np.float32), prototypes.astype(np.float32))
    return out


def _split(
    cfg: SyntheticMMConfig, embeddings: dict[str, _Embedding], rng: np.random.Generator, n: int, part: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    k = cfg.num_classes
    # Every draw happens whatever the options, in a fixed order, so the test variants share their samples.
    y = rng.integers(0, k, n)
    u_first = rng.integers(0, k, n)
    clean = rng.random(n) < cfg.rho
    random_code = rng.integers(0, k, n)
    jitter = rng.uniform(-SCORE_JITTER, SCORE_JITTER, n)

    genuine = (u_first, (y - u_first) % k) if cfg.regime == "interaction" else (y, y)
    shortcut = np.where(clean, y, random_code)
    zeroed = False
    variant = {"test": cfg.test_variant, "valid": cfg.val_variant}.get(part, "iid")
    if variant == "random":
        shortcut = random_code
    elif variant == "reversed":
        shortcut = (y + 1) % k
    elif variant == "zeroed":
        shortcut, zeroed = np.full(n, NO_CODE), True

    roles, removed = cfg.roles(), cfg.removed
    genuine_iter = iter(genuine)
    codes: dict[str, np.ndarray] = {}
    for m, role in roles.items():
        if role == "genuine":
            codes[m] = next(genuine_iter)
        else:
            codes[m] = shortcut if role == "shortcut" else np.full(n, NO_CODE)
    arrays: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        x = _features(embeddings[m], codes[m], cfg.length(m), rng)
        if (roles[m] == "shortcut" and zeroed) or m in removed:
            x[:] = 0.0
        arrays[m] = x
    codes.update({m: np.full(n, NO_CODE) for m in removed})  # a removed modality carries no code

    if cfg.shape == "iemocap":
        present = (np.arange(k)[None, :] == y[:, None]).astype(np.float32)  # (N, 4): exactly one emotion
        arrays["labels"] = np.stack([1.0 - present, present], axis=-1)  # (N, 4, 2) one-hot [absent, present]
    else:
        score = np.clip(y - 3 + jitter, -3.0, 3.0).astype(np.float32)
        arrays["labels"] = score.reshape(n, 1, 1)
        length = cfg.length("text")
        arrays["id"] = np.array([[f"synthetic_{part}_{i:06d}", "0", str(length)] for i in range(n)])
    info = {"y": y.astype(np.int64)}
    info.update({f"code_{m}": np.asarray(c, np.int64) for m, c in codes.items()})
    info["shortcut_clean"] = clean if cfg.shortcut != "none" else np.zeros(n, bool)
    return arrays, info


def _features(emb: _Embedding, code: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """(N, L, D) float32: offset + prototype of the code + per-sample and per-step noise."""
    n, d = code.shape[0], emb.offset.shape[0]
    x = rng.standard_normal((n, length, d), dtype=np.float32)
    if STEP_NOISE != 1.0:
        x *= np.float32(STEP_NOISE)
    static = emb.offset + np.float32(SAMPLE_NOISE) * rng.standard_normal((n, d), dtype=np.float32)
    has = code != NO_CODE
    static[has] += emb.prototypes[code[has]]
    x += static[:, None, :]
    return x


# -------------------------------------------------------------------- options


def _modalities(value: Any, key: str) -> tuple[str, ...]:
    """None, one modality or a list of them, by name (vision) or letter (v, as eval.remove)."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    letters = {m[0]: m for m in MODALITIES}
    out = []
    for item in items:
        text = str(item).strip().lower()
        names = [letters.get(c) for c in text] if text not in MODALITIES else [text]
        if not text or None in names:
            raise FermixError(f"dataset.{key}={value} names a modality other than text, audio, vision (t, a, v).")
        out += [n for n in names if n not in out]
    return tuple(m for m in MODALITIES if m in out)


def _lengths(value: Any) -> tuple[int, int, int] | None:
    """None, one length for every modality, or [text, audio, vision] (unaligned)."""
    if value is None:
        return None
    items = [value] * len(MODALITIES) if isinstance(value, int | str) else list(value)
    if len(items) != len(MODALITIES):
        raise FermixError(f"dataset.lengths={items} must be one length or three ([text, audio, vision]).")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in items):
        raise FermixError(f"dataset.lengths={value} must be one length or three ([text, audio, vision]), integers.")
    a, b, c = (at_least(n, "lengths", 1) for n in items)
    return (a, b, c)
