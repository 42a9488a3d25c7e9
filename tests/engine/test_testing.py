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
