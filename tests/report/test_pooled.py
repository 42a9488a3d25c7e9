"""The pooled (micro) fold aggregate of iern.md §5.2 on hand-made run dirs with hand-computed numbers."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fermix.errors import FermixError
from fermix.report.pooled import find_run_dirs, pooled_accuracy, read_run, write_pooled
from tests.report.fabricate import fabricate_run, per_class, two_folds

SCRIPT = Path(__file__).parents[2] / "scripts" / "pooled_folds.py"


def _one_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


def test_pooled_is_sum_of_tp_over_sum_of_n_not_the_mean_of_fold_accuracies(tmp_path):
    result = pooled_accuracy(two_folds(tmp_path))
    t = result.table
    # v1: a 4/4, b 3/3, c 2/3 (9/10); v2: a 5/10, b 6/10, c 4/10 (15/30)
    assert t.loc["pooled", "a"] == pytest.approx(9 / 14)
    assert t.loc["pooled", "b"] == pytest.approx(9 / 13)
    assert t.loc["pooled", "c"] == pytest.approx(6 / 13)
    assert t.loc["pooled", "All"] == pytest.approx(24 / 40)  # 0.6 ...
    assert t.loc["mean", "All"] == pytest.approx(0.7)  # ... while the mean of 0.9 and 0.5 is 0.7
    assert t.loc["std", "All"] == pytest.approx(0.4 / math.sqrt(2))  # sample std, ddof=1
    assert t.loc["mean", "a"] == pytest.approx(0.75) and t.loc["std", "a"] == pytest.approx(0.5 / math.sqrt(2))
    assert t.loc["v1 seed 1", "All"] == pytest.approx(0.9) and t.loc["v2 seed 1", "All"] == pytest.approx(0.5)
    assert t.loc["v1 seed 1", "c"] == pytest.approx(2 / 3)
    assert list(t["n"].iloc[:3]) == [10, 30, 40] and t["n"].iloc[3:].isna().all()
    assert result.correct.loc["pooled"].tolist() == [9, 9, 6, 24]
    assert result.total.loc["pooled"].tolist() == [14, 13, 13, 40]


def test_rows_and_columns_follow_the_label_space_then_all(tmp_path):
    classes = ("surprise", "anger", "fear")  # not sorted: the label space's order must be kept
    runs = [fabricate_run(tmp_path / str(i), [0, 1, 2, 2], [0, 1, 2, 0], classes=classes, fold=f"v{3 - i}")
            for i in range(3)]
    result = pooled_accuracy(runs)
    assert list(result.table.columns) == ["surprise", "anger", "fear", "All", "n"]
    assert list(result.table.index) == ["v1 seed 1", "v2 seed 1", "v3 seed 1", "pooled", "mean", "std"]
    md = result.markdown()
    assert "| run | surprise | anger | fear | All | n |" in md
    assert "| **pooled** | 100.00 (3/3) | 100.00 (3/3) | 50.00 (3/6) | 75.00 (9/12) | 12 |" in md
    assert "| mean ± std of runs | 100.00 ± 0.00 | 100.00 ± 0.00 | 50.00 ± 0.00 | 75.00 ± 0.00 | |" in md
    assert "ddof=1" in md


def test_markdown_shows_the_hand_computed_example(tmp_path):
    md = pooled_accuracy(two_folds(tmp_path)).markdown()
    assert "| v1 seed 1 | 100.00 (4/4) | 100.00 (3/3) | 66.67 (2/3) | 90.00 (9/10) | 10 |" in md
    assert "| **pooled** | 64.29 (9/14) | 69.23 (9/13) | 46.15 (6/13) | 60.00 (24/40) | 40 |" in md
    assert "| mean ± std of runs | 75.00 ± 35.36 | 80.00 ± 28.28 | 53.33 ± 18.86 | 70.00 ± 28.28 | |" in md


def test_unlabelled_rows_are_left_out(tmp_path):
    run = fabricate_run(tmp_path / "0", [0, -1, 1, -1], [0, 2, 0, 1])
    assert read_run(run).labels.tolist() == [0, 1]
    assert pooled_accuracy([run]).table.loc["pooled", "All"] == pytest.approx(0.5)


def test_a_class_absent_from_a_run_is_blank_there_and_pooled_from_the_others(tmp_path):
    v1 = fabricate_run(tmp_path / "0", *per_class({"a": (1, 2), "b": (2, 2)}), fold="v1")
    v2 = fabricate_run(tmp_path / "1", *per_class({"a": (2, 2), "c": (1, 4)}), fold="v2")
    result = pooled_accuracy([v1, v2])
    t = result.table
    assert math.isnan(t.loc["v1 seed 1", "c"]) and t.loc["pooled", "c"] == pytest.approx(0.25)
    assert t.loc["mean", "c"] == pytest.approx(0.25) and math.isnan(t.loc["std", "c"])  # one run has c
    assert "| v1 seed 1 | 50.00 (1/2) | 100.00 (2/2) | – (0/0) |" in result.markdown()


def test_one_run_has_no_std(tmp_path):
    md = pooled_accuracy([fabricate_run(tmp_path / "0", [0, 1], [0, 0])]).markdown()
    assert "| mean ± std of runs | 100.00 | 0.00 | – | 50.00 | |" in md


def test_several_seeds_of_one_fold_are_pooled_but_a_fold_and_seed_twice_is_refused(tmp_path):
    a = fabricate_run(tmp_path / "0", [0, 1], [0, 1], seed=1)
    b = fabricate_run(tmp_path / "1", [0, 1], [0, 0], seed=2)
    assert pooled_accuracy([a, b]).table.loc["pooled", "All"] == pytest.approx(0.75)
    c = fabricate_run(tmp_path / "2", [0, 1], [1, 1], seed=2)
    with pytest.raises(FermixError, match=r"are both v1 seed 2; pool each fold once per seed") as e:
        pooled_accuracy([a, b, c])
    _one_sentence(str(e.value))


def test_the_same_run_given_twice_counts_once(tmp_path):
    a = fabricate_run(tmp_path / "0", [0, 1], [0, 1])
    result = pooled_accuracy([a, tmp_path / "." / "0"])
    assert len(result.runs) == 1 and result.total.loc["pooled", "All"] == 2


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"classes": ("a", "b", "d")}, r"different label spaces \(a, b, c vs a, b, d\); pool runs of one dataset"),
        ({"method": "iern"}, r"different methods \(erm vs iern\); pool one method at a time"),
        ({"dataset": "synthetic_bias"}, r"different datasets \(mixbasic vs synthetic_bias\)"),
        ({"bias": "bias90"}, r"different dataset.bias settings \(bias100 vs bias90\)"),
    ],
)
def test_runs_that_do_not_belong_together_are_refused(tmp_path, change, fragment):
    a = fabricate_run(tmp_path / "0", [0, 1], [0, 1], fold="v1")
    b = fabricate_run(tmp_path / "1", [0, 1], [0, 1], fold="v2", **change)
    with pytest.raises(FermixError, match=fragment) as e:
        pooled_accuracy([a, b])
    _one_sentence(str(e.value))


def test_fold_and_seed_come_from_summary_config_or_hydra_config(tmp_path):
    in_summary = read_run(fabricate_run(tmp_path / "0", [0], [0], fold="v3", seed=7, config_in="summary"))
    assert (in_summary.fold, in_summary.settings, in_summary.seed) == ("v3", (("bias", "bias100"),), 7)
    assert not (tmp_path / "0" / ".hydra" / "config.yaml").exists()
    from_hydra = read_run(fabricate_run(tmp_path / "1", [0], [0], fold="v2", seed=8))
    assert (from_hydra.fold, from_hydra.seed) == ("v2", 8)
    neither = read_run(fabricate_run(tmp_path / "2", [0], [0], config_in="none", seed=9))
    assert neither.fold is None and neither.name == "seed 9"


def test_a_run_without_summary_or_predictions_is_one_sentence(tmp_path):
    run = fabricate_run(tmp_path / "0", [0], [0])
    with pytest.raises(FermixError, match=r"has no predictions_val\.csv; the run did not evaluate the val split") as e:
        pooled_accuracy([run], split="val")
    _one_sentence(str(e.value))
    (run / "summary.json").unlink()
    with pytest.raises(FermixError, match=r"has no summary\.json; pass the directory of a finished"):
        pooled_accuracy([run])
    with pytest.raises(FermixError, match="no runs to pool"):
        pooled_accuracy([])


def test_write_pooled_writes_markdown_and_a_csv_that_reads_back(tmp_path):
    result = pooled_accuracy(two_folds(tmp_path / "sweep"))
    md, csv = write_pooled(result, tmp_path / "sweep")
    assert md.read_text() == result.markdown()
    back = pd.read_csv(csv, index_col="run")
    assert list(back.columns) == ["a", "b", "c", "All", "n"]
    np.testing.assert_allclose(back.loc["pooled", "All"], 0.6)
    np.testing.assert_allclose(back.loc["std", "All"], 0.4 / math.sqrt(2), atol=1e-6)
    assert not list((tmp_path / "sweep").glob(".*tmp*"))


def test_find_run_dirs_takes_run_dirs_sweep_dirs_and_globs(tmp_path):
    sweep = tmp_path / "multirun_x"
    runs = [fabricate_run(sweep / str(i), [0], [0], fold=f"v{i}") for i in (0, 1, 2, 10)]
    (sweep / "3").mkdir()  # an unfinished job: no summary.json
    assert find_run_dirs([sweep]) == runs  # job-number order: 10 after 2
    assert find_run_dirs([str(tmp_path / "multirun_*" / "1"), runs[0]]) == [runs[1], runs[0]]
    with pytest.raises(FermixError, match="matches no directory"):
        find_run_dirs([str(tmp_path / "nothing_*")])
    with pytest.raises(FermixError, match="neither a finished run"):
        find_run_dirs([sweep / "3"])


def test_pooled_folds_script_prints_the_table_and_writes_next_to_the_runs(tmp_path, capsys):
    two_folds(tmp_path / "sweep")
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main([str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out
    assert "| **pooled** | 64.29 (9/14)" in out
    assert (tmp_path / "sweep" / "pooled_test.md").is_file() and (tmp_path / "sweep" / "pooled_test.csv").is_file()
    assert main([str(tmp_path / "sweep" / "0"), "--out", str(tmp_path / "reports")]) == 0
    assert (tmp_path / "reports" / "pooled_test.md").is_file()
    capsys.readouterr()
    assert main([str(tmp_path / "sweep"), "--split", "val"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fermix: error:") and "predictions_val.csv" in err[0]


def test_find_run_dirs_can_list_unfinished_runs_instead_of_refusing_them(tmp_path):
    sweep = tmp_path / "multirun_x"
    done = fabricate_run(sweep / "0", [0], [0])
    for job, marker in (("1", ".hydra"), ("2", "checkpoints"), ("3", "csv")):
        (sweep / job / marker).mkdir(parents=True)
    (sweep / "report").mkdir()  # not a run: an earlier report's folder
    skipped = []
    assert find_run_dirs([sweep], skipped=skipped) == [done]
    assert skipped == [sweep / "1", sweep / "2", sweep / "3"]
    skipped = []
    assert find_run_dirs([sweep / "1", str(sweep / "[02]")], skipped=skipped) == [done]
    assert skipped == [sweep / "1", sweep / "2"]
    with pytest.raises(FermixError, match="neither a finished run"):
        find_run_dirs([sweep / "report"], skipped=[])


class _Parts:
    """A toy dataset adapter whose folds are the option `part` (no setting to share)."""

    fold_option = "part"


def test_the_fold_option_is_the_datasets_own_declaration(tmp_path, monkeypatch):
    from fermix.registry import DATASETS, Entry
    from fermix.report.pooled import FoldScheme, fold_scheme
    from fermix.report.sweep import summarize_runs

    assert fold_scheme("mixbasic") == FoldScheme("fold", ("bias",))
    assert fold_scheme("synthetic") is None and fold_scheme("not_registered") is None
    # a dataset without folds: its `fold` key is just an option, never a reason to pool
    plain = [fabricate_run(tmp_path / "plain" / str(i), [0, 1], [0, 1], dataset="imagefolder", fold=f"v{i}")
             for i in (1, 2)]  # fmt: skip
    assert read_run(plain[0]).fold is None and summarize_runs(plain).pooled == []
    # a new dataset declares its own fold option and is pooled with no report change
    monkeypatch.setitem(DATASETS._entries, "toy_parts", Entry("tests.report.test_pooled:_Parts", "toy"))
    fold_scheme.cache_clear()
    runs = []
    for i, (right, n) in enumerate(((3, 4), (1, 4))):
        run = fabricate_run(tmp_path / "parts" / str(i), [0] * n, [0] * right + [1] * (n - right),
                            dataset="toy_parts", fold=None, bias=None, overrides=[f"dataset.part=p{i}"])  # fmt: skip
        config = run / ".hydra" / "config.yaml"
        config.write_text(config.read_text().replace("name: toy_parts", f"name: toy_parts\n  part: p{i}"))
        runs.append(run)
    summary = summarize_runs(runs)
    fold_scheme.cache_clear()
    assert [read_run(r).fold for r in runs] == ["p0", "p1"]
    ((_, pooled),) = summary.pooled
    assert pooled.table.at["pooled", "All"] == pytest.approx(4 / 8)
