"""`dataset=synthetic_identity`: people no expression split holds, labelled by who they are, seen in every
capture style and expression; deterministic from the data seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fermix.cli import config_dir
from fermix.data.synthetic import SyntheticDataset
from fermix.data.synthetic.config import IDENTITY_BASE, SyntheticConfig
from fermix.data.synthetic.design import SPLITS, STYLES, class_names, split_table
from fermix.data.synthetic.generate import identity
from fermix.engine.rundir import register_resolvers
from fermix.errors import FermixError

register_resolvers()
EXPRESSION_PRESETS = ("synthetic", "synthetic_bias", "synthetic_noisy", "synthetic_partial")
BENCHMARK_DATA_SEEDS = (0, 1, 2, 7)  # the benchmarks' data seeds and the expression trunk's


def _preset(name: str) -> SyntheticConfig:
    """A dataset preset as `fermix train dataset=<name>` composes it."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"dataset={name}"])
    return SyntheticConfig.from_mapping(OmegaConf.to_container(cfg.dataset, resolve=True))


def _face(seed: int, subject: int) -> np.ndarray:
    """Everything that makes a person look like themselves, as one vector (colours in 0-1)."""
    fields = dataclasses.asdict(identity(seed, subject))
    noise = fields.pop("shape_noise")
    numbers = [float(v) for v in fields.values() if isinstance(v, (int, float))]
    colours = np.concatenate([fields[k] for k in ("skin", "hair", "iris", "lips")]) / 255.0
    return np.concatenate([numbers, colours, 10.0 * noise.ravel()])


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))


def test_the_preset_composes_as_documented():
    cfg = _preset("synthetic_identity")
    assert cfg.task == "identity" and cfg.identities == 300 and cfg.num_domains == len(STYLES)
    assert cfg.classes == "basic8" and tuple(cfg.intensity) == (0.0, 1.0)
    assert [len(split_table(cfg, s)) for s in SPLITS] == [9000, 1500, 1500]


def test_identity_people_are_other_faces_than_every_expression_split_of_every_preset():
    """Disjoint by construction (ids from IDENTITY_BASE, which expression splits cannot reach, and a face is
    drawn from data seed and subject id); checked here as faces: no identity person is a near copy of
    anybody in an expression split, for the data seeds the benchmarks use."""
    people = np.unique(split_table(_preset("synthetic_identity"), "train").subject)
    assert people.min() == IDENTITY_BASE and len(people) == 300
    expression_ids: set[int] = set()
    for name in EXPRESSION_PRESETS:
        cfg = _preset(name)
        for split in SPLITS:
            expression_ids |= set(split_table(cfg, split).subject.tolist())
    assert max(expression_ids) < IDENTITY_BASE
    assert not expression_ids & set(people.tolist())

    for id_seed in (0, 7):
        ours = np.stack([_face(id_seed, int(p)) for p in people])
        within = _distances(ours, ours)
        np.fill_diagonal(within, np.inf)
        typical = np.median(within.min(axis=1))  # how far a person's nearest other person is
        theirs = np.stack([_face(s, i) for s in BENCHMARK_DATA_SEEDS for i in sorted(expression_ids)])
        assert _distances(ours, theirs).min() > 0.5 * typical
    # the check would catch a copy: the same (seed, subject) is the same face
    assert np.allclose(_face(0, int(people[0])), _face(0, int(people[0])))


def test_an_expression_split_cannot_reach_the_identity_ids():
    with pytest.raises(FermixError, match="identity"):
        SyntheticConfig(subjects_per_domain=(IDENTITY_BASE, 1, 1)).validate()
    with pytest.raises(FermixError, match="no bias"):
        SyntheticConfig(task="identity", noise=0.2).validate()


def test_every_person_sees_every_capture_style_and_expression_in_training():
    cfg = _preset("synthetic_identity")
    table = split_table(cfg, "train")
    person = table.subject - IDENTITY_BASE
    assert np.array_equal(table.expr, person)  # the label is the person
    n_cls = len(class_names(cfg))
    assert n_cls == 8
    seen_styles = np.zeros((cfg.identities, cfg.num_domains), bool)
    seen_styles[person, table.domain] = True
    seen_classes = np.zeros((cfg.identities, n_cls), bool)
    seen_classes[person, table.cls] = True
    assert seen_styles.all() and seen_classes.all()
    for split in ("val", "test"):  # 5 faces per person: one per capture style
        t = split_table(cfg, split)
        assert np.bincount(t.subject - IDENTITY_BASE, minlength=cfg.identities).tolist() == [5] * cfg.identities
        assert set(t.cls.tolist()) == set(range(n_cls)) and set(t.domain.tolist()) == set(range(cfg.num_domains))


def _small(seed: int = 0) -> SyntheticDataset:
    return SyntheticDataset(
        {"task": "identity", "identities": 6, "classes": "basic8", "num_domains": 5, "intensity": [0.0, 1.0],
         "train_per_cell": 8, "val_per_cell": 2, "test_per_cell": 2, "seed": seed, "cache": False}
    )  # fmt: skip


def test_labels_are_people_and_splits_hold_other_faces_of_the_same_people():
    ds = _small()
    assert ds.label_space.name == "identity6" and ds.label_space.classes[0] == "person0000"
    rec = ds.records()
    for split in SPLITS:
        part = rec[rec.split == split]
        assert sorted(set(part.expr)) == list(range(6))
        assert (part.subject == [f"p{IDENTITY_BASE + e:04d}" for e in part.expr]).all()
    s = ds.sample("val", 0)
    assert s["expr_clean"] == s["expr"] and s["expr_soft"].shape == (6,) and s["expr_soft"][s["expr"]] == 1.0
    train = ds.splits["train"].images.reshape(len(ds.splits["train"]), -1)
    test = ds.splits["test"].images.reshape(len(ds.splits["test"]), -1)
    assert not (train[:, None] == test[None]).all(-1).any()  # different samples


def test_generation_is_deterministic_from_the_data_seed():
    a, b, c = _small(), _small(), _small(seed=1)
    for split in SPLITS:
        assert np.array_equal(a.splits[split].images, b.splits[split].images)
        assert np.array_equal(a.splits[split].meta["expr"], b.splits[split].meta["expr"])
    assert not np.array_equal(a.splits["train"].images, c.splits["train"].images)


def test_the_expression_presets_keep_their_cache_key():
    """task/identities are left out of the key at their defaults: existing caches stay valid."""
    assert SyntheticConfig().key() == SyntheticConfig(task="expression", identities=300).key()
    assert SyntheticConfig().key() != SyntheticConfig(task="identity").key()


@pytest.mark.parametrize(
    ("preset", "key"),
    [("synthetic", "dd8fc2f4275248de"), ("synthetic_bias", "3510fc316d778ad9"), ("synthetic_noisy", "14cce15c2b6b795b"),
     ("synthetic_partial", "462699513aa326cd"), ("synthetic_identity", "42e1c734535e5ea8")],
)  # fmt: skip
def test_the_schema_fields_that_generate_nothing_stay_out_of_the_cache_key(preset, key):
    """The keys of caches written before SyntheticConfig became the dataset schema: its name, adapter and cache
    fields do not enter the key, and a composed config's lists hash as the tuples they were."""
    cfg = _preset(preset)
    assert cfg.key() == key and cfg.name == preset and isinstance(cfg.subjects_per_domain, tuple)
    assert cfg.key() == dataclasses.replace(cfg, name="x", adapter="synthetic", cache=False, cache_dir="y").key()
