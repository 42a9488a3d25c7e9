"""The multirun sweep summary on hand-made sweep dirs: one row per job, mean ± std, pooled folds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fermix.errors import FermixError
from fermix.report.sweep import group_jobs, group_table, summarize_runs, summarize_sweep, write_sweep_summary
from tests.report.fabricate import fabricate_run, two_folds


def _seed_sweep(sweep):
    for i, (seed, acc, f1) in enumerate([(1, 0.5, 0.4), (2, 0.7, 0.6), (3, 0.9, 0.5)]):
        fabricate_run(sweep / str(i), [0, 1], [0, 1], seed=seed, fold="v1", overrides=[f"seed={seed}"],
                      metrics={"val": {"acc": acc + 0.05}, "test": {"acc": acc, "macro_f1": f1}})


def test_one_row_per_job_then_mean_and_sample_std_per_metric(tmp_path):
    _seed_sweep(tmp_path)
    s = summarize_sweep(tmp_path)
    t = s.table
    assert list(t.index) == ["0", "1", "2", "mean", "std"]
    assert list(t.columns) == ["overrides", "seed", "val/acc", "test/acc", "test/macro_f1"]
    assert t.loc["1", "overrides"] == "seed=2" and t.loc["1", "seed"] == 2
    assert t.loc["mean", "test/acc"] == pytest.approx(0.7)
    assert t.loc["std", "test/acc"] == pytest.approx(0.2)  # ddof=1: sqrt((0.04 + 0 + 0.04) / 2)
    assert t.loc["mean", "test/macro_f1"] == pytest.approx(0.5) and t.loc["std", "test/macro_f1"] == pytest.approx(0.1)
    assert s.pooled == [] and s.pooled_error is None  # one fold: nothing to pool
    md = s.markdown()
    assert "| job | overrides | seed | val/acc | test/acc | test/macro_f1 |" in md
    assert "| 2 | seed=3 | 3 | 0.9500 | 0.9000 | 0.5000 |" in md
    assert "| mean ± std | | | 0.7500 ± 0.2000 | 0.7000 ± 0.2000 | 0.5000 ± 0.1000 |" in md
    assert "Pooled" not in md


def test_files_are_written_and_unfinished_jobs_are_skipped(tmp_path):
    _seed_sweep(tmp_path)
    (tmp_path / "3" / ".hydra").mkdir(parents=True)  # a job that crashed before summary.json
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    s = write_sweep_summary(tmp_path)
    assert [j.name for j in s.jobs] == ["0", "1", "2"]
    assert (tmp_path / "sweep_summary.md").read_text() == s.markdown()
    back = pd.read_csv(tmp_path / "sweep_summary.csv", index_col="job")
    assert back.loc["std", "test/acc"] == pytest.approx(0.2)
    assert (tmp_path / "sweep_summary.csv").read_text().splitlines()[2].startswith("1,seed=2,2,")
    assert not (tmp_path / "pooled_test.md").exists()


def test_jobs_over_folds_get_the_pooled_aggregate(tmp_path):
    two_folds(tmp_path)
    s = write_sweep_summary(tmp_path)
    assert len(s.pooled) == 1 and s.pooled[0][0] == ""
    pooled = s.pooled[0][1]
    assert pooled.table.loc["pooled", "All"] == pytest.approx(0.6)
    assert s.table.loc["mean", "test/acc"] == pytest.approx(0.7)  # the mean the pooled figure differs from
    md = (tmp_path / "sweep_summary.md").read_text()
    assert "## Pooled over folds" in md and "| **pooled** | 64.29 (9/14)" in md
    assert (tmp_path / "pooled_test.md").read_text() == pooled.markdown()
    back = pd.read_csv(tmp_path / "pooled_test.csv", index_col="run")
    assert back.loc["pooled", "All"] == pytest.approx(0.6)


def test_pooled_groups_are_the_jobs_that_differ_only_in_fold_and_seed(tmp_path):
    job = 0
    for method in ("erm", "iern"):
        for fold in ("v1", "v2"):
            for seed in (1, 2):
                overrides = [f"method={method}", f"dataset.fold={fold}", f"seed={seed}"]
                fabricate_run(tmp_path / str(job), [0, 1], [0, 1 if method == "erm" else 0], method=method,
                              fold=fold, seed=seed, overrides=overrides)
                job += 1
    s = write_sweep_summary(tmp_path)
    assert [label for label, _ in s.pooled] == ["method=erm", "method=iern"]
    assert [r.table.loc["pooled", "All"] for _, r in s.pooled] == [1.0, 0.5]
    assert all(len(r.runs) == 4 for _, r in s.pooled)
    assert "## Pooled over folds: method=iern" in s.markdown()
    back = pd.read_csv(tmp_path / "pooled_test.csv", index_col=["group", "run"])
    assert back.loc[("method=iern", "pooled"), "All"] == pytest.approx(0.5)


def test_a_pooling_failure_still_writes_the_job_table_with_the_reason(tmp_path):
    v1, _ = two_folds(tmp_path)
    (v1 / "predictions_test.csv").unlink()
    s = write_sweep_summary(tmp_path)
    assert s.pooled == [] and "has no predictions_test.csv" in s.pooled_error
    md = (tmp_path / "sweep_summary.md").read_text()
    assert "Pooled fold aggregate not computed:" in md and "| 1 |" in md


def test_a_metric_missing_from_one_job_is_blank_not_an_error(tmp_path):
    fabricate_run(tmp_path / "0", [0], [0], seed=1, metrics={"test": {"acc": 1.0, "macro_f1": 1.0}})
    fabricate_run(tmp_path / "1", [0], [0], seed=2, metrics={"test": {"acc": 0.5}})
    s = summarize_sweep(tmp_path)
    assert math.isnan(s.table.loc["1", "test/macro_f1"]) and s.table.loc["mean", "test/macro_f1"] == 1.0
    md = s.markdown()
    assert "| 1 | seed=2 | 2 | 0.5000 | – |" in md  # only the overrides that differ between jobs
    assert "Overrides shared by every job: dataset.fold=v1;" in md


def test_a_sweep_without_finished_jobs_is_one_sentence(tmp_path):
    with pytest.raises(FermixError, match="holds no finished job"):
        summarize_sweep(tmp_path)
    with pytest.raises(FermixError, match="does not exist"):
        summarize_sweep(tmp_path / "nope")


def test_settings_group_runs_by_what_differs_besides_seed_fold_and_where_they_were_written(tmp_path):
    job = 0
    for method in ("erm", "iern"):
        for seed in (1, 2, 3):
            fabricate_run(tmp_path / str(job), [0, 1], [0, 1], method=method, seed=seed,
                          overrides=[f"method={method}", f"seed={seed}", f"hydra.run.dir=out/{job}",
                                     f"paths.runs_dir=r{job}", "resume=auto"],
                          metrics={"test": {"acc": 0.1 * job}})  # fmt: skip
            job += 1
    s = summarize_sweep(tmp_path)
    groups = group_jobs(s.jobs)
    assert list(groups) == ["method=erm", "method=iern"]
    assert [j.name for j in groups["method=iern"]] == ["3", "4", "5"]
    t = group_table(s.jobs)
    assert t.loc["method=erm", "runs"] == 3
    assert t.loc["method=erm", "test/acc mean"] == pytest.approx(0.1)
    assert t.loc["method=iern", "test/acc std"] == pytest.approx(0.1)  # std of 0.3, 0.4, 0.5


def test_one_setting_is_all_runs_and_a_single_run_has_no_std(tmp_path):
    fabricate_run(tmp_path / "0", [0], [0], seed=1, metrics={"test": {"acc": 1.0}})
    t = group_table(summarize_sweep(tmp_path).jobs)
    assert list(t.index) == ["all runs"] and math.isnan(t.loc["all runs", "test/acc std"])


def test_runs_of_several_sweeps_are_named_by_their_path_below_the_common_folder(tmp_path):
    a = fabricate_run(tmp_path / "multirun_a" / "0", [0], [0], seed=1)
    b = fabricate_run(tmp_path / "multirun_b" / "0", [0], [0], seed=2)
    s = summarize_runs([a, b])
    assert [j.name for j in s.jobs] == ["multirun_a/0", "multirun_b/0"] and s.sweep_dir == tmp_path
    assert list(s.table.index[:2]) == ["multirun_a/0", "multirun_b/0"]
    with pytest.raises(FermixError, match="no finished runs to summarise"):
        summarize_runs([])
