"""Every registered dataset keeps the adapter contract (fermix.data.datasets.base.DatasetAdapter).

Each is built from files its writer put in the published layout (or from its own generator), then:
its class declarations have the declared types, its records carry the columns the datamodule reads,
a sample holds exactly the keys the adapter declares, and the datamodule builds a DataInfo from it.
A raw layout (preprocess input only) refuses training in one sentence and lists its raw photos.
A preset (a config file naming a registered adapter, e.g. synthetic_bias) builds with its adapter, and
so does its config as checkpoints stored it before presets named their adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fermix.cli import config_dir
from fermix.data.datasets.base import DatasetAdapter
from fermix.data.label_spaces import LabelSpace
from fermix.errors import FermixError
from fermix.protocols import EvalProtocol
from fermix.registry import DATASETS, LEGACY_DATASET_ADAPTERS, dataset_adapter, dataset_presets

# Batch keys an adapter may declare (DESIGN §1), beyond which a sample holds nothing the engine would drop silently.
KNOWN_KEYS = {"image", "expr", "au", "va", "landmarks", "domain", "sample_id", "subject", "text", "audio", "vision",
              "score", "twin", "expr_clean", "expr_soft", "au_intensity"}  # fmt: skip
SMALL_SYNTHETIC = {"cache": False, "image_size": 32, "train_per_cell": 2, "val_per_cell": 1, "test_per_cell": 1}
MM_SIZES = {"train": 8, "val": 4, "test": 4}
RAW_LAYOUTS = {"ckplus", "oulu_casia"}


SIX_CLASSES = {"mixbasic", "oulu_casia"}  # layouts without neutral


def _samples(name: str):
    from fermix.data.synthetic.dataset import SyntheticDataset

    cfg = {**SMALL_SYNTHETIC, "subjects_per_domain": [2] * 3, "num_domains": 3}
    if name in SIX_CLASSES:
        cfg["classes"] = "mixbasic6"
    return list(SyntheticDataset(cfg).writer_samples())


def _written(name: str, tmp: Path) -> dict:
    """The dataset config of a small copy of `name` in its published layout."""
    from fermix.data.writers import write

    if name == "synthetic_mm":
        return {"name": name, **MM_SIZES}
    if name.startswith("synthetic"):
        return {"name": name, **SMALL_SYNTHETIC}
    if name in ("iemocap", "mosei"):
        from fermix.data.synthetic_mm import SyntheticMMConfig, generate
        from fermix.data.writers.mult_pickle import write_mult_pickle

        arrays, _ = generate(SyntheticMMConfig.from_mapping({"shape": name, **MM_SIZES}))
        write_mult_pickle(arrays, tmp / DATASETS.get(name).file_name(aligned=True))
        return {"name": name, "root": str(tmp)}
    samples = _samples(name)
    if name == "mixbasic":
        root = write("mixbasic", samples, tmp / name, size=64)
        return {"name": name, "root": str(root), "fold": "v1", "bias": "bias100"}
    root = write(name, samples, tmp / name)
    return {"name": name, "root": str(root)}


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_registered_dataset_is_a_dataset_adapter_with_typed_declarations(name):
    cls = DATASETS.get(name)
    assert issubclass(cls, DatasetAdapter)
    assert isinstance(cls.au_names, tuple) and all(isinstance(a, str) for a in cls.au_names)
    assert all(issubclass(p, EvalProtocol) and p.key for p in cls.evaluation_protocols)
    assert cls.fold_option is None or isinstance(cls.fold_option, str)
    assert isinstance(cls.fold_settings, tuple)
    assert set(cls.keys) <= KNOWN_KEYS, set(cls.keys) - KNOWN_KEYS
    # `preprocessable` says exactly whether the adapter lists raw photos itself
    assert cls.preprocessable == (cls.raw_items.__func__ is not DatasetAdapter.raw_items.__func__)


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n not in RAW_LAYOUTS])
def test_every_trainable_dataset_builds_and_its_samples_hold_exactly_the_declared_keys(name, tmp_path):
    from fermix.engine.datamodule import FermixDataModule

    cfg = _written(name, tmp_path)
    adapter = DATASETS.get(name)(cfg)
    assert isinstance(adapter.label_space, LabelSpace)
    records = adapter.records()
    assert len(records) > 0 and "sample_id" in records and records["sample_id"].is_unique
    sample = adapter.load(records.iloc[0])
    assert set(sample) == set(adapter.keys), (set(sample) ^ set(adapter.keys))
    if "image" in sample:
        assert sample["image"].dtype == np.uint8 and sample["image"].ndim == 3 and sample["image"].shape[2] == 3
    if "expr" in sample and np.ndim(sample["expr"]) == 0:  # (a multimodal set's expr is one flag per emotion)
        assert -1 <= int(sample["expr"]) < adapter.label_space.num_classes
    labels = adapter.task_labels(records)
    assert labels is None or all(len(v) == len(records) for v in labels.values())
    data = {"image_size": 32, "resize": 32, "batch_size": 2, "num_workers": 0, "val_fraction": 0.2}
    info = FermixDataModule(cfg, data, seed=0).build()
    assert info.label_space == adapter.label_space and info.keys == frozenset(adapter.keys)
    assert info.num_domains == adapter.num_domains >= 1
    assert ("au_names" in info.extras) == ("au" in adapter.keys and bool(adapter.au_names))


@pytest.mark.parametrize("name", sorted(RAW_LAYOUTS))
def test_a_raw_layout_refuses_training_in_one_sentence_and_lists_its_raw_photos(name, tmp_path):
    from fermix.data.writers import write

    root = write(name, _samples(name), tmp_path / name)
    with pytest.raises(FermixError, match=f"{name} is a raw layout; run `fermix preprocess dataset={name}`"):
        DATASETS.get(name)({"name": name, "root": str(root)})
    assert DATASETS.get(name).raw_items({"name": name, "root": str(root)})


def test_a_dataset_without_raw_photos_says_so_in_one_sentence():
    with pytest.raises(FermixError, match="dataset synthetic cannot be preprocessed; it does not list raw photos"):
        DATASETS.get("synthetic").raw_items({})


# --- presets: config files of a registered adapter -----------------------------------------------------------
PRESETS = sorted(dataset_presets(config_dir()))
DATA = {"image_size": 32, "resize": 32, "batch_size": 2, "num_workers": 0, "val_fraction": 0.2}


def _preset(name: str) -> dict[str, Any]:
    """The dataset config `fermix train dataset=<name>` composes, made small."""
    from fermix.engine.rundir import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"dataset={name}"])
    return {**OmegaConf.to_container(cfg.dataset, resolve=True), **SMALL_SYNTHETIC}


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_keeps_its_name_and_builds_with_the_adapter_it_names(name):
    from fermix.engine.datamodule import FermixDataModule

    cfg = _preset(name)
    assert cfg["name"] == name and cfg["adapter"] in DATASETS  # runs are named after the preset
    adapter = dataset_adapter(cfg)(cfg)
    info = FermixDataModule(cfg, DATA, seed=0).build()
    assert info.label_space == adapter.label_space and info.keys == frozenset(adapter.keys)


@pytest.mark.parametrize("name", sorted(LEGACY_DATASET_ADAPTERS))
def test_a_presets_config_without_adapter_as_old_checkpoints_store_it_reads_the_same_samples(name):
    from fermix.engine.datamodule import FermixDataModule

    cfg = _preset(name)
    legacy = {k: v for k, v in cfg.items() if k != "adapter"}
    assert FermixDataModule(legacy, DATA, seed=0).fingerprints() == FermixDataModule(cfg, DATA, seed=0).fingerprints()
