import pytest
import torch
from omegaconf import OmegaConf

from fermix.data.label_spaces import LabelSpace
from fermix.engine.testing import _eval_dataset_cfg, label_map
from fermix.errors import FermixError

MODEL = LabelSpace("basic7", ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"))


def test_same_label_space_needs_no_map():
    assert label_map(MODEL, LabelSpace("other", MODEL.classes)) is None


def test_evaluation_classes_map_to_model_indices_by_canonical_name():
    data = LabelSpace("imagefolder", ("Angry", "happiness", "neutral"))
    assert torch.equal(label_map(MODEL, data), torch.tensor([6, 1, 0]))


def test_a_class_the_model_never_saw_is_refused():
    with pytest.raises(FermixError, match="contempt"):
        label_map(MODEL, LabelSpace("x", ("happy", "contempt")))


def test_an_option_the_training_dataset_does_not_have_is_refused_not_merged():
    trained = OmegaConf.create({"name": "imagefolder", "root": "/a", "val_fraction": 0.1})
    with pytest.raises(FermixError, match=r"dataset\.fold is not an option of dataset imagefolder"):
        _eval_dataset_cfg(trained, OmegaConf.create({"fold": "v2"}))


def test_a_known_option_of_the_training_dataset_is_honoured():
    trained = OmegaConf.create({"name": "imagefolder", "root": "/a", "val_fraction": 0.1})
    merged, same = _eval_dataset_cfg(trained, OmegaConf.create({"root": "/b"}))
    assert same and merged.root == "/b" and merged.val_fraction == 0.1


CALLS: list[str] = []


def record_call(*args, **kwargs) -> None:
    """A `_target_` planted in a checkpoint's stored config: building it would record a call."""
    CALLS.append("built")


def test_fermix_test_never_builds_the_augmentation_ops_a_checkpoint_names(tmp_path):
    """A checkpoint's config is untrusted input: `fermix test` evaluates every split (train too) without
    augmentation, so a `_target_` in its stored `data.augment.ops` is never imported or called."""
    from fermix.engine.checkpoint import load_checkpoint, save_atomic
    from fermix.engine.testing import run_test
    from tests.engine.runner import compose_job, quick_overrides, run_train_in_process
    from tests.helpers import write_image_folder

    folder = write_image_folder(tmp_path / "faces", per_class=3, size=32, splits=("train", "val", "test"))
    run_train_in_process(quick_overrides(folder, "trainer.max_epochs=1"), tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    state = load_checkpoint(ckpt)
    state["fermix"]["config"]["data"]["augment"]["ops"] = [{"_target_": f"{__name__}.record_call"}]
    save_atomic(state, ckpt)
    CALLS.clear()
    result = run_test(compose_job("test", [f"ckpt={ckpt}", "split=train"], tmp_path / "eval"))
    assert CALLS == [] and result["num_samples"] == 9
