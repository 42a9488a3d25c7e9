"""`fermix report`: the tables equal numpy's and pooled.py's numbers, every figure is a real picture,
report.md's links resolve, and bad input ends in one sentence. Run dirs are written by hand (the
files `fermix train` writes, with its writers) and, once, by a real 2-seed multirun."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fermix.errors import FermixError
from fermix.report.pooled import pooled_accuracy, read_run
from fermix.report.run import collect, default_out, report_runs, write_report
from tests.conftest import assert_one_sentence_error, run_fermix
from tests.engine.runner import quick_overrides
from tests.helpers import write_image_folder
from tests.report.fabricate import CLASSES, assert_picture, fabricate_run, per_class, two_folds, write_csv_log

# (method, seed) -> (val acc, test acc, test macro_f1): two settings, three seeds each
NUMBERS = {
    ("erm", 1): (0.60, 0.50, 0.40), ("erm", 2): (0.70, 0.65, 0.55), ("erm", 3): (0.90, 0.80, 0.70),
    ("iern", 1): (0.75, 0.70, 0.60), ("iern", 2): (0.80, 0.72, 0.66), ("iern", 3): (0.95, 0.90, 0.80),
}  # fmt: skip
SPECS = [  # per run: (correct, total) per class, so per-class accuracies differ between runs
    {"a": (4, 4), "b": (2, 3), "c": (1, 3)},
    {"a": (3, 4), "b": (3, 3), "c": (2, 3)},
    {"a": (2, 4), "b": (1, 3), "c": (3, 3)},
]


def _sweep(root: Path, logs: bool = True) -> Path:
    """A multirun `-m method=erm,iern seed=1,2,3` as train leaves it: job dirs 0..5."""
    sweep = root / "multirun_x"
    for job, ((method, seed), (val, test, f1)) in enumerate(NUMBERS.items()):
        run = fabricate_run(sweep / str(job), *per_class(SPECS[seed - 1]), method=method, seed=seed, fold=None,
                            overrides=[f"method={method}", f"seed={seed}", "trainer.max_epochs=3"],
                            metrics={"val": {"acc": val}, "test": {"acc": test, "macro_f1": f1}})  # fmt: skip
        if logs:
            write_csv_log(run, [1.0 - 0.1 * seed - 0.2 * e for e in range(3)], [val - 0.1 * (2 - e) for e in range(3)])
    return sweep


def _links(md_path: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md_path.read_text())


def test_grouped_table_is_numpys_mean_and_sample_std_over_each_settings_seeds(tmp_path):
    _, md = report_runs(_sweep(tmp_path))
    assert md == tmp_path / "multirun_x" / "report" / "report.md"
    grouped = pd.read_csv(md.parent / "metrics_grouped.csv", index_col="group")
    assert list(grouped.index) == ["method=erm", "method=iern"] and grouped["runs"].tolist() == [3, 3]
    text = md.read_text()
    for method in ("erm", "iern"):
        for k, metric in enumerate(("val/acc", "test/acc", "test/macro_f1")):
            values = np.array([v[k] for (m, _), v in NUMBERS.items() if m == method])
            mean, std = values.mean(), values.std(ddof=1)
            assert grouped.loc[f"method={method}", f"{metric} mean"] == pytest.approx(mean, abs=1e-6)
            assert grouped.loc[f"method={method}", f"{metric} std"] == pytest.approx(std, abs=1e-6)
            assert f"{mean:.4f} ± {std:.4f}" in text
    assert "| method=erm | 3 | 0.7333 ± 0.1528 | 0.6500 ± 0.1500 | 0.5500 ± 0.1500 |" in text


def test_metrics_csv_has_one_row_per_run_with_its_own_numbers(tmp_path):
    sweep = _sweep(tmp_path)
    _, md = report_runs(sweep)
    runs = pd.read_csv(md.parent / "metrics.csv", index_col="run")
    assert len(runs) == 6 and list(runs.index) == list(range(6))
    for job, ((method, seed), (val, test, f1)) in enumerate(NUMBERS.items()):
        summary = json.loads((sweep / str(job) / "summary.json").read_text())
        assert runs.loc[job, "seed"] == seed == summary["seed"]
        assert runs.loc[job, "group"] == f"method={method}"
        assert (runs.loc[job, "val/acc"], runs.loc[job, "test/acc"], runs.loc[job, "test/macro_f1"]) == pytest.approx(
            (val, test, f1)
        )
    assert "Overrides shared by every run: `trainer.max_epochs=3`." in md.read_text()


def test_every_figure_exists_decodes_is_not_blank_and_every_link_resolves(tmp_path):
    _, md = report_runs(_sweep(tmp_path))
    links = _links(md)
    assert links == ["curves.png", "per_class_acc_test.png", "confusion_test_1.png", "confusion_test_2.png"]
    for link in links:
        assert not Path(link).is_absolute()
        assert_picture(md.parent / link)
    assert not list(md.parent.glob("*.tmp*"))  # atomic writes leave no temporaries


def test_per_class_bars_and_confusion_are_numpys_over_the_runs_predictions(tmp_path):
    sweep = _sweep(tmp_path)
    report = collect(sorted(sweep.iterdir(), key=lambda p: int(p.name)))
    erm = next(r for r in report.classes if r.group == "method=erm")
    runs = [read_run(sweep / str(job)) for job in range(3)]
    per_run = np.array([[np.mean(r.preds[r.labels == k] == k) for k in range(3)] for r in runs])
    np.testing.assert_allclose(erm.accuracy.to_numpy(), per_run)
    np.testing.assert_allclose(erm.accuracy.mean().to_numpy(), per_run.mean(axis=0))
    np.testing.assert_allclose(erm.accuracy.std(ddof=1).to_numpy(), per_run.std(axis=0, ddof=1))
    summed = sum(np.bincount(r.labels * 3 + r.preds, minlength=9).reshape(3, 3) for r in runs)
    np.testing.assert_array_equal(erm.confusion, summed)
    assert erm.confusion_runs == 3 and erm.classes == CLASSES
    md = write_report(report, tmp_path / "out").read_text()
    cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(per_run.mean(axis=0), per_run.std(axis=0, ddof=1), strict=True)]
    assert "## Per-class test accuracy, method=erm (mean ± std over 3 runs)" in md
    assert "| " + " | ".join(cells) + " |" in md


def test_runs_over_folds_get_pooled_equal_to_pooled_py(tmp_path):
    v1, v2 = two_folds(tmp_path / "sweep")
    report, md = report_runs(tmp_path / "sweep")
    expected = pooled_accuracy([v1, v2])
    assert len(report.summary.pooled) == 1
    got = report.summary.pooled[0][1]
    pd.testing.assert_frame_equal(got.table, expected.table)
    assert expected.markdown().rstrip() in md.read_text()
    back = pd.read_csv(md.parent / "pooled_test.csv", index_col="run")
    assert back.loc["pooled", "All"] == pytest.approx(0.6)
    assert "## Pooled over folds (`pooled_test.md` and `pooled_test.csv`)" in md.read_text()


def test_runs_without_a_csv_log_or_predictions_still_get_a_report_that_says_what_is_missing(tmp_path):
    sweep = _sweep(tmp_path, logs=False)
    (sweep / "0" / "predictions_test.csv").unlink()
    report, md = report_runs(sweep)
    text = md.read_text()
    assert "curves.png" not in _links(md) and not (md.parent / "curves.png").exists()
    assert "no CSV training log" in text
    assert "run 0: " in text and "has no predictions_test.csv; the run did not evaluate the test split." in text
    assert "Its per-class accuracy comes from summary.json and it is left out of the confusion matrix." in text
    erm = next(r for r in report.classes if r.group == "method=erm")
    assert len(erm.accuracy) == 3 and erm.confusion_runs == 2  # bars from summary.json, confusion without it
    np.testing.assert_allclose(erm.accuracy.loc["0"].to_numpy(), [1.0, 2 / 3, 1 / 3])


def test_unfinished_runs_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    sweep = _sweep(tmp_path)
    (sweep / "6" / ".hydra").mkdir(parents=True)  # a job that crashed before summary.json
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    with caplog.at_level("WARNING", logger="fermix"):
        report, md = report_runs([str(sweep / "*")])
    assert len(report.summary.jobs) == 6 and report.skipped == [sweep / "6"]
    assert f"skipping {sweep / '6'}: it has no summary.json" in caplog.text
    assert "Skipped (no summary.json: unfinished or failed):" in md.read_text()


def test_runs_from_several_sweeps_are_named_by_their_path_and_reported_beside_them(tmp_path):
    a = fabricate_run(tmp_path / "multirun_a" / "0", [0, 1], [0, 1], seed=1)
    b = fabricate_run(tmp_path / "multirun_b" / "0", [0, 1], [0, 0], seed=2)
    report, md = report_runs([a, b])
    assert [j.name for j in report.summary.jobs] == ["multirun_a/0", "multirun_b/0"]
    assert md.parent == tmp_path / "report" == default_out([a, b])
    assert default_out([a]) == a / "report"


def test_split_chooses_the_predictions_file(tmp_path):
    fabricate_run(tmp_path / "s" / "0", [0, 1, 2], [0, 1, 1], split="val", seed=1)
    fabricate_run(tmp_path / "s" / "1", [0, 1, 2], [0, 0, 2], split="val", seed=2)
    _, md = report_runs(tmp_path / "s", out=tmp_path / "out", split="val")
    assert md == tmp_path / "out" / "report.md"
    assert _links(md) == ["per_class_acc_val.png", "confusion_val.png"]


# --------------------------------------------------------------------------- the command


def test_cli_writes_the_report_into_out(tmp_path, fermix_main):
    sweep = _sweep(tmp_path)
    result = fermix_main(["report", f"runs={sweep}", "out=rep"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rep" / "report.md").is_file() and "report over 6 runs in 2 settings" in result.stdout
    assert not (tmp_path / ".hydra").exists()  # the report job leaves nothing of Hydra's behind


def test_cli_takes_a_glob_and_a_list(tmp_path, fermix_main):
    _sweep(tmp_path)
    result = fermix_main(["report", "runs='multirun_*/[0-2]'", "out=globbed"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(tmp_path / "globbed" / "metrics.csv")) == 3
    result = fermix_main(["report", "runs=[multirun_x/0,multirun_x/4]", "out=listed"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(tmp_path / "listed" / "metrics.csv")["group"].tolist() == ["method=erm", "method=iern"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["runs=nothing_here_*"], ("nothing_here_* matches no directory",)),
        (["runs=missing_dir"], ("missing_dir does not exist",)),
        (["runs=crashed"], ("crashed holds no finished run", "without summary.json")),
        ([], ("fermix report needs runs=DIR|GLOB",)),
        (["runs=done", "split=vla"], ("none of the 1 runs has predictions_vla.csv", "split= (test)")),
        (["runs=.", "splt=val"], ("splt",)),
    ],
)
def test_bad_input_is_one_sentence_and_exit_1(tmp_path, fermix_main, args, fragments):
    (tmp_path / "crashed" / "0" / ".hydra").mkdir(parents=True)
    fabricate_run(tmp_path / "done", [0], [0])
    result = fermix_main(["report", *args], cwd=tmp_path)
    assert_one_sentence_error(result, *fragments)
    assert result.returncode == 1
    assert not list(tmp_path.rglob("report.md"))


def test_report_runs_with_no_patterns_is_refused():
    with pytest.raises(FermixError, match="runs= is empty"):
        report_runs([])


# --------------------------------------------------------------------------- a real multirun


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> Path:
    """`fermix train -m seed=1,2` (2 epochs, CSV logs) in a fresh process, as a user runs it."""
    work = tmp_path_factory.mktemp("real")
    faces = write_image_folder(work / "faces", per_class=6, size=32)
    args = ["train", "-m", "seed=1,2", *quick_overrides(faces, "trainer.max_epochs=2"), f"paths.runs_dir={work}/runs"]
    result = run_fermix(args, cwd=work, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (work / "runs" / "erm_imagefolder").glob("multirun_*")
    return sweep


@pytest.mark.slow  # the 2-job multirun takes 13-26 s on 2 busy cores
def test_a_real_multirun_is_reported_from_its_own_files(real_sweep, fermix_main):
    result = fermix_main(["report", f"runs={real_sweep}"], cwd=real_sweep.parent)
    assert result.returncode == 0, result.stderr
    md = real_sweep / "report" / "report.md"
    summaries = [json.loads((real_sweep / job / "summary.json").read_text()) for job in ("0", "1")]
    grouped = pd.read_csv(md.parent / "metrics_grouped.csv", index_col="group")
    for metric in ("acc", "macro_f1"):
        values = np.array([s["metrics"]["test"][metric] for s in summaries])
        assert grouped.loc["all runs", f"test/{metric} mean"] == pytest.approx(values.mean(), abs=1e-6)
        assert grouped.loc["all runs", f"test/{metric} std"] == pytest.approx(values.std(ddof=1), abs=1e-6)
    assert "| 1 | seed=2 | 2 |" in md.read_text()  # one setting: no setting column
    assert _links(md) == ["curves.png", "per_class_acc_test.png", "confusion_test.png"]
    for link in _links(md):
        assert_picture(md.parent / link)


@pytest.mark.slow
def test_the_fabricated_run_layout_matches_a_real_run(real_sweep, tmp_path):
    """The hand-made run dirs above carry the files and columns the report reads from a real run."""
    real, fake = real_sweep / "0", fabricate_run(tmp_path / "0", [0, 1], [0, 1], classes=("happy", "sad", "surprise"))
    write_csv_log(fake, [1.0, 0.5], [0.5, 0.6])
    real_log, fake_log = (pd.read_csv(d / "csv" / "metrics.csv") for d in (real, fake))
    assert set(fake_log.columns) <= set(real_log.columns)
    assert real_log["epoch"].isna().any() == fake_log["epoch"].isna().any()  # learning-rate rows
    real_summary, fake_summary = (json.loads((d / "summary.json").read_text()) for d in (real, fake))
    for key in ("method", "dataset", "seed", "metrics", "per_class_acc"):
        assert type(real_summary[key]) is type(fake_summary[key]), key
    assert list(real_summary["per_class_acc"]["test"]) == list(fake_summary["per_class_acc"]["test"])
    real_pred, fake_pred = (pd.read_csv(d / "predictions_test.csv") for d in (real, fake))
    assert list(real_pred.columns) == list(fake_pred.columns)
    assert (real / ".hydra" / "overrides.yaml").is_file() and (fake / ".hydra" / "overrides.yaml").is_file()
