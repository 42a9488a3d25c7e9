"""The synthetic generator writes every published layout, and each adapter reads it back
through the same code path a real download takes."""

import pytest

from fermix.data.writers import WRITERS, write
from fermix.registry import DATASETS

SMALL = {"train_per_cell": 2, "val_per_cell": 1, "test_per_cell": 1, "cache": False}


def _synthetic(**kw):
    return DATASETS.get("synthetic")({**SMALL, **kw})


# format -> (generator overrides, adapter overrides, how many samples the adapter must see)
TRAINABLE = {
    "imagefolder": ({}, {}, 7 * 3 * 4),
    "mixbasic": ({"classes": "mixbasic6"}, {"fold": "v1", "bias": "bias100"}, 6 * 3 * 4),
    "rafdb": ({}, {}, 7 * 3 * 4),
    "affectnet": ({}, {}, 7 * 3 * 4),
    "affwild2": ({}, {"tasks": ["expr", "au", "va"]}, None),
}


def test_every_writer_is_covered_here():
    assert set(WRITERS) == set(TRAINABLE) | {"ckplus", "oulu_casia"}


@pytest.mark.parametrize("fmt", sorted(TRAINABLE))
def test_synthetic_samples_written_in_a_published_layout_read_back_through_its_adapter(fmt, tmp_path):
    gen_kw, adapter_kw, expected = TRAINABLE[fmt]
    synthetic = _synthetic(**gen_kw)
    root = write(fmt, synthetic.writer_samples(), tmp_path / fmt)
    adapter = DATASETS.get(fmt)({"root": str(root), **adapter_kw})
    records = adapter.records()
    if expected is not None:
        assert len(records) == expected
    else:
        assert len(records) > 0
    labelled = records[records["expr"] >= 0]
    names = [adapter.label_space.classes[i] for i in labelled["expr"]]
    assert len(set(names)) == adapter.label_space.num_classes  # every class arrives, under its own name
    sample = adapter.load(records.iloc[0].to_dict())
    assert sample["image"].ndim == 3


@pytest.mark.parametrize(("fmt", "classes"), [("ckplus", "basic8"), ("oulu_casia", "mixbasic6")])
def test_raw_layouts_list_synthetic_sequences_for_preprocessing(fmt, classes, tmp_path):
    root = write(fmt, _synthetic(classes=classes).writer_samples(), tmp_path)
    items = DATASETS.get(fmt).raw_items({"root": str(root)})
    assert items and all(item.path.is_file() and item.label for item in items)
