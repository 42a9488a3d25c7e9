"""`fermix export` end to end: a real tiny checkpoint (fermix train) -> each format + fermix.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from fermix.export import load_safetensors
from fermix.export.formats import FILES
from tests.conftest import assert_one_sentence_error
from tests.engine.runner import quick_overrides, run_train_in_process
from tests.helpers import write_image_folder

CLASSES = ("happy", "sad", "surprise")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained erm run (32 px, 3 classes, one epoch)."""
    work = tmp_path_factory.mktemp("export")
    faces = write_image_folder(work / "faces", classes=CLASSES, per_class=6, size=32)
    run = work / "runs" / "erm_imagefolder" / "tiny"
    run_train_in_process(quick_overrides(faces, "trainer.max_epochs=1"), run)
    assert (run / "checkpoints" / "best.ckpt").is_file()
    return run


def _checkpoint_outputs(ckpt: Path, image: torch.Tensor) -> torch.Tensor:
    from fermix.export.run import rebuild_method

    method, _ = rebuild_method(ckpt)
    with torch.no_grad():
        return method.predict({"image": image})["expr_logits"]


@pytest.mark.parametrize("fmt", ["torchscript", "safetensors", "onnx"])
def test_export_writes_the_model_and_fermix_json_beside_the_run(fmt, run, fermix_main, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    ckpt = run / "checkpoints" / "best.ckpt"
    result = fermix_main(["export", f"ckpt={ckpt}", f"format={fmt}"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = run / "export" / fmt
    assert sorted(p.name for p in out.iterdir()) == sorted(["fermix.json", FILES[fmt]])
    assert not any(tmp_path.iterdir()), "export writes nothing in the working directory"
    manifest = json.loads((out / "fermix.json").read_text())
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["fermix"]
    assert manifest["format"] == fmt and manifest["method"] == "erm"
    assert manifest["input"]["name"] == "image" and manifest["input"]["shape"] == ["batch", 3, 32, 32]
    assert manifest["input"]["mean"] == meta["preprocessing"]["mean"]
    assert manifest["input"]["std"] == meta["preprocessing"]["std"]
    assert manifest["output_names"] == ["expr_logits", "features"]
    assert manifest["outputs"][0]["classes"] == list(CLASSES) == meta["label_space"]["classes"]
    assert manifest["outputs"][0]["shape"] == ["batch", 3]
    assert manifest["checkpoint"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert manifest["checkpoint"]["provenance"] == meta["provenance"]
    assert manifest["face_alignment"] == meta.get("face_alignment")
    assert manifest["rebuild"]["config"] == meta["config"]
    assert max(manifest["exported"]["max_abs_diff"].values()) < 1e-4

    image = torch.randn(4, 3, 32, 32)
    expected = _checkpoint_outputs(ckpt, image)
    if fmt == "torchscript":
        got = torch.jit.load(str(out / "model.pt"))(image)[0]
    elif fmt == "safetensors":
        got = load_safetensors(out)(image)[0]
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(["expr_logits"], {"image": image.numpy()})[0])
    torch.testing.assert_close(got.detach(), expected, rtol=1e-4, atol=1e-5)


def test_out_and_image_size_are_honoured(run, fermix_main, tmp_path):
    ckpt = run / "checkpoints" / "last.ckpt"
    result = fermix_main(["export", f"ckpt={ckpt}", "format=torchscript", "out=exported", "image_size=48"], tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "exported" / "fermix.json").read_text())
    assert manifest["input"]["shape"] == ["batch", 3, 48, 48]
    model = torch.jit.load(str(tmp_path / "exported" / "model.pt"))
    assert model(torch.zeros(2, 3, 48, 48))[0].shape == (2, 3)


def test_unknown_format_is_one_sentence(run, fermix_main, tmp_path):
    result = fermix_main(["export", f"ckpt={run / 'checkpoints' / 'best.ckpt'}", "format=tflite"], tmp_path)
    assert_one_sentence_error(result, "unknown export format `tflite`", "torchscript, onnx, safetensors")
    assert not (run / "export" / "tflite").exists()


def test_a_file_that_is_not_a_checkpoint_is_one_sentence(fermix_main, tmp_path):
    bogus = tmp_path / "model.ckpt"
    bogus.write_text("not a checkpoint")
    result = fermix_main(["export", f"ckpt={bogus}", "format=safetensors"], tmp_path)
    assert_one_sentence_error(result, str(bogus), "cannot be read")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]


def test_a_foreign_torch_file_is_one_sentence(fermix_main, tmp_path):
    foreign = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    result = fermix_main(["export", f"ckpt={foreign}"], tmp_path)
    assert_one_sentence_error(result, "is not a fermix checkpoint")


def test_a_missing_ckpt_is_one_sentence(fermix_main, tmp_path):
    assert_one_sentence_error(fermix_main(["export", "format=onnx"], tmp_path), "fermix export needs ckpt=PATH")
    assert_one_sentence_error(fermix_main(["export", "ckpt=nowhere.ckpt"], tmp_path), "nowhere.ckpt does not exist")


def test_an_unknown_option_is_one_sentence(fermix_main, tmp_path):
    result = fermix_main(["export", "ckpt=x.ckpt", "fromat=onnx"], tmp_path)
    assert_one_sentence_error(result, "fromat")
