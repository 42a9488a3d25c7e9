import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import fermix
from fermix.data.transforms import build_transform
from fermix.engine.checkpoint import load_checkpoint
from fermix.errors import FermixError
from tests.inference.conftest import CROP_EYES, astronaut_face
from tests.preprocess.photos import flat


@pytest.fixture(scope="module")
def predictor(ckpt):
    return fermix.load(ckpt, device="cpu")


def test_import_fermix_does_not_import_torch():
    code = "import sys, fermix; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_load_rebuilds_the_method_label_space_and_recorded_alignment(predictor):
    assert predictor.classes == ["happy", "sad", "surprise"]
    assert predictor.method.name == "erm" and not predictor.method.training
    assert predictor.alignment.template.size == 96 and predictor.alignment.template.left_eye == (0.3, 0.4)


def test_one_row_per_face_with_probabilities_that_sum_to_one(predictor):
    table = predictor.predict(astronaut_face())
    assert len(table) == 1
    row = table.iloc[0]
    assert row["source"] == "image[0]" and row["status"] == "ok" and row["face"] == 0
    assert row["x0"] < CROP_EYES[:, 0].min() and CROP_EYES[:, 0].max() < row["x1"]
    assert row["y0"] < CROP_EYES[:, 1].min() and CROP_EYES[:, 1].max() < row["y1"]
    probs = row[[f"p_{c}" for c in predictor.classes]].to_numpy(float)
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    assert row["expression"] == predictor.classes[int(probs.argmax())] and row["probability"] == probs.max()


def test_numpy_pil_and_batching_give_the_same_predictions(predictor):
    face = astronaut_face()
    one = predictor.predict([face, flat(), Image.fromarray(face)], batch_size=1)
    many = predictor.predict([face, flat(), Image.fromarray(face)], batch_size=8)
    assert list(one["status"]) == ["ok", "no face", "ok"]
    cols = [f"p_{c}" for c in predictor.classes]
    np.testing.assert_allclose(one[cols].to_numpy(float), many[cols].to_numpy(float), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(one.loc[0, cols].to_numpy(float), one.loc[2, cols].to_numpy(float))


def test_align_false_equals_the_method_on_the_eval_transform(predictor, ckpt):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(3)]
    table = predictor.predict(crops, align=False, batch_size=2)
    data_cfg = OmegaConf.create(load_checkpoint(ckpt)["fermix"]["config"])["data"]
    transform = build_transform(data_cfg, train=False)
    with torch.no_grad():
        image = torch.stack([transform(c) for c in crops])
        expected = predictor.method.predict({"image": image})["expr_logits"].softmax(-1).double().numpy()
    # Batches of 2 + 1 against one of 3: with several threads the kernels may sum in another order.
    probabilities = table[[f"p_{c}" for c in predictor.classes]].to_numpy(float)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    assert list(table["x1"]) == [39.0] * 3 and table["score"].isna().all()


def test_landmarks_reach_the_batch_in_the_pixels_of_the_transformed_crop(predictor, monkeypatch):
    monkeypatch.setattr(predictor, "with_landmarks", True)
    (face,) = predictor.faces(astronaut_face())
    batch = predictor.batch([face])
    scale = 32 / 96  # the 96 px template crop, resized to the checkpoint's 32 px
    expected = (face.crop_landmarks + 0.5) * scale - 0.5
    assert batch["image"].shape == (1, 3, 32, 32)
    np.testing.assert_allclose(batch["landmarks"][0].numpy(), expected, atol=1e-4)


def test_au_va_and_uncertainty_outputs_become_columns(predictor, monkeypatch):
    monkeypatch.setattr(predictor, "au_names", ["AU1", "AU12"])
    monkeypatch.setattr(predictor.method, "tasks", ("expr", "au", "va"))
    out = {
        "expr_logits": torch.tensor([[0.0, 1.0, 2.0]]),
        "au_logits": torch.tensor([[0.0, 2.0]]),
        "va": torch.tensor([[0.25, -0.5]]),
        "uncertainty": torch.tensor([0.7]),
    }
    (values,) = predictor.face_values(out)
    assert values["expression"] == "surprise"
    assert values["au_AU1"] == 0.5 and values["au_AU12"] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert (values["valence"], values["arousal"]) == (0.25, -0.5) and values["uncertainty"] == pytest.approx(0.7)
    table = predictor.table([{"source": "x", "status": "ok", **values}])
    assert list(table.columns[-6:]) == ["p_surprise", "au_AU1", "au_AU12", "valence", "arousal", "uncertainty"]


def test_a_file_that_is_not_a_fermix_checkpoint_is_one_sentence(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(FermixError, match="not a fermix checkpoint"):
        fermix.load(tmp_path / "other.ckpt")


def test_a_multimodal_checkpoint_is_refused(ckpt, tmp_path):
    state = torch.load(ckpt, weights_only=True)
    state["fermix"]["config"]["method"]["name"] = "mult"
    torch.save(state, tmp_path / "mult.ckpt")
    with pytest.raises(FermixError, match="multimodal"):
        fermix.load(tmp_path / "mult.ckpt")


def test_a_run_folder_loads_its_selected_model_and_another_folder_says_what_to_pass(ckpt, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(ckpt.read_bytes())
    assert fermix.load(run, device="cpu").classes == ["happy", "sad", "surprise"]
    with pytest.raises(FermixError, match=r"is a folder; pass a \.ckpt file such as .*checkpoints/best\.ckpt"):
        fermix.load(tmp_path / "run" / "checkpoints", device="cpu")
