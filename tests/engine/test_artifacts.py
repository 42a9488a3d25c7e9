import csv
import io
import warnings

import cv2
import numpy as np
import pytest
import torch
from rich.console import Console

from fermix.engine.artifacts import (
    confusion_figure,
    format_metrics_table,
    plot_confusion_matrix,
    print_metrics_table,
    write_predictions_csv,
)

CLASSES = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]


def test_predictions_csv_round_trips_columns_and_values(tmp_path):
    path = tmp_path / "out" / "predictions_test.csv"
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25], [0.123456789, 0.0, 0.876543211]])
    write_predictions_csv(path, ["a/1.jpg", "b/2.jpg", "c/3.jpg"], torch.tensor([1, -1, 0]), probs,
                          ["neutral", "happy", "sad"])

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["sample_id", "label", "label_name", "pred", "pred_name",
                             "prob_neutral", "prob_happy", "prob_sad"]
    assert [r["sample_id"] for r in rows] == ["a/1.jpg", "b/2.jpg", "c/3.jpg"]
    assert [r["label"] for r in rows] == ["1", "-1", "0"]
    assert [r["label_name"] for r in rows] == ["happy", "", "neutral"]
    assert [r["pred"] for r in rows] == ["1", "0", "2"]
    assert [r["pred_name"] for r in rows] == ["happy", "neutral", "sad"]
    assert rows[2]["prob_neutral"] == "0.123457"  # 6 decimals
    got = np.array([[float(r[f"prob_{c}"]) for c in ("neutral", "happy", "sad")] for r in rows])
    np.testing.assert_allclose(got, probs.numpy(), atol=5e-7)


def test_predictions_csv_accepts_numpy_and_rejects_mismatched_shapes(tmp_path):
    path = tmp_path / "p.csv"
    write_predictions_csv(path, ["x"], np.array([0]), np.array([[0.9, 0.1]]), ["a", "b"])
    assert path.read_text().splitlines()[1] == "x,0,a,0,a,0.900000,0.100000"
    with pytest.raises(ValueError, match="probs must have shape"):
        write_predictions_csv(path, ["x", "y"], np.array([0, 1]), np.array([[0.9, 0.1]]), ["a", "b"])


def test_confusion_png_is_a_readable_image_of_useful_size(tmp_path):
    confusion = np.random.default_rng(0).integers(0, 50, size=(7, 7))
    confusion[3] = 0  # a class absent from the split
    path = tmp_path / "plots" / "confusion_test.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning for the empty row
        plot_confusion_matrix(path, confusion, CLASSES, title="test split")

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] >= 600 and image.shape[1] >= 600
    assert [p.name for p in path.parent.iterdir()] == ["confusion_test.png"]


def test_confusion_png_with_raw_counts_from_tensor(tmp_path):
    path = tmp_path / "c.png"
    plot_confusion_matrix(path, torch.tensor([[5, 1], [0, 0]]), ["a", "b"], normalize=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_of_hundreds_of_classes_stays_small_and_quick(tmp_path):
    """synthetic_identity's 300 people: no per-cell text, every k-th class named, a bounded picture."""
    names = [f"person{i:04d}" for i in range(300)]
    confusion = np.random.default_rng(0).integers(0, 5, size=(300, 300))
    fig = confusion_figure(confusion, names)
    ax = fig.axes[0]
    assert not ax.texts and len(ax.get_xticks()) <= 30 and max(fig.get_size_inches()) <= 13
    plot_confusion_matrix(tmp_path / "c.png", confusion, names)
    assert max(cv2.imread(str(tmp_path / "c.png")).shape[:2]) <= 2000


def test_metrics_table_lists_every_metric_with_four_decimals_aligned():
    metrics = {"acc": 0.87654321, "mean_class_acc": 0.5, "macro_f1": float("nan")}
    text = format_metrics_table(metrics, title="test")
    lines = text.splitlines()
    assert lines[0] == "test"
    assert "0.8765" in text and "0.5000" in text and "nan" in text
    for name in metrics:
        assert any(line.startswith(name) for line in lines)
    assert len({len(line) for line in lines[1:]}) == 1  # columns aligned


def test_print_metrics_table_shows_every_metric():
    buffer = io.StringIO()
    print_metrics_table({"acc": 0.25, "macro_f1": 0.125}, "val", console=Console(file=buffer, width=80))
    out = buffer.getvalue()
    assert "acc" in out and "0.2500" in out and "macro_f1" in out and "0.1250" in out and "val" in out
