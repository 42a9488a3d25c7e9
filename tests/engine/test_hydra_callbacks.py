"""The SweepSummary Hydra callback: called directly on hand-made sweep dirs, and at the end of a real
`fermix train -m` in a fresh process."""

from __future__ import annotations

import logging

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fermix.cli import config_dir
from fermix.engine.hydra_callbacks import SweepSummary
from fermix.engine.rundir import register_resolvers
from tests.conftest import run_fermix
from tests.engine.runner import quick_overrides
from tests.helpers import write_image_folder
from tests.report.fabricate import two_folds


def _config(sweep_dir) -> OmegaConf:
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})


def test_on_multirun_end_writes_the_summary_and_pooled_folds_into_the_sweep_dir(tmp_path, caplog):
    two_folds(tmp_path / "sweep")
    with caplog.at_level(logging.INFO, logger="fermix"):
        SweepSummary().on_multirun_end(_config(tmp_path / "sweep"), config_name="train")
    for name in ("sweep_summary.md", "sweep_summary.csv", "pooled_test.md", "pooled_test.csv"):
        assert (tmp_path / "sweep" / name).is_file(), name
    assert "| **pooled** | 64.29 (9/14)" in (tmp_path / "sweep" / "sweep_summary.md").read_text()
    assert "sweep summary and pooled fold aggregate of 2 jobs" in caplog.text


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("empty", "holds no finished job"),
        ("no_hydra", "sweep summary not written:"),
        ("bad_summary", "summary.json"),
    ],
)
def test_a_failure_logs_one_warning_line_and_never_raises(tmp_path, caplog, config, fragment):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    if config == "bad_summary":
        two_folds(sweep)
        (sweep / "1" / "summary.json").write_text("{not json\n")
    cfg = OmegaConf.create({}) if config == "no_hydra" else _config(sweep)
    with caplog.at_level(logging.INFO, logger="fermix"):
        SweepSummary().on_multirun_end(cfg)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage(), caplog.text
    assert warnings[0].getMessage().startswith("sweep summary not written: ") and fragment in warnings[0].getMessage()
    assert not (sweep / "sweep_summary.md").exists()


def test_an_unexpected_error_is_one_warning_line_too(tmp_path, caplog, monkeypatch):
    def boom(sweep_dir):
        raise RuntimeError("disk\nfull")

    monkeypatch.setattr("fermix.report.sweep.write_sweep_summary", boom)
    with caplog.at_level(logging.WARNING, logger="fermix"):
        SweepSummary().on_multirun_end(_config(tmp_path))
    assert [r.getMessage() for r in caplog.records] == ["sweep summary not written: disk full"]


def test_train_yaml_registers_the_callback():
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True)
    callbacks = cfg.hydra.callbacks
    assert list(callbacks) == ["sweep_summary"]
    assert isinstance(instantiate(callbacks.sweep_summary), SweepSummary)


def test_a_real_multirun_leaves_sweep_summary_md(tmp_path):
    root = write_image_folder(tmp_path / "faces", per_class=6, size=32)
    tiny = [o for o in quick_overrides(root, "trainer.max_epochs=1") if o != "logger=csv"]  # no logger: faster
    args = ["train", "-m", "seed=1,2", *tiny, "logger=none", f"paths.runs_dir={tmp_path / 'runs'}"]
    result = run_fermix(args, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "runs" / "erm_imagefolder").glob("multirun_*"))
    assert len(sweeps) == 1, sweeps
    md = (sweeps[0] / "sweep_summary.md").read_text()
    assert "2 finished jobs" in md and "| 0 | seed=1 | 1 |" in md and "| 1 | seed=2 | 2 |" in md
    assert "| mean ± std |" in md and "Pooled" not in md  # one fold: nothing to pool
    assert (sweeps[0] / "sweep_summary.csv").is_file()
    assert "sweep summary not written" not in result.stdout + result.stderr
