"""The Oulu-CASIA raw-layout reader on fixtures written by its writer (iern spec §4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fermix.data.datasets.oulu_casia import OuluCASIADataset
from fermix.data.writers.oulu_casia import write_oulu_casia
from fermix.errors import FermixError

SEQUENCES = [("P001", "anger", 5), ("P001", "happy", 12), ("P002", "surprise", 2), ("subject-x", "disgust", 4)]


def _samples(sequences=SEQUENCES):
    rng = np.random.default_rng(0)
    for subject, label, n in sequences:
        for k in range(n):
            yield {
                "image": rng.integers(0, 255, (20, 16, 3), dtype=np.uint8),
                "sample_id": f"{subject}_{label}_{k}",
                "subject": subject,
                "expr": label,
                "split": "test",
            }


@pytest.fixture
def root(tmp_path) -> Path:
    return write_oulu_casia(_samples(), tmp_path / "Oulu")


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


def test_the_writer_writes_one_folder_per_subject_and_emotion(root):
    capture = root / "VL" / "Strong"
    assert sorted(p.name for p in (capture / "P001").iterdir()) == ["Anger", "Happiness"]
    assert sorted(p.name for p in (capture / "P001" / "Anger").iterdir()) == [f"00{k}.jpeg" for k in range(5)]
    assert (capture / "P003" / "Disgust").is_dir()  # "subject-x" is not an Oulu id: the next free P number


def test_the_last_three_frames_of_each_sequence_are_listed_in_frame_order(root):
    items = OuluCASIADataset.raw_items({"root": str(root)})
    happy = [i.sample_id for i in items if i.native_label == "Happiness"]
    assert happy == ["P001_Happiness_009", "P001_Happiness_010", "P001_Happiness_011"]
    assert len(items) == 3 + 3 + 2 + 3  # the 2-frame sequence gives both frames
    item = items[0]
    assert (item.sample_id, item.label, item.subject, item.source) == ("P001_Anger_002", "anger", "P001", "OuluCASIA")
    assert item.split is None and item.path == root / "VL/Strong/P001/Anger/002.jpeg"


def test_unpadded_frame_names_are_ordered_by_number(root):
    folder = root / "VL" / "Strong" / "P001" / "Happiness"
    for path in folder.iterdir():
        path.rename(folder / f"{int(path.stem)}.jpeg")  # 0.jpeg ... 11.jpeg: "9" sorts after "11" as text
    happy = [i.sample_id for i in OuluCASIADataset.raw_items({"root": str(root)}) if i.native_label == "Happiness"]
    assert happy == ["P001_Happiness_9", "P001_Happiness_10", "P001_Happiness_11"]


def test_emotion_folders_map_by_name_into_the_label_space(root):
    basic7 = {i.native_label: i.label for i in OuluCASIADataset.raw_items({"root": str(root)})}
    assert basic7 == {"Anger": "anger", "Happiness": "happy", "Surprise": "surprise", "Disgust": "disgust"}
    mix = {i.native_label: i.label for i in OuluCASIADataset.raw_items({"root": str(root), "label_space": "mixbasic6"})}
    assert mix["Happiness"] == "happiness"
    assert OuluCASIADataset.raw_label_space({"label_space": "mixbasic6"}).name == "mixbasic6"


def test_frames_modality_and_the_originalimg_folder_are_honoured(tmp_path):
    root = write_oulu_casia(_samples(), tmp_path / "Oulu" / "OriginalImg", modality="NI", illumination="Dark")
    cfg = {"root": str(root.parent), "modality": "NI", "illumination": "Dark", "frames": 1}
    items = OuluCASIADataset.raw_items(cfg)
    assert len(items) == 4 and items[0].path.parts[-5:-2] == ("NI", "Dark", "P001")


# ---------------------------------------------------------------- bad input: one sentence each


def test_a_folder_that_is_no_oulu_emotion_is_one_sentence(root):
    (root / "VL" / "Strong" / "P002" / "Surprise").rename(root / "VL" / "Strong" / "P002" / "Contempt")
    with pytest.raises(FermixError, match=r"P002/Contempt is not one of the six emotions") as e:
        OuluCASIADataset.raw_items({"root": str(root)})
    _one_sentence(str(e.value))


def test_an_empty_sequence_is_one_sentence(root):
    for frame in (root / "VL" / "Strong" / "P002" / "Surprise").iterdir():
        frame.unlink()
    with pytest.raises(FermixError, match=r"P002/Surprise has no images") as e:
        OuluCASIADataset.raw_items({"root": str(root)})
    _one_sentence(str(e.value))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [({"illumination": "Bright"}, "dataset.illumination=Bright"), ({"modality": "NI"}, r"NI/Strong not found"),
     ({"frames": "three"}, r"dataset\.frames must be an integer \(its default is 3\), got `three`"),
     ({"frames": 0}, r"dataset\.frames=0 must be an integer >= 1")],
)  # fmt: skip
def test_a_bad_option_or_missing_capture_folder_is_one_sentence(root, cfg, message):
    with pytest.raises(FermixError, match=message) as e:
        OuluCASIADataset.raw_items({"root": str(root), **cfg})
    _one_sentence(str(e.value))


def test_the_writer_refuses_a_class_oulu_casia_does_not_have(tmp_path):
    with pytest.raises(FermixError, match=r"class `neutral`; Oulu-CASIA has only Anger"):
        write_oulu_casia(_samples([("P001", "neutral", 2)]), tmp_path / "Oulu")


def test_training_on_the_raw_layout_says_to_preprocess_first(root):
    with pytest.raises(FermixError, match=r"oulu_casia is a raw layout; run `fermix preprocess dataset=oulu_casia`"):
        OuluCASIADataset({"root": str(root)})
