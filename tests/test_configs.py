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
