import json
import os

import pytest

from fermix.errors import FermixError
from fermix.preprocess.records import (
    check_sample_id,
    claim_output,
    image_relpath,
    load_record,
    record_path,
    reusable,
    save_record,
    source_stamp,
)


@pytest.mark.parametrize("bad", ["", "/abs/x", "../up", "a/../b", "a//b", "a\\b", "./a"])
def test_unsafe_sample_ids_are_refused(bad):
    with pytest.raises(FermixError, match="cannot name a file inside the output folder"):
        check_sample_id(bad)


def test_sample_ids_with_dots_and_folders_keep_their_full_name():
    assert image_relpath("train/happy/img.001", "png") == "images/train/happy/img.001.png"


def _ok_record(tmp_path, raw):
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "images" / "a.png").write_bytes(b"png")
    return {"sample_id": "a", "status": "ok", "image": "images/a.png", "source": source_stamp(raw)}


def test_a_saved_record_is_reused_while_raw_file_and_image_are_unchanged(tmp_path):
    raw = tmp_path / "raw.png"
    raw.write_bytes(b"raw")
    save_record(tmp_path, _ok_record(tmp_path, raw))
    record = load_record(tmp_path, "a")
    assert reusable(tmp_path, record, raw)
    (tmp_path / "images" / "a.png").unlink()
    assert not reusable(tmp_path, record, raw)


def test_a_changed_raw_file_is_processed_again(tmp_path):
    raw = tmp_path / "raw.png"
    raw.write_bytes(b"raw")
    record = _ok_record(tmp_path, raw)
    raw.write_bytes(b"a different photo")
    os.utime(raw, ns=(1, 1))
    assert not reusable(tmp_path, record, raw)


def test_a_failure_record_is_reused_without_an_image(tmp_path):
    raw = tmp_path / "raw.png"
    raw.write_bytes(b"raw")
    record = {"sample_id": "a", "status": "failed", "reason": "no face", "source": source_stamp(raw)}
    assert reusable(tmp_path, record, raw)


TORN_OR_FOREIGN = ["", '{"sample_id": "a", "sta', "[]", json.dumps({"sample_id": "b", "status": "ok"})]


@pytest.mark.parametrize("text", TORN_OR_FOREIGN)
def test_torn_or_foreign_records_count_as_not_done(tmp_path, text):
    path = record_path(tmp_path, "a")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert load_record(tmp_path, "a") is None


def test_output_folder_refuses_other_settings(tmp_path):
    claim_output(tmp_path, {"template": {"size": 256}, "detector": "hog"})
    claim_output(tmp_path, {"template": {"size": 256}, "detector": "hog"})  # same settings: fine
    with pytest.raises(FermixError, match=r"preprocessed with other settings \(template\); choose another"):
        claim_output(tmp_path, {"template": {"size": 128}, "detector": "hog"})
