"""The CK+ raw-layout reader on fixtures written by its writer (iern spec §4): what `fermix preprocess` gets."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from fermix.data.datasets.ckplus import CKPlusDataset
from fermix.data.writers.ckplus import write_ckplus
from fermix.errors import FermixError
from tests.conftest import assert_one_sentence_error

# (subject, class, frames): a 6-frame anger sequence, a 2-frame short one, contempt, and an unlabelled one.
SEQUENCES = [("S005", "anger", 6), ("S005", "happy", 2), ("S010", "contempt", 4), ("S010", None, 5), ("s77", "sad", 3)]


def _samples(sequences=SEQUENCES):
    rng = np.random.default_rng(0)
    for subject, label, n in sequences:
        for k in range(n):
            yield {
                "image": rng.integers(0, 255, (18, 14, 3), dtype=np.uint8),
                "sample_id": f"{subject}_{label}_{k}",
                "subject": subject,
                "expr": label,
                "split": "train",
            }


@pytest.fixture
def root(tmp_path) -> Path:
    return write_ckplus(_samples(), tmp_path / "CK+")


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


def test_the_writer_writes_sequences_and_emotion_files_as_published(root):
    frames = sorted(p.relative_to(root).as_posix() for p in (root / "cohn-kanade-images" / "S005").rglob("*.png"))
    assert frames[:2] == ["cohn-kanade-images/S005/001/S005_001_00000001.png",
                          "cohn-kanade-images/S005/001/S005_001_00000002.png"]  # fmt: skip
    assert len(frames) == 8
    emotion = root / "Emotion" / "S005" / "001" / "S005_001_00000006_emotion.txt"  # named after the last frame
    assert emotion.read_text() == "   1.0000000e+00\n"
    assert not (root / "Emotion" / "S010" / "002").exists()  # the unlabelled sequence has no emotion file
    assert (root / "cohn-kanade-images" / "S001" / "001").is_dir()  # "s77" is not a CK+ id: renumbered


def test_the_last_three_frames_of_each_labelled_sequence_are_listed(root):
    items = CKPlusDataset.raw_items({"root": str(root)})
    ids = [i.sample_id for i in items]
    # Contempt is dropped in basic7, the unlabelled sequence skipped, and a 2-frame sequence gives both frames.
    assert ids == [
        "S001_001_00000001",
        "S001_001_00000002",
        "S001_001_00000003",
        "S005_001_00000004",
        "S005_001_00000005",
        "S005_001_00000006",
        "S005_002_00000001",
        "S005_002_00000002",
    ]
    first = items[3]
    assert (first.label, first.native_label, first.subject, first.source) == ("anger", "1", "S005", "CKPlus")
    assert first.path == root / "cohn-kanade-images/S005/001/S005_001_00000004.png" and first.split is None
    assert {i.label for i in items} == {"anger", "happy", "sad"}


def test_codes_map_by_name(root):
    labels = {}
    for code in range(8):
        (root / "Emotion" / "S005" / "001" / "S005_001_00000006_emotion.txt").write_text(f"   {code:.7e}\n")
        items = CKPlusDataset.raw_items({"root": str(root), "label_space": "basic8"})
        labels[code] = {i.label for i in items if i.sample_id.startswith("S005_001")}
    assert labels == {0: {"neutral"}, 1: {"anger"}, 2: {"contempt"}, 3: {"disgust"}, 4: {"fear"}, 5: {"happy"},
                      6: {"sad"}, 7: {"surprise"}}  # fmt: skip


def test_contempt_is_kept_only_with_a_space_that_has_it(root, caplog):
    with caplog.at_level(logging.INFO, logger="fermix"):
        seven = CKPlusDataset.raw_items({"root": str(root)})
    assert "contempt" not in {i.label for i in seven} and "3 contempt" in caplog.text
    kept = CKPlusDataset.raw_items({"root": str(root), "keep_contempt": True})
    assert [i.sample_id for i in kept if i.label == "contempt"] == [f"S010_001_0000000{k}" for k in (2, 3, 4)]
    assert CKPlusDataset.raw_label_space({"keep_contempt": True}).name == "basic8"
    assert CKPlusDataset.raw_label_space({}).name == "basic7"


def test_frames_and_neutral_frames_are_configurable(root):
    items = CKPlusDataset.raw_items({"root": str(root), "frames": 1, "neutral_frames": 2})
    s005 = [(i.sample_id, i.label) for i in items if i.subject == "S005"]
    # The 2-frame sequence gives one neutral and one peak frame: a frame is never both.
    assert s005 == [
        ("S005_001_00000001", "neutral"),
        ("S005_001_00000002", "neutral"),
        ("S005_001_00000006", "anger"),
        ("S005_002_00000001", "neutral"),
        ("S005_002_00000002", "happy"),
    ]
    assert {i.native_label for i in items if i.label == "neutral"} == {"0"}


def test_a_space_without_neutral_skips_the_neutral_frames(root):
    items = CKPlusDataset.raw_items({"root": str(root), "label_space": "mixbasic6", "neutral_frames": 1})
    assert {i.label for i in items} == {"anger", "happiness", "sadness"}


def test_macos_metadata_files_are_ignored(root):
    seq = ("S005", "001")
    (root / "cohn-kanade-images" / Path(*seq) / "._S005_001_00000001.png").write_bytes(b"x")  # sorts first
    (root / "Emotion" / Path(*seq) / "._S005_001_00000006_emotion.txt").write_bytes(b"x")  # a second emotion file
    (root / "Emotion" / "S005" / ".DS_Store").mkdir()
    items = CKPlusDataset.raw_items({"root": str(root), "neutral_frames": 1})
    assert [i.sample_id for i in items if i.label == "neutral"] == ["S005_001_00000001", "S010_001_00000001"]
    assert not any(i.sample_id.startswith(".") for i in items)


# ---------------------------------------------------------------- bad input: one sentence each


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8.0", "holds 8, which is not a CK+ emotion code"),
        ("1.5", "holds 1.5, which is not"),
        ("x", "holds `x`, not a number"),
    ],
)
def test_a_code_out_of_range_is_one_sentence(root, text, message):
    (root / "Emotion" / "S005" / "001" / "S005_001_00000006_emotion.txt").write_text(text)
    with pytest.raises(FermixError, match=re.escape(message)) as e:
        CKPlusDataset.raw_items({"root": str(root)})
    _one_sentence(str(e.value))


def test_a_labelled_sequence_without_frames_is_one_sentence(root):
    for frame in (root / "cohn-kanade-images" / "S005" / "002").iterdir():
        frame.unlink()
    with pytest.raises(FermixError, match=r"sequence S005/002 has an emotion label but no images") as e:
        CKPlusDataset.raw_items({"root": str(root)})
    _one_sentence(str(e.value))


def test_a_root_without_the_emotion_folder_is_one_sentence(root):
    for path in sorted((root / "Emotion").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / "Emotion").rmdir()
    with pytest.raises(FermixError, match=r"CK\+ folder .*Emotion not found") as e:
        CKPlusDataset.raw_items({"root": str(root)})
    _one_sentence(str(e.value))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [({"frames": 0}, "dataset.frames=0"), ({"keep_contempt": True, "label_space": "basic7"}, "keep_contempt")],
)
def test_a_bad_option_is_one_sentence(root, cfg, message):
    with pytest.raises(FermixError, match=message) as e:
        CKPlusDataset.raw_items({"root": str(root), **cfg})
    _one_sentence(str(e.value))


def test_training_on_the_raw_layout_says_to_preprocess_first(root, tmp_path, fermix_main):
    with pytest.raises(FermixError, match=r"ckplus is a raw layout; run `fermix preprocess dataset=ckplus`"):
        CKPlusDataset({"root": str(root)})
    result = fermix_main(["train", "dataset=ckplus", f"dataset.root={root}", "trainer.accelerator=cpu"], tmp_path)
    assert_one_sentence_error(result, "ckplus is a raw layout", "dataset=imagefolder dataset.root=")
