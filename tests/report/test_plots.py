"""The report's figures: curves read back from Lightning's CSV layout, and PNGs that are real pictures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fermix.report.plots import plot_curves, plot_per_class, read_curves
from tests.report.fabricate import assert_picture, write_csv_log


def test_curves_take_each_epochs_values_from_the_rows_lightning_spreads_them_over(tmp_path):
    write_csv_log(tmp_path, losses=[1.2, 0.8, 0.5], val_acc=[0.4, 0.6, 0.7])
    curves = read_curves(tmp_path)
    assert list(curves.index) == [0, 1, 2] and curves.index.name == "epoch"
    assert list(curves.columns) == ["train/ce", "train/loss", "val/acc", "val/macro_f1"]  # no lr, no skipped
    assert curves["train/loss"].tolist() == pytest.approx([1.2, 0.8, 0.5])
    assert curves["val/acc"].tolist() == pytest.approx([0.4, 0.6, 0.7])
    assert curves["val/macro_f1"].tolist() == pytest.approx([0.2, 0.3, 0.35])


def test_a_staged_method_logs_one_file_per_stage_and_each_gets_its_own_curves(tmp_path):
    write_csv_log(tmp_path, [1.0, 0.9], [0.5, 0.6], stage="teacher")
    write_csv_log(tmp_path, [2.0, 1.5, 1.0], [0.3, 0.4, 0.5], stage="student")
    curves = read_curves(tmp_path)
    assert "teacher: train/loss" in curves.columns and "student: val/acc" in curves.columns
    assert curves["student: train/loss"].tolist() == pytest.approx([2.0, 1.5, 1.0])
    assert curves["teacher: train/loss"].iloc[:2].tolist() == pytest.approx([1.0, 0.9])
    assert math.isnan(curves["teacher: train/loss"].iloc[2])


def test_step_level_columns_are_not_curves_and_a_run_without_logs_has_none(tmp_path):
    path = write_csv_log(tmp_path / "a", [1.0], [0.5])
    log = pd.read_csv(path).assign(**{"train/loss_step": 3.0})
    log.to_csv(path, index=False)
    assert "train/loss_step" not in read_curves(tmp_path / "a").columns
    assert read_curves(tmp_path / "b").empty
    (tmp_path / "c" / "csv").mkdir(parents=True)
    (tmp_path / "c" / "csv" / "metrics.csv").write_text("")  # a run killed before its first log line
    assert read_curves(tmp_path / "c").empty


def test_curves_png_has_a_panel_per_curve_training_terms_first(tmp_path):
    runs = {}
    for i in range(3):
        write_csv_log(tmp_path / str(i), [1.0 - 0.1 * i, 0.5], [0.5, 0.6 + 0.1 * i])
        runs[str(i)] = read_curves(tmp_path / str(i))
    panels = plot_curves(tmp_path / "one.png", runs, {"all runs": ["0", "1", "2"]})
    assert panels == ["train/loss", "train/ce", "val/acc", "val/macro_f1"]
    assert_picture(tmp_path / "one.png")
    plot_curves(tmp_path / "two.png", runs, {"method=erm": ["0", "1"], "method=iern": ["2"]})
    assert_picture(tmp_path / "two.png")
    with pytest.raises(ValueError, match="no run has a training curve"):
        plot_curves(tmp_path / "none.png", {"0": pd.DataFrame()}, {"all runs": ["0"]})


def test_per_class_png_draws_groups_and_a_class_without_samples(tmp_path):
    erm = pd.DataFrame([[1.0, 0.5, np.nan], [0.8, 0.7, np.nan]], index=["0", "1"], columns=["happy", "sad", "fear"])
    iern = pd.DataFrame([[0.9, 0.6, 0.4]], index=["2"], columns=["happy", "sad", "fear"])
    plot_per_class(tmp_path / "bars.png", {"method=erm": erm, "method=iern": iern}, "per-class test accuracy")
    assert_picture(tmp_path / "bars.png")
    assert not list(tmp_path.glob("*.tmp*"))
