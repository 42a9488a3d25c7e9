"""Every config composes; typos fail at compose time; registry names and config files agree."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from fermix.cli import config_dir
from fermix.engine.rundir import register_resolvers
from fermix.registry import BACKBONES, DATASETS, METHODS, dataset_adapter_name, dataset_presets

CONFIGS = config_dir()
register_resolvers()


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def test_config_dir_is_the_checkout_configs_folder():
    assert Path(__file__).resolve().parents[1] / "configs" == CONFIGS


@pytest.mark.parametrize(
    "override",
    [f"{group}={option}" for group in ("method", "dataset", "backbone", "optim", "sched", "trainer", "logger")
     for option in _options(group)]
    + [f"+experiment={e}" for e in _options("experiment")]
    + [f"+debug={d}" for d in _options("debug")],
)
def test_every_group_option_composes(override):
    cfg = _compose("train", [override.replace("+experiment", "experiment").replace("+debug", "debug")])
    assert cfg.method.name in METHODS
    assert dataset_adapter_name(cfg.dataset) in DATASETS  # a registered adapter, or a preset of one
    assert cfg.backbone.name in BACKBONES


def test_test_config_composes_with_a_checkpoint():
    cfg = _compose("test", ["ckpt=some.ckpt", "split=val"])
    assert cfg.split == "val" and cfg.get("dataset") is None


def test_typo_in_a_key_fails_at_compose_time():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        _compose("train", ["trainer.max_epoch=3"])


def test_typo_in_a_group_option_fails_at_compose_time():
    with pytest.raises(ConfigCompositionException, match="erm_typo"):
        _compose("train", ["method=erm_typo"])


@pytest.mark.parametrize(("group", "registry"), [("method", METHODS), ("dataset", DATASETS), ("backbone", BACKBONES)])
def test_each_registered_name_has_a_config_and_back(group, registry):
    names = {(CONFIGS / group / f).stem for f in (p.name for p in (CONFIGS / group).glob("*.yaml"))}
    presets = set(dataset_presets(CONFIGS)) if group == "dataset" else set()  # config files of an adapter
    assert set(registry.names()) == names - presets
    for name in names:
        assert _compose("train", [f"{group}={name}"])[group].name == name


@pytest.mark.parametrize("name", METHODS.names())
def test_a_methods_yaml_defaults_are_its_config_dataclass_defaults(name):
    """configs/method/<name>.yaml documents each option with its default; the Config dataclass (the schema)
    holds the same values, so a method built from Python and one from the CLI start alike."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    cls = METHODS.get(name)
    raw = OmegaConf.load(CONFIGS / "method" / f"{name}.yaml")
    written = raw.method if "method" in raw else raw  # a `_global_` method config writes under `method:`
    defaults = asdict(cls.Config())
    for key, value in OmegaConf.to_container(written, resolve=False).items():
        if key in ("name", "defaults") or (isinstance(value, str) and "${" in value):
            continue
        expected = defaults[key]
        if expected == {}:  # a nested mapping the YAML fills (mult/causalmer `mult:` -> fermix.models.mult)
            continue
        expected = list(expected) if isinstance(expected, tuple) else expected
        assert value == expected, f"method.{key}: {value!r} in the YAML, {expected!r} in {cls.Config.__name__}"


@pytest.mark.parametrize("name", DATASETS.names())
def test_a_datasets_yaml_defaults_are_its_config_dataclass_defaults(name):
    """configs/dataset/<name>.yaml documents each option with its default; the adapter's Config dataclass (its
    schema) declares every one of them with the same value, so an adapter built from a plain dict (a test, a
    checkpoint's stored config) reads what the CLI would have given it."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    cls = DATASETS.get(name)
    written = OmegaConf.to_container(OmegaConf.load(CONFIGS / "dataset" / f"{name}.yaml"), resolve=False)
    assert written.pop("defaults") == [f"/schema/dataset/{name}@_here_", "_self_"]
    defaults = asdict(cls.Config())
    assert set(written) <= set(defaults), f"{name}.yaml has options its {cls.Config.__name__} lacks"
    for key, value in written.items():
        if key == "name" or (isinstance(value, str) and "${" in value):
            continue
        expected = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
        assert value == expected, f"dataset.{key}: {value!r} in the YAML, {expected!r} in {cls.Config.__name__}"
    undocumented = set(defaults) - set(written) - {"adapter"}
    if name == "synthetic":  # options only the identity preset sets (synthetic_identity.yaml documents them)
        undocumented -= {"task", "identities"}
    assert not undocumented, f"{name}.yaml does not document {sorted(undocumented)}"


@pytest.mark.parametrize("name", sorted(dataset_presets(CONFIGS)))
def test_a_preset_composes_onto_its_adapters_schema(name):
    """A preset names no schema itself: it inherits its adapter's through `defaults: [<adapter>, _self_]`."""
    from omegaconf import OmegaConf

    preset = dataset_presets(CONFIGS)[name]
    cfg = _compose("train", [f"dataset={name}"]).dataset
    assert OmegaConf.get_type(cfg) is DATASETS.get(preset.adapter).Config and cfg.adapter == preset.adapter


def test_a_dataset_option_is_typed_by_its_schema_at_compose_time():
    """Hydra refuses a wrongly typed dataset value itself (no judging by the YAML default any more)."""
    with pytest.raises(ConfigCompositionException):
        _compose("train", ["dataset=ckplus", "dataset.frames=abc"])
    with pytest.raises(ConfigCompositionException):
        _compose("train", ["dataset=mixbasic", "dataset.fold=v4"])
    cfg = _compose("train", ["dataset=affectnet", "dataset.classes=8", "dataset.crop=none"])
    assert cfg.dataset.classes == 8 and cfg.dataset.crop == "none"
