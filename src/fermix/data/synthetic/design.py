"""What is generated, before anything is drawn: classes, domains, cells, subjects, noise, masks.

The split tables are a pure function of the config, so tests can check the bias presets, the
noise rate and the partial-label masks without rendering a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fermix.data.label_spaces import LabelSpace, canonical_name, get_label_space, identity_label_space
from fermix.data.synthetic.config import FOLDS, IDENTITY_BASE, SyntheticConfig
from fermix.data.synthetic.render import DomainStyle
from fermix.errors import FermixError

SPLITS = ("train", "val", "test")
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}

# Built-in capture styles, in order; domain k uses style k (procedural styles beyond these).
STYLES: tuple[DomainStyle, ...] = (
    DomainStyle("studio", background="flat", bg_color=(128, 128, 128), noise=2.0, jpeg=95),
    DomainStyle("lab", background="gradient", bg_color=(150, 175, 215), gain=(0.85, 0.95, 1.15),
                blur=0.6, noise=4.0, jpeg=85),
    DomainStyle("wild", background="texture", bg_color=(110, 120, 90), gain=(1.12, 1.0, 0.82),
                blur=0.3, noise=6.0, jpeg=70, brightness=8.0),
    DomainStyle("mono", background="stripes", bg_color=(120, 120, 120), noise=5.0, jpeg=80, grayscale=True),
    DomainStyle("dim", background="flat", bg_color=(50, 45, 40), gain=(0.75, 0.72, 0.7), blur=0.5, noise=8.0, jpeg=60),
)

# Class -> the class its "class" label noise flips to (a plausible confusion).
CONFUSABLE = {
    "neutral": "sad",
    "happy": "surprise",
    "sad": "neutral",
    "surprise": "fear",
    "fear": "surprise",
    "disgust": "anger",
    "anger": "disgust",
    "contempt": "neutral",
}

# MixBasic's class order: the Latin square pairs classes i and i + 3 of this list.
_LATIN_ORDER = ("anger", "disgust", "fear", "happy", "sad", "surprise", "contempt")


def label_space(cfg: SyntheticConfig) -> LabelSpace:
    """What the model predicts: the expressions, or with task=identity the people."""
    if cfg.task == "identity":
        return identity_label_space(cfg.identities)
    return get_label_space(cfg.classes)


def class_names(cfg: SyntheticConfig) -> list[str]:
    """Canonical (basic) names of the expression classes drawn, in `cfg.classes` order: prototype lookup keys."""
    return [canonical_name(c) for c in get_label_space(cfg.classes).classes]


def domain_styles(cfg: SyntheticConfig) -> list[DomainStyle]:
    by_name = {s.name: s for s in STYLES}
    names = list(cfg.domain_styles)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise FermixError(f"unknown domain style {unknown[0]}; known: {', '.join(by_name)}.")
    styles = [by_name[n] for n in names[: cfg.num_domains]]
    for k in range(len(styles), cfg.num_domains):
        styles.append(STYLES[k] if k < len(STYLES) else _procedural_style(cfg.seed, k))
    return styles


def _procedural_style(seed: int, k: int) -> DomainStyle:
    rng = np.random.default_rng([seed, 7, k])
    return DomainStyle(
        f"style{k}",
        background=str(rng.choice(["flat", "gradient", "texture", "stripes"])),
        bg_color=tuple(float(x) for x in rng.uniform(40, 220, 3)),  # type: ignore[arg-type]
        gain=tuple(float(x) for x in rng.uniform(0.8, 1.2, 3)),  # type: ignore[arg-type]
        blur=float(rng.uniform(0, 1.0)),
        noise=float(rng.uniform(1, 8)),
        jpeg=int(rng.integers(55, 96)),
        grayscale=bool(rng.random() < 0.2),
    )


def withheld_cells(cfg: SyntheticConfig) -> np.ndarray:
    """K×C bool: the (domain, class) cells a bias preset keeps out of training.

    MixBasic's Latin square: the non-neutral classes are dealt into K groups in the order anger,
    disgust, fear, happy, sad, surprise (with 3 domains: {anger, happy}, {disgust, sad},
    {fear, surprise}); domain d withholds group (d + fold) mod K. Neutral is never withheld, and
    every class stays in training through the other domains.
    """
    names = class_names(cfg)
    out = np.zeros((cfg.num_domains, len(names)), dtype=bool)
    if cfg.bias == "none":
        return out
    order = [c for c in _LATIN_ORDER if c in names]
    shift = FOLDS.index(cfg.fold)
    for j, cls in enumerate(order):
        group = j % cfg.num_domains
        domain = (group - shift) % cfg.num_domains
        out[domain, names.index(cls)] = True
    return out


def cell_counts(cfg: SyntheticConfig, split: str) -> np.ndarray:
    """K×C int: how many samples each (domain, class) cell gets in a split."""
    withheld = withheld_cells(cfg)
    shape = withheld.shape
    if split in ("train", "val"):
        per = cfg.train_per_cell if split == "train" else cfg.val_per_cell
        counts = np.full(shape, per, dtype=np.int64)
        kept = round(cfg.leak * per) if cfg.bias == "bias90" else 0
        counts[withheld] = kept
        return counts
    per = cfg.test_per_cell
    if cfg.test == "balanced":
        return np.full(shape, per, dtype=np.int64)
    if cfg.test == "ood":
        return np.where(withheld, per, 0).astype(np.int64)
    # iid: the training distribution (a bias90 leak cell keeps its small share).
    train = cell_counts(cfg, "train")
    return np.round(train * (per / max(cfg.train_per_cell, 1))).astype(np.int64)


@dataclass
class SplitTable:
    """One row per sample of a split; images are drawn later from (seed, split, index)."""

    split: str
    cls: np.ndarray  # primary (clean) class
    domain: np.ndarray
    subject: np.ndarray  # global subject id
    blend_cls: np.ndarray  # secondary class of an ambiguous blend, -1 if none
    blend_w: np.ndarray  # weight of the primary class (1.0 when no blend)
    expr: np.ndarray  # observed label: noisy where noise applies, -1 where the task is unlabelled
    has_au: np.ndarray  # bool: AU labels observed
    has_va: np.ndarray  # bool: VA labels observed

    def __len__(self) -> int:
        return len(self.cls)


def split_table(cfg: SyntheticConfig, split: str) -> SplitTable:
    if cfg.task == "identity":
        return _identity_table(cfg, split)
    counts = cell_counts(cfg, split)
    k_dom, n_cls = counts.shape
    domain = np.repeat(np.repeat(np.arange(k_dom), n_cls), counts.reshape(-1))
    cls = np.repeat(np.tile(np.arange(n_cls), k_dom), counts.reshape(-1))
    n = len(cls)
    rng = np.random.default_rng([cfg.seed, 11, SPLIT_CODE[split]])
    # Interleave cells so that any prefix of the split is a fair mix (and sample ids carry no order).
    order = rng.permutation(n)
    domain, cls = domain[order], cls[order]

    # Subjects: each domain has its own people, and the splits never share one.
    per_dom = cfg.subjects_per_domain[SPLIT_CODE[split]]
    offset = sum(cfg.subjects_per_domain[: SPLIT_CODE[split]]) * k_dom
    subject = offset + domain * per_dom + rng.integers(0, per_dom, n)

    blend_cls, blend_w = _blends(cfg, rng, cls, n_cls)

    expr = cls.copy()
    if cfg.noise > 0 and split in cfg.noise_splits:
        expr = _noisy(cfg, cls, np.random.default_rng([cfg.seed, 13, SPLIT_CODE[split]]))

    has_expr = np.ones(n, dtype=bool)
    has_au = np.ones(n, dtype=bool)
    has_va = np.ones(n, dtype=bool)
    if cfg.partial != "none" and split == "train":
        mrng = np.random.default_rng([cfg.seed, 17])
        if cfg.partial == "disjoint":
            task = mrng.permutation(n) % 3
            has_expr, has_au, has_va = task == 0, task == 1, task == 2
        else:
            has_expr, has_au, has_va = (mrng.random((3, n)) < cfg.partial_fraction).astype(bool)
    expr = np.where(has_expr, expr, -1)
    return SplitTable(split, cls, domain, subject, blend_cls, blend_w, expr, has_au, has_va)



def _blends(
    cfg: SyntheticConfig, rng: np.random.Generator, cls: np.ndarray, n_cls: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which samples blend a second prototype (`cfg.ambiguity` of them) and its weight; -1 / 1.0 for the rest."""
    n = len(cls)
    blend_cls = np.full(n, -1, dtype=np.int64)
    blend_w = np.ones(n)
    if cfg.ambiguity > 0 and n_cls > 1:
        blended = rng.random(n) < cfg.ambiguity
        other = (cls + rng.integers(1, n_cls, n)) % n_cls
        blend_cls[blended] = other[blended]
        blend_w[blended] = rng.uniform(*cfg.blend_weight, int(blended.sum()))
    return blend_cls, blend_w

def _identity_table(cfg: SyntheticConfig, split: str) -> SplitTable:
    """task=identity: every person in every split (different samples), the label is the person.

    Person p is global subject IDENTITY_BASE + p, an id no expression split reaches, so its face
    (drawn from data seed and subject id) is nobody's in any expression split of any data seed.
    Within a split each person's samples cycle through every capture style and every expression
    class from a random start (then shuffled; intensities drawn later from `cfg.intensity`), so
    neither style nor expression tells people apart, and a split with fewer samples per person than
    classes still holds every class.
    """
    per = {"train": cfg.train_per_cell, "val": cfg.val_per_cell, "test": cfg.test_per_cell}[split]
    n_cls = len(class_names(cfg))
    rng = np.random.default_rng([cfg.seed, 19, SPLIT_CODE[split]])
    slots = np.arange(per)
    person = np.repeat(np.arange(cfg.identities), per)

    def cycle(k: int) -> np.ndarray:  # each value once per k slots, starting at a random one
        return np.concatenate([rng.permutation((slots + rng.integers(k)) % k) for _ in range(cfg.identities)])

    domain, cls = cycle(cfg.num_domains), cycle(n_cls)
    order = rng.permutation(len(person))
    person, domain, cls = person[order], domain[order].astype(np.int64), cls[order].astype(np.int64)
    n = len(person)
    blend_cls, blend_w = _blends(cfg, rng, cls, n_cls)
    ones = np.ones(n, dtype=bool)
    return SplitTable(split, cls, domain, IDENTITY_BASE + person, blend_cls, blend_w, person.astype(np.int64), ones,
                      ones.copy())  # fmt: skip


def _noisy(cfg: SyntheticConfig, cls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip exactly round(rate × n) labels of each class (so the realised rate is the setting)."""
    names = class_names(cfg)
    n_cls = len(names)
    out = cls.copy()
    for c in range(n_cls):
        idx = np.flatnonzero(cls == c)
        flip = rng.permutation(idx)[: round(cfg.noise * len(idx))]
        if cfg.noise_kind == "symmetric":
            out[flip] = (c + rng.integers(1, n_cls, len(flip))) % n_cls
        else:
            target = CONFUSABLE.get(names[c])
            out[flip] = names.index(target) if target in names else (c + 1) % n_cls
    return out
