import pytest

from fermix.cli import config_dir
from fermix.errors import FermixError
from fermix.registry import (
    BACKBONES,
    DATASETS,
    LEGACY_DATASET_ADAPTERS,
    METHODS,
    Registry,
    dataset_adapter,
    dataset_adapter_name,
    dataset_presets,
)


@pytest.mark.parametrize(
    ("registry", "name"),
    [(r, n) for r in (METHODS, DATASETS, BACKBONES) for n in r.names()],
)
def test_every_registered_target_imports(registry, name):
    assert callable(registry.get(name))
    assert registry.describe(name)


def test_unknown_name_lists_choices_and_suggests_the_closest():
    with pytest.raises(FermixError, match=r"unknown method `ermm`.*Did you mean `erm`"):
        METHODS.get("ermm")


def test_register_adds_an_entry_and_refuses_a_conflicting_one():
    registry = Registry("thing", {})
    registry.register("x", "fermix.errors:FermixError", "an example")
    assert registry.get("x") is FermixError
    registry.register("x", "fermix.errors:FermixError")  # same target again: fine
    with pytest.raises(FermixError, match="already registered"):
        registry.register("x", "fermix.cli:main")


# --- datasets: adapters are registered, presets are config files -----------------------------------------
PRESETS = {"synthetic_bias", "synthetic_noisy", "synthetic_partial", "synthetic_identity"}


def test_the_synthetic_presets_are_config_files_of_the_synthetic_adapter_not_registry_entries():
    assert not PRESETS & set(DATASETS.names())
    presets = dataset_presets(config_dir())
    assert set(presets) == PRESETS
    for preset in presets.values():
        assert preset.adapter == "synthetic" and preset.summary  # `fermix list datasets` shows the summary
        assert dataset_adapter({"name": preset.name, "adapter": preset.adapter}) is DATASETS.get("synthetic")


@pytest.mark.parametrize(
    ("dataset_cfg", "adapter"),
    [
        ({"name": "synthetic_bias", "adapter": "synthetic"}, "synthetic"),  # a preset names its adapter
        ({"name": "my_faces", "adapter": "imagefolder"}, "imagefolder"),  # so can a user's own preset
        ({"name": "rafdb"}, "rafdb"),  # default: the name
        ({"name": "synthetic_noisy"}, "synthetic"),  # legacy: a checkpoint's config from before `adapter`
    ],
)
def test_the_adapter_of_a_dataset_config_is_its_adapter_key_else_its_name(dataset_cfg, adapter):
    assert dataset_adapter_name(dataset_cfg) == adapter


def test_the_legacy_table_covers_exactly_the_former_preset_entries():
    """Old checkpoints name these; new presets say `adapter:` and never need an entry here."""
    assert set(LEGACY_DATASET_ADAPTERS) == PRESETS and set(LEGACY_DATASET_ADAPTERS.values()) == {"synthetic"}


def test_an_unknown_dataset_name_without_an_adapter_is_one_sentence():
    with pytest.raises(FermixError, match=r"unknown dataset `my_preset`"):
        dataset_adapter({"name": "my_preset"})
