"""Each format, written and loaded back as a user would load it, gives the checkpoint model's
eval-mode predict outputs, for a batch size other than the one it was traced / exported with."""

import json
import warnings

import pytest
import torch

from fermix.errors import FermixError
from fermix.export import formats, load_safetensors
from fermix.export.formats import FILES, MANIFEST, WRITERS
from fermix.export.wrapper import wrap
from tests.export.tiny import IMAGE_METHODS, SIZE, build, data_info, images

PROBE = torch.zeros(2, 3, SIZE, SIZE)  # exported with batch 2, checked with batch 3


def _expected(method, names):
    with torch.no_grad():
        out = method.predict({"image": images()})
    return [out[k] for k in names]


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_torchscript_outputs_equal_the_methods_predict(name, tmp_path):
    method = build(name)
    wrapper = wrap(method.export(), SIZE)
    WRITERS["torchscript"](wrapper, PROBE, tmp_path / FILES["torchscript"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(tmp_path / FILES["torchscript"]))
    with torch.no_grad():
        got = loaded(images())
    torch.testing.assert_close(list(got), _expected(method, wrapper.output_names), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_safetensors_round_trip_rebuilds_the_export_module(name, tmp_path):
    method = build(name)
    wrapper = wrap(method.export(), SIZE)
    WRITERS["safetensors"](wrapper, PROBE, tmp_path / FILES["safetensors"])
    config = {"method": {"name": name, **method.config.__dict__}, "backbone": {"name": "small_cnn", "width": 8}}
    rebuild = {"config": config, "data_info": data_info(name).to_dict()}
    (tmp_path / MANIFEST).write_text(json.dumps({"output_names": list(wrapper.output_names), "rebuild": rebuild}))
    torch.manual_seed(123)  # the rebuilt module starts from other random weights: the file must replace them all
    loaded = load_safetensors(tmp_path)
    assert not loaded.training
    assert type(loaded.module) is type(wrapper.module)
    with torch.no_grad():
        got = loaded(images())
    torch.testing.assert_close(list(got), _expected(method, wrapper.output_names), rtol=0, atol=0)


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_onnx_outputs_equal_the_methods_predict_in_onnxruntime(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    method = build(name)
    wrapper = wrap(method.export(), SIZE)
    path = tmp_path / FILES["onnx"]
    WRITERS["onnx"](wrapper, PROBE, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == list(wrapper.output_names)
    got = [torch.from_numpy(o) for o in session.run(None, {"image": images().numpy()})]
    torch.testing.assert_close(got, _expected(method, wrapper.output_names), rtol=1e-4, atol=1e-5)


def test_safetensors_loader_refuses_a_folder_without_an_export(tmp_path):
    with pytest.raises(FermixError, match=r"is not a safetensors export: it has no fermix\.json"):
        load_safetensors(tmp_path)


def test_onnx_without_its_packages_names_the_extra(monkeypatch):
    real = formats.importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec", lambda n, *a: None if n == "onnxscript" else real(n, *a))
    with pytest.raises(FermixError, match=r"needs onnxscript, which is not installed; pip install 'fermix\[export\]'"):
        formats.check_onnx_installed()


def test_unknown_format_lists_the_three():
    expected = "unknown export format `tflite`; choose one of torchscript, onnx, safetensors"
    with pytest.raises(FermixError, match=expected):
        formats.check_format("tflite")
