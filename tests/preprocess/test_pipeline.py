"""The preprocessing pipeline on real photographs (scikit-image's astronaut, a copy rotated by 20°
and a flat grey image), written to disk as an image folder."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import fermix.preprocess.pipeline as pipeline
from fermix.data.datasets.imagefolder import ImageFolderDataset
from fermix.data.manifest import COLUMNS, landmarks_from_row
from fermix.data.raw import RawItem
from fermix.errors import FermixError
from fermix.preprocess.align import Template, eye_centres
from fermix.preprocess.detect import choose_face, detect_faces, predict_landmarks, to_gray
from fermix.preprocess.models import landmark_model_path
from fermix.preprocess.pipeline import preprocess
from fermix.preprocess.settings import settings_from_config
from tests.preprocess.photos import astronaut, save, write_photo_folder

FACES = ["happy/astronaut", "happy/astronaut_rot20"]


def _run(items, out: Path, workers: int = 1, **cfg):
    return preprocess(items, settings_from_config(cfg), out, workers=workers, progress="none")


def _manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _report(out: Path) -> dict:
    return json.loads((out / "preprocess.json").read_text())


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_photo_folder(tmp_path_factory.mktemp("photos") / "raw")


@pytest.fixture(scope="module")
def items(raw) -> list[RawItem]:
    return ImageFolderDataset.raw_items({"root": str(raw)})


@pytest.fixture(scope="module")
def done(items, tmp_path_factory) -> Path:
    """One full single-process run, shared read-only by the tests below."""
    out = tmp_path_factory.mktemp("aligned") / "out"
    _run(items, out)
    return out


def test_eyes_of_the_upright_and_the_rotated_photo_land_within_2px_of_the_template(done):
    # Landmarks found again by dlib on the written aligned image, independently of the pipeline.
    from fermix.data.images import read_image

    target = Template().eye_positions()
    for sid in FACES:
        gray = to_gray(read_image(done / "images" / f"{sid}.png"))
        assert gray.shape == (256, 256)
        face = choose_face(detect_faces(gray, 1), "largest")
        assert face is not None, sid
        found = eye_centres(predict_landmarks(gray, face, landmark_model_path()))
        assert np.abs(found - target).max() < 2.0, (sid, found)


def test_manifest_lists_the_faces_with_labels_and_landmarks_in_aligned_coordinates(done):
    rows = _manifest(done)
    assert [r["sample_id"] for r in rows] == FACES
    assert list(rows[0]) == list(COLUMNS)
    for row in rows:
        assert row["path"] == f"images/{row['sample_id']}.png" and (done / row["path"]).is_file()
        assert (row["label"], row["native_label"], row["source"], row["split"]) == ("happy", "happy", "imagefolder", "")
        landmarks = landmarks_from_row(row)
        assert np.abs(eye_centres(landmarks) - Template().eye_positions()).max() < 0.01
        assert landmarks.min() > 0 and landmarks.max() < 256


def test_the_photo_without_a_face_is_a_listed_failure_with_its_reason(done, raw):
    report = _report(done)
    assert report["failures"] == [
        {
            "sample_id": "neutral/flat",
            "path": str((raw / "neutral" / "flat.png").absolute()),
            "reason": "no face detected (HOG detector, upsample=1)",
        }
    ]
    assert not (done / "images" / "neutral").exists()


def test_report_records_versions_template_settings_counts_and_label_space(done):
    report = _report(done)
    assert set(report["versions"]) == {"fermix", "dlib", "opencv", "numpy", "python"}
    assert report["template"] == {"size": 256, "left_eye": [0.35, 0.35], "eyes": [[89.6, 89.6], [166.4, 89.6]]}
    assert report["settings"]["detector"] == "hog" and report["settings"]["upsample"] == 1
    assert report["counts"] == {
        "items": 3, "aligned": 2, "failed": 1, "multiple_faces": 0, "processed": 3, "reused": 0
    }


def test_second_run_does_no_work_and_rewrites_the_same_manifest(done, items, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(done, out)
    before = (out / "manifest.csv").read_bytes()
    monkeypatch.setattr(pipeline, "process_item", _forbidden)
    report = _run(items, out)
    assert (report["counts"]["processed"], report["counts"]["reused"]) == (0, 3)
    assert report["failures"] == _report(done)["failures"]
    assert (out / "manifest.csv").read_bytes() == before


def _forbidden(*args, **kwargs):
    raise AssertionError("a finished image was processed again")


def test_a_run_killed_part_way_resumes_with_only_the_unfinished_images(done, items, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = pipeline.process_item
    calls: list[str] = []

    def dies_on_second_image(item, settings, out_dir):
        if calls:
            raise KeyboardInterrupt  # the process is killed while working on its second image
        calls.append(item.sample_id)
        return real(item, settings, out_dir)

    monkeypatch.setattr(pipeline, "process_item", dies_on_second_image)
    with pytest.raises(FermixError, match=r"interrupted after 1 of 3 images; finished images are kept"):
        _run(items, out)
    assert not (out / "manifest.csv").exists() and calls == ["happy/astronaut"]

    resumed: list[str] = []

    def counting(item, settings, out_dir):
        resumed.append(item.sample_id)
        return real(item, settings, out_dir)

    monkeypatch.setattr(pipeline, "process_item", counting)
    report = _run(items, out)
    assert resumed == ["happy/astronaut_rot20", "neutral/flat"]
    assert (report["counts"]["processed"], report["counts"]["reused"]) == (2, 1)
    assert (out / "manifest.csv").read_bytes() == (done / "manifest.csv").read_bytes()


def test_limit_takes_the_first_items_and_a_later_full_run_adds_the_rest(items, tmp_path):
    out = tmp_path / "out"
    report = preprocess(items, settings_from_config({}), out, progress="none", limit=1)
    assert report["counts"]["items"] == 1 and [r["sample_id"] for r in _manifest(out)] == FACES[:1]
    report = _run(items, out)
    assert (report["counts"]["processed"], report["counts"]["reused"]) == (2, 1)


def test_two_workers_give_byte_identical_output(done, items, tmp_path):
    out = tmp_path / "out"
    report = _run(items, out, workers=2)
    assert report["counts"] == _report(done)["counts"]
    assert (out / "manifest.csv").read_bytes() == (done / "manifest.csv").read_bytes()
    for sid in FACES:
        assert (out / "images" / f"{sid}.png").read_bytes() == (done / "images" / f"{sid}.png").read_bytes()
        mine, theirs = (json.loads((d / ".records" / f"{sid}.json").read_text()) for d in (out, done))
        assert mine == theirs


def test_other_settings_into_the_same_output_folder_are_refused(done, items, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(done, out)
    with pytest.raises(FermixError, match=r"was preprocessed with other settings \(template\)"):
        _run(items, out, size=128)


def test_a_folder_made_by_something_else_is_not_overwritten(items, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.csv").write_text("path,label\n")
    with pytest.raises(FermixError, match=r"already holds manifest\.csv but is not a fermix preprocess output"):
        _run(items, out)


def test_of_several_faces_the_largest_is_kept(tmp_path):
    photo = astronaut()
    small = photo[::2, ::2]  # the same face at half size, placed beside the full-size photo
    canvas = np.zeros((512, 768, 3), dtype=np.uint8)
    canvas[:, 256:] = photo
    canvas[:256, :256] = small
    item = RawItem(path=save(tmp_path / "two.png", canvas), sample_id="two", label="happy")
    report = _run([item], tmp_path / "largest")
    record = json.loads((tmp_path / "largest" / ".records" / "two.json").read_text())
    assert report["counts"]["multiple_faces"] == 1 and record["faces"] == 2
    x0, _, x1, _ = record["box"]
    assert x0 > 256 and x1 - x0 > 80  # the full-size face on the right, not the half-size copy


def test_unreadable_photo_is_a_failure_not_the_end_of_the_run(raw, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    items = [
        RawItem(path=broken, sample_id="broken"),
        RawItem(path=raw / "happy" / "astronaut.png", sample_id="face"),
    ]
    report = _run(items, tmp_path / "out")
    assert report["counts"]["aligned"] == 1
    assert report["failures"][0]["sample_id"] == "broken"
    reason = report["failures"][0]["reason"]  # a JPEG header and then junk: cut short, or undecodable
    assert "cannot read image" in reason and "broken.jpg" in reason


def test_provided_boxes_replace_the_detector_and_missing_ones_are_failures(raw, tmp_path):
    path = raw / "happy" / "astronaut.png"
    items = [
        RawItem(path=path, sample_id="boxed", box=(175.0, 76.0, 265.0, 166.0)),
        RawItem(path=path, sample_id="unboxed"),
    ]
    report = _run(items, tmp_path / "out", detector="box")
    record = json.loads((tmp_path / "out" / ".records" / "boxed.json").read_text())
    assert record["box"] == [175.0, 76.0, 265.0, 166.0] and record["score"] is None
    assert [f["sample_id"] for f in report["failures"]] == ["unboxed"]
    assert "provides no face box" in report["failures"][0]["reason"]


def test_already_cropped_photos_fall_back_to_the_whole_image(raw, tmp_path):
    items = [RawItem(path=raw / "neutral" / "flat.png", sample_id="flat")]
    report = _run(items, tmp_path / "out", already_cropped=True)
    assert report["counts"]["aligned"] == 1 and report["failures"] == []
    record = json.loads((tmp_path / "out" / ".records" / "flat.json").read_text())
    assert record["box"] == [0.0, 0.0, 159.0, 159.0] and record["faces"] == 0


def test_repeated_sample_ids_are_refused(raw):
    path = raw / "happy" / "astronaut.png"
    with pytest.raises(FermixError, match=r"sample id 'x' is listed twice"):
        pipeline.sorted_items([RawItem(path=path, sample_id="x"), RawItem(path=path, sample_id="x")])


@pytest.mark.parametrize("workers", [1, 2])
def test_a_broken_landmark_model_ends_the_run_in_one_sentence_not_per_photo(items, tmp_path, workers):
    model = tmp_path / "broken.dat"
    model.write_bytes(b"not a dlib model")
    settings = settings_from_config({"landmark_model": str(model)})
    with pytest.raises(FermixError, match=r"^cannot load landmark model .*broken\.dat"):
        preprocess(items, settings, tmp_path / "out", workers=workers, progress="none")
    assert not list((tmp_path / "out" / ".records").rglob("happy/*.json"))
