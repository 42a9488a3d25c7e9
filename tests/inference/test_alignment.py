import logging

import torch

from fermix.engine.checkpoint import load_checkpoint
from fermix.inference.alignment import alignment_settings, recorded_alignment
from fermix.preprocess.outputs import write_report
from fermix.preprocess.settings import settings_from_config
from tests.inference.conftest import ALIGNMENT


def test_the_fingerprint_preprocess_writes_is_what_training_records(tmp_path):
    settings = settings_from_config({"size": 128, "left_eye": [0.3, 0.4], "upsample": 0, "keep": "first"})
    write_report(tmp_path, [], {}, settings, {}, {})
    assert recorded_alignment(tmp_path) == settings.fingerprint()
    (tmp_path / "manifest.csv").write_text("sample_id,path\n")
    assert recorded_alignment(tmp_path / "manifest.csv") == settings.fingerprint()  # a manifest as the root


def test_a_dataset_without_preprocess_json_records_none(tmp_path):
    assert recorded_alignment(tmp_path) is None
    assert recorded_alignment(None) is None
    (tmp_path / "preprocess.json").write_text("{not json")
    assert recorded_alignment(tmp_path) is None


def test_recorded_settings_round_trip_into_the_preprocess_settings():
    settings = settings_from_config({"size": 128, "left_eye": [0.3, 0.4], "upsample": 0, "detector": "none"})
    rebuilt = alignment_settings(settings.fingerprint())
    assert rebuilt.template == settings.template
    assert (rebuilt.detector, rebuilt.upsample, rebuilt.keep) == ("none", 0, "largest")


def test_no_recorded_alignment_means_the_preprocess_defaults_and_one_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="fermix"):
        settings = alignment_settings(None)
    assert settings == settings_from_config({})
    assert len([r for r in caplog.records if "preprocess defaults" in r.getMessage()]) == 1


def test_training_stores_the_dataset_alignment_in_the_checkpoint(ckpt):
    meta = load_checkpoint(ckpt)["fermix"]
    assert meta["face_alignment"] == ALIGNMENT
    torch.load(ckpt, weights_only=True)  # still only plain containers
