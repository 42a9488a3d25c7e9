import pytest
import torch

from fermix.data.label_spaces import LabelSpace
from fermix.engine.testing import label_map
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
