"""fermix.config_check: overrides judged by Hydra's composition (fermix.config_schema) before a job runs,
each refusal in one sentence."""

from __future__ import annotations

import pytest

from fermix.cli import config_dir
from fermix.config_check import check_overrides
from fermix.errors import FermixError


def check(*args: str, name: str = "train") -> None:
    check_overrides(list(args), config_dir(), name)


def refused(*args: str, name: str = "train") -> str:
    with pytest.raises(FermixError) as info:
        check(*args, name=name)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- types and closed choices come from the schemas (fermix.config_schema) -----------------------------
def test_trainer_keys_that_lightning_reads_more_widely_take_more_than_their_defaults_type():
    check("trainer.devices=auto", "trainer.precision=16", "trainer.deterministic=warn")
    check("trainer.devices=[0,1]")


def test_closed_choices_name_their_options():
    message = refused("progress=foo")
    assert message == "progress=foo is not one of auto, rich, plain, none (its default is `auto`)"
    message = refused("data.split_by=subjekt")
    assert message == "data.split_by=subjekt is not one of sample, subject (its default is `sample`)"
    assert refused("data.bad_images=maybe").startswith("data.bad_images=maybe is not one of fail, skip")


def test_null_is_refused_where_the_schema_does_not_allow_it():
    assert refused("seed=null") == "seed cannot be null (its default is 42)"
    check("trainer.max_epochs=null", "checkpoint.monitor=null", "compute.threads=null")


# --- unknown keys ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("trainer.max_epoch=3", "trainer.max_epochs"),
        ("data.batchsize=8", "data.batch_size"),
        ("trainr.max_epochs=3", "trainer.max_epochs"),  # the wrong part need not be the last
        ("data.augment.hfilp=0.2", "data.augment.hflip"),
    ],
)
def test_an_unknown_key_gets_the_nearest_existing_key(override, suggestion):
    message = refused(override)
    key = override.split("=")[0]
    assert message == f"unknown config key `{key}` in `{override}` (did you mean `{suggestion}`?)"


def test_an_unknown_key_without_a_near_miss_lists_its_siblings_and_how_to_add_it():
    message = refused("trainer.zzz=1")
    assert "unknown config key `trainer.zzz`" in message and "max_epochs" in message and "+trainer.zzz=" in message


def test_keys_are_looked_up_after_the_group_choices_of_the_same_command():
    check("method=dmue", "method.ramp_alpha=3")  # exists only under method=dmue
    assert "unknown config key `method.ramp_alpha`" in refused("method.ramp_alpha=3")


def test_an_unknown_group_option_names_the_choices():
    message = refused("method=ermm")
    assert message.startswith("unknown method `ermm` (did you mean `erm`?); choose from ")
    assert "dmue" in message and "iern" in message


def test_a_value_below_a_single_value_is_refused():
    message = refused("data.batch_size.x=1")
    assert message == "`data.batch_size.x=1`: data.batch_size is a single value, not a group of options"


def test_the_preprocess_config_is_checked_too():
    assert "did you mean `preprocess.size`" in refused("preprocess.sizee=128", name="preprocess")


# --- wrong types ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs must be an integer (its default is 10), got `abc`"),
        ("data.batch_size=1.5", "data.batch_size must be an integer (its default is 64), got `1.5`"),
        ("data.augment.hflip=yes", "data.augment.hflip must be a number (its default is 0.5), got `yes`"),
        ("data.mean=0.5", "data.mean must be a list such as [a, b] (its default is [0.5, 0.5, 0.5]), got `0.5`"),
        ("optim.lr=true", "optim.lr must be a number (its default is 0.001), got `true`"),
    ],
)
def test_a_wrong_typed_value_is_one_sentence(override, message):
    assert refused(override) == message


@pytest.mark.parametrize(
    "overrides",
    [["optim.lr=1"], ["trainer.max_epochs=null"], ["checkpoint.monitor=null"], ["trainer.devices=auto"],
     ["trainer.precision=16"], ["dataset=imagefolder", "dataset.classes=[a,b]"],
     ["data.augment.ops=[{_target_: torchvision.transforms.v2.RandomHorizontalFlip}]"],
     ["data.augment.rotation=7.5"], ["hydra.run.dir=somewhere"], ["hydra/job_logging=none"],
     ["+trainer.fast_dev_run=true"], ["trainer.overfit_batches=2"], ["++trainer.max_epochs=2"], ["~early_stopping"]],
    ids=lambda o: " ".join(o),
)  # fmt: skip
def test_well_typed_and_hydra_overrides_pass(overrides):
    check(*overrides)


@pytest.mark.parametrize("config", ["train", "preprocess"])
def test_a_dataset_option_takes_the_type_its_adapters_config_declares(config):
    """Datasets have schemas (their adapters' Config dataclasses): Hydra refuses the value itself."""
    message = refused("dataset=ckplus", "dataset.frames=abc", name=config)
    assert message == "dataset.frames must be an integer (its default is 3), got `abc`"
    check("dataset=ckplus", "dataset.frames=5", "dataset.label_space=mixbasic6", name=config)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset=mixbasic", "dataset.fold=v4"], "dataset.fold=v4 is not one of v1, v2, v3 (its default is `v1`)"),
        (["dataset=affectnet", "dataset.crop=face"],
         "dataset.crop=face is not one of box, none (its default is `box`)"),
        (["dataset=affwild2", "dataset.tasks=[expr,emotion]"],
         "dataset.tasks=[expr,emotion] holds `emotion`, which is not one of expr, au, va "
         "(its default is [expr, au, va])"),
        (["dataset=iemocap", "dataset.aligned=maybe"],
         "dataset.aligned must be true or false (its default is true), got `maybe`"),
        (["dataset=synthetic_bias", "dataset.test=odd"],
         "dataset.test=odd is not one of iid, ood, balanced (its default is `ood`)"),
        (["dataset=imagefolder", "dataset.classes=happy"],
         "dataset.classes must be a list such as [a, b] (its default is null), got `happy`"),
    ],
)  # fmt: skip
def test_a_dataset_value_its_schema_refuses_is_one_sentence(overrides, message):
    assert refused(*overrides) == message


def test_a_method_option_takes_the_type_its_config_dataclass_declares():
    """The method's schema is its Config dataclass: dmue's `ramp_alpha: float` takes 3 and 2.5, not a word."""
    check("method=dmue", "method.ramp_alpha=3", "method.ramp_alpha=2.5")
    assert refused("method=dmue", "method.ramp_alpha=abc").startswith("method.ramp_alpha must be a number")
    assert refused("method=dmue", "method.pooling=[1]").startswith("method.pooling must be")


# --- what Hydra itself would refuse, in one sentence -------------------------------------------------
def test_several_values_without_multirun_point_to_it():
    assert refused("seed=1,2").startswith("`seed=1,2` gives several values, which only a sweep takes: add -m")


def test_a_sweep_is_checked_value_by_value_and_a_group_sweep_is_left_to_hydra():
    check("-m", "seed=1,2,3")
    assert refused("-m", "seed=1,a") == "seed must be an integer (its default is 42), got `a`"
    check("-m", "method=erm,dmue", "method.ramp_alpha=2")  # valid for dmue only: each job is Hydra's to check


def test_adding_a_key_that_exists_and_deleting_one_that_does_not_are_refused():
    assert refused("+trainer.max_epochs=3") == (
        "`+trainer.max_epochs=3` adds trainer.max_epochs, which exists already; write trainer.max_epochs=3 to change it"
    )
    assert refused("~nope") == "`~nope` deletes nope, which the config does not have"


def test_a_merged_mapping_with_an_unknown_key_names_it():
    message = refused("sched=table", "sched.groups={all:[0.001]}")
    assert message == "unknown config key `sched.groups.all`; add a new key with a + in front (+sched.groups.all=...)"


def test_an_unparsable_override_is_named():
    message = refused("trainer.max_epochs=[1,")
    assert message.startswith("cannot read the override `trainer.max_epochs=[1,` (")


def test_help_and_config_printing_flags_are_left_to_hydra(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check("--help")
    check("--cfg", "job", "trainer.max_epoch=3")
    assert list(tmp_path.iterdir()) == []  # composing writes nothing
