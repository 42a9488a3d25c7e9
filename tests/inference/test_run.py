"""`fermix predict` end to end on CPU: a real photograph, a folder with bad files, a video, bad input."""

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import fermix
from fermix.data.images import read_image
from tests.conftest import assert_one_sentence_error, run_fermix
from tests.inference.conftest import CROP_EYES, astronaut_face
from tests.preprocess.photos import flat, save

CLASSES = ["happy", "sad", "surprise"]
PROBS = [f"p_{c}" for c in CLASSES]


@pytest.fixture(scope="module")
def photo_run(ckpt, photo, tmp_path_factory):
    """`fermix predict` on the astronaut photo in a fresh process, as a user runs it."""
    out = tmp_path_factory.mktemp("predict_photo")
    result = run_fermix(["predict", f"ckpt={ckpt}", f"input={photo}", f"out={out}", "accelerator=cpu"], out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_photo_gets_one_row_with_a_box_around_her_face(photo_run, photo):
    table = pd.read_csv(photo_run / "predictions.csv")
    assert list(table.columns) == ["source", "frame", "face", "status", "reason", "x0", "y0", "x1", "y1", "score",
                                   "expression", "probability", *PROBS]  # fmt: skip
    assert len(table) == 1
    row = table.iloc[0]
    assert row["source"] == str(photo) and row["status"] == "ok" and row["face"] == 0 and row["score"] > 0.5
    assert row["x0"] < CROP_EYES[:, 0].min() and CROP_EYES[:, 0].max() < row["x1"]
    assert row["y0"] < CROP_EYES[:, 1].min() and CROP_EYES[:, 1].max() < row["y1"]
    assert row[PROBS].sum() == pytest.approx(1.0, abs=1e-6)
    assert row["expression"] == CLASSES[int(np.argmax(row[PROBS].to_numpy(float)))]


def test_the_annotated_photo_differs_from_the_input_inside_the_box_only(photo_run, photo):
    drawn, original = read_image(photo_run / "annotated" / "astronaut.png"), read_image(photo)
    assert drawn.shape == original.shape
    row = pd.read_csv(photo_run / "predictions.csv").iloc[0]
    x0, y0, x1, y1 = (round(row[k]) for k in ("x0", "y0", "x1", "y1"))
    inside = (slice(y0 + 3, y1 - 2), slice(x0 + 3, x1 - 2))
    assert (drawn[inside] != original[inside]).any(axis=2).sum() > 68  # the landmark dots
    assert np.array_equal(drawn[y1 + 60 :], original[y1 + 60 :])  # the space suit is untouched


def test_the_python_api_gives_the_cli_row(photo_run, ckpt):
    cli = pd.read_csv(photo_run / "predictions.csv")
    api = fermix.load(ckpt, device="cpu").predict([astronaut_face()])
    assert api.loc[0, "expression"] == cli.loc[0, "expression"]
    np.testing.assert_array_equal(api.loc[0, ["x0", "y0", "x1", "y1"]].to_numpy(float),
                                  cli.loc[0, ["x0", "y0", "x1", "y1"]].to_numpy(float))  # fmt: skip
    cols = ["score", "probability", *PROBS]
    np.testing.assert_allclose(api.loc[0, cols].to_numpy(float), cli.loc[0, cols].to_numpy(float), rtol=0, atol=1e-6)


def test_a_folder_with_a_corrupt_file_and_a_faceless_photo_still_succeeds(fermix_main, ckpt, trained_run, tmp_path):
    photos = tmp_path / "photos"
    save(photos / "people" / "astronaut.jpg", astronaut_face())
    save(photos / "wall.png", flat())
    (photos / "people" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = fermix_main(["predict", f"ckpt={ckpt}", "input=photos", "progress=none"], tmp_path)
    assert result.returncode == 0, result.stderr
    (out,) = (trained_run / "eval").glob("predict_*")  # the default: beside the checkpoint's run
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert list(table["source"]) == [f"photos/{n}" for n in ("people/astronaut.jpg", "people/broken.png", "wall.png")]
    assert list(table["status"]) == ["ok", "unreadable", "no face"]
    assert "broken.png" in table.loc[1, "reason"] and table.loc[2, "reason"].startswith("no face detected")
    assert sorted(p.relative_to(out / "annotated").as_posix() for p in (out / "annotated").rglob("*.*")) == [
        "people/astronaut.jpg", "wall.png"]  # fmt: skip
    assert np.array_equal(read_image(out / "annotated" / "wall.png")[-50:], flat()[-50:])  # captioned at the top only


def _clip(path, frames=5):
    face = astronaut_face()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (face.shape[1], face.shape[0]))
    for i in range(frames):
        writer.write(cv2.cvtColor(np.roll(face, 4 * i, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_a_video_gives_one_row_per_frame_and_an_annotated_mp4(fermix_main, ckpt, tmp_path):
    clip = _clip(tmp_path / "clip.mp4")
    result = fermix_main(["predict", f"ckpt={ckpt}", f"input={clip}", "out=pred", "batch_size=2", "progress=plain"],
                         tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "pred" / "predictions.csv")
    assert list(table["frame"]) == [0, 1, 2, 3, 4] and set(table["status"]) == {"ok"}
    assert table["x0"].is_monotonic_increasing and table["x0"].iloc[-1] > table["x0"].iloc[0]  # she moves right
    video = cv2.VideoCapture(str(tmp_path / "pred" / "annotated" / "clip.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 5 and int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 300
    video.release()


def test_a_missing_input_is_one_sentence(fermix_main, ckpt, tmp_path):
    result = fermix_main(["predict", f"ckpt={ckpt}", "input=nowhere.png", "out=pred"], tmp_path)
    assert_one_sentence_error(result, "input nowhere.png does not exist")
    assert not (tmp_path / "pred" / "predictions.csv").exists()


def test_no_ckpt_is_one_sentence(fermix_main, photo, tmp_path):
    assert_one_sentence_error(fermix_main(["predict", f"input={photo}", "out=pred"], tmp_path), "needs ckpt=PATH")


def test_a_file_that_is_not_a_fermix_checkpoint_is_one_sentence(fermix_main, photo, tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "model.ckpt")
    result = fermix_main(["predict", "ckpt=model.ckpt", f"input={photo}", "out=pred"], tmp_path)
    assert_one_sentence_error(result, "model.ckpt is not a fermix checkpoint")


@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_checkpoint_that_does_not_exist_is_refused_before_any_folder_is_made(fermix_main, command, tmp_path):
    args = [command, "ckpt=runs/x/checkpoints/best.ckpt", "input=a.png" if command == "predict" else "format=onnx"]
    assert_one_sentence_error(fermix_main(args, tmp_path), "checkpoint runs/x/checkpoints/best.ckpt does not exist")
    assert not any(tmp_path.iterdir())
