import pytest
import torch

from fermix.errors import FermixError
from fermix.export.wrapper import OUTPUTS, ExportWrapper, check_image_only, check_single_frames, wrap
from fermix.registry import METHODS
from tests.export.tiny import IMAGE_METHODS, SIZE, build, images

EXPECTED_OUTPUTS = {
    "erm": ("expr_logits", "features"),
    "iern": ("expr_logits", "features"),
    "au_align": ("expr_logits", "attention", "features"),
    "multitask": ("expr_logits", "au_logits", "au_pred", "va"),
    "dmue": ("expr_logits", "features"),
}


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_wrapper_returns_the_standard_predict_outputs_in_fixed_order(name):
    method = build(name)
    wrapper = wrap(method.export(), SIZE)
    assert wrapper.output_names == EXPECTED_OUTPUTS[name]
    assert list(wrapper.output_names) == [k for k in OUTPUTS if k in wrapper.output_names]
    x = images()
    with torch.no_grad():
        got = wrapper(x)
        expected = method.predict({"image": x})
    for key, value in zip(wrapper.output_names, got, strict=True):
        torch.testing.assert_close(value, expected[key], rtol=1e-6, atol=1e-6)


def test_wrapper_puts_the_module_in_eval_mode():
    method = build("erm").train()
    assert not ExportWrapper(method, ["expr_logits"]).module.training


def test_dmue_export_has_no_auxiliary_branch_parameters():
    method = build("dmue")
    exported = method.export()
    assert not any(k.startswith(("branches.", "classifiers.", "ue.")) for k in exported.state_dict())
    c = method.num_classes
    kept = (method.trunk, method.branches[c], method.pool, method.target_neck, method.classifiers[c])
    assert sum(p.numel() for p in exported.parameters()) == sum(p.numel() for m in kept for p in m.parameters())


def test_iern_export_holds_exactly_backbone_encoder_fuser_dictionary_and_classifier():
    exported = build("iern").export()
    prefixes = {k.split(".")[0] for k in exported.state_dict()}
    assert prefixes == {"backbone", "proj", "emo_gen", "fuser", "dictionary", "classifier"}


def test_iern_export_predict_equals_the_methods_predict():
    method = build("iern")
    x = images()
    with torch.no_grad():
        got, expected = method.export().predict({"image": x}), method.predict({"image": x})
    assert set(got) == set(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


@pytest.mark.parametrize(("name", "reads"), [("mult", "audio, text, vision"), ("causalmer", "audio, text, vision")])
def test_methods_that_need_more_than_an_image_are_refused_in_one_sentence(name, reads):
    with pytest.raises(FermixError, match=f"method {name} reads {reads}; evaluate it with fermix test"):
        check_image_only(METHODS.get(name))


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_image_methods_pass_the_image_only_check(name):
    check_image_only(METHODS.get(name))


def test_a_model_of_frame_windows_is_refused_in_one_sentence():
    with pytest.raises(FermixError, match="method multitask_rnn reads windows of 32 frames"):
        check_single_frames({"data": {"windows": {"seq_len": 32}}}, "multitask_rnn")
    check_single_frames({"data": {"image_size": 32}}, "multitask")


def test_a_size_the_model_cannot_take_is_one_sentence():
    with pytest.raises(FermixError, match="does not run on 8×8 images"):
        wrap(build("iern").export(), 8)
